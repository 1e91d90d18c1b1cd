"""Length buckets: splitting one padded batch into calls that pad less.

A transformer call on ``n`` rows padded to length ``T`` computes ``n * T`` positions whatever
the rows' own lengths. :func:`length_buckets` splits the rows into groups, each padded only to
its own longest row, at the least total cost ``sum(rows * longest) + call_cost * groups``;
``call_cost`` (in positions) is what one more call costs beyond its positions, so a batch is
split only where padding outweighs it. Pure: no torch, no spaCy.

Tie-breaking, written down: rows are ordered by length, longest first, equal lengths by index;
groups are runs of that order; among plans of equal cost the one with fewer groups wins, then
the one whose first group is longest. Groups come out in that order (longest rows first), the
indices inside a group ascending.
"""

from __future__ import annotations

from typing import List, Sequence


def length_buckets(lengths: Sequence[int], *, call_cost: int) -> List[List[int]]:
    """Row indices of ``lengths`` in groups whose padded cost plus ``call_cost`` per group is
    least. ``call_cost`` >= 0; an empty input gives no groups."""
    if call_cost < 0:
        raise ValueError(f"call_cost must be >= 0, got {call_cost}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    n = len(order)
    # best[j]: (cost, groups) of the cheapest plan for order[j:]; cut[j]: where its first group ends
    best: List[tuple[int, int]] = [(0, 0)] * (n + 1)
    cut = [n] * (n + 1)
    for j in range(n - 1, -1, -1):
        longest = lengths[order[j]]
        candidates = (
            ((k - j) * longest + call_cost + best[k][0], 1 + best[k][1], -k, k) for k in range(j + 1, n + 1)
        )
        cost, groups, _, k = min(candidates)
        best[j], cut[j] = (cost, groups), k
    buckets = []
    j = 0
    while j < n:
        buckets.append(sorted(order[j:cut[j]]))
        j = cut[j]
    return buckets

