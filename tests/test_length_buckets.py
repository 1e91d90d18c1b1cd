"""Length buckets: the pure planner (spacy_ner_project/buckets.py) and inference in buckets
(components/length_buckets.py, on by default in TransformerModel.v1)."""

from __future__ import annotations

import itertools
from typing import List

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from thinc.types import ArgsKwargs
from transformers import BertConfig, BertModel

from spacy_ner_project.buckets import length_buckets
from spacy_ner_project.components.length_buckets import predict_in_buckets

lengths_strategy = st.lists(st.integers(min_value=1, max_value=300), max_size=9)


def padded_cost(lengths: List[int], buckets: List[List[int]], *, call_cost: int) -> int:
    """Positions computed by ``buckets`` (each padded to its longest row) plus ``call_cost`` each."""
    return sum(len(rows) * max(lengths[i] for i in rows) + call_cost for rows in buckets)


def brute_force_cost(lengths: List[int], call_cost: int) -> int:
    """The least cost over every split of the length-sorted rows into runs."""
    ordered = sorted(lengths, reverse=True)
    n = len(ordered)
    best = None
    for cuts in itertools.product([False, True], repeat=max(n - 1, 0)):
        groups, start = [], 0
        for i, cut in enumerate(cuts, start=1):
            if cut:
                groups.append(ordered[start:i])
                start = i
        groups.append(ordered[start:])
        cost = sum(len(g) * max(g) + call_cost for g in groups if g)
        best = cost if best is None else min(best, cost)
    return best or 0


@settings(max_examples=200, deadline=None)
@given(lengths=lengths_strategy, call_cost=st.integers(min_value=0, max_value=400))
def test_buckets_cover_every_row_once_at_the_least_cost(lengths: List[int], call_cost: int) -> None:
    buckets = length_buckets(lengths, call_cost=call_cost)
    assert sorted(i for bucket in buckets for i in bucket) == list(range(len(lengths)))
    assert all(bucket == sorted(bucket) for bucket in buckets)
    assert padded_cost(lengths, buckets, call_cost=call_cost) == brute_force_cost(lengths, call_cost)
    if lengths:  # never worse than one padded call
        assert padded_cost(lengths, buckets, call_cost=call_cost) <= len(lengths) * max(lengths) + call_cost
    longest = [max(lengths[i] for i in bucket) for bucket in buckets]
    assert longest == sorted(longest, reverse=True)  # longest rows first


def test_bucket_ties_and_costs() -> None:
    assert length_buckets([], call_cost=10) == []
    # one short row among long ones: split when its padding outweighs a call
    assert length_buckets([100, 10, 100], call_cost=50) == [[0, 2], [1]]  # 200+50 + 10+50 < 300+50
    assert length_buckets([100, 10, 100], call_cost=100) == [[0, 1, 2]]  # 300+100 < 200+100 + 10+100
    # equal cost: fewer groups wins (2 * 10 + 0 == 10 + 0 + 10 + 0)
    assert length_buckets([10, 10], call_cost=0) == [[0, 1]]
    with pytest.raises(ValueError, match="call_cost"):
        length_buckets([1], call_cost=-1)


@pytest.fixture(scope="module")
def bert() -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    return BertModel(config).eval()


def padded_batch(lengths: List[int]) -> ArgsKwargs:
    width = max(lengths)
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 50, (len(lengths), width), generator=generator)
    mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
    return ArgsKwargs(args=(), kwargs={"input_ids": ids * mask, "attention_mask": mask})


def test_bucketed_outputs_equal_one_call_on_real_positions(bert: BertModel) -> None:
    inputs = padded_batch([40, 3, 38, 5, 2])
    calls = []

    def predict(batch: ArgsKwargs):
        calls.append(tuple(batch.kwargs["input_ids"].shape))
        with torch.no_grad():
            return bert(**batch.kwargs, output_hidden_states=True)

    whole = predict(inputs)
    calls.clear()
    split = predict_in_buckets(predict, inputs, call_cost=4)
    assert calls == [(2, 40), (3, 5)]  # 80 + 15 positions instead of 200
    assert type(split) is type(whole)
    assert split.last_hidden_state.shape == whole.last_hidden_state.shape
    mask = inputs.kwargs["attention_mask"].bool()
    torch.testing.assert_close(split.last_hidden_state[mask], whole.last_hidden_state[mask], atol=1e-5, rtol=1e-4)
    assert not split.last_hidden_state[1, 5:].any()  # past its bucket's width (5): zeros, aligned to no token
    torch.testing.assert_close(split.pooler_output, whole.pooler_output, atol=1e-5, rtol=1e-4)
    for got, expected in zip(split.hidden_states, whole.hidden_states):
        torch.testing.assert_close(got[mask], expected[mask], atol=1e-5, rtol=1e-4)


def test_one_call_when_splitting_does_not_pay_or_cannot_be_undone(bert: BertModel) -> None:
    calls = []

    def predict(batch: ArgsKwargs):
        calls.append(tuple(batch.kwargs["input_ids"].shape))
        with torch.no_grad():
            return bert(**batch.kwargs)

    predict_in_buckets(predict, padded_batch([40, 3, 38]), call_cost=1000)
    assert calls == [(3, 40)]
    calls.clear()
    left_padded = padded_batch([40, 3, 38])
    left_padded.kwargs["attention_mask"] = left_padded.kwargs["attention_mask"].flip(1)
    predict_in_buckets(predict, left_padded, call_cost=0)
    assert calls == [(3, 40)]


def test_outputs_that_cannot_be_merged_come_from_one_call(bert: BertModel) -> None:
    calls = []

    def predict(batch: ArgsKwargs):
        calls.append(tuple(batch.kwargs["input_ids"].shape))
        with torch.no_grad():
            return bert(**batch.kwargs, output_attentions=True)

    out = predict_in_buckets(predict, padded_batch([40, 3, 38]), call_cost=0)
    assert calls[-1] == (3, 40) and out.attentions[0].shape[-1] == 40


def test_pipelines_bucket_by_default_and_can_switch_it_off() -> None:
    """Without packed inference (components/packed_bert.py, tested in test_packed_bert.py)."""
    import spacy

    from spacy_ner_project.components.length_buckets import DEFAULT_BUCKET_CALL_COST
    from test_quantize import TRAIN, tiny_pipeline

    nlp = tiny_pipeline()
    nlp.initialize()
    shim = nlp.get_pipe("transformer").model.layers[0].shims[0]
    assert shim.bucket_call_cost == DEFAULT_BUCKET_CALL_COST
    texts = [text for text, _ in TRAIN] + ["Paris ."]
    shapes = []
    handle = shim._model.register_forward_pre_hook(lambda _m, args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)),
                                                   with_kwargs=True)
    shim.packed_inference = False
    shim.bucket_call_cost = 0
    list(nlp.pipe(texts))
    assert len(shapes) > 1
    shapes.clear()
    shim.bucket_call_cost = None
    list(nlp.pipe(texts))
    handle.remove()
    assert len(shapes) == 1
    config = nlp.config.copy()
    config["components"]["transformer"]["model"]["bucket_call_cost"] = None
    assert spacy.util.load_model_from_config(config).get_pipe("transformer").model.layers[0].shims[0].bucket_call_cost is None
