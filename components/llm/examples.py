"""Few-shot examples of the JSON NER task: their type, candidates from annotated docs, the choice."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

from spacy.training import Example
from spacy_llm.ty import FewshotExample

if TYPE_CHECKING:  # pragma: no cover
    from .task import JsonNERTask


class JsonNERExample(FewshotExample):
    """A few-shot example: a text and its entity strings per label, e.g.
    ``{"text": "Sam met Ann.", "entities": {"PER": ["Sam", "Ann"]}}`` (the format of example files).
    """

    text: str
    entities: Dict[str, List[str]]

    @classmethod
    def generate(cls, example: Example, task: "JsonNERTask") -> Optional["JsonNERExample"]:
        """From an annotated example; None if the reference has no entities (nothing to show)."""
        entities: Dict[str, List[str]] = {}
        for ent in example.reference.ents:
            strings = entities.setdefault(ent.label_, [])
            if ent.text not in strings:
                strings.append(ent.text)
        if not entities:
            return None
        return cls(text=example.reference.text, entities=entities)


def sentence_examples(example: Example, *, min_tokens: int, max_tokens: int) -> List[JsonNERExample]:
    """Few-shot candidates from one annotated example: each sentence of its reference (the whole
    doc when it has no sentence boundaries) with ``min_tokens`` to ``max_tokens`` tokens and at
    least one entity inside it (an entity crossing a sentence boundary counts for neither)."""
    reference = example.reference
    units = list(reference.sents) if reference.has_annotation("SENT_START") else [reference[:]]
    out = []
    for unit in units:
        if not min_tokens <= len(unit) <= max_tokens:
            continue
        entities: Dict[str, List[str]] = {}
        for ent in reference.ents:
            if unit.start <= ent.start and ent.end <= unit.end:
                strings = entities.setdefault(ent.label_, [])
                if ent.text not in strings:
                    strings.append(ent.text)
        if entities:
            out.append(JsonNERExample(text=unit.text, entities=entities))
    return out


def choose_prompt_examples(candidates: Sequence[JsonNERExample], *, n: int, seed: int) -> List[JsonNERExample]:
    """Up to ``n`` of ``candidates`` (all when n < 0), deterministic given ``seed``.

    Candidates with the same text count once (the first). They are shuffled with
    ``random.Random(seed)``; then, while labels are missing, the candidate showing the most labels
    that no chosen one shows yet is taken (the first in shuffled order among equals: greedy set
    cover, so every label appears when ``n`` allows); the rest is filled up in shuffled order.
    The chosen ones are returned in the order of ``candidates``.
    """
    unique: Dict[str, int] = {}
    for i, candidate in enumerate(candidates):
        unique.setdefault(candidate.text, i)
    order = list(unique.values())
    if n < 0:
        return [candidates[i] for i in order]
    random.Random(seed).shuffle(order)
    chosen: List[int] = []
    shown: set = set()
    while len(chosen) < n:
        best = max(order, key=lambda i: len(set(candidates[i].entities) - shown), default=None)
        if best is None or not set(candidates[best].entities) - shown:
            break
        chosen.append(best)
        shown.update(candidates[best].entities)
    for i in order:
        if len(chosen) >= n:
            break
        if i not in chosen:
            chosen.append(i)
    return [candidates[i] for i in sorted(chosen)]
