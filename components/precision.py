"""bfloat16 mixed precision for spacy-transformers backbones running on CPU.

spacy-transformers' ``mixed_precision`` is CUDA-only (fp16 autocast on the GPU). On CPUs
with native bfloat16 (AVX512-BF16 or AMX: recent AMD EPYC and Intel Xeon), running the
backbone's matrix products in bfloat16 under ``torch.autocast("cpu")`` made a training
step ~1.8x faster (about 2 s -> 1.1 s) and inference 1.3-1.55x faster on this project's
AMD EPYC, while weights, gradients and the optimiser stay float32 (figures:
``benchmarks/conll2003.md``, ``benchmarks/inference_speed.md``,
``benchmarks/precision_variants.md``).

Turned on by ``cpu_mixed_precision = true`` in ``spacy_ner_project.TransformerModel.v1``.
It only touches computations on CPU tensors, so the same config trains unchanged on a GPU.
Where the CPU has no native bfloat16 (emulated bfloat16 is slower than float32) the
backbone runs in float32 and a warning says so.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Tuple

import torch
from thinc.api import Model

from spacy_ner_project.hardware import cpu_supports_bf16

logger = logging.getLogger("spacy_ner_project.components.precision")

__all__ = ["cpu_supports_bf16", "enable_cpu_bf16", "runs_cpu_bf16"]


def _to_float32(output: Any) -> Any:
    """Cast the bfloat16 tensors of a Hugging Face ``ModelOutput`` (in place) to float32.

    Downstream code (thinc's torch→numpy conversion, the listeners' float32 gradients)
    expects float32; the cast is part of the autograd graph, so gradients flow back.
    """
    for key, value in output.items():
        if isinstance(value, torch.Tensor) and value.dtype == torch.bfloat16:
            output[key] = value.float()
        elif isinstance(value, tuple):
            output[key] = tuple(
                v.float() if isinstance(v, torch.Tensor) and v.dtype == torch.bfloat16 else v
                for v in value
            )
    return output


def runs_cpu_bf16(hf_layer: Model) -> bool:
    """Whether ``hf_layer`` (spacy-transformers' ``HFWrapper``) runs under CPU bfloat16 autocast.

    Read from the layer's forward function, not from ``attrs``: thinc saves and restores
    ``attrs``, so a flag there would claim bfloat16 on a pipeline saved with it and loaded
    with ``cpu_mixed_precision = false``.
    """
    return bool(getattr(hf_layer._func, "cpu_bf16", False))


def enable_cpu_bf16(hf_layer: Model) -> bool:
    """Run ``hf_layer`` (spacy-transformers' ``HFWrapper``) under CPU bfloat16 autocast.

    Wraps the layer's forward function, so it holds across ``from_disk``/``from_bytes``
    (which replace the torch module inside the layer's shim, not the layer). Returns
    False, with a logged warning (logger ``spacy_ner_project.components.precision``), where
    the CPU has no native bfloat16.
    """
    if runs_cpu_bf16(hf_layer):
        return True
    if not cpu_supports_bf16():
        logger.warning(
            "cpu_mixed_precision = true, but this CPU has no native bfloat16 "
            "(AVX512-BF16/AMX): the transformer runs in float32."
        )
        return False
    forward = hf_layer._func
    convert_outputs = hf_layer.attrs["convert_outputs"]

    def bf16_forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return forward(model, X, is_train)

    def float32_outputs(model: Model, inputs_outputs: Tuple[Any, Any], is_train: bool):
        inputs, output = inputs_outputs
        return convert_outputs(model, (inputs, _to_float32(output)), is_train)

    bf16_forward.cpu_bf16 = True  # type: ignore[attr-defined]
    hf_layer._func = bf16_forward
    hf_layer.attrs["convert_outputs"] = float32_outputs
    return True
