"""Counts of a CoNLL corpus: documents, sentences, tokens and entities per type."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import List, Sequence

from spacy_ner_project.conll.corpus import ConllDocument
from spacy_ner_project.conll.schemes import iob2_spans


@dataclass
class ConllStats:
    docs: int = 0
    sentences: int = 0
    tokens: int = 0
    entities: Counter = field(default_factory=Counter)
    scheme: str = ""  # the scheme the tags were read with (set by convert)
    warnings: List[str] = field(default_factory=list)  # the reader's (set by convert)

    @property
    def total_entities(self) -> int:
        return sum(self.entities.values())


def count(documents: Sequence[ConllDocument]) -> ConllStats:
    stats = ConllStats(docs=len(documents))
    for document in documents:
        for sent in document.sentences:
            stats.sentences += 1
            stats.tokens += len(sent.words)
            stats.entities.update(label for _, _, label in iob2_spans(sent.tags))
    return stats
