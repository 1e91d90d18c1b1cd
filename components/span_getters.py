"""Windows for the transformer that cover each token once and end where sentences end.

spacy-transformers' strided windows (``window`` 128, ``stride`` 96: configs/ner_trf.cfg before
issue 24) feed the backbone a quarter of the text twice, and cut sentences and entities at
arbitrary tokens; windows without overlap cut them as well. :func:`sentence_windows` packs
consecutive sentences into windows of at most ``window`` tokens with no overlap: each window ends
after the last sentence end that fits, so a sentence is cut only where no sentence end lies
between the window's ``min_tokens``-th and last token (e.g. a sentence longer than the window).
Trained so on CoNLL-2003 (600 steps) the default config reached dev F1 90.10 against 89.59 with
strided windows 128/96, and ran 1.1x their speed (benchmarks/speed_accuracy.md). Rules, in
order (they make the result a pure function of the tokens):

* a token ends a sentence where the doc has sentence boundaries (``Doc.has_annotation("SENT_START")``
  and ``token.is_sent_end``), else where its text is one of :data:`SENTENCE_END_TEXTS`;
* a window starts where the previous one ended (the first at token 0) and takes up to ``window``
  tokens; when the doc goes on after them, the window is cut after the *last* sentence end
  among its tokens at or after position ``min_tokens`` (counted from the window's start, so the
  first ``min_tokens`` tokens are never a cut point); with none there, it is cut at ``window``
  tokens, as strided windows are.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Iterable, List

from spacy.tokens import Doc, Span

DEFAULT_WINDOW = 128
DEFAULT_MIN_TOKENS = 32
SENTENCE_END_TEXTS = frozenset({".", "!", "?", "...", "…"})


def sentence_ends(doc: Doc) -> List[bool]:
    """For each token of ``doc``: whether a sentence ends with it (see the module's rules)."""
    if doc.has_annotation("SENT_START"):
        return [token.is_sent_end for token in doc]
    return [text in SENTENCE_END_TEXTS for text in (token.text for token in doc)]


def window_bounds(ends: List[bool], *, window: int, min_tokens: int) -> List[tuple[int, int]]:
    """``(start, end)`` token offsets of the windows over tokens whose sentence ends are ``ends``."""
    if window < 1 or not 0 <= min_tokens <= window:
        raise ValueError(f"sentence windows need window >= 1 and 0 <= min_tokens <= window (got {window}, {min_tokens})")
    bounds: List[tuple[int, int]] = []
    start, length = 0, len(ends)
    while start < length:
        end = min(start + window, length)
        if end < length:
            for cut in range(end, start + min_tokens, -1):  # a cut after token cut - 1
                if ends[cut - 1]:
                    end = cut
                    break
        bounds.append((start, end))
        start = end
    return bounds


def sentence_windows(docs: Iterable[Doc], *, window: int = DEFAULT_WINDOW,
                     min_tokens: int = DEFAULT_MIN_TOKENS) -> List[List[Span]]:
    """The windows of each doc, as spans (see the module's rules)."""
    return [[doc[start:end] for start, end in window_bounds(sentence_ends(doc), window=window, min_tokens=min_tokens)]
            for doc in docs]


def sentence_windows_v1(window: int = DEFAULT_WINDOW,
                        min_tokens: int = DEFAULT_MIN_TOKENS) -> Callable[[List[Doc]], List[List[Span]]]:
    """``spacy_ner_project.sentence_windows.v1``: a span getter for spacy-transformers (``get_spans``)."""
    window_bounds([], window=window, min_tokens=min_tokens)  # bad settings fail when the config loads
    return partial(sentence_windows, window=window, min_tokens=min_tokens)
