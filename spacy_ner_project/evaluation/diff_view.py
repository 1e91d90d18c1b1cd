"""The report's view of where a pipeline differs from gold: one text with gold and predicted
entities inline, each classified by :mod:`spacy_ner_project.scoring.diff`, and the counts of
every category per pipeline.

Entities are compared by character offsets (the predicted docs are the gold texts tokenised by
each pipeline). The text is cut into plain stretches and *clusters*: a cluster is a run of
overlapping differences (almost always one), cut into segments that gold and the prediction
both cover, gold only covers or the prediction only covers, so a template can mark each:
struck through in gold only, underlined in the prediction only. Everything here is plain data;
``templates/macros.html.jinja`` (``diff_text``, ``diff_legend``) renders and escapes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from spacy.tokens import Doc

from spacy_ner_project.scoring.diff import (
    CATEGORIES,
    CORRECT,
    MISSED,
    SPURIOUS,
    WRONG_BOUNDARY,
    WRONG_TYPE,
    WRONG_TYPE_AND_BOUNDARY,
    Difference,
    category_counts,
    differences,
)
from spacy_ner_project.scoring.matching import Entity

SEVERAL = "several"  # the class of a cluster holding more than one difference
GOLD_ONLY, PRED_ONLY, BOTH = "gold", "pred", "both"  # what covers a segment


@dataclass(frozen=True)
class CategoryInfo:
    """How the report names a category: its name, a symbol (readable without colour) and what it means."""

    name: str
    symbol: str
    meaning: str


CATEGORY_INFO: Mapping[str, CategoryInfo] = {
    CORRECT: CategoryInfo("correct", "✓", "same boundaries and label as gold"),
    MISSED: CategoryInfo("missed", "−", "a gold entity the pipeline did not predict (nothing overlapping is left to pair with it)"),
    SPURIOUS: CategoryInfo("spurious", "+", "a prediction with no gold entity left to pair with"),
    WRONG_TYPE: CategoryInfo("wrong type", "≠", "same boundaries as gold, another label"),
    WRONG_BOUNDARY: CategoryInfo("wrong boundary", "↔", "overlaps gold with the same label, other boundaries"),
    WRONG_TYPE_AND_BOUNDARY: CategoryInfo(
        "wrong type and boundary", "≠↔", "overlaps gold with another label and other boundaries (one difference, not two)"
    ),
}
# (side, its decoration, what it means) for the legend; text both cover is not decorated
SIDES: Tuple[Tuple[str, str, str], ...] = (
    (GOLD_ONLY, "struck through", "text inside the gold entity only: the prediction leaves it out"),
    (PRED_ONLY, "underlined", "text inside the predicted entity only: gold leaves it out"),
)


def char_entities(doc: Doc) -> List[Entity]:
    """``doc.ents`` with character offsets."""
    return [Entity(ent.label_, ent.start_char, ent.end_char, ent.text) for ent in doc.ents]


def doc_differences(gold: Doc, pred: Doc) -> List[Difference]:
    """Every gold and predicted entity of one text, classified (same text on both sides)."""
    return differences(char_entities(gold), char_entities(pred))


def describe(entity: Optional[Entity]) -> str:
    return "none" if entity is None else f"{entity.label} “{entity.text}”"


def title(difference: Difference) -> str:
    """The tooltip line: 'wrong type — gold: LOC “Berlin” / predicted: ORG “Berlin”'."""
    name = CATEGORY_INFO[difference.category].name
    return f"{name} — gold: {describe(difference.gold)} / predicted: {describe(difference.pred)}"


def tag(difference: Difference) -> str:
    """The marker after the text: symbol, category (errors only) and label(s), gold → predicted."""
    info = CATEGORY_INFO[difference.category]
    labels = " → ".join(dict.fromkeys(entity.label for entity in difference.entities))
    return f"{info.symbol} {labels}" if difference.category == CORRECT else f"{info.symbol} {info.name} {labels}"


@dataclass(frozen=True)
class Segment:
    """A stretch of a cluster's text and what covers it (``GOLD_ONLY``, ``PRED_ONLY`` or ``BOTH``)."""

    text: str
    side: str


@dataclass(frozen=True)
class Cluster:
    """Overlapping differences as one stretch of text: its segments, its class, its markers."""

    differences: Tuple[Difference, ...]
    segments: Tuple[Segment, ...]

    @property
    def category(self) -> str:
        """The one difference's category, or ``SEVERAL``."""
        return self.differences[0].category if len(self.differences) == 1 else SEVERAL

    @property
    def title(self) -> str:
        return "\n".join(title(difference) for difference in self.differences)

    @property
    def tags(self) -> List[Tuple[str, str]]:
        """(category, marker text) of each difference, in text order."""
        return [(difference.category, tag(difference)) for difference in self.differences]


Piece = Union[str, Cluster]  # plain text, or a cluster


def segments(text: str, found: Sequence[Difference], start: int, end: int) -> Tuple[Segment, ...]:
    """``text[start:end]`` cut at every entity boundary, each piece with what covers it."""
    gold = [d.gold for d in found if d.gold is not None]
    pred = [d.pred for d in found if d.pred is not None]
    cuts = sorted({start, end, *(e.start for e in (*gold, *pred)), *(e.end for e in (*gold, *pred))})
    pieces = []
    for left, right in zip(cuts, cuts[1:]):
        in_gold = any(e.start <= left and right <= e.end for e in gold)
        in_pred = any(e.start <= left and right <= e.end for e in pred)
        side = BOTH if in_gold and in_pred else GOLD_ONLY if in_gold else PRED_ONLY
        pieces.append(Segment(text[left:right], side))
    return tuple(pieces)


def layout(text: str, found: Iterable[Difference]) -> List[Piece]:
    """``text`` as plain stretches and clusters of overlapping differences, in order."""
    groups: List[List[Difference]] = []
    for difference in sorted(found, key=lambda d: (d.start, d.end)):
        if groups and difference.start < max(d.end for d in groups[-1]):
            groups[-1].append(difference)
        else:
            groups.append([difference])
    pieces: List[Piece] = []
    offset = 0
    for group in groups:
        start, end = min(d.start for d in group), max(d.end for d in group)
        if start > offset:
            pieces.append(text[offset:start])
        pieces.append(Cluster(tuple(group), segments(text, group, start, end)))
        offset = end
    if offset < len(text):
        pieces.append(text[offset:])
    return pieces


def summary(counts: Mapping[str, int]) -> str:
    """'2 correct, 1 missed' (categories with a count, in ``CATEGORIES`` order), or 'no entities'."""
    parts = [f"{n} {CATEGORY_INFO[category].name}" for category, n in counts.items() if n]
    return ", ".join(parts) or "no entities"


@dataclass(frozen=True)
class PipelineDifferences:
    """One pipeline's differences from gold, per document."""

    name: str
    per_doc: List[List[Difference]]

    def counts(self, gold: Sequence[Doc]) -> Dict[str, int]:
        """Each category over the documents with gold entity annotation (those that are scored)."""
        return category_counts(
            difference for doc, found in zip(gold, self.per_doc) if doc.has_annotation("ENT_IOB") for difference in found
        )


def pipeline_differences(gold: Sequence[Doc], predictions: Mapping[str, Sequence[Doc]]) -> List[PipelineDifferences]:
    """Every pipeline's differences from gold ({name: predicted docs, in gold order})."""
    return [
        PipelineDifferences(name, [doc_differences(g, p) for g, p in zip(gold, docs)]) for name, docs in predictions.items()
    ]


COUNT_HEADER = ["Pipeline", "Gold", "Predicted", *(f"{CATEGORY_INFO[c].symbol} {CATEGORY_INFO[c].name}" for c in CATEGORIES)]


def count_rows(gold: Sequence[Doc], found: Sequence[PipelineDifferences]) -> List[List[str]]:
    """Per pipeline: gold and predicted entities, then each category's count (``COUNT_HEADER``)."""
    rows = []
    for pipeline in found:
        counts = pipeline.counts(gold)
        n_gold = sum(n for category, n in counts.items() if category != SPURIOUS)
        n_pred = sum(n for category, n in counts.items() if category != MISSED)
        rows.append([pipeline.name, str(n_gold), str(n_pred), *(str(counts[c]) for c in CATEGORIES)])
    return rows


def diff_grids(
    gold: Sequence[Doc], found: Sequence[PipelineDifferences], indices: Iterable[int], doc_id: Callable[[int], str]
) -> List[Dict[str, Any]]:
    """The ``diff_grids`` macro's data: per document (``doc_id(index)`` names it), every
    pipeline's summary line and laid-out text, side by side."""
    return [
        {
            "doc_id": doc_id(index),
            "cells": [
                (p.name, summary(category_counts(p.per_doc[index])), layout(gold[index].text, p.per_doc[index]))
                for p in found
            ],
        }
        for index in indices
    ]


# One example per category: text, gold entities, predicted entities (character offsets).
LEGEND_EXAMPLES: Mapping[str, Tuple[str, Tuple[Entity, ...], Tuple[Entity, ...]]] = {
    CORRECT: ("Paris", (Entity("LOC", 0, 5, "Paris"),), (Entity("LOC", 0, 5, "Paris"),)),
    MISSED: ("Rome", (Entity("LOC", 0, 4, "Rome"),), ()),
    SPURIOUS: ("Nothing", (), (Entity("MISC", 0, 7, "Nothing"),)),
    WRONG_TYPE: ("Berlin", (Entity("LOC", 0, 6, "Berlin"),), (Entity("ORG", 0, 6, "Berlin"),)),
    WRONG_BOUNDARY: ("Ann Lee", (Entity("PER", 0, 7, "Ann Lee"),), (Entity("PER", 0, 3, "Ann"),)),
    WRONG_TYPE_AND_BOUNDARY: ("Acme Corp", (Entity("ORG", 0, 9, "Acme Corp"),), (Entity("LOC", 5, 9, "Corp"),)),
}


def legend() -> List[Tuple[str, str, List[Piece]]]:
    """(name, meaning, the example laid out as the report shows it) of every category, in
    ``CATEGORIES`` order; the examples go through :func:`differences` like any document."""
    rows = []
    for category in CATEGORIES:
        text, gold, pred = LEGEND_EXAMPLES[category]
        info = CATEGORY_INFO[category]
        rows.append((info.name, info.meaning, layout(text, differences(gold, pred))))
    return rows
