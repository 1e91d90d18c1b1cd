"""A Hugging Face backbone as ONNX model files for ONNX Runtime, cached under a hash of its weights: float32, and int8 by ONNX Runtime's dynamic quantisation.

Two graphs: the module itself on padded batches (:func:`export_float32`), and, for a BERT
backbone, its packed encoder (:func:`export_packed_float32`,
:class:`~spacy_ner_project.components.packed_bert.PackedEncoder`: real word pieces in, no padding
through the linear layers); the inputs are part of the cache key, so the two never share a file.

:func:`cached_backbone` returns the file for a torch backbone, exporting it only when the cache
has no file for the same weights, config, inputs and exporter versions. The float32 file is
torch's TorchScript-based ONNX export (``torch.onnx.export(..., dynamo=False)``: it needs no
``onnxscript``) of the backbone in eval mode, with the batch and sequence axes dynamic. The
int8 file is that file through ``onnxruntime.quantization.quantize_dynamic`` with int8 weights
and one scale per output channel: in one ad-hoc run (the embedded MiniLM, 32 random windows x 128
word pieces, 2 threads, the shared 2-core AMD EPYC at load average ~4.5) that moved the hidden
states by 18% (relative norm) against 37% with one scale per tensor, at the same speed (0.95 s
per call against 1.9 s in float32); ``QUInt8`` weights moved them as much and were ~1.5x slower.
The file is the plain export: ONNX Runtime's session optimisations (``ORT_ENABLE_ALL``, less
``onnx_runtime.DISABLED_OPTIMIZERS``) fuse its layer norms and GELUs but not its attention. Fusing
offline first (``onnxruntime.transformers.optimizer``: SkipLayerNormalization with the bias,
BiasGelu; the packed graph's attention does not match its patterns) then quantising ran the int8
packed backbone at 0.93x the speed (one thread, 40 packed calls of CoNLL test, quiet host): not used. Files are written atomically (a temporary
name, then a rename), so processes sharing a cache never read half a file.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch
import transformers

from spacy_ner_project.components.packed_bert import PackedEncoder, packed_layout
from spacy_ner_project.extras import missing_extra_error

EXPORT_FORMAT = 1  # part of every cache key: bump it when the export changes
DEFAULT_OPSET = 17
# what spacy-transformers feeds a backbone (TransformerModel's _convert_transformer_inputs), in order
BACKBONE_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
REQUIRED_INPUTS = ("input_ids", "attention_mask")
_SAMPLE_TEXTS = ["A short text .", "A somewhat longer text , so that the first one is padded ."]


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/spacy_ner_project/onnx`` (``~/.cache/...`` when the variable is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "spacy_ner_project" / "onnx"


def import_onnxruntime() -> Any:
    """``onnxruntime``, or a UserError naming the ``[onnx]`` extra where it is not installed."""
    try:
        import onnxruntime
    except ImportError as error:
        raise (missing_extra_error(error) or error) from None
    return onnxruntime


def backbone_inputs(module: torch.nn.Module, tokenizer: Any) -> tuple[str, ...]:
    """The inputs spacy-transformers gives ``module``: those of BACKBONE_INPUTS the tokenizer
    returns (``model_input_names``) and the module's ``forward`` takes."""
    accepted = inspect.signature(module.forward).parameters
    returned = set(getattr(tokenizer, "model_input_names", REQUIRED_INPUTS))
    names = tuple(name for name in BACKBONE_INPUTS if name in accepted and name in returned)
    missing = [name for name in REQUIRED_INPUTS if name not in names]
    if missing:
        raise ValueError(f"The backbone {type(module).__name__} takes no {missing}: it cannot run in ONNX Runtime here.")
    return names


def weights_digest(module: torch.nn.Module, *, inputs: Sequence[str], opset: int) -> str:
    """SHA-256 of everything the float32 export depends on: the weights and buffers (names,
    dtypes, shapes, bytes), the model config, the inputs, the opset and the exporter's versions."""
    digest = hashlib.sha256()
    settings = {
        "format": EXPORT_FORMAT,
        "opset": opset,
        "inputs": list(inputs),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "model": type(module).__name__,
        "config": _config(module),
    }
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for name, tensor in module.state_dict().items():
        data = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{data.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(data.view(torch.uint8).numpy())
    return digest.hexdigest()


def _config(module: torch.nn.Module) -> dict[str, Any] | None:
    """The backbone's Hugging Face config without where it was read from (spacy-transformers
    reads it from a new temporary folder at every load) and with its attention implementation."""
    config = getattr(module, "config", None)
    if config is None:
        return None
    settings = {key: value for key, value in config.to_dict().items() if key != "_name_or_path"}
    settings["attn_implementation"] = getattr(config, "_attn_implementation", None)
    return settings


class _Positional(torch.nn.Module):
    """The backbone with positional inputs and a tuple of named outputs (what the exporter traces)."""

    def __init__(self, module: torch.nn.Module, inputs: Sequence[str], outputs: Sequence[str]) -> None:
        super().__init__()
        self.module = module
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        output = self.module(**dict(zip(self.inputs, tensors)), return_dict=True)
        return tuple(output[name] for name in self.outputs)


def _tensor_outputs(module: torch.nn.Module, sample: dict[str, torch.Tensor]) -> tuple[str, ...]:
    """The names of the backbone's outputs (all tensors: ``last_hidden_state``, maybe ``pooler_output``)."""
    with torch.no_grad():
        output = module(**sample, return_dict=True)
    nested = [name for name, value in output.items() if not isinstance(value, torch.Tensor)]
    if nested:
        raise ValueError(
            f"The backbone returns {nested} (transformer_config's output_hidden_states or "
            "output_attentions): the ONNX Runtime backbone gives last_hidden_state and pooler_output only."
        )
    return tuple(output.keys())


def export_float32(module: torch.nn.Module, *, tokenizer: Any, inputs: Sequence[str], path: Path, opset: int) -> None:
    """Write ``module`` (a Hugging Face backbone) to ``path`` as a float32 ONNX model.

    The module is exported in eval mode and left in the mode it was in."""
    encoded = tokenizer(_SAMPLE_TEXTS, return_tensors="pt", padding=True)
    device = next(module.parameters()).device
    sample = {name: encoded[name].to(device) for name in inputs}
    was_training = module.training
    module.eval()
    try:
        outputs = _tensor_outputs(module, sample)
        wrapper = _Positional(module, inputs, outputs).eval()
        axes = {name: {0: "batch", 1: "sequence"} for name in inputs}
        axes.update({name: {0: "batch", 1: "sequence"} if name == "last_hidden_state" else {0: "batch"}
                     for name in outputs})
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the tracer's warnings about Python values in the graph
            torch.onnx.export(
                wrapper,
                tuple(sample[name] for name in inputs),
                str(path),
                dynamo=False,
                input_names=list(inputs),
                output_names=list(outputs),
                dynamic_axes=axes,
                opset_version=opset,
            )
    finally:
        module.train(was_training)


def export_packed_float32(module: torch.nn.Module, *, tokenizer: Any, path: Path, opset: int) -> None:
    """Write ``module`` (a ``BertModel``, :func:`packed_bert.is_packable`) to ``path`` as the
    float32 ONNX model of its :class:`~spacy_ner_project.components.packed_bert.PackedEncoder`:
    packed positions in, packed last hidden state out. The module's mode is left as it was
    (the encoder runs no dropout)."""
    encoded = tokenizer(_SAMPLE_TEXTS, return_tensors="pt", padding=True)
    device = next(module.parameters()).device
    batch = {name: encoded[name].to(device) for name in REQUIRED_INPUTS}
    layout = packed_layout(batch)
    assert layout is not None, "the tokenizer padded the sample texts on the left"
    sample = PackedEncoder.inputs(layout, batch)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's warnings about Python values in the graph
        torch.onnx.export(
            PackedEncoder(module),
            tuple(sample[name] for name in PackedEncoder.INPUTS),
            str(path),
            dynamo=False,
            input_names=list(PackedEncoder.INPUTS),
            output_names=[PackedEncoder.OUTPUT],
            dynamic_axes=PackedEncoder.AXES,
            opset_version=opset,
        )


def quantize_int8(source: Path, target: Path) -> None:
    """Write ``source`` (a float32 ONNX model) to ``target`` with int8 weights (one scale per
    output channel) and activations quantised per call (ONNX Runtime's dynamic quantisation)."""
    import_onnxruntime()
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as error:  # onnxruntime.quantization needs the onnx package
        raise (missing_extra_error(error) or error) from None
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)


def _write_atomically(path: Path, write: Any) -> Path:
    """``write(temporary)`` in ``path``'s folder, then rename it to ``path``; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def cached_backbone(module: torch.nn.Module, *, tokenizer: Any, int8: bool, cache_dir: Path, packed: bool = False,
                    opset: int = DEFAULT_OPSET) -> Path:
    """The ONNX file of ``module`` in ``cache_dir`` (float32, or int8 when ``int8``; the
    module's own inputs and outputs, or its packed encoder when ``packed``), exported (and
    quantised) only where the cache has none for the same weights."""
    inputs = PackedEncoder.INPUTS if packed else backbone_inputs(module, tokenizer)
    digest = weights_digest(module, inputs=inputs, opset=opset)
    float32 = cache_dir / f"{digest}.onnx"
    if not float32.exists() and packed:
        _write_atomically(float32, lambda path: export_packed_float32(
            module, tokenizer=tokenizer, path=path, opset=opset))
    elif not float32.exists():
        _write_atomically(float32, lambda path: export_float32(
            module, tokenizer=tokenizer, inputs=inputs, path=path, opset=opset))
    if not int8:
        return float32
    quantized = cache_dir / f"{digest}.int8-ort{import_onnxruntime().__version__}.onnx"
    if not quantized.exists():
        _write_atomically(quantized, lambda path: quantize_int8(float32, path))
    return quantized
