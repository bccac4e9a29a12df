"""Runs the Ruby filters' minitest suites with real Ruby, under MRI and under the JRuby the pinned
Logstash bundles, so `pytest` covers both. A missing interpreter fails the test: one rule for
every missing Ruby (README, "How this is tested")."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import jruby
import pytest
from logstash_support import LOGSTASH_DIR

from infra.versions import LOGSTASH_BASE_IMAGE

RUBY_TESTS = Path(__file__).parent / "ruby"
SUITES = (
    RUBY_TESTS / "test_edge_metrics.rb",
    RUBY_TESTS / "test_edge_metrics_journal.rb",
    RUBY_TESTS / "test_event_identity.rb",
)
# A suite that silently lost its tests would still "pass"; these must have run.
REQUIRED = (
    "EdgeMetricsTest#test_normalization_drops_query_replaces_ids_and_caps_depth",
    "EdgeMetricsTest#test_idle_node_reports_its_last_window_on_ticks",
    "EdgeMetricsTest#test_integer_statuses_fill_the_403_404_429_lists",
    "EdgeMetricsTest#test_top_n_cut_ranks_by_count_then_key_and_applies_minimum_count",
    "EdgeMetricsTest#test_a_later_window_closes_the_earlier_one_with_counts_and_bytes",
    "EdgeMetricsJournalTest#test_a_restart_keeps_the_counts_of_open_windows",
    "EdgeMetricsJournalTest#test_events_delivered_again_after_a_restart_count_once",
    "EdgeMetricsJournalTest#test_documents_lost_with_their_batch_are_emitted_again_with_the_same_ids",
    "EdgeMetricsJournalTest#test_the_shared_replay_fixture",
    "EdgeMetricsJournalTest#test_random_crashes_and_replays_never_lose_or_double_count",
    "EventIdentityTest#test_identical_lines_are_distinct_events_at_their_offsets",
    "EventIdentityTest#test_a_restart_reproduces_the_ids_of_the_lines_it_reads_again",
    "EventIdentityTest#test_a_restart_inside_identical_lines_never_gives_one_id_to_two_lines",
    "EventIdentityTest#test_a_rotated_file_keeps_its_ids_and_the_new_file_starts_its_own",
    "EventIdentityTest#test_the_shared_replay_fixture",
)


def interpreter(name: str) -> list[str]:
    if name == "jruby":
        try:
            return jruby.command(jruby.ensure_jar())
        except jruby.JRubyUnavailable as error:
            pytest.fail(f"JRuby {jruby.JRUBY_VERSION} is needed: {error}")
    path = shutil.which("ruby")
    if path is None:
        pytest.fail("ruby (MRI) is not installed (apt-get install -y ruby)")
    return [path]


@pytest.mark.parametrize("name", ["mri", "jruby"])
def test_ruby_suites_pass(name: str) -> None:
    # Both suites in one process: JRuby's start-up is the slow part.
    requires = [f"-r{suite}" for suite in SUITES]
    result = subprocess.run(
        [*interpreter(name), *requires, "-e", "", "--", "--verbose"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    expected_engine = "jruby" if name == "jruby" else "ruby"
    summary = re.search(r"(\d+) runs, (\d+) assertions, (\d+) failures, (\d+) errors", output)
    assert summary, output
    runs, assertions, failures, errors = map(int, summary.groups())
    assert (failures, errors) == (0, 0), output
    for required in REQUIRED:
        assert f"{required} = " in output, required
    assert runs >= 28
    assert assertions >= 290
    version = subprocess.run(
        [*interpreter(name), "-e", "print RUBY_ENGINE, ' ', RUBY_ENGINE_VERSION"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert version.startswith(expected_engine), version
    if name == "jruby":
        assert version == f"jruby {jruby.JRUBY_VERSION}"


def test_jruby_is_the_one_the_pinned_logstash_bundles() -> None:
    """versions.yml at elastic/logstash v8.19.20 names jruby 9.4.15.0: the pinned tag (the
    Dockerfile's base default, infra/versions.py) and the tested JRuby move together."""
    dockerfile = (LOGSTASH_DIR / "Dockerfile").read_text()
    (base,) = re.findall(r"^ARG LOGSTASH_BASE=(\S+)$", dockerfile, re.MULTILINE)
    assert re.findall(r"^FROM .*$", dockerfile, re.MULTILINE) == ["FROM ${LOGSTASH_BASE}"]
    expected = f"docker.elastic.co/logstash/logstash-oss:{jruby.LOGSTASH_VERSION}"
    assert base == LOGSTASH_BASE_IMAGE == expected
