"""Controlled label noise for the label-noise study (benchmarks/label_noise.py): an annotator's
mistakes, made on purpose to gold entity spans, one kind at a time or as a measured mix.

Pure functions over spans ``(start, end, label)`` in token offsets, ``end`` exclusive, sorted
and non-overlapping, as ``doc.ents`` are; :func:`corrupt_docs` applies them to spaCy docs.

The kinds (named after the report's categories, :mod:`spacy_ner_project.scoring.diff`):

================  =======================================================================
``drop``          the entity is removed (a *missed* entity)
``type``          the entity gets another label, drawn uniformly from the others
``boundary``      one edge moves by one token: the start or the end, outwards or inwards,
                  drawn uniformly among the moves that keep the span non-empty, inside the
                  text and clear of its neighbours; no such move leaves it as it is
``type_boundary`` both, on the same entity (a *wrong type and boundary*)
``spurious``      a span of one or two tokens that no entity touches gets a random label
================  =======================================================================

At ``rate`` r each gold entity is hit with probability r (for ``spurious``: round(r × the
number of gold entities) spans are added, as many as fit). A ``mix`` splits r over the kinds by
shares summing to 1 (e.g. the mix an LLM annotator makes, from
:func:`mix_from_differences`): an entity is hit with probability r and then takes a kind by the
shares of the entity kinds, and round(r × share of ``spurious`` × the number of gold entities)
spurious spans are added. Random choices come from one ``random.Random`` per call, seeded, so a
(kind, rate, seed) gives the same corpus on every run; the order of the draws is the order of
the spans, then of the docs.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

if TYPE_CHECKING:
    from spacy.tokens import Doc

Span = Tuple[int, int, str]
ENTITY_KINDS: Tuple[str, ...] = ("drop", "type", "boundary", "type_boundary")
KINDS: Tuple[str, ...] = (*ENTITY_KINDS, "spurious")
# the report's category (scoring/diff.py) each kind makes
KIND_OF_CATEGORY = {
    "missed": "drop",
    "wrong_type": "type",
    "wrong_boundary": "boundary",
    "wrong_type_and_boundary": "type_boundary",
    "spurious": "spurious",
}


@dataclass
class NoiseCounts:
    """What a corruption did: per kind, the changes made and the ones that found no room."""

    applied: Counter = field(default_factory=Counter)
    no_room: Counter = field(default_factory=Counter)
    n_gold: int = 0

    def add(self, other: "NoiseCounts") -> None:
        self.applied.update(other.applied)
        self.no_room.update(other.no_room)
        self.n_gold += other.n_gold


def check_mix(mix: Mapping[str, float]) -> Dict[str, float]:
    """The mix with every kind, or a ValueError naming what is wrong."""
    unknown = set(mix) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown noise kinds {sorted(unknown)}; the kinds are {', '.join(KINDS)}")
    if any(share < 0 for share in mix.values()) or abs(sum(mix.values()) - 1.0) > 1e-6:
        raise ValueError(f"a mix's shares are >= 0 and sum to 1, got {dict(mix)}")
    return {kind: float(mix.get(kind, 0.0)) for kind in KINDS}


def mix_from_differences(counts: Mapping[str, int]) -> Dict[str, float]:
    """The mix of mistakes in category counts (``category_counts`` of an annotator against gold):
    each kind's share of all mistakes (correct entities are no mistake)."""
    mistakes = {KIND_OF_CATEGORY[c]: n for c, n in counts.items() if c in KIND_OF_CATEGORY}
    total = sum(mistakes.values())
    if total == 0:
        raise ValueError("the counts hold no mistake to take a mix from")
    return {kind: mistakes.get(kind, 0) / total for kind in KINDS}


def _other_label(label: str, labels: Sequence[str], rng: random.Random) -> str:
    others = [other for other in labels if other != label]
    return rng.choice(others) if others else label


def _boundary_moves(span: Span, *, lower: int, upper: int) -> List[Tuple[int, int]]:
    """Every (start, end) one token away from ``span`` at one edge, non-empty and within
    [lower, upper) (the neighbours' ends and starts, the text's edges)."""
    start, end, _ = span
    candidates = [(start - 1, end), (start + 1, end), (start, end - 1), (start, end + 1)]
    return [(s, e) for s, e in candidates if lower <= s < e <= upper]


def corrupt_spans(
    spans: Sequence[Span],
    n_tokens: int,
    *,
    kind: Optional[str] = None,
    mix: Optional[Mapping[str, float]] = None,
    rate: float,
    labels: Sequence[str],
    rng: random.Random,
) -> Tuple[List[Span], NoiseCounts]:
    """``spans`` with noise of one ``kind`` or a ``mix`` at ``rate`` (module docstring); the
    result is sorted and non-overlapping, every span inside [0, n_tokens)."""
    if (kind is None) == (mix is None):
        raise ValueError("give a kind or a mix, not both")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate is a share between 0 and 1, got {rate}")
    shares = check_mix(mix) if mix is not None else {k: float(k == kind) for k in KINDS}
    entity_shares = [shares[k] for k in ENTITY_KINDS]
    counts = NoiseCounts(n_gold=len(spans))
    ordered = sorted(spans)
    result: List[Span] = []
    for index, span in enumerate(ordered):
        if sum(entity_shares) == 0 or rng.random() >= rate:
            result.append(span)
            continue
        chosen = rng.choices(ENTITY_KINDS, weights=entity_shares)[0]
        start, end, label = span
        if chosen == "drop":
            counts.applied[chosen] += 1
            continue
        if chosen in ("type", "type_boundary"):
            label = _other_label(label, labels, rng)
        if chosen in ("boundary", "type_boundary"):
            lower = result[-1][1] if result else 0
            upper = ordered[index + 1][0] if index + 1 < len(ordered) else n_tokens
            moves = _boundary_moves(span, lower=lower, upper=upper)
            if not moves:
                counts.no_room[chosen] += 1
                result.append(span)
                continue
            start, end = rng.choice(moves)
        counts.applied[chosen] += 1
        result.append((start, end, label))
    wanted = round(rate * shares["spurious"] * len(spans))
    added = _spurious_spans(result, n_tokens, wanted=wanted, labels=labels, rng=rng)
    if added:
        counts.applied["spurious"] += len(added)
    if wanted > len(added):
        counts.no_room["spurious"] += wanted - len(added)
    return sorted(result + added), counts


def _spurious_spans(spans: Sequence[Span], n_tokens: int, *, wanted: int, labels: Sequence[str], rng: random.Random) -> List[Span]:
    """Up to ``wanted`` spans of 1-2 tokens that touch no span of ``spans`` nor each other."""
    taken = [False] * n_tokens
    for start, end, _ in spans:
        for i in range(start, end):
            taken[i] = True
    added: List[Span] = []
    for _ in range(wanted):
        width = rng.choice((1, 2))
        starts = [i for i in range(n_tokens - width + 1) if not any(taken[i:i + width])]
        if not starts and width == 2:
            width, starts = 1, [i for i in range(n_tokens) if not taken[i]]
        if not starts:
            break
        start = rng.choice(starts)
        for i in range(start, start + width):
            taken[i] = True
        added.append((start, start + width, rng.choice(list(labels))))
    return added


def corrupt_docs(
    docs: Iterable["Doc"],
    *,
    kind: Optional[str] = None,
    mix: Optional[Mapping[str, float]] = None,
    rate: float,
    labels: Sequence[str],
    seed: int = 0,
) -> Tuple[List["Doc"], NoiseCounts]:
    """Copies of ``docs`` whose entities carry the noise (:func:`corrupt_spans`, one seeded
    generator for the whole corpus), and what was done."""
    from spacy.tokens import Span as SpacySpan

    rng = random.Random(seed)
    total = NoiseCounts()
    noisy = []
    for doc in docs:
        spans = [(ent.start, ent.end, ent.label_) for ent in doc.ents]
        new_spans, counts = corrupt_spans(spans, len(doc), kind=kind, mix=mix, rate=rate, labels=labels, rng=rng)
        total.add(counts)
        copy = doc.copy()
        copy.set_ents([SpacySpan(copy, start, end, label) for start, end, label in new_spans], default="outside")
        noisy.append(copy)
    return noisy, total
