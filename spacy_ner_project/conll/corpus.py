"""What a CoNLL file is read into: token lines, sentences of IOB2 tags, documents, the corpus."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, NamedTuple


class RawToken(NamedTuple):
    """One token line as read: where it is, its word, and its tag split into prefix and label."""

    line: int
    column: int  # of the tag
    word: str
    prefix: str  # "B", "I" or "O"
    label: str  # "" for O


@dataclass
class Sentence:
    words: List[str]
    tags: List[str]  # IOB2 after reading


@dataclass
class ConllDocument:
    doc_id: str
    sentences: List[Sentence] = field(default_factory=list)


@dataclass
class ConllCorpus:
    documents: List[ConllDocument]
    scheme: str  # the scheme the tags were read with
    warnings: List[str] = field(default_factory=list)
