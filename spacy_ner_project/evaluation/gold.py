"""Gold documents for evaluation: a checked DocBin, as whole docs or one doc per sentence."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from spacy.tokens import Doc
from spacy.vocab import Vocab

from spacy_ner_project.docbin import read_docbin
from spacy_ner_project.errors import OptionError, UserError

UNITS = ("docs", "sents")


def read_gold(path: Path, *, n_docs: Optional[int] = None, unit: str = "docs") -> List[Doc]:
    """The first ``n_docs`` (all when None or 0) units of a DocBin with entity annotation: whole
    docs (``unit="docs"``) or sentences, each its own doc (``unit="sents"``; the docs need
    sentence boundaries, as CoNLL conversion sets).

    Every problem (missing, foreign or damaged file, no docs, no entities, no sentences, a bad
    ``n_docs`` or ``unit``) is a ``UserError`` (a ``ValueError``) naming the path or value; see
    :func:`spacy_ner_project.docbin.read_docbin`."""
    if unit not in UNITS:
        raise OptionError(lambda name: f"{name('unit')} must be one of {', '.join(UNITS)}, not {unit!r}")
    if n_docs is not None and n_docs < 0:
        raise OptionError(lambda name: f"{name('n_docs')} must be 0 (all) or more, got {n_docs}")
    limit = n_docs or None
    docs = read_docbin(path, vocab=Vocab())
    if unit == "docs" and limit is not None:
        docs = docs[:limit]
    if not docs:
        raise UserError(f"{path} holds no documents; give a .spacy DocBin with gold documents")
    if not any(doc.has_annotation("ENT_IOB") for doc in docs):
        raise UserError(f"{path} has no entity annotation to score against; convert gold data with entities")
    if unit == "docs":
        return docs
    if not all(doc.has_annotation("SENT_START") for doc in docs):
        raise OptionError(lambda name: f"{path}: the docs have no sentence boundaries; use {name('unit', 'docs')}")
    sentences = [sent.as_doc() for doc in docs for sent in doc.sents]
    return sentences[:limit] if limit is not None else sentences
