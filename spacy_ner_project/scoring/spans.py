"""Score ``doc.ents`` of spaCy Examples with the matching modes of :mod:`matching`.

Predicted entities are projected onto the gold tokens exactly as spaCy's ``get_ner_prf`` does
(through ``Example.alignment``); a prediction with no aligned gold token, or one covering gold
tokens whose entity annotation is missing, is ignored, and documents without gold entity
annotation are skipped. So every mode counts the same entities that spaCy counts.

Keys (``PREFIX = "fuzzy_ents"``; spaCy's own keys start with ``ents_`` and never clash):

- ``fuzzy_ents_<mode>_p``, ``_r``, ``_f``: overall precision, recall, F-score (None when there
  are neither gold nor predicted entities, like spaCy);
- ``fuzzy_ents_<mode>_per_type``: ``{label: {p, r, f, gold, pred, correct, partial, wrong_type,
  missed, spurious}}`` (None in the same case);
- ``fuzzy_ents_<mode>_counts``: ``{gold, pred, correct, partial, wrong_type, missed, spurious}``;
- ``fuzzy_ents_settings``: the modes and thresholds used.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from spacy.scorer import get_ner_prf
from spacy.training import Example

from spacy_ner_project.scoring.matching import (
    COUNT_NAMES,
    MODES,
    Entity,
    MatchSettings,
    ModeTally,
    check_modes,
    match_entities,
)

PREFIX = "fuzzy_ents"
NO_ENTITY = "(none)"  # row/column of the confusion matrix for missed and spurious entities


def score_key(mode: str, suffix: str) -> str:
    """The metrics key of ``suffix`` (p, r, f, per_type, counts) for ``mode``."""
    return f"{PREFIX}_{mode}_{suffix}"


def example_entities(example: Example) -> Optional[Tuple[List[Entity], List[Entity], List[str]]]:
    """Gold entities, counted predictions (in gold token offsets) and every predicted label.

    None when the gold document has no entity annotation.
    """
    reference = example.reference
    if not reference.has_annotation("ENT_IOB"):
        return None
    gold = [Entity(ent.label_, ent.start, ent.end, ent.text) for ent in reference.ents]
    x2y = example.alignment.x2y
    pred: List[Entity] = []
    labels: List[str] = []
    for ent in example.predicted.ents:
        labels.append(ent.label_)
        indices = x2y[ent.start : ent.end]
        if len(indices) == 0:
            continue
        start, end = int(indices[0]), int(indices[-1]) + 1
        if all(token.ent_iob != 0 for token in reference[start:end]):
            pred.append(Entity(ent.label_, start, end, ent.text))
    return gold, pred, labels


def tally_examples(
    examples: Iterable[Example], *, modes: Sequence[str] = MODES, settings: MatchSettings = MatchSettings()
) -> Dict[str, ModeTally]:
    """Per-mode tallies over all examples."""
    tallies = {mode: ModeTally(mode) for mode in check_modes(modes)}
    for example in examples:
        entities = example_entities(example)
        if entities is None:
            continue
        gold, pred, labels = entities
        for tally in tallies.values():
            for label in labels:
                tally.touch(label)
            tally.add_document(gold, pred, settings=settings)
    return tallies


def tallies_to_scores(tallies: Dict[str, ModeTally]) -> Dict[str, Any]:
    scores: Dict[str, Any] = {}
    for mode, tally in tallies.items():
        total = tally.totals()
        empty = total.gold + total.pred == 0
        precision, recall, fscore = total.prf()
        scores[score_key(mode, "p")] = None if empty else precision
        scores[score_key(mode, "r")] = None if empty else recall
        scores[score_key(mode, "f")] = None if empty else fscore
        scores[score_key(mode, "per_type")] = (
            None if empty else {label: t.to_dict() for label, t in sorted(tally.per_type.items())}
        )
        scores[score_key(mode, "counts")] = {
            name: getattr(total, name) for name in ("gold", "pred", *COUNT_NAMES)
        }
    return scores


def score_fuzzy_ents(
    examples: Iterable[Example],
    *,
    modes: Sequence[str] = MODES,
    settings: MatchSettings = MatchSettings(),
    include_spacy: bool = True,
) -> Dict[str, Any]:
    """All ``fuzzy_ents_*`` keys, plus spaCy's ``ents_p/r/f/per_type`` when ``include_spacy``."""
    examples = list(examples)
    scores: Dict[str, Any] = dict(get_ner_prf(examples)) if include_spacy else {}
    modes = check_modes(modes)
    scores[f"{PREFIX}_settings"] = {
        "modes": list(modes),
        "min_overlap": settings.min_overlap,
        "text_threshold": settings.text_threshold,
        "text_scorer": settings.text_scorer,
    }
    scores.update(tallies_to_scores(tally_examples(examples, modes=modes, settings=settings)))
    return scores


def boundary_confusion(examples: Iterable[Example]) -> Counter:
    """Counts of (gold label, predicted label) over boundary-matched entities.

    Missed gold entities count as (label, NO_ENTITY), spurious predictions as (NO_ENTITY, label).
    """
    confusion: Counter = Counter()
    settings = MatchSettings()
    for example in examples:
        entities = example_entities(example)
        if entities is None:
            continue
        gold, pred, _ = entities
        pairs = match_entities(gold, pred, mode="boundary", settings=settings)
        for g_index, p_index in pairs:
            confusion[(gold[g_index].label, pred[p_index].label)] += 1
        matched_gold = {g for g, _ in pairs}
        matched_pred = {p for _, p in pairs}
        confusion.update((g.label, NO_ENTITY) for i, g in enumerate(gold) if i not in matched_gold)
        confusion.update((NO_ENTITY, p.label) for i, p in enumerate(pred) if i not in matched_pred)
    return confusion
