"""Place entity strings returned by an LLM in a text, at token boundaries only.

An LLM asked for entities answers with strings ("ChatGPT", "New York"), not offsets. This
module finds EVERY mention of each string in the text, but only where a mention starts at a
token start and ends at a token end (so "us" never matches inside "used"). Matching is

* case-insensitive (Unicode casefolding, NFKC),
* whitespace-insensitive (whitespace is ignored: "New  York", "New York" and the CoNLL-style
  "U.S. -based" / "U.S.-based" all match each other, still at token boundaries),
* tolerant of quote, apostrophe and dash variants (’ ‘ ` ´ " “ ” „ « » – — ...),
* tolerant of a possessive 's: the LLM's "ChatGPT's" is placed on "ChatGPT" (a trailing
  possessive is dropped from the query when it has no match of its own or when
  ``strip_possessive`` is set), and a query ending inside a token only because the token
  carries a possessive ("ChatGPT" in an unsplit token "ChatGPT's") covers that whole token,
* tolerant of small typos: a query with no exact match is compared with rapidfuzz's
  ``fuzz.ratio`` against token windows of similar length (``fuzzy_cutoff``; None disables).

Overlapping candidates are resolved deterministically: longest (in characters) first, then
earliest, then exact before fuzzy, then the order the LLM gave the strings. Strings that
cannot be placed never become entities; they are returned in ``AlignmentResult.unplaced``.

The core works on a text plus token character offsets and does not import spaCy; the two
spaCy helpers at the bottom (``align_doc``, ``token_offsets``) are thin wrappers.
"""

from __future__ import annotations

import bisect
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, Iterable, List, Optional, Sequence, Tuple

from rapidfuzz import fuzz, process

if TYPE_CHECKING:  # pragma: no cover
    from spacy.tokens import Doc

# Every quote or apostrophe variant maps to "'", every dash variant to "-".
_QUOTES = "'\"`´‘’‚‛′″‶“”„‟«»‹›＂＇"
_DASHES = "‐‑‒–—―−﹘﹣－"
_CHAR_MAP = {ord(c): "'" for c in _QUOTES} | {ord(c): "-" for c in _DASHES}
_POSSESSIVES = ("'s", "'")


@dataclass(frozen=True)
class AlignOptions:
    """How strictly LLM strings are matched.

    fuzzy_cutoff: minimum rapidfuzz ``fuzz.ratio`` (0-100) for a typo match; None: exact only.
    max_fuzzy_tokens: longest token window compared fuzzily (longer strings match exactly only).
    min_fuzzy_chars: strings shorter than this (without whitespace) are never matched fuzzily.
    strip_possessive: drop a trailing possessive ('s, s') from the LLM's string before placing it.
    """

    fuzzy_cutoff: Optional[float] = 88.0
    max_fuzzy_tokens: int = 10
    min_fuzzy_chars: int = 4
    strip_possessive: bool = True

    def __post_init__(self) -> None:
        if self.fuzzy_cutoff is not None and not 0 < self.fuzzy_cutoff <= 100:
            raise ValueError(f"fuzzy_cutoff must be in (0, 100] or None, got {self.fuzzy_cutoff}")
        if self.max_fuzzy_tokens < 1 or self.min_fuzzy_chars < 1:
            raise ValueError("max_fuzzy_tokens and min_fuzzy_chars must be at least 1")


@dataclass(frozen=True)
class Mention:
    """A placed entity: character offsets in the text and token offsets (end exclusive)."""

    label: str
    text: str  # the string as the LLM gave it
    start_char: int
    end_char: int
    start_token: int
    end_token: int
    score: float  # 100.0 for exact matches, the rapidfuzz ratio for fuzzy ones
    method: str  # "exact", "possessive" or "fuzzy"


@dataclass(frozen=True)
class Unplaced:
    """An LLM string that has no position in the text (or only positions taken by others)."""

    label: str
    text: str
    reason: str  # "empty", "not_found" or "overlap"


@dataclass(frozen=True)
class AlignmentResult:
    mentions: Tuple[Mention, ...]
    unplaced: Tuple[Unplaced, ...]
    # candidates that were placed but lost against a longer/earlier overlapping one
    overlapped: Tuple[Mention, ...] = field(default=())


def normalize(text: str) -> str:
    """Matching form of a string: NFKC, casefolded, quote/dash variants unified, no whitespace."""
    folded = unicodedata.normalize("NFKC", text).casefold().translate(_CHAR_MAP)
    return "".join(folded.split())


def _strip_possessive(norm: str) -> Optional[str]:
    """The string without its trailing possessive, or None if it has none."""
    if norm.endswith("'s") and len(norm) > 2:
        return norm[:-2]
    if norm.endswith("s'") and len(norm) > 2:
        return norm[:-1]
    return None


@dataclass(frozen=True)
class _Candidate:
    start_token: int
    end_token: int
    score: float
    method: str


class TokenIndex:
    """A text normalised once, with its token boundaries, for repeated look-ups.

    text: the original text; token_offsets: (start_char, end_char) of each token, in order.
    Tokens that normalise to nothing (whitespace tokens) never start or end a mention.
    """

    def __init__(self, text: str, token_offsets: Sequence[Tuple[int, int]], *, options: AlignOptions) -> None:
        self.text = text
        self.offsets = list(token_offsets)
        self.options = options
        pieces: List[str] = []
        self._tok_start: List[int] = []  # normalised start of each token
        self._tok_norm: List[str] = []
        self._starts: Dict[int, int] = {}  # normalised position -> first token starting there
        self._ends: Dict[int, int] = {}  # normalised position -> last token ending there
        pos = 0
        for i, (start, end) in enumerate(self.offsets):
            if not 0 <= start <= end <= len(text):
                raise ValueError(f"token {i} has offsets ({start}, {end}) outside a text of length {len(text)}")
            norm = normalize(text[start:end])
            self._tok_start.append(pos)
            self._tok_norm.append(norm)
            if norm:
                self._starts.setdefault(pos, i)
                pos += len(norm)
                self._ends[pos] = i
            pieces.append(norm)
        self.norm = "".join(pieces)
        self._windows: Optional[Dict[int, List[Tuple[int, int]]]] = None
        self._window_strings: Dict[int, List[str]] = {}

    def _exact(self, query: str) -> List[_Candidate]:
        found = []
        pos = self.norm.find(query)
        while pos != -1:
            end = pos + len(query)
            start_tok = self._starts.get(pos)
            if start_tok is not None:
                end_tok = self._ends.get(end)
                if end_tok is not None:
                    found.append(_Candidate(start_tok, end_tok + 1, 100.0, "exact"))
                else:
                    end_tok = self._possessive_token_end(end)
                    if end_tok is not None:
                        found.append(_Candidate(start_tok, end_tok + 1, 100.0, "possessive"))
            pos = self.norm.find(query, pos + 1)
        return found

    def _possessive_token_end(self, end: int) -> Optional[int]:
        """If ``end`` falls inside a token only because it ends in a possessive, that token."""
        i = bisect.bisect_right(self._tok_start, end) - 1
        if i < 0 or not self._tok_norm[i]:
            return None
        rest = self._tok_norm[i][end - self._tok_start[i] :]
        return i if end > self._tok_start[i] and rest in _POSSESSIVES else None

    def _build_windows(self) -> Dict[int, List[Tuple[int, int]]]:
        """All token windows up to max_fuzzy_tokens, grouped by normalised length."""
        windows: Dict[int, List[Tuple[int, int]]] = {}
        starts = sorted(self._starts.items())
        ends = sorted(self._ends.items())
        end_positions = [p for p, _ in ends]
        for start_pos, start_tok in starts:
            j = bisect.bisect_right(end_positions, start_pos)
            for end_pos, end_tok in ends[j : j + self.options.max_fuzzy_tokens]:
                if end_tok - start_tok >= self.options.max_fuzzy_tokens:
                    break
                windows.setdefault(end_pos - start_pos, []).append((start_pos, end_pos))
        return windows

    def _fuzzy(self, query: str) -> List[_Candidate]:
        cutoff = self.options.fuzzy_cutoff
        if cutoff is None or len(query) < self.options.min_fuzzy_chars:
            return []
        if self._windows is None:
            self._windows = self._build_windows()
        # ratio = 2 * matches / (len(a) + len(b)) bounds the lengths a match can have
        max_diff = int(len(query) * (100 - cutoff) / 100 * 2) + 1
        spans: List[Tuple[int, int]] = []
        strings: List[str] = []
        for length in range(max(1, len(query) - max_diff), len(query) + max_diff + 1):
            group = self._windows.get(length)
            if group:
                if length not in self._window_strings:
                    self._window_strings[length] = [self.norm[s:e] for s, e in group]
                spans.extend(group)
                strings.extend(self._window_strings[length])
        if not strings:
            return []
        hits = process.extract(query, strings, scorer=fuzz.ratio, score_cutoff=cutoff, limit=None)
        found = []
        for _, score, i in hits:
            start_pos, end_pos = spans[i]
            found.append(_Candidate(self._starts[start_pos], self._ends[end_pos] + 1, float(score), "fuzzy"))
        # best-scoring windows of this query first, so a window and its superset do not both survive
        found.sort(key=lambda c: (-c.score, c.start_token, c.end_token))
        kept: List[_Candidate] = []
        for cand in found:
            if all(cand.end_token <= k.start_token or cand.start_token >= k.end_token for k in kept):
                kept.append(cand)
        return kept

    def find(self, query_text: str) -> List[_Candidate]:
        """Token-aligned candidates for one LLM string (exact, then possessive-stripped, then fuzzy)."""
        query = normalize(query_text)
        if not query:
            return []
        stripped = _strip_possessive(query)
        order = [stripped, query] if self.options.strip_possessive else [query, stripped]
        for variant in order:
            if variant:
                found = self._exact(variant)
                if found:
                    return found
        for variant in order:
            if variant:
                found = self._fuzzy(variant)
                if found:
                    return found
        return []

    def mention(self, label: str, text: str, cand: _Candidate) -> Mention:
        return Mention(
            label=label,
            text=text,
            start_char=self.offsets[cand.start_token][0],
            end_char=self.offsets[cand.end_token - 1][1],
            start_token=cand.start_token,
            end_token=cand.end_token,
            score=cand.score,
            method=cand.method,
        )


def resolve_overlaps(
    candidates: Iterable[Tuple[int, Mention]],
    *,
    blocked: Sequence[Tuple[int, int]] = (),
) -> Tuple[List[Mention], List[Mention]]:
    """Keep non-overlapping mentions: longest first, then earliest, exact before fuzzy, then query order.

    candidates: (query index, mention) pairs. blocked: token ranges nobody may overlap.
    RETURNS: (kept mentions in text order, dropped mentions).
    """
    ordered = sorted(
        candidates,
        key=lambda qm: (
            -(qm[1].end_char - qm[1].start_char),
            qm[1].start_char,
            -qm[1].score,
            qm[0],
        ),
    )
    taken = sorted(blocked)
    kept: List[Mention] = []
    dropped: List[Mention] = []
    for _, m in ordered:
        i = bisect.bisect_left(taken, (m.end_token, -1))
        # only the range starting before m ends and closest to it can overlap (ranges are disjoint)
        if i > 0 and taken[i - 1][1] > m.start_token:
            dropped.append(m)
            continue
        bisect.insort(taken, (m.start_token, m.end_token))
        kept.append(m)
    kept.sort(key=lambda m: m.start_token)
    return kept, dropped


def align(
    text: str,
    token_offsets: Sequence[Tuple[int, int]],
    entities: Iterable[Tuple[str, str]],
    *,
    options: AlignOptions = AlignOptions(),
    index: Optional[TokenIndex] = None,
    blocked: Sequence[Tuple[int, int]] = (),
) -> AlignmentResult:
    """Place every mention of each (label, string) at token boundaries of ``text``.

    blocked: token ranges (start, end) that mentions may not overlap, e.g. entities already set.
    Duplicate (label, string) pairs count once. A pair with no position is in ``unplaced``
    with reason "empty" or "not_found"; one whose every position lost an overlap is in
    ``unplaced`` with reason "overlap" (the losing positions are in ``overlapped``).
    """
    idx = index if index is not None else TokenIndex(text, token_offsets, options=options)
    seen: Dict[Tuple[str, str], int] = {}
    queries: List[Tuple[str, str]] = []
    for label, string in entities:
        key = (label, normalize(string))
        if key not in seen:
            seen[key] = len(queries)
            queries.append((label, string))
    unplaced: List[Unplaced] = []
    candidates: List[Tuple[int, Mention]] = []
    cache: Dict[str, List[_Candidate]] = {}
    for qi, (label, string) in enumerate(queries):
        norm = normalize(string)
        if not norm:
            unplaced.append(Unplaced(label, string, "empty"))
            continue
        if norm not in cache:
            cache[norm] = idx.find(string)
        found = cache[norm]
        if not found:
            unplaced.append(Unplaced(label, string, "not_found"))
        candidates.extend((qi, idx.mention(label, string, c)) for c in found)
    kept, dropped = resolve_overlaps(candidates, blocked=blocked)
    placed = {(m.label, m.text) for m in kept}
    lost = {(m.label, m.text) for m in dropped} - placed
    for label, string in queries:
        if (label, string) in lost:
            unplaced.append(Unplaced(label, string, "overlap"))
    return AlignmentResult(mentions=tuple(kept), unplaced=tuple(unplaced), overlapped=tuple(dropped))


def token_offsets(doc: "Doc") -> List[Tuple[int, int]]:
    """(start_char, end_char) of each token of a spaCy Doc."""
    return [(token.idx, token.idx + len(token.text)) for token in doc]


def align_doc(
    doc: "Doc",
    entities: Iterable[Tuple[str, str]],
    *,
    options: AlignOptions = AlignOptions(),
    blocked: Sequence[Tuple[int, int]] = (),
) -> AlignmentResult:
    """``align`` on a spaCy Doc's text and tokens."""
    return align(doc.text, token_offsets(doc), entities, options=options, blocked=blocked)
