"""The IOB1 and IOB2 tagging schemes: what each forbids, which one a file uses, IOB2 tags and spans."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, List, Literal, Optional, Sequence, Tuple

from spacy_ner_project.conll.corpus import RawToken

Scheme = Literal["auto", "iob1", "iob2"]
SCHEMES: Tuple[str, ...] = ("auto", "iob1", "iob2")


def violations(tokens: Sequence[RawToken], scheme: str) -> Iterator[Tuple[RawToken, str]]:
    """Yield (token, message) for each tag the scheme forbids in one sentence."""
    previous = "O"  # label of the previous token ("O" for outside)
    for token in tokens:
        prefix, label = token.prefix, token.label
        if scheme == "iob2" and prefix == "I" and previous != label:
            yield token, f"'I-{label}' follows {_describe(previous)}; in IOB2 an entity starts with 'B-'"
        if scheme == "iob1" and prefix == "B" and previous != label:
            yield token, (
                f"'B-{label}' follows {_describe(previous)}; in IOB1 'B-' only separates two "
                "adjacent entities of the same type"
            )
        previous = label if prefix != "O" else "O"


def _describe(label: str) -> str:
    return "'O'" if label == "O" else f"a {label} entity"


@dataclass(frozen=True)
class SchemeEvidence:
    """How the entities of a file start after 'O' or another type: with 'I-' (only IOB1
    allows that) or with 'B-' (IOB2's way; IOB1 reserves 'B-' for adjacent same-type entities)."""

    i_starts: int = 0
    b_starts: int = 0

    @property
    def scheme(self) -> Optional[str]:
        """The majority decides, so that a few stray tags cannot flip a whole file: 'iob1' when
        'I-' starts outnumber 'B-' starts; 'iob2' when 'B-' starts are as many or more (a tie
        reads IOB2, the stricter scheme, so the stray 'I-' is reported); None when there is
        neither (the tags read the same in both schemes)."""
        if self.i_starts > self.b_starts:
            return "iob1"
        return "iob2" if self.b_starts else None


def scheme_evidence(sentences: Iterable[Sequence[RawToken]]) -> SchemeEvidence:
    i_starts = b_starts = 0
    for tokens in sentences:
        i_starts += sum(1 for _ in violations(tokens, "iob2"))
        b_starts += sum(1 for _ in violations(tokens, "iob1"))
    return SchemeEvidence(i_starts=i_starts, b_starts=b_starts)


def iob2_tags(tokens: Sequence[RawToken], scheme: str) -> List[str]:
    """The IOB2 tags of one sentence read with ``scheme`` ('iob1' or 'iob2'): in IOB1 an entity
    starts at 'B-' or where the label changes."""
    if scheme != "iob1":
        return ["O" if t.prefix == "O" else f"{t.prefix}-{t.label}" for t in tokens]
    tags: List[str] = []
    previous = "O"
    for token in tokens:
        if token.prefix == "O":
            tags.append("O")
            previous = "O"
            continue
        starts = token.prefix == "B" or previous != token.label
        tags.append(("B-" if starts else "I-") + token.label)
        previous = token.label
    return tags


def iob2_spans(tags: Sequence[str]) -> List[Tuple[int, int, str]]:
    """(start, end, label) token spans of IOB2 tags, end exclusive."""
    spans: List[Tuple[int, int, str]] = []
    for i, tag in enumerate(tags):
        if tag.startswith("B-"):
            spans.append((i, i + 1, tag[2:]))
        elif tag.startswith("I-"):
            start, _, label = spans[-1]
            spans[-1] = (start, i + 1, label)
    return spans
