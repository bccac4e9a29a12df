"""The set of event identities seen so far in a stream, to drop re-delivered events.

Identities arrive as two independent 64-bit hashes (agent/events.py), a 128-bit key: two
different events share a key with probability about n**2 / 2**129 (1e-26 for a 3M-event
hour). Keys are kept in sorted numpy runs merged LSM-style, 16 bytes per event, so a batch is
checked with a few binary searches instead of a hash table of Python objects (which would take
several times the memory of the events' own columns).
"""

import numpy as np
import numpy.typing as npt

Keys = npt.NDArray[np.uint64]
# A bit per value of a key's low FILTER_BITS bits of h2, set once a key with those bits is
# seen: a key whose bit is clear is new, with no binary search at all. Most keys of a stream
# are new, and the searches are most of the cost; 16 MiB (zero pages until touched), about
# 2 % of new keys still searched at 3M keys.
FILTER_BITS = 27
# Runs stop growing here (4 MiB of keys): merging costs more than the few more binary searches
# per batch that more runs take. On a 3M-event hour's keys, in batches of 64Ki: 0.35-0.37 s at
# 256Ki, 0.52-0.60 s at 1Mi (16 runs against 5).
MAX_RUN = 1 << 18


class SeenKeys:
    """128-bit keys (h1, h2) seen so far."""

    def __init__(self) -> None:
        self._runs: list[tuple[Keys, Keys]] = []
        self._filter = np.zeros(1 << (FILTER_BITS - 3), dtype=np.uint8)

    def __len__(self) -> int:
        return sum(len(h1) for h1, _ in self._runs)

    def first_seen(self, h1: Keys, h2: Keys) -> npt.NDArray[np.bool_]:
        """For each key of a batch, whether this is its first occurrence; records them."""
        keep = np.zeros(len(h1), dtype=bool)
        if not len(h1):
            return keep
        # Within the batch: one of equal keys (equal keys are the same event, any copy will
        # do). Sorting by h1 alone is enough unless two keys share h1 but not h2 (2**-64).
        order = np.argsort(h1)
        s1, s2 = h1[order], h2[order]
        same1 = s1[1:] == s1[:-1]
        if np.any(same1 & (s2[1:] != s2[:-1])):
            order = np.lexsort((h2, h1))
            s1, s2 = h1[order], h2[order]
            same1 = s1[1:] == s1[:-1]
        repeat = np.zeros(len(order), dtype=bool)
        repeat[1:] = same1 & (s2[1:] == s2[:-1])
        c1, c2 = s1[~repeat], s2[~repeat]
        slots = c2 & np.uint64((1 << FILTER_BITS) - 1)
        byte = (slots >> np.uint64(3)).astype(np.intp)
        bit = np.left_shift(1, slots & np.uint64(7)).astype(np.uint8)
        new = (self._filter[byte] & bit) == 0
        if not np.all(new):
            maybe = ~new
            new[maybe] = ~self._contains(c1[maybe], c2[maybe])
        keep[order[~repeat][new]] = True
        if np.any(new):
            self._mark(slots[new])
            self._add(c1[new], c2[new])
        return keep

    def _mark(self, slots: Keys) -> None:
        """Set the filter bits of `slots`, one bit position at a time: equal bytes within a
        position set the same bit, so a plain assignment loses nothing (`bitwise_or.at`, which
        handles repeated indices in general, took a fifth of the set's time)."""
        byte = (slots >> np.uint64(3)).astype(np.intp)
        position = slots & np.uint64(7)
        for shift in range(8):
            chosen = byte[position == shift]
            self._filter[chosen] |= np.uint8(1 << shift)

    def _contains(self, q1: Keys, q2: Keys) -> npt.NDArray[np.bool_]:
        found = np.zeros(len(q1), dtype=bool)
        for r1, r2 in self._runs:
            at = np.minimum(np.searchsorted(r1, q1), len(r1) - 1)
            hit = r1[at] == q1
            match = hit & (r2[at] == q2)
            found |= match
            for i in np.nonzero(hit & ~match)[0]:
                # Equal h1 but not h2 at the first entry with that h1 (2**-64): the others.
                j = int(at[i]) + 1
                while j < len(r1) and r1[j] == q1[i]:
                    if r2[j] == q2[i]:
                        found[i] = True
                        break
                    j += 1
        return found

    def _add(self, h1: Keys, h2: Keys) -> None:
        """Record keys already sorted by h1."""
        self._runs.append((h1, h2))
        # Size-tiered: merge while the newest run is as large as half the one before, so
        # there are O(log n) runs below MAX_RUN and each key is merged O(log n) times.
        while (
            len(self._runs) > 1
            and 2 * len(self._runs[-1][0]) >= len(self._runs[-2][0])
            and len(self._runs[-1][0]) + len(self._runs[-2][0]) <= MAX_RUN
        ):
            (a1, a2), (b1, b2) = self._runs[-2], self._runs[-1]
            # Insert the smaller run into the larger one: no index array of the whole size.
            if len(a1) < len(b1):
                (a1, a2), (b1, b2) = (b1, b2), (a1, a2)
            at = np.searchsorted(a1, b1)
            self._runs[-2:] = [(np.insert(a1, at, b1), np.insert(a2, at, b2))]
