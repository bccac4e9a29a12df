"""The identity set: each key kept once across batches, including 64-bit collisions."""

import numpy as np
import pytest

import agent.dedup
from agent.dedup import SeenKeys


@pytest.mark.parametrize("max_run", [2_000, agent.dedup.MAX_RUN])
# 4 filter bits: nearly every new key finds its bit set and is searched for (the exact path).
@pytest.mark.parametrize("filter_bits", [4, agent.dedup.FILTER_BITS])
def test_each_key_is_first_seen_once(
    max_run: int, filter_bits: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent.dedup, "MAX_RUN", max_run)
    monkeypatch.setattr(agent.dedup, "FILTER_BITS", filter_bits)
    rng = np.random.default_rng(1)
    keys, seen = SeenKeys(), set()
    for batch in range(40):
        # A small h1 space forces repeats; odd batches also give equal h1 with other h2
        # (what a 64-bit hash collision looks like).
        h1 = rng.integers(0, 2**12, 3000, dtype=np.uint64)
        h2 = h1 * np.uint64(3) + rng.integers(0, 2, 3000, dtype=np.uint64) if batch % 2 else h1
        keep = keys.first_seen(h1, h2)
        kept = [
            (a, b) for a, b, k in zip(h1.tolist(), h2.tolist(), keep.tolist(), strict=True) if k
        ]
        new = {(a, b) for a, b in zip(h1.tolist(), h2.tolist(), strict=True)} - seen
        assert len(kept) == len(new) and set(kept) == new
        seen |= new
    assert len(keys) == len(seen)


def test_empty_batch() -> None:
    empty = np.array([], dtype=np.uint64)
    assert SeenKeys().first_seen(empty, empty).tolist() == []
