"""Runs the Ruby filters' minitest suite with real Ruby, so `pytest` covers it."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

SUITE = Path(__file__).parent / "ruby" / "test_edge_metrics.rb"


@pytest.fixture(scope="module")
def ruby() -> str:
    path = shutil.which("ruby")
    if path is None:
        pytest.fail("ruby is not installed (apt-get install -y ruby)")
    return path


def test_edge_metrics_minitest_suite_passes(ruby: str) -> None:
    result = subprocess.run(
        [ruby, str(SUITE), "--verbose"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    summary = re.search(r"(\d+) runs, (\d+) assertions, (\d+) failures, (\d+) errors", output)
    assert summary, output
    runs, assertions, failures, errors = map(int, summary.groups())
    assert (failures, errors) == (0, 0), output
    # A suite that silently lost its tests would still "pass"; these names must have run.
    for name in (
        "test_normalization_drops_query_replaces_ids_and_caps_depth",
        "test_idle_node_reports_its_last_window_on_ticks",
        "test_integer_statuses_fill_the_403_404_429_lists",
        "test_top_n_cut_ranks_by_count_then_key_and_applies_minimum_count",
        "test_a_later_window_closes_the_earlier_one_with_counts_and_bytes",
    ):
        assert f"EdgeMetricsTest#{name} = " in output, name
    assert runs >= 15
    assert assertions >= 50
