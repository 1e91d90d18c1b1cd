"""The transformer's inference forward with the word-piece alignment computed in one pass over the fast tokenizer's offsets.

spacy-transformers' ``TransformerModel`` forward tokenizes a batch's spans with the Hugging Face
tokenizer, converts every row's ids back to strings one id at a time, then aligns spaCy tokens
to word pieces span by span and token by token, in Python sets
(``spacy_transformers.align.get_alignment_via_offset_mapping``). On 137 windows of 12,010 CoNLL
test words (one AMD EPYC core) the tokenizer call took 0.035 s (0.012 s of it in the Rust
tokenizer) and the alignment 0.023 s, all of it holding Python's GIL: time that a worker thread
(:mod:`spacy_ner_project.threads`) makes the other wait on, and that ``nlp.pipe`` spends with a
core idle.

:func:`inference_forward` is that forward at inference with two changes, the same outputs:

* the word-piece strings are the encodings' own tokens (what ``convert_ids_to_tokens`` returns
  for their ids), not converted back id by id;
* :func:`align_offsets` computes the alignment with NumPy over all characters of the batch at
  once: each character of each doc is mapped to the spaCy token that covers it (a token covers
  its characters and the one after it; where that one begins the next token, the next token
  has it), each word piece to the tokens of its characters (spacy-transformers' rule).

Training, a slow tokenizer (no offsets) and a model with a ``logger`` run spacy-transformers'
own forward. ``tests/test_wordpieces.py`` checks that both give the same batch (word pieces,
alignment, outputs) and, with hypothesis, that :func:`align_offsets` equals spacy-transformers'
alignment on any spans of any texts.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy
from spacy.attrs import IDX, LENGTH, SPACY
from spacy.tokens import Doc, Span
from spacy_transformers.data_classes import FullTransformerBatch, WordpieceBatch
from spacy_transformers.layers.transformer_model import forward as transformer_forward
from spacy_transformers.truncate import truncate_oversize_splits
from spacy_transformers.util import maybe_flush_pytorch_cache
from thinc.api import Model
from thinc.types import Ragged
from transformers.tokenization_utils_fast import PreTrainedTokenizerFast


def align_offsets(spans: Sequence[Span], offset_mapping: Any) -> Ragged:
    """spacy-transformers' ``get_alignment_via_offset_mapping``: for each token of the spans' docs
    (docs in the order they first appear, each doc's tokens in order), the indices of the word
    pieces aligned to it in the batch's concatenated rows (row ``i`` of ``offset_mapping``,
    ``(rows, width, 2)`` character offsets within ``spans[i].text``, starts at ``i * width``),
    increasing and each once (a token that several spans hold gets the pieces of each).

    One character map per doc, not per span: a word piece's characters lie within its span's
    text, where the doc's map and the span's agree (they differ only on the character after the
    span's last token, which no piece of the span reaches)."""
    if len(spans) != len(offset_mapping):
        raise ValueError("Cannot align batches of different sizes.")
    docs: Dict[int, Tuple[int, int]] = {}  # id(doc) -> (its first token's position, its first character's)
    maps: List[numpy.ndarray] = []
    tokens_seen = chars_seen = 0
    row_chars = numpy.zeros(len(spans), dtype=numpy.int64)  # each row's first character in the maps
    for row, span in enumerate(spans):
        doc = span.doc
        if id(doc) not in docs:
            docs[id(doc)] = (tokens_seen, chars_seen)
            char_token = _char_tokens(doc)
            maps.append(numpy.where(char_token >= 0, char_token + tokens_seen, -1))
            tokens_seen += len(doc)
            chars_seen += len(char_token)
        row_chars[row] = docs[id(doc)][1] + span.start_char
    if not spans or tokens_seen == 0:
        return Ragged(numpy.zeros((0,), dtype="i"), numpy.zeros((tokens_seen,), dtype="i"))
    offsets = numpy.asarray(offset_mapping, dtype=numpy.int64)
    rows, width = offsets.shape[:2]
    begins, counts = offsets[..., 0].ravel(), numpy.clip(offsets[..., 1] - offsets[..., 0], 0, None).ravel()
    begins = begins + numpy.repeat(row_chars, width)
    chars = numpy.repeat(begins + counts - counts.cumsum(), counts) + numpy.arange(counts.sum())
    pieces = numpy.repeat(numpy.arange(rows * width), counts)
    tokens = numpy.concatenate(maps)[chars]
    keep = tokens >= 0
    keys = tokens[keep] * (rows * width) + pieces[keep]
    steps = numpy.diff(keys)
    if (steps < 0).any():  # spans overlap, or docs come back: sort (else they are in order already)
        keys = numpy.unique(keys)  # by token, then piece; once each
    else:
        first = numpy.ones(len(keys), dtype=bool)
        first[1:] = steps > 0
        keys = keys[first]  # the characters of one piece and token: once
    tokens, pieces = numpy.divmod(keys, rows * width)
    lengths = numpy.bincount(tokens, minlength=tokens_seen)
    return Ragged(pieces.astype("i"), lengths.astype("i"))


def _char_tokens(doc: Doc) -> numpy.ndarray:
    """For each character of ``doc.text`` and one past its end, the token covering it (-1: none):
    a token covers its characters and the one after it, unless the next token begins there."""
    attrs = doc.to_array([IDX, LENGTH, SPACY]).astype(numpy.int64).reshape(-1, 3)
    starts = attrs[:, 0]
    ends = starts + attrs[:, 1] + 1
    ends[:-1] = numpy.minimum(ends[:-1], starts[1:])
    covered = ends - starts
    size = int(attrs[-1, 0] + attrs[-1, 1] + attrs[-1, 2]) + 1 if len(doc) else 1  # len(doc.text) + 1, no Token objects
    char_token = numpy.full(size, -1, dtype=numpy.int64)
    char_token[numpy.repeat(ends - covered.cumsum(), covered) + numpy.arange(covered.sum())] = numpy.repeat(
        numpy.arange(len(doc)), covered)
    return char_token


def inference_forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[FullTransformerBatch, Callable]:
    """spacy-transformers' ``TransformerModel`` forward (see the module docstring)."""
    tokenizer = model.tokenizer
    if is_train or not isinstance(tokenizer, PreTrainedTokenizerFast) or "logger" in model.attrs:
        return transformer_forward(model, docs, is_train)
    nested_spans = model.attrs["get_spans"](docs)
    maybe_flush_pytorch_cache(chance=model.attrs.get("flush_cache_chance", 0))
    flat_spans = [span for doc_spans in nested_spans for span in doc_spans]
    encoded = tokenizer(
        [span.text for span in flat_spans],
        add_special_tokens=True,
        return_attention_mask=True,
        return_offsets_mapping=True,
        return_tensors="np",
        return_token_type_ids=None,  # the model's default
        padding="longest",
    )
    encoded["input_texts"] = [list(encoding.tokens) for encoding in encoded.encodings]
    encoded["pad_token"] = tokenizer.pad_token
    wordpieces = WordpieceBatch.from_batch_encoding(encoded)
    align = align_offsets(flat_spans, encoded["offset_mapping"])
    wordpieces, align = truncate_oversize_splits(wordpieces, align, tokenizer.model_max_length)
    model_output, _ = model.layers[0](wordpieces, is_train)
    output = FullTransformerBatch(spans=nested_spans, wordpieces=wordpieces, model_output=model_output, align=align)

    def backprop(d_output: FullTransformerBatch) -> List[Doc]:
        raise ValueError("inference_forward was run for inference (is_train=False): it has no gradient.")

    return output, backprop
