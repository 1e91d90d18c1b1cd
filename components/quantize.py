"""Opt-in dynamic int8 quantisation of spacy-transformers backbones for CPU inference.

Turn it on when loading a trained pipeline (no file changes)::

    nlp = spacy.load(
        "training/model-best",
        config={"nlp": {"after_pipeline_creation": {"@misc": "spacy_ner_project.quantize_transformer.v1"}}},
    )

or in a pipeline's ``config.cfg``::

    [nlp.after_pipeline_creation]
    @misc = "spacy_ner_project.quantize_transformer.v1"

or on a pipeline already in memory: ``quantize_pipeline(nlp)``.

The callback runs when the pipeline is created, before its weights are read; it quantises
each ``transformer`` component right after that component's weights are loaded
(``from_disk``/``from_bytes``), or at once if it already has weights. Every
``torch.nn.Linear`` of the backbone becomes ``torch.ao.nn.quantized.dynamic.Linear``
(int8 weights with per-channel scales, activations quantised per batch); embeddings and layer norms stay float32.
It composes with ``cpu_mixed_precision = true`` (components/precision.py, the default
config's bfloat16 autocast): the int8 layers take float32 inputs, so a bfloat16 input is
cast to float32 on its way in, and the products that stay float (attention) still run in
bfloat16. That was no slower than switching bfloat16 off for the quantised backbone
(embedded MiniLM-L6 forward, 8 x 128 word pieces, one thread, on a busy AMX Xeon:
110-118 ms composed vs 116-118 ms int8 alone; bfloat16 alone 82 ms, float32 227 ms).
Saving a quantised pipeline writes the float32 weights, so it can be reloaded with or
without quantisation. Quantisation is for inference only: ``spacy train`` with the
callback in its config trains and evaluates in float32 (nothing is loaded from disk), and
``nlp.update`` on a quantised backbone fails. Speed and F1 effect on CoNLL-2003:
``benchmarks/inference_speed.md``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from spacy.language import Language
from thinc.api import Model

from spacy_ner_project.components.after_loading import apply_once_loaded, transformer_components


def dynamic_int8(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` with every ``nn.Linear`` in torch's dynamic int8 (weights int8 with one scale
    per output channel, activations quantised per call); ``module`` itself is changed in place
    where torch swaps its children. Per-channel scales lose less F1 than per-tensor ones at the
    same speed (benchmarks/precision_variants.md)."""
    return torch.ao.quantization.quantize_dynamic(
        module, {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}, dtype=torch.qint8
    )


def quantize_transformer_model(model: Model) -> bool:
    """Quantise the ``nn.Linear`` layers of a spacy-transformers ``TransformerModel``.

    Prediction uses a quantised copy; the float32 module is kept for serialisation, so
    ``to_bytes``/``to_disk`` still write float32 weights that a plain ``spacy.load``
    reads. Returns False (and does nothing) when the model is already quantised; raises
    ValueError when it holds no transformer weights yet.
    """
    if not model.attrs.get("has_transformer"):
        raise ValueError(
            "The transformer has no weights yet: load a trained pipeline (spacy.load) or "
            "call nlp.initialize() before quantising it."
        )
    shim = model.layers[0].shims[0]
    float_module: torch.nn.Module = shim._model
    if _is_quantized(float_module):
        return False
    quantized = dynamic_int8(copy.deepcopy(float_module))
    for module in quantized.modules():
        if isinstance(module, torch.ao.nn.quantized.dynamic.Linear):
            module.register_forward_pre_hook(_float32_inputs)
    quantized.eval()
    shim._model = quantized
    shim.to_bytes = _float_serializer(shim, float_module, quantized)
    return True


def _float32_inputs(module: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Forward pre-hook of an int8 linear layer: bfloat16 inputs (CPU autocast) to float32.

    ``torch.ops.quantized.linear_dynamic`` accepts float32 only ("expected scalar type
    Float but found BFloat16" otherwise); autocast leaves quantised ops alone.
    """
    return tuple(
        arg.float() if isinstance(arg, torch.Tensor) and arg.dtype == torch.bfloat16 else arg
        for arg in args
    )


def _is_quantized(module: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in module.modules())


def _float_serializer(
    shim: Any, float_module: torch.nn.Module, quantized: torch.nn.Module
) -> Callable[[], bytes]:
    """``shim.to_bytes`` writing ``float_module`` while ``quantized`` is the one predicting."""
    serialize = type(shim).to_bytes

    def to_bytes() -> bytes:
        if shim._model is not quantized:  # weights were read again since: write those
            return serialize(shim)
        shim._model = float_module
        try:
            return serialize(shim)
        finally:
            shim._model = quantized

    return to_bytes


def quantize_pipeline(nlp: Language) -> Language:
    """Quantise every transformer component of an in-memory pipeline now."""
    for component in transformer_components(nlp):
        quantize_transformer_model(component.model)
    return nlp


def quantize_transformer_v1() -> Callable[[Language], Language]:
    """``[nlp.after_pipeline_creation]`` callback: int8 backbones once weights are loaded."""

    def after_pipeline_creation(nlp: Language) -> Language:
        return apply_once_loaded(nlp, quantize_transformer_model, purpose="int8 quantisation")

    return after_pipeline_creation


def linear_layer_counts(nlp: Language) -> dict[str, int]:
    """Float and int8 linear layers of the backbones ``nlp`` predicts with."""
    counts = {"float": 0, "int8": 0}
    for component in transformer_components(nlp):
        module = component.model.layers[0].shims[0]._model
        counts["float"] += sum(type(m) is torch.nn.Linear for m in module.modules())
        counts["int8"] += sum(
            isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in module.modules()
        )
    return counts
