"""Controlled label noise (spacy_ner_project/noise.py): what each kind does, checked on
hand-made spans and, for every kind and rate, by hypothesis against the invariants."""

from __future__ import annotations

import random
from typing import List

import pytest
import spacy
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.tokens import Span

from spacy_ner_project.noise import (
    KINDS,
    check_mix,
    corrupt_docs,
    corrupt_spans,
    mix_from_differences,
)
from spacy_ner_project.scoring.diff import category_counts, differences
from spacy_ner_project.scoring.matching import Entity

LABELS = ("PER", "ORG", "LOC", "MISC")
SPANS = [(0, 2, "PER"), (4, 5, "ORG"), (7, 9, "LOC"), (12, 13, "MISC")]


@st.composite
def span_sets(draw: st.DrawFn) -> tuple:
    n_tokens = draw(st.integers(min_value=1, max_value=40))
    cuts = sorted(draw(st.sets(st.integers(min_value=0, max_value=n_tokens), max_size=12)))
    spans = []
    for start, end in zip(cuts[::2], cuts[1::2]):
        if start < end:
            spans.append((start, end, draw(st.sampled_from(LABELS))))
    return spans, n_tokens


def well_formed(spans: List[tuple], n_tokens: int) -> bool:
    return all(0 <= s < e <= n_tokens for s, e, _ in spans) and all(a[1] <= b[0] for a, b in zip(spans, spans[1:])) and spans == sorted(spans)


@settings(max_examples=200, deadline=None)
@given(span_sets(), st.sampled_from(KINDS), st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0]), st.integers(0, 10**6))
def test_every_kind_keeps_spans_well_formed(case: tuple, kind: str, rate: float, seed: int) -> None:
    spans, n_tokens = case
    noisy, counts = corrupt_spans(spans, n_tokens, kind=kind, rate=rate, labels=LABELS, rng=random.Random(seed))
    assert well_formed(noisy, n_tokens)
    assert counts.n_gold == len(spans)
    if rate == 0.0:
        assert noisy == sorted(spans) and not counts.applied
    again, _ = corrupt_spans(spans, n_tokens, kind=kind, rate=rate, labels=LABELS, rng=random.Random(seed))
    assert again == noisy  # the same seed, the same corpus


def test_drop_at_rate_one_removes_every_entity() -> None:
    assert corrupt_spans(SPANS, 15, kind="drop", rate=1.0, labels=LABELS, rng=random.Random(0))[0] == []


def test_type_keeps_boundaries_and_changes_every_label() -> None:
    noisy, counts = corrupt_spans(SPANS, 15, kind="type", rate=1.0, labels=LABELS, rng=random.Random(0))
    assert [(s, e) for s, e, _ in noisy] == [(s, e) for s, e, _ in SPANS]
    assert all(new[2] != old[2] for new, old in zip(noisy, SPANS)) and counts.applied["type"] == 4


def test_boundary_moves_one_edge_by_one_token_and_keeps_the_label() -> None:
    noisy, counts = corrupt_spans(SPANS, 15, kind="boundary", rate=1.0, labels=LABELS, rng=random.Random(1))
    for (s, e, label), (os, oe, olabel) in zip(noisy, SPANS):
        assert label == olabel and abs(s - os) + abs(e - oe) == 1
    assert counts.applied["boundary"] == 4


def test_boundary_without_room_leaves_the_span() -> None:
    packed = [(0, 1, "PER"), (1, 2, "ORG")]  # a one-token text edge, touching neighbours: no move fits
    noisy, counts = corrupt_spans(packed, 2, kind="boundary", rate=1.0, labels=LABELS, rng=random.Random(0))
    assert noisy == packed and counts.no_room["boundary"] == 2


def test_spurious_adds_the_rate_of_gold_on_free_tokens() -> None:
    noisy, counts = corrupt_spans(SPANS, 40, kind="spurious", rate=0.5, labels=LABELS, rng=random.Random(0))
    assert set(SPANS) <= set(noisy) and len(noisy) == 6 and counts.applied["spurious"] == 2


def test_the_kinds_make_the_categories_they_are_named_after() -> None:
    """Measured with the report's own classifier (scoring/diff.py)."""
    expected = {"drop": "missed", "type": "wrong_type", "boundary": "wrong_boundary",
                "type_boundary": "wrong_type_and_boundary", "spurious": "spurious"}
    gold = [Entity(label, s, e) for s, e, label in SPANS]
    for kind, category in expected.items():
        noisy, _ = corrupt_spans(SPANS, 40, kind=kind, rate=1.0, labels=LABELS, rng=random.Random(3))
        counts = category_counts(differences(gold, [Entity(label, s, e) for s, e, label in noisy]))
        assert counts[category] > 0
        assert sum(n for c, n in counts.items() if c not in ("correct", category)) == 0, (kind, counts)


def test_a_mix_measured_from_differences_round_trips() -> None:
    mix = mix_from_differences({"correct": 10, "missed": 6, "wrong_type": 2, "wrong_boundary": 1, "wrong_type_and_boundary": 0, "spurious": 1})
    assert mix == {"drop": 0.6, "type": 0.2, "boundary": 0.1, "type_boundary": 0.0, "spurious": 0.1}
    noisy, counts = corrupt_spans(SPANS * 1, 40, mix=mix, rate=1.0, labels=LABELS, rng=random.Random(0))
    assert sum(counts.applied.values()) >= 4
    with pytest.raises(ValueError, match="sum to 1"):
        check_mix({"drop": 0.5})
    with pytest.raises(ValueError, match="unknown noise kinds"):
        check_mix({"typo": 1.0})
    with pytest.raises(ValueError, match="no mistake"):
        mix_from_differences({"correct": 3})


def test_corrupt_docs_copies_and_counts() -> None:
    nlp = spacy.blank("en")
    doc = nlp("Anna Kowalski joined Helix Motors in Valmora on Monday .")
    doc.ents = [Span(doc, 0, 2, "PER"), Span(doc, 3, 5, "ORG"), Span(doc, 6, 7, "LOC")]
    noisy, counts = corrupt_docs([doc], kind="drop", rate=1.0, labels=LABELS, seed=0)
    assert [e.text for e in doc.ents] == ["Anna Kowalski", "Helix Motors", "Valmora"]  # the input is untouched
    assert list(noisy[0].ents) == [] and counts.applied["drop"] == 3 and counts.n_gold == 3
