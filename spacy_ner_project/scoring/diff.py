"""Where a prediction differs from gold: every gold and every predicted entity of one text in
exactly one :class:`Difference`, for the report's inline view.

Pure logic over :class:`~spacy_ner_project.scoring.matching.Entity` (start and end in any one
unit both sides share: the report uses character offsets, so tokenisations may differ).

The rule. Gold and predicted entities are paired one-to-one and greedily
(:func:`~spacy_ner_project.scoring.matching.greedy_pairs`); a candidate pair shares at least one
unit and ranks by, first to last:

1. its tier: same boundaries and label (3), same boundaries and another label (2), the same
   label and overlapping (1), another label and overlapping (0);
2. the share of the gold entity it covers, then its intersection over union;
3. the earlier gold entity, then the earlier prediction (by start, end, label).

A pair is taken when neither side is taken yet. Its category follows from the pair alone:

==========================  ==============================================  =================
category                    gold and prediction                             counts
==========================  ==============================================  =================
``correct``                 same boundaries, same label                     1 gold, 1 pred
``wrong_type``              same boundaries, other label                    1 gold, 1 pred
``wrong_boundary``          overlapping, same label, other boundaries       1 gold, 1 pred
``wrong_type_and_boundary`` overlapping, other label, other boundaries      1 gold, 1 pred
``missed``                  a gold entity left without a pair               1 gold
``spurious``                a prediction left without a pair                1 pred
==========================  ==============================================  =================

So an overlap with another label *and* other boundaries is one difference in a category of its
own (never counted as both a wrong type and a wrong boundary), and every entity is in exactly
one difference: correct + wrong_* + missed is the number of gold entities, correct + wrong_* +
spurious the number of predictions. A gold entity overlapped by two predictions pairs with
one of them (the rule above; "Acme" before "Corp" for gold "Acme Corp" when both cover half);
the other is spurious.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

from spacy_ner_project.scoring.matching import Entity, greedy_pairs, overlap_score

CORRECT = "correct"
MISSED = "missed"
SPURIOUS = "spurious"
WRONG_TYPE = "wrong_type"
WRONG_BOUNDARY = "wrong_boundary"
WRONG_TYPE_AND_BOUNDARY = "wrong_type_and_boundary"
# the order of the report's columns and legend
CATEGORIES: Tuple[str, ...] = (CORRECT, MISSED, SPURIOUS, WRONG_TYPE, WRONG_BOUNDARY, WRONG_TYPE_AND_BOUNDARY)


@dataclass(frozen=True)
class Difference:
    """One gold entity, one prediction or a pair of both, and its category (``CATEGORIES``)."""

    category: str
    gold: Optional[Entity] = None
    pred: Optional[Entity] = None

    @property
    def entities(self) -> Tuple[Entity, ...]:
        """The gold entity and the prediction, those present, in that order."""
        return tuple(entity for entity in (self.gold, self.pred) if entity is not None)

    @property
    def start(self) -> int:
        return min(entity.start for entity in self.entities)

    @property
    def end(self) -> int:
        return max(entity.end for entity in self.entities)


def pair_category(gold: Entity, pred: Entity) -> str:
    """The category of a paired gold entity and prediction (the table of the module docstring)."""
    same_label = gold.label == pred.label
    if (gold.start, gold.end) == (pred.start, pred.end):
        return CORRECT if same_label else WRONG_TYPE
    return WRONG_BOUNDARY if same_label else WRONG_TYPE_AND_BOUNDARY


TIERS = {CORRECT: 3, WRONG_TYPE: 2, WRONG_BOUNDARY: 1, WRONG_TYPE_AND_BOUNDARY: 0}


def pair_rank(gold: Entity, pred: Entity) -> Optional[Tuple[float, ...]]:
    """(tier, share of gold covered, intersection over union) of a candidate pair; None when the
    two share no unit."""
    overlap = overlap_score(gold, pred)
    if overlap is None:
        return None
    return (float(TIERS[pair_category(gold, pred)]), *overlap)


def position(entity: Entity) -> Tuple[int, int, str]:
    return (entity.start, entity.end, entity.label)


def differences(gold: Iterable[Entity], pred: Iterable[Entity]) -> List[Difference]:
    """Every gold entity and every prediction of one text in exactly one difference, by the rule
    of the module docstring; in text order (start, then end, then a pair or gold entity before
    a lone prediction)."""
    gold = sorted(gold, key=position)
    pred = sorted(pred, key=position)
    pairs = greedy_pairs(gold, pred, pair_rank)
    found = [Difference(pair_category(gold[g], pred[p]), gold[g], pred[p]) for g, p in pairs]
    paired_gold = {g for g, _ in pairs}
    paired_pred = {p for _, p in pairs}
    found += [Difference(MISSED, gold=g) for i, g in enumerate(gold) if i not in paired_gold]
    found += [Difference(SPURIOUS, pred=p) for i, p in enumerate(pred) if i not in paired_pred]
    return sorted(found, key=lambda d: (d.start, d.end, d.gold is None, position(d.entities[0])))


def category_counts(found: Iterable[Difference]) -> Dict[str, int]:
    """{category: number of differences} with every category of ``CATEGORIES``, in that order."""
    counts = Counter(difference.category for difference in found)
    return {category: counts.get(category, 0) for category in CATEGORIES}
