"""Where a prediction differs from gold (spacy_ner_project.scoring.diff) and how the report lays
it out (spacy_ner_project.evaluation.diff_view): a table of cases, then properties over random
entity sets."""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spacy_ner_project.evaluation.diff_view import BOTH, GOLD_ONLY, LEGEND_EXAMPLES, PRED_ONLY, SEVERAL, Cluster, layout
from spacy_ner_project.scoring.diff import (
    CATEGORIES,
    CORRECT,
    MISSED,
    SPURIOUS,
    WRONG_BOUNDARY,
    WRONG_TYPE,
    WRONG_TYPE_AND_BOUNDARY,
    category_counts,
    differences,
)
from spacy_ner_project.scoring.matching import Entity

Span = Tuple[int, int, str]  # start, end, label
Row = Tuple[str, Optional[Span], Optional[Span]]  # category, gold, predicted


def entities(spans: Sequence[Span]) -> List[Entity]:
    return [Entity(label, start, end) for start, end, label in spans]


def rows(gold: Sequence[Span], pred: Sequence[Span]) -> List[Row]:
    def span(entity: Optional[Entity]) -> Optional[Span]:
        return None if entity is None else (entity.start, entity.end, entity.label)

    return [(d.category, span(d.gold), span(d.pred)) for d in differences(entities(gold), entities(pred))]


CASES = {  # name: (gold, predicted, the differences in text order)
    "correct": ([(0, 2, "PER")], [(0, 2, "PER")], [(CORRECT, (0, 2, "PER"), (0, 2, "PER"))]),
    "missed": ([(0, 2, "PER")], [], [(MISSED, (0, 2, "PER"), None)]),
    "spurious": ([], [(3, 4, "LOC")], [(SPURIOUS, None, (3, 4, "LOC"))]),
    "wrong type": ([(0, 2, "LOC")], [(0, 2, "ORG")], [(WRONG_TYPE, (0, 2, "LOC"), (0, 2, "ORG"))]),
    "wrong boundary": ([(0, 2, "PER")], [(0, 1, "PER")], [(WRONG_BOUNDARY, (0, 2, "PER"), (0, 1, "PER"))]),
    "other label and boundaries: one difference of its own": (
        [(0, 2, "ORG")], [(1, 3, "LOC")], [(WRONG_TYPE_AND_BOUNDARY, (0, 2, "ORG"), (1, 3, "LOC"))],
    ),
    "no shared unit: missed and spurious, never paired": (
        [(0, 2, "PER")], [(2, 3, "PER")], [(MISSED, (0, 2, "PER"), None), (SPURIOUS, None, (2, 3, "PER"))],
    ),
    "two predictions in one gold entity: the earlier pairs, the other is spurious": (
        [(0, 2, "ORG")], [(0, 1, "ORG"), (1, 2, "ORG")],
        [(WRONG_BOUNDARY, (0, 2, "ORG"), (0, 1, "ORG")), (SPURIOUS, None, (1, 2, "ORG"))],
    ),
    "the same label beats a larger overlap with another label": (
        [(0, 4, "ORG")], [(0, 3, "LOC"), (3, 4, "ORG")],
        [(SPURIOUS, None, (0, 3, "LOC")), (WRONG_BOUNDARY, (0, 4, "ORG"), (3, 4, "ORG"))],
    ),
    "a larger share of the gold entity wins within a tier": (
        [(0, 4, "ORG")], [(0, 1, "ORG"), (1, 4, "ORG")],
        [(SPURIOUS, None, (0, 1, "ORG")), (WRONG_BOUNDARY, (0, 4, "ORG"), (1, 4, "ORG"))],
    ),
    "one prediction over two gold entities: the first gold entity pairs": (
        [(0, 1, "PER"), (1, 2, "PER")], [(0, 2, "PER")],
        [(WRONG_BOUNDARY, (0, 1, "PER"), (0, 2, "PER")), (MISSED, (1, 2, "PER"), None)],
    ),
    "same boundaries beat the same label (overlapping predictions)": (
        [(0, 2, "LOC")], [(0, 2, "ORG"), (0, 3, "LOC")],
        [(WRONG_TYPE, (0, 2, "LOC"), (0, 2, "ORG")), (SPURIOUS, None, (0, 3, "LOC"))],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_rule_on_a_table_of_cases(name: str) -> None:
    gold, pred, expected = CASES[name]
    assert rows(gold, pred) == expected
    assert rows(list(reversed(gold)), list(reversed(pred))) == expected  # input order does not matter


@st.composite
def disjoint_spans(draw: st.DrawFn, labels: Sequence[str] = ("PER", "LOC", "ORG")) -> List[Span]:
    """Non-overlapping spans in 0..30, as spaCy's doc.ents are."""
    cuts = sorted(draw(st.sets(st.integers(0, 30), max_size=12)))
    pairs = list(zip(cuts[::2], cuts[1::2]))
    keep = draw(st.lists(st.booleans(), min_size=len(pairs), max_size=len(pairs)))
    return [(s, e, draw(st.sampled_from(labels))) for (s, e), kept in zip(pairs, keep) if kept]


@settings(max_examples=300, deadline=None)
@given(gold=disjoint_spans(), pred=disjoint_spans())
def test_every_entity_is_in_exactly_one_difference(gold: List[Span], pred: List[Span]) -> None:
    found = differences(entities(gold), entities(pred))
    assert sorted((g.start, g.end, g.label) for d in found if (g := d.gold)) == sorted(gold)
    assert sorted((p.start, p.end, p.label) for d in found if (p := d.pred)) == sorted(pred)
    counts = category_counts(found)
    assert list(counts) == list(CATEGORIES)
    assert sum(counts.values()) - counts[SPURIOUS] == len(gold)
    assert sum(counts.values()) - counts[MISSED] == len(pred)
    # the correct ones are exactly the entities both sides have (spaCy's true positives)
    assert counts[CORRECT] == len(set(gold) & set(pred))
    for d in found:
        if d.gold is not None and d.pred is not None:
            assert min(d.gold.end, d.pred.end) > max(d.gold.start, d.pred.start)  # paired spans overlap
    # a leftover gold and a leftover prediction never overlap: they would have been paired
    for g in (d.gold for d in found if d.category == MISSED):
        for p in (d.pred for d in found if d.category == SPURIOUS):
            assert g is not None and p is not None and min(g.end, p.end) <= max(g.start, p.start)


@settings(max_examples=200, deadline=None)
@given(gold=disjoint_spans(), pred=disjoint_spans())
def test_the_layout_keeps_the_text_and_covers_every_entity(gold: List[Span], pred: List[Span]) -> None:
    text = "abcdefghijklmnopqrstuvwxyz0123456789"[:31]
    found = differences(entities(gold), entities(pred))
    pieces = layout(text, found)
    rebuilt = "".join(p if isinstance(p, str) else "".join(s.text for s in p.segments) for p in pieces)
    assert rebuilt == text
    clusters = [p for p in pieces if isinstance(p, Cluster)]
    assert sum(len(c.differences) for c in clusters) == len(found)
    assert all(c.category == (c.differences[0].category if len(c.differences) == 1 else SEVERAL) for c in clusters)


def test_segments_tell_gold_only_from_predicted_only() -> None:
    text = "Acme Corp Ltd hired Ann"
    found = differences([Entity("ORG", 0, 9, "Acme Corp"), Entity("PER", 20, 23, "Ann")], [Entity("ORG", 5, 13, "Corp Ltd")])
    pieces = layout(text, found)
    first, plain, last = pieces[0], pieces[1], pieces[2]
    assert isinstance(first, Cluster) and first.category == WRONG_BOUNDARY
    assert [(s.text, s.side) for s in first.segments] == [("Acme ", GOLD_ONLY), ("Corp", BOTH), (" Ltd", PRED_ONLY)]
    assert first.title == "wrong boundary — gold: ORG “Acme Corp” / predicted: ORG “Corp Ltd”"
    assert first.tags == [(WRONG_BOUNDARY, "↔ wrong boundary ORG")]
    assert plain == " hired "
    assert isinstance(last, Cluster) and last.tags == [(MISSED, "− missed PER")]
    assert last.title.endswith("/ predicted: none")


def test_the_legend_examples_are_classified_as_they_say() -> None:
    for category, (text, gold, pred) in LEGEND_EXAMPLES.items():
        assert [d.category for d in differences(gold, pred)] == [category]
        assert all(text[e.start : e.end] == e.text for e in (*gold, *pred))
