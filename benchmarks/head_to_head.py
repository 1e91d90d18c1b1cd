"""Head to head: a few systems timed in interleaved rounds, each against an anchor round by round.

Rows timed one after another (a warm-up and a few runs each) drift with the host's load: on
this project's 2-core machine the same setting moved ±10% between blocks of one run, so two rows
a few minutes apart can differ by more than the lever between them. Here every round runs every
system once, in an order rotated from round to round, and each system's speed is divided by the
anchor's in the same round; the median of those ratios is the figure that compares them (and
each system's median words/s is reported beside it).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


def rotated(items: Sequence[T], round_index: int) -> list[T]:
    """``items`` in the order of round ``round_index``: shifted left by the round's index, so that
    over ``len(items)`` rounds each item runs in each place once."""
    shift = round_index % len(items)
    return [*items[shift:], *items[:shift]]


@dataclass(frozen=True)
class Contender:
    """One system: ``run(texts)`` over its own ``texts`` (all contenders' texts hold the same words)."""

    name: str
    run: Callable[[Sequence[str]], Any]
    texts: Sequence[str]
    warmup: Sequence[str]


def head_to_head(contenders: Sequence[Contender], *, anchor: str, words: int, rounds: int) -> dict[str, Any]:
    """Words/s of each contender over ``rounds`` interleaved rounds (after one warm-up each), and
    the median over rounds of its speed divided by ``anchor``'s in the same round."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    names = [c.name for c in contenders]
    if anchor not in names or len(set(names)) != len(names):
        raise ValueError(f"anchor {anchor!r} must be one of the contenders' distinct names {names}")
    for contender in contenders:
        contender.run(contender.warmup)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        for contender in rotated(contenders, round_index):
            start = time.perf_counter()
            contender.run(contender.texts)
            seconds[contender.name].append(time.perf_counter() - start)
    rows = []
    for name in names:
        speeds = [words / s for s in seconds[name]]
        ratios = [anchor_s / s for anchor_s, s in zip(seconds[anchor], seconds[name])]
        rows.append({"name": name, "words_per_s": round(statistics.median(speeds), 1),
                     "runs_words_per_s": [round(x, 1) for x in speeds],
                     "ratio_vs_anchor": round(statistics.median(ratios), 3),
                     "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)]})
    return {"anchor": anchor, "rounds": rounds, "rows": rows}
