"""Candidate spans for the candidate NER task: the stretches of a text that may be entities.

A candidate generator is a function ``Doc -> List[Span]`` (spans in text order, no two with the
same start and end). Two are registered (llm_misc, entry points in setup.cfg):

- ``spacy_ner_project.CapitalisedRuns.v1``: maximal runs of tokens that begin with a capital
  letter ("Maria Lopez", "World Health Assembly" is one run only when every word is capitalised:
  "Bank of England" gives "Bank" and "England"); optionally every sub-span of a run up to
  ``max_sub_tokens`` tokens as well. On the first 100 sentences of CoNLL-2003 dev the runs hold
  92% of the gold entities exactly, at 2.8 candidates per sentence (1.98 entities); with
  sub-spans of up to 4 tokens 97% at 4.8 (benchmarks/llm_local.md).
- ``spacy_ner_project.NGramCandidates.v1``: every n-gram of 1 to ``max_tokens`` tokens that
  neither begins nor ends with punctuation or a space (99% at 37.5 per sentence for n <= 3: a
  request per candidate makes that 13 times the work).
"""

from __future__ import annotations

from typing import Callable, Iterable, List, Set, Tuple

from spacy.tokens import Doc, Span, Token

CandidateGenerator = Callable[[Doc], List[Span]]


def _starts_capitalised(token: Token) -> bool:
    return token.text[:1].isupper()


def capitalised_runs(doc: Doc) -> List[Span]:
    """The maximal runs of consecutive tokens whose first character is an upper-case letter."""
    runs: List[Span] = []
    start = None
    for token in doc:
        if _starts_capitalised(token):
            if start is None:
                start = token.i
        elif start is not None:
            runs.append(doc[start : token.i])
            start = None
    if start is not None:
        runs.append(doc[start : len(doc)])
    return runs


def without_leading_stop_words(spans: Iterable[Span]) -> List[Span]:
    """Each span without the stop words it begins with (``token.is_stop``: "Then Sam" -> "Sam",
    "After" -> nothing); spans of stop words only are dropped."""
    out = []
    for span in spans:
        start = span.start
        while start < span.end and span.doc[start].is_stop:
            start += 1
        if start < span.end:
            out.append(span.doc[start : span.end])
    return out


def sub_spans(spans: Iterable[Span], *, max_tokens: int) -> List[Span]:
    """Every contiguous part of each span of 1 to ``max_tokens`` tokens (the span itself
    included whatever its length), in text order (by start, then longest first), each once."""
    spans = list(spans)
    if not spans:
        return []
    seen: Set[Tuple[int, int]] = set()
    for span in spans:
        seen.add((span.start, span.end))
        for start in range(span.start, span.end):
            for end in range(start + 1, min(span.end, start + max_tokens) + 1):
                seen.add((start, end))
    doc = spans[0].doc
    return [doc[start:end] for start, end in sorted(seen, key=lambda se: (se[0], -se[1]))]


def ngrams(doc: Doc, *, max_tokens: int) -> List[Span]:
    """Every span of 1 to ``max_tokens`` tokens whose first and last tokens are neither
    punctuation nor whitespace, in text order (by start, then longest first)."""
    spans = []
    for start in range(len(doc)):
        for end in range(min(len(doc), start + max_tokens), start, -1):
            if not (_is_edge_junk(doc[start]) or _is_edge_junk(doc[end - 1])):
                spans.append(doc[start:end])
    return spans


def _is_edge_junk(token: Token) -> bool:
    return token.is_punct or token.is_space


def _check_bound(name: str, value: int, *, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} must be a whole number of at least {least}; got {value!r}")


def make_capitalised_runs_v1(max_sub_tokens: int = 0, strip_stop_words: bool = False) -> CandidateGenerator:
    """``spacy_ner_project.CapitalisedRuns.v1``: capitalised runs as candidates.

    max_sub_tokens: 0 for the maximal runs only; n >= 1 adds every part of a run of up to n
        tokens ("Shares Northwind Bank" also gives "Northwind Bank", "Shares", ...).
    strip_stop_words: cut the stop words a run begins with ("Then Sam" -> "Sam"; a run of stop
        words only, such as a sentence's first "The", is no candidate).
    """
    _check_bound("max_sub_tokens", max_sub_tokens, least=0)

    def generate(doc: Doc) -> List[Span]:
        runs = capitalised_runs(doc)
        if strip_stop_words:
            runs = without_leading_stop_words(runs)
        return sub_spans(runs, max_tokens=max_sub_tokens) if max_sub_tokens else runs

    return generate


def make_ngram_candidates_v1(max_tokens: int = 3) -> CandidateGenerator:
    """``spacy_ner_project.NGramCandidates.v1``: every n-gram of 1 to ``max_tokens`` tokens
    without punctuation or whitespace at either end."""
    _check_bound("max_tokens", max_tokens, least=1)

    def generate(doc: Doc) -> List[Span]:
        return ngrams(doc, max_tokens=max_tokens)

    return generate
