"""Opt-in int8 quantisation (components/quantize.py), CPU bfloat16 (components/precision.py), both together.

A tiny pipeline (embedded MiniLM + NER listening to it; only the NER is trained) is
overfitted on three invented sentences, so its predictions have wide margins; quantisation must replace every linear
layer of the backbone and keep those predictions.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy
import pytest
import torch
import spacy
from spacy.language import Language
from spacy.training import Example
from spacy_ner_project.components import precision
from spacy_ner_project.components.precision import cpu_supports_bf16, runs_cpu_bf16
from spacy_ner_project.components.quantize import (
    linear_layer_counts,
    quantize_pipeline,
    quantize_transformer_model,
)

QUANTIZE = {"nlp": {"after_pipeline_creation": {"@misc": "spacy_ner_project.quantize_transformer.v1"}}}
BF16 = {"components": {"transformer": {"model": {"cpu_mixed_precision": True}}}}
FLOAT32 = {"components": {"transformer": {"model": {"cpu_mixed_precision": False}}}}
needs_bf16 = pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no native bfloat16")
TRAIN = [
    ("Ada Lovelace visited Paris in May .", [(0, 12, "PER"), (21, 26, "LOC")]),
    ("Grace Hopper joined Remington Rand .", [(0, 12, "PER"), (20, 34, "ORG")]),
    ("Alan Turing left Manchester for Bletchley .", [(0, 11, "PER"), (17, 27, "LOC"), (32, 41, "LOC")]),
]
TEXTS = [text for text, _ in TRAIN]


def tiny_pipeline(*, cpu_mixed_precision: bool = False, layer_lr_decay: float = 1.0) -> Language:
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "transformer",
        config={
            "model": {
                "@architectures": "spacy_ner_project.TransformerModel.v1",
                "name": "embedded",
                "cpu_mixed_precision": cpu_mixed_precision,
                "layer_lr_decay": layer_lr_decay,
                "get_spans": {"@span_getters": "spacy-transformers.strided_spans.v1", "window": 128, "stride": 96},
            }
        },
    )
    nlp.add_pipe(
        "ner",
        config={
            "model": {
                "@architectures": "spacy.TransitionBasedParser.v2",
                "state_type": "ner",
                "hidden_width": 32,
                "maxout_pieces": 2,
                "use_upper": False,
                "tok2vec": {
                    "@architectures": "spacy-transformers.TransformerListener.v1",
                    "grad_factor": 1.0,
                    "pooling": {"@layers": "reduce_mean.v1"},
                },
            }
        },
    )
    return nlp


def entities(nlp: Language) -> list[list[tuple[str, str]]]:
    return [[(ent.text, ent.label_) for ent in doc.ents] for doc in nlp.pipe(TEXTS)]


def fit_tiny(path: Path, *, cpu_mixed_precision: bool) -> tuple[Path, list[list[tuple[str, str]]]]:
    """Overfit a tiny pipeline, save it to ``path``; return the path and its predictions on TEXTS."""
    spacy.util.fix_random_seed(0)
    nlp = tiny_pipeline(cpu_mixed_precision=cpu_mixed_precision)
    examples = [Example.from_dict(nlp.make_doc(text), {"entities": ents}) for text, ents in TRAIN]
    optimizer = nlp.initialize(lambda: examples)
    for example in examples:  # frozen backbone: the NER listener reads doc._.trf_data
        nlp.get_pipe("transformer")(example.predicted)
    gold = [[(text[start:end], label) for start, end, label in ents] for text, ents in TRAIN]
    fitted_at = None
    for step in range(150):
        nlp.get_pipe("ner").update(examples, sgd=optimizer, drop=0.0)
        if fitted_at is None and entities(nlp) == gold:
            fitted_at = step
        if fitted_at is not None and step >= fitted_at + 50:  # widen the margins
            break
    predictions = entities(nlp)
    assert predictions == gold, "the tiny NER should fit its three training sentences"
    nlp.to_disk(path)
    return path, predictions


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list[tuple[str, str]]]]:
    """A saved overfitted tiny pipeline and its float32 predictions on TEXTS."""
    return fit_tiny(tmp_path_factory.mktemp("quantize") / "tiny", cpu_mixed_precision=False)


@pytest.fixture(scope="module")
def trained_bf16(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list[tuple[str, str]]]]:
    """The same, trained and saved with ``cpu_mixed_precision = true`` (the default config's)."""
    return fit_tiny(tmp_path_factory.mktemp("quantize") / "tiny_bf16", cpu_mixed_precision=True)


def test_quantize_pipeline_replaces_every_linear_layer_and_keeps_predictions(trained) -> None:
    path, predictions = trained
    nlp = spacy.load(path)
    before = linear_layer_counts(nlp)
    assert before["float"] > 0 and before["int8"] == 0
    quantize_pipeline(nlp)
    assert linear_layer_counts(nlp) == {"float": 0, "int8": before["float"]}
    assert entities(nlp) == predictions
    assert quantize_transformer_model(nlp.get_pipe("transformer").model) is False  # already done


def test_load_time_callback_quantizes_and_saving_keeps_float_weights(trained, tmp_path: Path) -> None:
    path, predictions = trained
    nlp = spacy.load(path, config=QUANTIZE)
    float_count = linear_layer_counts(spacy.load(path))["float"]
    assert linear_layer_counts(nlp) == {"float": 0, "int8": float_count}
    assert entities(nlp) == predictions

    nlp.to_disk(tmp_path / "saved")
    reloaded = spacy.load(tmp_path / "saved")  # the callback is in the saved config
    assert linear_layer_counts(reloaded) == {"float": 0, "int8": float_count}
    plain = spacy.load(tmp_path / "saved", config={"nlp": {"after_pipeline_creation": None}})
    assert linear_layer_counts(plain) == {"float": float_count, "int8": 0}
    assert entities(plain) == predictions  # float32 weights were written, not int8 ones

    from_bytes = spacy.load(path, config=QUANTIZE).from_bytes(spacy.load(path).to_bytes())
    assert linear_layer_counts(from_bytes)["int8"] == float_count


def test_quantizing_needs_weights_and_a_transformer() -> None:
    with pytest.raises(ValueError, match="no weights yet"):
        quantize_pipeline(tiny_pipeline())
    with pytest.raises(ValueError, match="needs a spacy-transformers 'transformer' component"):
        quantize_pipeline(spacy.blank("en"))


def test_quantized_backbone_is_a_copy(trained) -> None:
    path, _ = trained
    nlp = spacy.load(path)
    shim = nlp.get_pipe("transformer").model.layers[0].shims[0]
    float_module = shim._model
    state = copy.deepcopy(float_module.state_dict())
    quantize_pipeline(nlp)
    assert shim._model is not float_module
    assert all((state[k] == v).all() for k, v in float_module.state_dict().items())


def backbone_output(nlp: Language, text: str) -> numpy.ndarray:
    doc = nlp.get_pipe("transformer")(nlp.make_doc(text))
    return doc._.trf_data.model_output.last_hidden_state


@needs_bf16
def test_bf16_at_load_time_keeps_predictions_and_float32_outputs(trained, tmp_path: Path) -> None:
    path, predictions = trained
    nlp = spacy.load(path, config=BF16)
    assert runs_cpu_bf16(nlp.get_pipe("transformer").model.layers[0])
    assert entities(nlp) == predictions
    fp32_out, bf16_out = backbone_output(spacy.load(path), TEXTS[0]), backbone_output(nlp, TEXTS[0])
    assert bf16_out.dtype == numpy.float32
    error = numpy.linalg.norm(bf16_out - fp32_out) / numpy.linalg.norm(fp32_out)
    assert 0 < error < 0.05  # bfloat16 did run (not bit-identical), and stayed close
    nlp.to_disk(tmp_path / "saved")  # the setting is saved in the config; weights stay float32
    reloaded = spacy.load(tmp_path / "saved")
    assert runs_cpu_bf16(reloaded.get_pipe("transformer").model.layers[0])
    assert numpy.array_equal(backbone_output(reloaded, TEXTS[0]), bf16_out)


@needs_bf16
def test_bf16_training_updates_float32_weights() -> None:
    spacy.util.fix_random_seed(0)
    nlp = tiny_pipeline(cpu_mixed_precision=True)
    examples = [Example.from_dict(nlp.make_doc(text), {"entities": ents}) for text, ents in TRAIN]
    optimizer = nlp.initialize(lambda: examples)
    module = nlp.get_pipe("transformer").model.layers[0].shims[0]._model
    before = {k: v.clone() for k, v in module.state_dict().items()}
    losses = [nlp.update(examples, sgd=optimizer, drop=0.0)["ner"] for _ in range(8)]
    after = module.state_dict()
    assert all(v.dtype == torch.float32 for v in after.values() if v.is_floating_point())
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the backbone learned
    assert all(numpy.isfinite(losses)) and losses[-1] < losses[0]


@needs_bf16
def test_readme_int8_line_composes_with_bf16(trained_bf16) -> None:
    path, predictions = trained_bf16
    nlp = spacy.load(path, config=QUANTIZE)  # docs/speed.md's int8 line, on a bf16 pipeline
    assert nlp.config["components"]["transformer"]["model"]["cpu_mixed_precision"] is True
    assert runs_cpu_bf16(nlp.get_pipe("transformer").model.layers[0])
    float32_int8 = spacy.load(path, config={**QUANTIZE, **FLOAT32})
    assert not runs_cpu_bf16(float32_int8.get_pipe("transformer").model.layers[0])
    assert linear_layer_counts(nlp) == linear_layer_counts(float32_int8) and linear_layer_counts(nlp)["float"] == 0
    assert entities(nlp) == entities(float32_int8) == predictions
    fp32 = backbone_output(spacy.load(path, config=FLOAT32), TEXTS[0])
    composed, int8_out = backbone_output(nlp, TEXTS[0]), backbone_output(float32_int8, TEXTS[0])
    assert composed.dtype == numpy.float32
    assert not numpy.array_equal(composed, int8_out)  # bfloat16 still ran around the int8 layers
    error = lambda out: numpy.linalg.norm(out - fp32) / numpy.linalg.norm(fp32)  # noqa: E731
    # int8 alone moves MiniLM's hidden states by ~23% (outlier dimensions; entities keep);
    # bfloat16 on top must add little to that (measured: 0.230 -> 0.249)
    assert error(composed) < 1.25 * error(int8_out)


def test_bf16_without_native_support_warns_and_stays_float32(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="spacy_ner_project.components.precision"):
        nlp = tiny_pipeline(cpu_mixed_precision=True)
    assert "no native bfloat16" in caplog.text
    assert not runs_cpu_bf16(nlp.get_pipe("transformer").model.layers[0])
