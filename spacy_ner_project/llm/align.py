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

Guards (issue 10: junk answers must not become entities). Each refusal is an ``Unplaced``
with its reason:

* ``"empty"``: the string is only whitespace;
* ``"possessive"``: the string is a lone possessive (``'s``, ``’s``, ``'`` and their quote
  variants);
* ``"no_alnum"``: the string has no letter or digit (``"."``, ``"--"``);
* ``"function_word"``: the string is ONE word of ``FUNCTION_WORDS`` (English articles,
  determiners, prepositions, pronouns, auxiliaries and conjunctions, lower case) and either
  (a) the answer wrote it without any capital letter (``"the"``, ``"may"``, ``"us"``), or
  (b) every mention it would land on is written all in lower case. So ``"May"`` is placed on
  ``May`` but never on ``may``, ``"US"`` on ``US`` but never on ``us``, and ``"the"`` nowhere
  (``function_word_refused``). A capitalised function word that matches a capitalised mention
  (``"The"`` on a sentence-initial ``The``) is placed: the answer's capital is taken as the
  claim of a name, as for ``May``;
* ``"case_mismatch"``: every position of the string is written all in lower case while the
  answer's string has a capital (``case_compatible``: ``US`` ≠ ``us``, ``May`` ≠ ``may``, while
  ``LEICESTERSHIRE`` matches ``Leicestershire`` and an answer without capitals matches any
  case). The rule filters exact and fuzzy candidates alike, before overlaps are resolved.

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
from typing import TYPE_CHECKING, Callable, Dict, FrozenSet, Iterable, List, Optional, Sequence, Tuple

from rapidfuzz import fuzz, process

if TYPE_CHECKING:  # pragma: no cover
    from spacy.tokens import Doc

# Every quote or apostrophe variant maps to "'", every dash variant to "-".
_QUOTES = "'\"`´‘’‚‛′″‶“”„‟«»‹›＂＇"
_DASHES = "‐‑‒–—―−﹘﹣－"
_CHAR_MAP = {ord(c): "'" for c in _QUOTES} | {ord(c): "-" for c in _DASHES}
_POSSESSIVES = ("'s", "'")

# English function words (lower case): a single one of these is never placed unless the answer
# capitalised it and it lands on capitalised mentions only (see the module docstring).
FUNCTION_WORDS: FrozenSet[str] = frozenset(
    # articles and determiners
    "a an the this that these those some any each every no all both either neither such what "
    "which whose another other much many few several "
    # prepositions
    "of to in on at by for with from into onto upon about above across after against along "
    "among around as before behind below beneath beside between beyond despite down during "
    "except inside near off out outside over past per since through throughout till toward "
    "towards under until up via within without "
    # pronouns
    "i me my mine myself you your yours yourself yourselves he him his himself she her hers "
    "herself it its itself we us our ours ourselves they them their theirs themselves who whom "
    "whoever someone something anyone anything everyone everything nobody nothing "
    # auxiliaries and modals
    "be am is are was were been being have has had having do does did will would shall should "
    "may might must can could "
    # conjunctions and other function words
    "and or nor but yet so if because although though while whereas unless than whether when "
    "where how not there".split()
)


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
    # "empty", "possessive", "no_alnum", "function_word", "case_mismatch", "not_found" or "overlap"
    reason: str


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


def _has_capital(text: str) -> bool:
    return any(ch.isupper() for ch in text)


def case_compatible(query: str, mention: str) -> bool:
    """Whether the answer's string ``query`` may land on ``mention`` (the text's own spelling).

    False only when ``query`` has a capital letter and ``mention`` is written all in lower case
    (it has cased letters and none is upper case): ``US``/``us`` and ``May``/``may`` do not
    match; ``LEICESTERSHIRE``/``Leicestershire``, ``us``/``US`` and ``Paris``/``PARIS`` do, and a
    mention without cased letters (``1996``) matches any query.
    """
    return not (_has_capital(query) and mention.islower())


def is_function_word(query: str) -> bool:
    """Whether ``query`` is one word of ``FUNCTION_WORDS`` (any case, quote variants unified)."""
    words = query.split()
    return len(words) == 1 and normalize(words[0]) in FUNCTION_WORDS


def function_word_refused(query: str, mentions: Sequence[str]) -> bool:
    """Whether a function-word ``query`` is refused given the ``mentions`` it would land on.

    True when ``query`` is a single function word and either it has no capital letter, or every
    one of ``mentions`` (none counts as every) is written all in lower case.
    """
    if not is_function_word(query):
        return False
    return not _has_capital(query) or all(m.islower() for m in mentions)


def query_refusal(query: str) -> Optional[str]:
    """Why an answer string is never placed whatever the text: "empty", "possessive", "no_alnum" or None.

    Function words depend on their mentions too: see ``function_word_refused``.
    """
    norm = normalize(query)
    if not norm:
        return "empty"
    if norm in _POSSESSIVES:
        return "possessive"
    if not any(ch.isalnum() for ch in query):  # as written: casefolding makes letters of some marks
        return "no_alnum"
    return None


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

    def _fuzzy(self, query: str, allowed: Callable[[_Candidate], bool]) -> List[_Candidate]:
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
            cand = _Candidate(self._starts[start_pos], self._ends[end_pos] + 1, float(score), "fuzzy")
            if allowed(cand):
                found.append(cand)
        # best-scoring windows of this query first, so a window and its superset do not both survive
        found.sort(key=lambda c: (-c.score, c.start_token, c.end_token))
        kept: List[_Candidate] = []
        for cand in found:
            if all(cand.end_token <= k.start_token or cand.start_token >= k.end_token for k in kept):
                kept.append(cand)
        return kept

    def surface(self, cand: _Candidate) -> str:
        """The text a candidate covers, as written."""
        return self.text[self.offsets[cand.start_token][0] : self.offsets[cand.end_token - 1][1]]

    def find(self, query_text: str) -> Tuple[List[_Candidate], bool]:
        """Token-aligned candidates for one LLM string (exact, then possessive-stripped, then fuzzy).

        Candidates that ``case_compatible`` refuses are left out before a stage counts as
        successful (so a refused exact match does not stop the fuzzy stage).
        RETURNS: (candidates, whether any candidate was refused for its case).
        """
        query = normalize(query_text)
        if not query:
            return [], False
        refused = False

        def allowed(cand: _Candidate) -> bool:
            nonlocal refused
            ok = case_compatible(query_text, self.surface(cand))
            refused = refused or not ok
            return ok

        stripped = _strip_possessive(query)
        order = [stripped, query] if self.options.strip_possessive else [query, stripped]
        for variant in order:
            if variant:
                found = [c for c in self._exact(variant) if allowed(c)]
                if found:
                    return found, refused
        for variant in order:
            if variant:
                found = self._fuzzy(variant, allowed)
                if found:
                    return found, refused
        return [], refused

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
    blocked: Sequence[Tuple[int, int]] = (),
) -> AlignmentResult:
    """Place every mention of each (label, string) at token boundaries of ``text``.

    blocked: token ranges (start, end) that mentions may not overlap, e.g. entities already set.
    Duplicate (label, string) pairs count once (strings equal after ``normalize`` and alike in
    having a capital or not). A pair refused by a guard or with no position is in ``unplaced``
    with its reason (see the module docstring); one whose every position lost an overlap is in
    ``unplaced`` with reason "overlap" (the losing positions are in ``overlapped``).
    """
    idx = TokenIndex(text, token_offsets, options=options)
    seen: Dict[Tuple[str, str, bool], int] = {}
    queries: List[Tuple[str, str]] = []
    for label, string in entities:
        key = (label, normalize(string), _has_capital(string))
        if key not in seen:
            seen[key] = len(queries)
            queries.append((label, string))
    unplaced: List[Unplaced] = []
    candidates: List[Tuple[int, Mention]] = []
    cache: Dict[Tuple[str, bool], Tuple[List[_Candidate], bool]] = {}
    for qi, (label, string) in enumerate(queries):
        refusal = query_refusal(string)
        if refusal is not None:
            unplaced.append(Unplaced(label, string, refusal))
            continue
        key = (normalize(string), _has_capital(string))
        if key not in cache:
            cache[key] = idx.find(string)
        found, case_refused = cache[key]
        if function_word_refused(string, [idx.surface(c) for c in found]):
            unplaced.append(Unplaced(label, string, "function_word"))
            continue
        if not found:
            unplaced.append(Unplaced(label, string, "case_mismatch" if case_refused else "not_found"))
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
