"""Packed BERT inference (components/packed_bert.py): the module's own outputs on the real
positions, none computed on padding; None wherever it does not apply; on by default in
TransformerModel.v1's shim and switchable off."""

from __future__ import annotations

from typing import List, Optional

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import BertConfig, BertModel, DistilBertConfig, DistilBertModel

from spacy_ner_project.components.packed_bert import is_packable, packed_forward


def tiny_bert(**overrides) -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, type_vocab_size=2, **overrides)
    return BertModel(config).eval()


@pytest.fixture(scope="module")
def bert() -> BertModel:
    return tiny_bert()


def batch(lengths: List[int], *, seed: int = 1, types: bool = True) -> dict:
    width = max(lengths)
    generator = torch.Generator().manual_seed(seed)
    mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
    inputs = {"input_ids": torch.randint(1, 60, (len(lengths), width), generator=generator) * mask,
              "attention_mask": mask}
    if types:
        inputs["token_type_ids"] = torch.randint(0, 2, (len(lengths), width), generator=generator) * mask
    return inputs


@settings(max_examples=25, deadline=None)
@given(lengths=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=7),
       types=st.booleans(), call_cost=st.integers(min_value=0, max_value=200))
def test_packed_outputs_equal_the_modules_own_on_real_positions(lengths: List[int], types: bool, call_cost: int) -> None:
    model = tiny_bert()
    inputs = batch(lengths, types=types)
    with torch.no_grad():
        whole = model(**inputs)
        packed = packed_forward(model, inputs, attention_call_cost=call_cost)
    assert packed is not None
    real = inputs["attention_mask"].bool()
    assert packed.last_hidden_state.shape == whole.last_hidden_state.shape
    torch.testing.assert_close(packed.last_hidden_state[real], whole.last_hidden_state[real], atol=1e-5, rtol=1e-4)
    assert not packed.last_hidden_state[~real].any()  # padding: zeros, computed by nothing
    torch.testing.assert_close(packed.pooler_output, whole.pooler_output, atol=1e-5, rtol=1e-4)


def test_under_bfloat16_autocast_packed_rounds_no_more_than_the_module(bert: BertModel) -> None:
    inputs = batch([30, 7, 29, 2, 16])
    real = inputs["attention_mask"].bool()
    with torch.no_grad():
        exact = bert(**inputs).last_hidden_state[real]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            module = bert(**inputs).last_hidden_state[real].float()
            packed = packed_forward(bert, inputs).last_hidden_state[real].float()
    module_error = (module - exact).abs().mean().item()
    packed_error = (packed - exact).abs().mean().item()
    assert module_error > 0  # bfloat16 did round
    assert packed_error <= 2 * module_error


@pytest.mark.parametrize("change", ["left padding", "empty row", "extra input", "no mask"])
def test_inputs_it_cannot_pack_give_none(bert: BertModel, change: str) -> None:
    inputs = batch([5, 3])
    if change == "left padding":
        inputs["attention_mask"] = inputs["attention_mask"].flip(1)
    elif change == "empty row":
        inputs["attention_mask"][1] = 0
    elif change == "extra input":
        inputs["output_attentions"] = True
    else:
        del inputs["attention_mask"]
    assert packed_forward(bert, inputs) is None


@pytest.mark.parametrize("model", ["distilbert", "relative positions", "hidden states", "decoder"])
def test_modules_it_cannot_pack_give_none(model: str) -> None:
    module: Optional[torch.nn.Module]
    if model == "distilbert":
        module = DistilBertModel(DistilBertConfig(vocab_size=60, dim=32, n_layers=1, n_heads=4, hidden_dim=64))
    elif model == "relative positions":
        module = tiny_bert(position_embedding_type="relative_key")
    elif model == "hidden states":
        module = tiny_bert(output_hidden_states=True)
    else:
        module = tiny_bert(is_decoder=True)
    assert not is_packable(module)
    assert packed_forward(module.eval(), batch([4, 2], types=False)) is None


def test_pipelines_pack_by_default_with_the_same_outputs_and_can_switch_it_off() -> None:
    import numpy
    import spacy

    from test_quantize import TRAIN, tiny_pipeline

    nlp = tiny_pipeline()
    nlp.initialize()
    shim = nlp.get_pipe("transformer").model.layers[0].shims[0]
    assert shim.packed_inference
    texts = [text for text, _ in TRAIN] + ["Paris .", "Angela Merkel met Emmanuel Macron in Berlin ."]
    module_calls = []
    handle = shim._model.register_forward_pre_hook(lambda *_: module_calls.append(1))

    def run() -> list:
        """Each doc's word-piece vectors that its tokens are aligned to, and its entities."""
        out = []
        for doc in nlp.pipe(texts):
            data = doc._.trf_data
            vectors = data.tensors[0].reshape(-1, data.tensors[0].shape[-1])[data.align.data.ravel()]
            out.append((vectors, [(e.start, e.end, e.label_) for e in doc.ents]))
        return out

    packed = run()
    assert module_calls == []  # the module's own forward never ran
    shim.packed_inference = False
    unpacked = run()
    handle.remove()
    assert module_calls
    for (vectors, ents), (vectors_unpacked, ents_unpacked) in zip(packed, unpacked):
        numpy.testing.assert_allclose(vectors, vectors_unpacked, atol=1e-4, rtol=1e-3)
        assert ents == ents_unpacked
    config = nlp.config.copy()
    config["components"]["transformer"]["model"]["packed_inference"] = False
    loaded = spacy.util.load_model_from_config(config)
    assert loaded.get_pipe("transformer").model.layers[0].shims[0].packed_inference is False


def test_packed_runs_no_dropout_whatever_the_modules_mode() -> None:
    model = tiny_bert(hidden_dropout_prob=0.5, attention_probs_dropout_prob=0.5)
    inputs = batch([9, 4])
    real = inputs["attention_mask"].bool()
    with torch.no_grad():
        expected = model.eval()(**inputs).last_hidden_state[real]
        packed = packed_forward(model.train(), inputs).last_hidden_state[real]
    assert model.training  # left as it was
    torch.testing.assert_close(packed, expected, atol=1e-5, rtol=1e-4)
