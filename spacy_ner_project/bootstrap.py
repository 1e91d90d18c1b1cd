"""LLM-bootstrapped training data: the pieces between unlabelled text and a trained pipeline.

- :func:`sample_units`: N units (sentences or documents) of a gold DocBin, drawn with a seed,
  whose texts an annotator labels (:func:`write_texts`: ``annotate``'s JSONL input, ids
  ``"{index}"`` in the DocBin's order) and whose gold labels the reference training uses;
- :func:`silver_docs`: an ``annotate`` output folder (any pipeline's: an LLM's, or a trained
  pipeline's for distillation) as training docs: each row's text tokenized by a blank pipeline
  of the language and its entities placed by character offsets. A row is left out, and counted
  by why, when its text was refused (an ``error`` value), its LLM request finally failed
  (the typed outcome's status, :mod:`spacy_ner_project.llm.record`) or its answer could not be
  parsed (status ``unparseable``: an unparsed answer is no evidence that the text has no
  entity); an entity whose offsets fall inside a token is dropped and counted.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Tuple

from spacy_ner_project.errors import UserError
from spacy_ner_project.llm.record import LLMOutcome, LLMStatus

if TYPE_CHECKING:
    from spacy.tokens import Doc


def sample_units(path: Path, *, n: int, unit: str = "sents", seed: int = 0) -> List["Doc"]:
    """``n`` units of the gold DocBin at ``path`` (all when it has fewer), drawn without
    replacement by ``random.Random(seed)`` and kept in the DocBin's order; units without a
    token that is a letter or digit (``-DOCSTART-`` lines are not units) are never drawn."""
    from spacy_ner_project.evaluation.gold import read_gold

    if n < 1:
        raise UserError(f"the number of units to sample is 1 or more, got {n}")
    units = [doc for doc in read_gold(path, unit=unit) if any(ch.isalnum() for ch in doc.text)]
    if n >= len(units):
        return units
    chosen = sorted(random.Random(seed).sample(range(len(units)), n))
    return [units[i] for i in chosen]


def write_texts(docs: Iterable["Doc"], path: Path) -> int:
    """``{"id": "<index>", "text": ...}`` per doc as JSONL (annotate's input); returns the count."""
    from spacy_ner_project.files import write_atomic

    lines = [json.dumps({"id": str(i), "text": doc.text}, ensure_ascii=False) for i, doc in enumerate(docs)]
    write_atomic(("\n".join(lines) + "\n").encode("utf-8"), path)
    return len(lines)


@dataclass
class SilverCounts:
    """What :func:`silver_docs` kept and left out, and the label set it found."""

    rows: int = 0
    kept: int = 0
    left_out: Counter = field(default_factory=Counter)  # refused / request_failed / unparseable
    entities: Counter = field(default_factory=Counter)  # per label, as kept
    misaligned: int = 0  # entities whose offsets cut a token

    @property
    def labels(self) -> List[str]:
        return sorted(self.entities)

    def to_dict(self) -> Dict[str, Any]:
        return {"rows": self.rows, "kept": self.kept, "left_out": dict(self.left_out),
                "entities": dict(self.entities), "misaligned": self.misaligned, "labels": self.labels}


def _left_out_reason(row: Mapping[str, Any]) -> Optional[str]:
    """Why a row is no training doc, or None."""
    outcome = LLMOutcome.from_dict(json.loads(row["llm"])) if row.get("llm") else None
    if outcome is not None and outcome.status is LLMStatus.FAILED:
        return "request_failed"
    if row.get("error") is not None or row.get("text") is None:
        return "refused"
    if outcome is not None and outcome.status is LLMStatus.UNPARSEABLE:
        return "unparseable"
    return None


def silver_docs(rows: Iterable[Mapping[str, Any]], *, lang: str = "en") -> Tuple[List["Doc"], SilverCounts]:
    """Training docs from ``annotate`` output rows (module docstring), in a fixed order: by id,
    shorter ids first (so "2" comes before "10")."""
    import spacy
    from spacy.tokens import Span

    nlp = spacy.blank(lang)
    counts = SilverCounts()
    docs = []
    for row in sorted(rows, key=lambda row: (len(str(row.get("id"))), str(row.get("id")))):
        counts.rows += 1
        reason = _left_out_reason(row)
        if reason is not None:
            counts.left_out[reason] += 1
            continue
        doc = nlp.make_doc(row["text"])
        spans = []
        for entity in row.get("entities") or []:
            span = doc.char_span(entity["start_char"], entity["end_char"], label=entity["label"], alignment_mode="strict")
            if span is None:
                counts.misaligned += 1
                continue
            spans.append(span)
        doc.set_ents(spacy.util.filter_spans(spans), default="outside")
        counts.entities.update(ent.label_ for ent in doc.ents)
        counts.kept += 1
        docs.append(doc)
    return docs, counts


def write_docbin(docs: Iterable["Doc"], path: Path) -> None:
    """The docs as a DocBin at ``path``, written atomically."""
    from spacy.tokens import DocBin

    from spacy_ner_project.files import write_atomic

    write_atomic(DocBin(docs=list(docs), store_user_data=True).to_bytes(), path)
