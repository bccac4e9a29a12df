"""Progress per region: redrawn in place on a terminal after a few seconds, plain lines else."""

from __future__ import annotations

import io

from infra.ops.progress import Progress


def test_plain_lines_only_when_a_regions_state_changes():
    stream = io.StringIO()
    progress = Progress(stream, ["eu-1", "us-1"], live=False)
    progress.update("eu-1", "job Running; nodes 0 done, 2 running, 0 failed", 1)
    progress.update("eu-1", "job Running; nodes 0 done, 2 running, 0 failed", 4)
    progress.update("us-1", "job Running; nodes 0 done, 1 running, 0 failed", 4)
    progress.update("eu-1", "job Completed; nodes 2 done, 0 running, 0 failed", 9)
    progress.close()
    assert stream.getvalue().splitlines() == [
        "eu-1: job Running; nodes 0 done, 2 running, 0 failed [1s]",
        "us-1: job Running; nodes 0 done, 1 running, 0 failed [4s]",
        "eu-1: job Completed; nodes 2 done, 0 running, 0 failed [9s]",
    ]
    assert "\x1b" not in stream.getvalue()


def test_a_terminal_gets_one_block_redrawn_in_place_after_the_delay():
    stream = io.StringIO()
    now = [0.0]
    progress = Progress(stream, ["eu-1", "us-1"], live=True, delay=2.0, clock=lambda: now[0])
    progress.update("eu-1", "nodes 0 done", 0.5)
    assert stream.getvalue() == ""  # a quick query stays quiet
    now[0] = 3.0
    progress.update("eu-1", "nodes 1 done", 3.0)
    first = stream.getvalue()
    assert first == "\x1b[2Keu-1: nodes 1 done [3s]\n\x1b[2Kus-1: waiting\n"
    progress.note("us-1: submitted job j-2")
    progress.update("us-1", "nodes 1 done", 4.0)
    progress.close()
    redraws = stream.getvalue()[len(first) :]
    # Back up over the two lines, print the note where they were, then the block again.
    assert redraws.startswith("\x1b[2F\x1b[2Kus-1: submitted job j-2\n\x1b[2Keu-1: nodes 1 done")
    assert redraws.endswith(
        "\x1b[2F\x1b[2Keu-1: nodes 1 done [3s]\n\x1b[2Kus-1: nodes 1 done [4s]\n"
    )
