"""Sentence windows (components/span_getters.py): each token once, cuts after sentence ends."""

from __future__ import annotations

from typing import List

import pytest
import spacy
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.tokens import Doc

from spacy_ner_project.components.span_getters import (
    SENTENCE_END_TEXTS,
    sentence_ends,
    sentence_windows,
    sentence_windows_v1,
    window_bounds,
)


@settings(max_examples=300, deadline=None)
@given(ends=st.lists(st.booleans(), max_size=60), window=st.integers(1, 20), data=st.data())
def test_windows_cover_each_token_once_and_cut_after_the_last_sentence_end(ends: List[bool], window: int, data) -> None:
    min_tokens = data.draw(st.integers(0, window))
    bounds = window_bounds(ends, window=window, min_tokens=min_tokens)
    # consecutive, no overlap, every token once, none longer than the window, none empty
    assert [start for start, _ in bounds] == ([0] + [end for _, end in bounds[:-1]] if bounds else [])
    assert (bounds[-1][1] if bounds else 0) == len(ends)
    assert all(0 < end - start <= window for start, end in bounds)
    for start, end in bounds[:-1]:  # every window but the last was cut
        allowed = [i for i in range(start + min_tokens, min(start + window, len(ends))) if ends[i]]
        if allowed:  # after the last sentence end it may cut at
            assert end == allowed[-1] + 1
        else:  # none: at the window's length, as strided windows
            assert end == start + window


def test_rules_by_example() -> None:
    ends = [False, False, True, False, False, False, True, False]
    assert window_bounds(ends, window=4, min_tokens=0) == [(0, 3), (3, 7), (7, 8)]
    assert window_bounds(ends, window=5, min_tokens=0) == [(0, 3), (3, 8)]  # the rest fits: not cut
    # a sentence end before min_tokens is not a cut point
    assert window_bounds(ends, window=4, min_tokens=3) == [(0, 4), (4, 8)]
    assert window_bounds(ends, window=100, min_tokens=0) == [(0, 8)]  # the doc fits: never cut
    assert window_bounds([], window=4, min_tokens=0) == []


@pytest.mark.parametrize("window,min_tokens", [(0, 0), (4, 5), (4, -1)])
def test_bad_settings_fail_when_the_config_resolves(window: int, min_tokens: int) -> None:
    with pytest.raises(ValueError, match="sentence windows need"):
        sentence_windows_v1(window=window, min_tokens=min_tokens)


def test_punctuation_or_the_docs_own_sentences() -> None:
    nlp = spacy.blank("en")
    doc = nlp("EU rejects German call . Peter Blackburn said so ! Fine")
    assert sentence_ends(doc) == [token.text in SENTENCE_END_TEXTS for token in doc]
    windows = sentence_windows([doc], window=8, min_tokens=2)[0]
    assert [w.text for w in windows] == ["EU rejects German call .", "Peter Blackburn said so ! Fine"]
    # a doc with sentence boundaries: those, not the punctuation
    with_sents = Doc(nlp.vocab, words=["a", "b", ".", "c", "d", "e"], sent_starts=[True, False, False, False, True, False])
    assert sentence_ends(with_sents) == [False, False, False, True, False, True]
    assert [w.text for w in sentence_windows([with_sents], window=5, min_tokens=0)[0]] == ["a b . c", "d e"]


def test_registered_for_spacy_transformers() -> None:
    from spacy_transformers.util import registry

    getter = registry.span_getters.get("spacy_ner_project.sentence_windows.v1")(window=3, min_tokens=1)
    doc = spacy.blank("en")("a b . c d e f")
    assert [w.text for w in getter([doc])[0]] == ["a b .", "c d e", "f"]
