"""components/wordpieces.py: the transformer's inference forward gives spacy-transformers' batch, its alignment in one pass."""

from __future__ import annotations

from typing import List

import numpy
import pytest
import spacy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.language import Language
from spacy.tokens import Span
from spacy_transformers.align import get_alignment_via_offset_mapping
from spacy_transformers.layers.transformer_model import forward as transformer_forward
from transformers import AutoTokenizer

from spacy_ner_project.components.wordpieces import align_offsets, inference_forward
from spacy_ner_project.training.backbone import resolve_backbone
from test_quantize import TEXTS, tiny_pipeline  # tests/test_quantize.py

NLP = spacy.blank("en")
TOKENIZER = AutoTokenizer.from_pretrained(resolve_backbone("embedded"), use_fast=True)
# words that the two tokenizers split differently: contractions, hyphens, digits, accents,
# symbols, a character the word-piece vocabulary lacks, whitespace runs spaCy keeps as tokens
WORDS = ["Marie", "Curie", "don't", "U.S.", "co-operate", "3.5%", "Zürich", "naïve", "$", "(", ")", "'s",
         "e-mail", "…", "—", "Ω", "\u2603", "", " ", "  ", "\n", "A", "the", "Leicestershire", "TEXT", "x86_64"]


def batch_offsets(spans: List[Span]) -> numpy.ndarray:
    encoded = TOKENIZER([span.text for span in spans], return_offsets_mapping=True, padding="longest",
                        return_tensors="np")
    return encoded["offset_mapping"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=12), min_size=1, max_size=3),
       st.lists(st.tuples(st.integers(0, 2), st.integers(0, 11), st.integers(1, 12)), min_size=1, max_size=6))
def test_align_offsets_equals_spacy_transformers(texts: List[List[str]], windows: List[tuple]) -> None:
    docs = [NLP.make_doc(" ".join(words)) for words in texts]
    spans = []
    for doc_index, start, size in windows:  # any spans, overlapping or repeated, docs in any order
        doc = docs[doc_index % len(docs)]
        start = min(start, len(doc) - 1)
        if len(doc):
            spans.append(doc[start:min(len(doc), start + size)])
    spans = [span for span in spans if len(span)]
    if not spans:
        return
    offsets = batch_offsets(spans)
    expected = get_alignment_via_offset_mapping(spans, offsets)
    found = align_offsets(spans, offsets)
    numpy.testing.assert_array_equal(found.lengths, expected.lengths)
    numpy.testing.assert_array_equal(found.dataXd, expected.dataXd)
    assert found.dataXd.dtype == expected.dataXd.dtype and found.lengths.dtype == expected.lengths.dtype


def test_align_offsets_refuses_batches_of_other_sizes() -> None:
    doc = NLP.make_doc("One two")
    with pytest.raises(ValueError, match="different sizes"):
        align_offsets([doc[:1], doc[1:]], numpy.zeros((1, 3, 2), dtype=numpy.int64))


def test_inference_forward_gives_spacy_transformers_batch() -> None:
    nlp: Language = tiny_pipeline()  # the embedded MiniLM's weights: nothing to train for this
    nlp.remove_pipe("ner")
    nlp.initialize()
    model = nlp.get_pipe("transformer").model
    assert model._func is inference_forward
    texts = TEXTS + ["Don't e-mail Zürich's U.S. office  today , Marie .", "x " * 400]  # the last: overlapping windows
    docs = [nlp.make_doc(text) for text in texts]
    found, _ = inference_forward(model, docs, False)
    expected, _ = transformer_forward(model, docs, False)
    for name in ("strings", "lengths"):
        assert getattr(found.wordpieces, name) == getattr(expected.wordpieces, name)
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        numpy.testing.assert_array_equal(getattr(found.wordpieces, name), getattr(expected.wordpieces, name))
        assert getattr(found.wordpieces, name).dtype == getattr(expected.wordpieces, name).dtype
    numpy.testing.assert_array_equal(found.align.dataXd, expected.align.dataXd)
    numpy.testing.assert_array_equal(found.align.lengths, expected.align.lengths)
    numpy.testing.assert_allclose(found.model_output.last_hidden_state, expected.model_output.last_hidden_state,
                                  rtol=1e-5, atol=1e-5)
    _, backprop = inference_forward(model, docs[:1], False)
    with pytest.raises(ValueError, match="inference"):
        backprop(found)
    trained_batch, _ = inference_forward(model, docs[:1], True)  # training: spacy-transformers' own forward
    assert trained_batch.wordpieces.strings == transformer_forward(model, docs[:1], False)[0].wordpieces.strings
