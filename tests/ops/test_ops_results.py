"""Which execution counts for a node, and how a node's answer is read."""

from __future__ import annotations

from typing import Any

from infra.ops.render import Kind
from infra.ops.results import latest_attempts, outcome_of, progress_counts
from tests.ops.conftest import partial


def _execution(node: str, state: str, created: int, partition: int = 0, **output: Any) -> dict:
    return {
        "ID": f"e-{node}-{created}",
        "NodeID": node,
        "PartitionIndex": partition,
        "CreateTime": created,
        "Revision": 3,
        "ComputeState": {"StateType": state},
        "RunOutput": {"Stdout": "", "ExitCode": 0, **output},
    }


def test_a_retried_batch_partition_counts_its_latest_attempt_on_any_node():
    """v1.9.3 never sets NextExecution (pkg/models/execution.go); a failed batch partition is
    retried on another node (pkg/orchestrator/scheduler/batch_service_job.go)."""
    failed = _execution("n-1", "Failed", 10)
    retry = _execution("n-2", "Running", 20)
    current, replaced = latest_attempts([failed, retry], Kind.BATCH)
    assert (current, replaced) == ([retry], [failed])
    assert progress_counts([failed, retry], Kind.BATCH) == {
        "done": 0,
        "running": 1,
        "failed": 0,
        "retried": 1,
    }


def test_the_completed_attempt_wins_even_when_an_older_one_is_newer_by_clock_skew():
    done = _execution("n-2", "Completed", 5)
    late_failure = _execution("n-1", "Failed", 9)
    current, _ = latest_attempts([done, late_failure], Kind.BATCH)
    assert current == [done]


def test_ops_executions_count_per_node_and_partitions_apart():
    executions = [
        _execution("n-1", "Completed", 1),
        _execution("n-2", "Failed", 2),
        _execution("n-3", "Running", 3),
    ]
    current, replaced = latest_attempts(executions, Kind.OPS)
    assert current == executions and replaced == []
    assert progress_counts(executions, Kind.OPS) == {
        "done": 1,
        "running": 1,
        "failed": 1,
        "retried": 0,
    }
    two = [_execution("a", "Completed", 1, 0), _execution("b", "Completed", 2, 1)]
    assert latest_attempts(two, Kind.BATCH)[0] == two


def test_a_short_api_copy_without_the_truncated_flag_is_read_from_the_bucket():
    """executor.writeOutputResult fills the API copy with one Read call
    (pkg/executor/results.go), which may return less than 2 KiB of a longer stdout without
    setting StdoutTruncated (seen with the v1.9.3 binary: 83 of 6,358 bytes): an unparseable
    copy is read from the published result."""
    whole = partial([["/a", 1]])
    execution = _execution("n-1", "Completed", 1, Stdout=whole[:40])
    execution["PublishedResult"] = {"Type": "s3", "Params": {"Bucket": "b", "Key": "r/"}}
    reads: list[str] = []

    def read(published: Any, name: str) -> str:
        reads.append(name)
        return whole

    outcome = outcome_of(execution, "n-1", "eu-1", read)
    assert outcome.complete and outcome.answer is not None
    assert outcome.answer.rows == [["/a", 1]]
    assert reads == ["stdout"]


def test_a_failed_query_shows_its_last_stderr_line_read_whole_from_the_bucket():
    execution = _execution(
        "n-1", "Completed", 1, ExitCode=1, stderr="query: log folder: ..." * 100,
        StderrTruncated=True,
    )  # fmt: skip
    execution["PublishedResult"] = {"Type": "s3", "Params": {"Bucket": "b", "Key": "r/"}}

    def read(published: Any, name: str) -> str:
        return "query: log folder: read 3 files\nquery: error: Binder Error: no column x\n"

    outcome = outcome_of(execution, "n-1", "eu-1", read)
    assert outcome.problem == "query exited 1: query: error: Binder Error: no column x"
