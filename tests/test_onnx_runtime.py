"""The opt-in ONNX Runtime backbone (components/onnx_runtime.py, components/onnx_export.py).

The tiny pipeline of tests/test_quantize.py (embedded MiniLM + NER, the NER overfitted on three
invented sentences) runs its backbone in ONNX Runtime through one config override. float32 must
give torch's hidden states within ATOL/RTOL and the same entities on a small invented corpus (the
three training sentences and ten others); int8 must run int8 kernels, keep the training
sentences' entities (wide margins) and stay near float32; how often its entities differ on the
corpus is printed beside torch int8's (measured: 10 of 13 texts keep float32's entities, with
either). The tests that run ONNX Runtime skip, naming the extra, where it is not installed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy
from typing import Any

import pytest
import spacy
import torch
from spacy.language import Language
from thinc.api import Adam
from thinc.types import ArgsKwargs
from test_quantize import TEXTS, fit_tiny, tiny_pipeline  # tests/test_quantize.py

from spacy_ner_project.errors import UserError
from spacy_ner_project.extras import pipeline_extras

ONNX_MISSING = next((name for name in ("onnxruntime", "onnx") if importlib.util.find_spec(name) is None), None)
_skip_without_onnx = pytest.mark.skipif(
    ONNX_MISSING is not None, reason=f'{ONNX_MISSING} is not installed: pip install -e ".[onnx]"'
)


def needs_onnx(test: Any) -> Any:
    """Marker ``onnx`` (CI's line (c) installs the extra and runs them), skipped without the extra."""
    return pytest.mark.onnx(_skip_without_onnx(test))
CALLBACK = "spacy_ner_project.onnx_backbone.v1"
TORCH_INT8 = {"nlp": {"after_pipeline_creation": {"@misc": "spacy_ner_project.quantize_transformer.v1"}}}
# float32 hidden states (MiniLM's reach |5.5| here) against torch's: measured at most 2.2e-6
ATOL = RTOL = 1e-4
HELD_OUT = [
    "Marie Curie moved from Warsaw to Paris .",
    "Isaac Newton studied at Cambridge .",
    "Ada Lovelace wrote to Charles Babbage from London .",
    "Grace Hopper worked for the Navy in Arlington .",
    "Alan Turing visited Princeton in September .",
    "Tim Berners-Lee built the web at CERN near Geneva .",
    "Katherine Johnson computed orbits for NASA in Hampton .",
    "Claude Shannon joined Bell Labs in New Jersey .",
    "The meeting in Manchester ended early .",
    "Remington Rand sold computers to the Census Bureau .",
]
CORPUS = TEXTS + HELD_OUT
Entities = list[tuple[tuple[str, str], ...]]


def onnx_config(cache: Path, **options: object) -> dict:
    return {"nlp": {"after_pipeline_creation": {"@misc": CALLBACK, "cache_dir": str(cache), **options}}}


def corpus_entities(nlp: Language, texts: list[str] = CORPUS) -> Entities:
    return [tuple((ent.text, ent.label_) for ent in doc.ents) for doc in nlp.pipe(texts)]


def backbone_outputs(nlp: Language, text: str) -> dict[str, numpy.ndarray]:
    return dict(nlp.get_pipe("transformer")(nlp.make_doc(text))._.trf_data.model_output)


def backbone_shim(nlp: Language):
    return nlp.get_pipe("transformer").model.layers[0].shims[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved overfitted tiny pipeline (float32, no bfloat16)."""
    path, _ = fit_tiny(tmp_path_factory.mktemp("onnx") / "tiny", cpu_mixed_precision=False)
    return path


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One export cache for the module's tests (what they export once, they reuse)."""
    return tmp_path_factory.mktemp("onnx_cache")


def test_a_pipeline_saved_with_the_callback_needs_the_onnx_extra() -> None:
    assert pipeline_extras({"nlp": {"after_pipeline_creation": {"@misc": CALLBACK}}}) == ["onnx"]
    quantized = {"nlp": {"after_pipeline_creation": {"@misc": "spacy_ner_project.quantize_transformer.v1"}}}
    assert pipeline_extras(quantized) == []


def test_a_missing_onnxruntime_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from spacy_ner_project.components.onnx_runtime import onnx_backbone_v1

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ModuleNotFoundError
    with pytest.raises(UserError, match=r'from the \[onnx\] extra: pip install "spacy-ner-project\[onnx\]"'):
        onnx_backbone_v1()


@needs_onnx
def test_float32_matches_torch_within_tolerance_and_keeps_entities(trained: Path, cache: Path) -> None:
    from spacy_ner_project.components.onnx_runtime import onnx_model_files

    torch_nlp = spacy.load(trained)
    nlp = spacy.load(trained, config=onnx_config(cache))
    (model_file,) = onnx_model_files(nlp)
    assert model_file is not None and model_file.parent == cache and ".int8" not in model_file.name
    assert onnx_model_files(torch_nlp) == [None]

    def no_torch(*args: object, **kwargs: object) -> None:
        raise AssertionError("the torch backbone ran")

    backbone_shim(nlp)._model.forward = no_torch  # from here on only ONNX Runtime can answer
    largest = 0.0
    for text in CORPUS:
        expected, found = backbone_outputs(torch_nlp, text), backbone_outputs(nlp, text)
        assert set(found) == set(expected) == {"last_hidden_state", "pooler_output"}
        for name in expected:
            numpy.testing.assert_allclose(found[name], expected[name], atol=ATOL, rtol=RTOL)
            largest = max(largest, float(numpy.abs(found[name] - expected[name]).max()))
    print(f"ONNX Runtime float32 vs torch: largest absolute difference {largest:.2e}")
    assert largest > 0  # another runtime's kernels: not the torch module called again
    assert corpus_entities(nlp) == corpus_entities(torch_nlp)  # nlp.pipe: batches in length buckets


PADDED = {"components": {"transformer": {"model": {"packed_inference": False}}}}


def model_inputs(path: Path) -> list[str]:
    import onnx

    return [value.name for value in onnx.load(str(path)).graph.input]


@needs_onnx
def test_packed_and_padded_graphs_give_the_same_outputs(trained: Path, cache: Path) -> None:
    """The default runs the packed encoder graph (no padding through the linear layers; calls in
    length buckets, or one per batch); with
    packed_inference off, the module's own graph on padded batches. Same hidden states at the
    real positions, zeros at the padding, the same entities: nlp.pipe batches texts of
    different lengths, so the packed run unpacks into padded windows."""
    from spacy_ner_project.components.onnx_runtime import DEFAULT_PACKED_CALL_COST, onnx_model_files
    from spacy_ner_project.components.packed_bert import PackedEncoder

    packed = spacy.load(trained, config=onnx_config(cache))
    padded = spacy.load(trained, config={**onnx_config(cache), **PADDED})
    (packed_file,), (padded_file,) = onnx_model_files(packed), onnx_model_files(padded)
    assert model_inputs(packed_file) == list(PackedEncoder.INPUTS)
    assert model_inputs(padded_file)[:2] == ["input_ids", "attention_mask"]
    shim = backbone_shim(packed)
    assert shim.packed_call_cost == DEFAULT_PACKED_CALL_COST
    shim.packed_call_cost = None  # one call per batch: every window's attention padded to the longest
    calls = []
    run = shim.session(packed=True).run
    shim.session(packed=True).run = lambda *args, **kwargs: calls.append(1) or run(*args, **kwargs)
    texts = CORPUS * 2
    docs = list(packed.pipe(texts, batch_size=len(texts)))
    assert calls and len(calls) <= 2  # one call per batch of windows (max_batch_items may split it)
    assert [tuple((e.text, e.label_) for e in doc.ents) for doc in docs] == corpus_entities(padded, texts)
    for doc, other in zip(docs, padded.pipe(texts, batch_size=len(texts))):
        ours = doc._.trf_data.model_output["last_hidden_state"]
        theirs = other._.trf_data.model_output["last_hidden_state"]
        real = doc._.trf_data.wordpieces.attention_mask.astype(bool)
        numpy.testing.assert_allclose(ours[real], theirs[real], atol=ATOL, rtol=RTOL)
        assert not ours[~real].any()
    shim.packed_call_cost = 0  # packed calls in length buckets: every length its own call
    calls.clear()
    assert corpus_entities(packed, texts) == corpus_entities(padded, texts)
    assert len(calls) > 2
    shim.packed_call_cost = DEFAULT_PACKED_CALL_COST
    # a batch that cannot be packed (padded on the left) runs the padded graph
    assert shim.predict(ArgsKwargs(args=(), kwargs={
        "input_ids": torch.tensor([[0, 101, 7592, 102]]), "attention_mask": torch.tensor([[0, 1, 1, 1]])})
    ).last_hidden_state.shape == (1, 4, 384)
    assert shim._sessions is not None and {packed for packed, _ in shim._sessions} == {True, False}


@needs_onnx
def test_the_export_is_cached_by_the_weights(trained: Path, cache: Path, tmp_path: Path) -> None:
    from spacy_ner_project.components.onnx_runtime import onnx_model_files

    first = onnx_model_files(spacy.load(trained, config=onnx_config(cache)))
    written = {path: path.stat().st_mtime_ns for path in cache.glob("*.onnx")}
    assert onnx_model_files(spacy.load(trained, config=onnx_config(cache))) == first
    assert {path: path.stat().st_mtime_ns for path in cache.glob("*.onnx")} == written  # read, not written
    assert not list(cache.glob(".*"))  # no temporary files left

    changed = spacy.load(trained)
    module = backbone_shim(changed)._model
    module.embeddings.LayerNorm.bias.data += 0.01
    changed.to_disk(tmp_path / "changed")
    (other,) = onnx_model_files(spacy.load(tmp_path / "changed", config=onnx_config(cache)))
    assert other not in first and other.exists()


@needs_onnx
def test_int8_runs_int8_kernels_near_float32(trained: Path, cache: Path) -> None:
    import onnx

    from spacy_ner_project.components.onnx_runtime import onnx_model_files

    torch_nlp = spacy.load(trained)
    nlp = spacy.load(trained, config=onnx_config(cache, int8=True))
    (model_file,) = onnx_model_files(nlp)
    assert ".int8" in model_file.name
    operators = {node.op_type for node in onnx.load(str(model_file)).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= operators
    errors = []
    for text in CORPUS:
        expected = backbone_outputs(torch_nlp, text)["last_hidden_state"]
        found = backbone_outputs(nlp, text)["last_hidden_state"]
        errors.append(float(numpy.linalg.norm(found - expected) / numpy.linalg.norm(expected)))
    # int8 moves the hidden states (measured 0.12-0.16 relative), torch's int8 ~0.23
    assert 0.01 < min(errors) and max(errors) < 0.3
    expected_entities, found_entities = corpus_entities(torch_nlp), corpus_entities(nlp)
    assert found_entities[: len(TEXTS)] == expected_entities[: len(TEXTS)]  # the fitted sentences keep theirs
    torch_int8 = corpus_entities(spacy.load(trained, config=TORCH_INT8))
    same = sum(a == b for a, b in zip(found_entities, expected_entities))
    same_torch = sum(a == b for a, b in zip(torch_int8, expected_entities))
    print(f"ONNX Runtime int8: {same} of {len(CORPUS)} texts with float32's entities (torch int8: {same_torch}); "
          f"hidden states {min(errors):.2f}-{max(errors):.2f} relative")


@needs_onnx
def test_sessions_leave_the_residual_add_and_layer_norm_unfused(trained: Path, cache: Path, tmp_path: Path) -> None:
    """ONNX Runtime fuses each residual Add and LayerNormalization into SkipLayerNormalization
    unless told not to (its CPU kernel was ~4x slower: onnx_runtime.DISABLED_OPTIMIZERS)."""
    import onnx
    import onnxruntime

    from spacy_ner_project.components.onnx_runtime import onnx_model_files, open_session, session_options

    nlp = spacy.load(trained, config=onnx_config(cache, int8=True))
    (model_file,) = onnx_model_files(nlp)

    def optimised_operators(path: Path, *, ours: bool) -> set[str]:
        options = session_options(threads=1)
        options.optimized_model_filepath = str(path)
        if ours:
            open_session(model_file, threads=1, options=options)
        else:
            onnxruntime.InferenceSession(str(model_file), sess_options=options, providers=["CPUExecutionProvider"])
        return {node.op_type for node in onnx.load(str(path)).graph.node}

    assert "SkipLayerNormalization" in optimised_operators(tmp_path / "fused.onnx", ours=False)
    ours = optimised_operators(tmp_path / "ours.onnx", ours=True)
    assert "SkipLayerNormalization" not in ours and "LayerNormalization" in ours


@needs_onnx
def test_int8_also_runs_the_ners_maxout_layers_int8(cache: Path) -> None:
    """The callback with ``int8`` gives the pipeline's Maxout layers (CasedTok2Vec's projection and
    MultiHashEmbed's mixing layer) int8 weights once the weights are there; float32 leaves them."""
    from spacy_ner_project.components.blas_ops import Int8MaxoutForward
    from spacy_ner_project.components.onnx_runtime import onnx_backbone_v1

    def cased_pipeline() -> Language:
        nlp = tiny_pipeline()
        nlp.remove_pipe("ner")
        nlp.add_pipe("ner", config={"model": {
            "@architectures": "spacy.TransitionBasedParser.v2", "state_type": "ner", "hidden_width": 16,
            "maxout_pieces": 2, "use_upper": False, "tok2vec": {
                "@architectures": "spacy_ner_project.CasedTok2Vec.v1", "width": 16, "embed": {
                    "@architectures": "spacy.MultiHashEmbed.v2", "width": 8, "attrs": ["NORM", "SHAPE"],
                    "rows": [50, 50], "include_static_vectors": False},
                "transformer": {"@architectures": "spacy-transformers.TransformerListener.v1",
                                "pooling": {"@layers": "reduce_mean.v1"}}}}})
        nlp.get_pipe("ner").add_label("PERSON")
        nlp.initialize()
        return nlp

    def int8_maxouts(nlp: Language) -> int:
        return sum(isinstance(node._func, Int8MaxoutForward) for node in nlp.get_pipe("ner").model.walk())

    int8 = onnx_backbone_v1(int8=True, cache_dir=str(cache))(cased_pipeline())
    float32 = onnx_backbone_v1(cache_dir=str(cache))(cased_pipeline())
    assert int8_maxouts(int8) == 2 and int8_maxouts(float32) == 0
    assert [len(doc) for doc in int8.pipe(HELD_OUT[:2])] == [len(doc) for doc in float32.pipe(HELD_OUT[:2])]


@needs_onnx
def test_saving_keeps_the_callback_and_float32_weights(trained: Path, cache: Path, tmp_path: Path) -> None:
    from spacy_ner_project.components.onnx_runtime import onnx_model_files

    nlp = spacy.load(trained, config=onnx_config(cache))
    nlp.to_disk(tmp_path / "saved")
    assert pipeline_extras(nlp.config) == ["onnx"]
    reloaded = spacy.load(tmp_path / "saved")  # the callback is in the saved config
    assert onnx_model_files(reloaded) == onnx_model_files(nlp)  # same weights: the same cached file
    plain = spacy.load(tmp_path / "saved", config={"nlp": {"after_pipeline_creation": None}})
    assert onnx_model_files(plain) == [None]
    assert corpus_entities(plain) == corpus_entities(spacy.load(trained))


@needs_onnx
def test_in_memory_switch_and_what_it_refuses(trained: Path, cache: Path) -> None:
    from spacy_ner_project.components.onnx_runtime import OnnxSettings, onnx_model_files, onnx_pipeline
    from spacy_ner_project.components.quantize import quantize_pipeline

    nlp = onnx_pipeline(spacy.load(trained), settings=OnnxSettings(cache_dir=cache, threads=1))
    assert onnx_model_files(nlp)[0] is not None
    assert corpus_entities(nlp, TEXTS) == corpus_entities(spacy.load(trained), TEXTS)
    with pytest.raises(ValueError, match="no weights yet"):
        onnx_pipeline(tiny_pipeline(), settings=OnnxSettings(cache_dir=cache))
    with pytest.raises(ValueError, match="needs a spacy-transformers 'transformer' component"):
        onnx_pipeline(spacy.blank("en"))
    with pytest.raises(ValueError, match="torch int8 already"):
        onnx_pipeline(quantize_pipeline(spacy.load(trained)), settings=OnnxSettings(cache_dir=cache))
    with pytest.raises(ValueError, match="threads must be at least 1"):
        OnnxSettings(threads=0)


@needs_onnx
def test_new_weights_are_exported_again(trained: Path, cache: Path) -> None:
    from spacy_ner_project.components.onnx_runtime import onnx_model_files

    nlp = spacy.load(trained, config=onnx_config(cache))
    (before,) = onnx_model_files(nlp)
    shim = backbone_shim(nlp)
    for param in shim._model.parameters():  # an optimizer step on the torch weights, as nlp.update makes
        param.grad = torch.full_like(param, 0.01)
    shim.finish_update(Adam(0.001))
    assert onnx_model_files(nlp) == [None]  # the session of the old weights is gone
    updated = backbone_outputs(nlp, TEXTS[0])  # exported again for this prediction
    (after,) = onnx_model_files(nlp)
    assert after is not None and after != before
    with torch.no_grad():  # the updated torch backbone, called directly
        encoded = shim._hfmodel.tokenizer([TEXTS[0]], return_tensors="pt")
        expected = shim._model.eval()(**encoded).last_hidden_state.numpy()
    numpy.testing.assert_allclose(updated["last_hidden_state"], expected, atol=ATOL, rtol=RTOL)

    # weights read again (the component's from_bytes): the first weights' file, from the cache
    nlp.get_pipe("transformer").from_bytes(spacy.load(trained).get_pipe("transformer").to_bytes())
    assert onnx_model_files(nlp) == [before]


@needs_onnx
def test_the_session_follows_torchs_threads_unless_set(trained: Path, cache: Path) -> None:
    nlp = spacy.load(trained, config=onnx_config(cache))
    fixed = spacy.load(trained, config=onnx_config(cache, threads=1))
    threads = torch.get_num_threads()
    opened = {}
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            for pipeline in (nlp, fixed):
                pipeline(TEXTS[0])
            opened[count] = backbone_shim(nlp).session()
            assert opened[count].get_session_options().intra_op_num_threads == count
            assert backbone_shim(fixed).session().get_session_options().intra_op_num_threads == 1
        torch.set_num_threads(1)  # back to a count seen before: its session, not a new one
        assert backbone_shim(nlp).session() is opened[1]
    finally:
        torch.set_num_threads(threads)


@needs_onnx
def test_worker_threads_share_one_session_at_one_intra_op_thread(trained: Path, cache: Path) -> None:
    from spacy_ner_project.threads import pipe_in_threads

    nlp = spacy.load(trained, config=onnx_config(cache))
    expected = corpus_entities(nlp)
    docs = list(pipe_in_threads(nlp, CORPUS, threads=2, batch_size=3))
    assert [tuple((ent.text, ent.label_) for ent in doc.ents) for doc in docs] == expected
    shim = backbone_shim(nlp)
    assert shim._sessions is not None and (True, 1) in shim._sessions and (True, torch.get_num_threads()) in shim._sessions
