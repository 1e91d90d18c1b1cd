"""Opt-in ONNX Runtime for the transformer backbone at CPU inference: float32 (torch's outputs within 1e-4), or int8 weights.

Turn it on when loading a trained pipeline (no file changes; needs the ``[onnx]`` extra)::

    nlp = spacy.load(
        "training/model-best",
        config={"nlp": {"after_pipeline_creation": {"@misc": "spacy_ner_project.onnx_backbone.v1"}}},
    )

with ``{"@misc": "spacy_ner_project.onnx_backbone.v1", "int8": True}`` for int8 weights, or on
a pipeline already in memory: ``onnx_pipeline(nlp)``. Like
``spacy_ner_project.quantize_transformer.v1`` the callback acts on each ``transformer``
component once its weights are read (:mod:`spacy_ner_project.components.after_loading`): the
backbone is exported to ONNX there, or read from the cache when these weights were exported
before (:mod:`spacy_ner_project.components.onnx_export`; ``cache_dir``, default
``~/.cache/spacy_ner_project/onnx``), and an ONNX Runtime session (CPU, ``threads`` intra-op
threads; by default torch's thread count, followed when ``torch.set_num_threads`` changes it)
replaces torch for ``predict``. The rest is unchanged: the span getter, the tokenizer and
alignment, the NER.

* Packed (a BERT backbone with ``TransformerModel.v1``'s ``packed_inference`` on, the default):
  the exported graph is the backbone's
  :class:`~spacy_ner_project.components.packed_bert.PackedEncoder`, which takes the batch's real
  word pieces packed into one row, computes every product on those alone and pads only inside
  self-attention (all windows of a call in one group): one session call per batch, no padding
  through the linear layers, as torch's packed inference. Batches that cannot be packed (padded
  on the left) run the padded graph below.
* Padded (other backbones, or ``packed_inference = false``): the module itself on spacy-transformers'
  padded batches, in ``TransformerModel.v1``'s length buckets
  (:mod:`spacy_ner_project.components.length_buckets`).

* float32 (the default): ONNX Runtime's own float32 kernels, its graph optimisations on. On the
  tiny pipeline of ``tests/test_onnx_runtime.py`` the hidden states match torch's float32 within
  1e-4 (absolute and relative; 2.2e-6 at most seen) and the entities are the same.
* int8 (``int8 = true``): weights int8 with one scale per output channel, activations
  quantised per call; entities may change (tests/test_onnx_runtime.py measures how often). The
  pipeline's Maxout layers (the NER's tok2vec projection, its largest product) predict with
  int8 weights too, on torch (:func:`spacy_ner_project.components.blas_ops.use_int8_maxout`).
* ``cpu_mixed_precision`` (bfloat16 autocast) has no effect on the ONNX Runtime backbone.

The torch module stays in the pipeline: saving writes its float32 weights, and a saved
pipeline's config keeps the callback (load with ``{"nlp": {"after_pipeline_creation": None}}``
to run torch again). Inference only, on the CPU: a GPU pipeline is refused; ``spacy train`` with
the callback in its config trains and evaluates in torch (nothing is read from disk); after an
optimizer step the backbone is exported again on the next prediction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import numpy
import torch
from spacy.language import Language
from spacy_transformers.layers.hf_shim import HFShim
from thinc.api import Model, Optimizer
from thinc.types import ArgsKwargs
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPooling

from spacy_ner_project.components.after_loading import apply_once_loaded, transformer_components
from spacy_ner_project.components.backbone_shim import BackboneShim
from spacy_ner_project.components.blas_ops import use_int8_maxout
from spacy_ner_project.components.length_buckets import predict_in_buckets
from spacy_ner_project.components.onnx_export import cached_backbone, default_cache_dir, import_onnxruntime
from spacy_ner_project.components.packed_bert import PackedEncoder, PackedLayout, is_packable, packed_layout, with_pooler

PURPOSE = "the ONNX Runtime backbone"
# Packed batches run in length buckets (spacy_ner_project.buckets) at this call cost, in positions:
# one call pads every window's attention to the batch's longest (ONNX Runtime's attention runs in
# float32 beside int8 products, so that padding is dear), while each call costs a fixed overhead.
# Ad hoc, 2 AMD EPYC cores, the default pipeline at 2,800 steps, int8, 12,010 CoNLL test words,
# 5-7 interleaved rounds against HF's best: one call per batch 1.44x, 16: 1.45x, 64: 1.58x,
# 256: 1.59-1.65x; padded windows in buckets 1.47-1.75x at 256, 1.63x at 64 (the host's noise
# spans most of these): benchmarks/inference_profile.md times the rows' backbones.
DEFAULT_PACKED_CALL_COST = 64


@dataclass(frozen=True)
class OnnxSettings:
    """How the backbone runs in ONNX Runtime (the defaults are ``onnx_backbone_v1``'s)."""

    int8: bool = False
    cache_dir: Optional[Path] = None  # None: onnx_export.default_cache_dir()
    threads: Optional[int] = None  # None: torch.get_num_threads(), followed when it changes

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1 or None (torch's), got {self.threads}")


# ONNX Runtime graph optimisations left out (``disabled_optimizers``), with the reason each is.
# SkipLayerNormFusion: it fuses each residual Add and the LayerNormalization after it into one
# SkipLayerNormalization, whose CPU kernel (onnxruntime 1.32) was ~4x slower than the two ops it
# replaces: on the int8 packed default backbone, 1 intra-op thread, 40 packed calls (26,790 word
# pieces of CoNLL test), those ops took 0.37 s fused against 0.08 s unfused, the whole session
# 0.90x the time (6 interleaved rounds, faster in each); 2 worker threads over 12,010 words ran
# at 1.14x the words/s (10 rounds, median of the paired ratios; benchmarks/inference_speed.md
# has the run). float32 took the same time either way, its hidden states within 1e-5.
DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)


def session_options(*, threads: int) -> Any:
    """The ``SessionOptions`` of :func:`open_session`: all graph optimisations on, ``threads``
    intra-op threads and one inter-op thread, idle threads asleep rather than spinning."""
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def open_session(path: Path, *, threads: int, options: Any = None) -> Any:
    """An ONNX Runtime CPU session on the model file ``path`` (``options``: None is
    :func:`session_options` at ``threads``), without the optimisations of DISABLED_OPTIMIZERS.

    Idle threads sleep: spinning threads hold the cores that the rest of the pipeline
    (tokenizer, alignment, the NER) needs between backbone calls: on the shared 2-core host
    (load average ~6), the tiny test pipeline ran 1,021 words/s with spinning off against 783
    with it on (median of 3, 12 CoNLL test documents; not measured on a quiet machine)."""
    ort = import_onnxruntime()
    return ort.InferenceSession(
        str(path), sess_options=options or session_options(threads=threads), providers=["CPUExecutionProvider"],
        disabled_optimizers=list(DISABLED_OPTIMIZERS),
    )


def _feed(names: list[str], kwargs: dict[str, Any]) -> dict[str, numpy.ndarray]:
    """The session's inputs from the keyword tensors spacy-transformers gives the backbone
    (``token_type_ids`` zeros where the batch has none, as in Hugging Face's models)."""
    feed = {}
    for name in names:
        value = kwargs.get(name)
        if value is None and name == "token_type_ids":
            value = torch.zeros_like(kwargs["input_ids"])
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"The ONNX backbone needs {name!r}; the inputs have {sorted(kwargs)}.")
        feed[name] = value.detach().cpu().numpy().astype(numpy.int64, copy=False)
    return feed


class OnnxBackboneShim(BackboneShim):
    """:class:`BackboneShim` whose ``predict`` runs an ONNX Runtime session of the backbone:
    of its packed encoder where the shim's ``packed_inference`` is on and the backbone is a
    BERT (:mod:`spacy_ner_project.components.packed_bert`), else of the module itself on padded
    batches (in length buckets unless ``bucket_call_cost`` is None)."""

    onnx_settings: OnnxSettings = OnnxSettings()
    packed_call_cost: Optional[int] = DEFAULT_PACKED_CALL_COST  # None: one call per batch
    # open sessions by (layout (packed or not), intra-op threads) with their model files; None: none
    # open. One per thread count: threaded inference (spacy_ner_project.threads) runs one thread per
    # call beside the calling thread's two, and must not reopen a session at each switch.
    _sessions: Optional[Dict[Tuple[bool, int], Tuple[Path, Any]]] = None

    def packs(self) -> bool:
        """Whether batches run packed (a packed batch that cannot be, e.g. padded on the left,
        still runs padded)."""
        return self.packed_inference and self._model is not None and is_packable(self._model)

    @property
    def onnx_path(self) -> Optional[Path]:
        """The model file of an open session of this shim's layout (None: not open)."""
        packed = self.packs()
        opened = [path for (layout, _), (path, _) in (self._sessions or {}).items() if layout == packed]
        return opened[0] if opened else None

    def session(self, *, packed: Optional[bool] = None) -> Any:
        """The ONNX Runtime session of the ``packed`` layout (None: the shim's own) at the thread
        count in force (the settings', else torch's), exported (or read from the cache) and opened
        where there is none for that layout and count. ONNX Runtime runs one session from several
        threads at once; the first opening of a layout is best left to one thread (two would both
        export and open it; either result is right)."""
        packed = self.packs() if packed is None else packed
        threads = self.onnx_settings.threads or torch.get_num_threads()
        if self._sessions is None:
            self._sessions = {}
        key = (packed, threads)
        if key not in self._sessions:
            if self._model is None:
                raise ValueError("The transformer has no weights yet: nothing to run in ONNX Runtime.")
            if self.device.type != "cpu":
                raise ValueError(
                    f"{PURPOSE} runs on the CPU; this backbone is on {self.device}: load the pipeline "
                    "without spacy_ner_project.onnx_backbone.v1 on a GPU."
                )
            settings = self.onnx_settings
            path = cached_backbone(
                self._model, tokenizer=self._hfmodel.tokenizer, int8=settings.int8,
                cache_dir=settings.cache_dir or default_cache_dir(), packed=packed,
            )
            self._sessions[key] = (path, open_session(path, threads=threads))
        return self._sessions[key][1]

    def predict(self, inputs: ArgsKwargs) -> Any:
        if inputs.args:
            raise ValueError("The ONNX backbone takes keyword inputs only (spacy-transformers' input_ids, attention_mask, ...).")
        if self.packs() and packed_layout(inputs.kwargs) is not None:
            if self.packed_call_cost is None:
                return self._run_any(inputs)
            return predict_in_buckets(self._run_any, inputs, call_cost=self.packed_call_cost)
        if self.bucket_call_cost is None:
            return self._run(inputs)
        return predict_in_buckets(self._run, inputs, call_cost=self.bucket_call_cost)

    def _run_any(self, inputs: ArgsKwargs) -> Any:
        layout = packed_layout(inputs.kwargs)
        return self._run(inputs) if layout is None else self._run_packed(layout, inputs.kwargs)

    def _run_packed(self, layout: PackedLayout, kwargs: Dict[str, Any]) -> Any:
        feed = {name: value.detach().cpu().numpy() for name, value in PackedEncoder.inputs(layout, kwargs).items()}
        (hidden,) = self.session(packed=True).run([PackedEncoder.OUTPUT], feed)
        with torch.no_grad():  # the pooler (one row per window) in torch
            return with_pooler(self._model, layout.unpack(torch.from_numpy(hidden[0])))

    def _run(self, inputs: ArgsKwargs) -> BaseModelOutput:
        session = self.session(packed=False)
        names = [output.name for output in session.get_outputs()]
        values = session.run(names, _feed([i.name for i in session.get_inputs()], inputs.kwargs))
        outputs = {name: torch.from_numpy(value) for name, value in zip(names, values)}
        if "pooler_output" in outputs:
            return BaseModelOutputWithPooling(**outputs)
        return BaseModelOutput(**outputs)

    def from_bytes(self, bytes_data: bytes) -> "OnnxBackboneShim":
        super().from_bytes(bytes_data)
        self._sessions = None  # other weights: export (or find) them on the next prediction
        return self

    def finish_update(self, optimizer: Optimizer) -> None:
        super().finish_update(optimizer)
        self._sessions = None  # the torch weights changed

    def __getstate__(self) -> dict[str, Any]:  # sessions do not pickle; reopened on the next prediction
        state = self.__dict__.copy()
        state["_sessions"] = None
        return state


def _is_torch_int8(module: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in module.modules())


def use_onnx_runtime(model: Model, *, settings: OnnxSettings = OnnxSettings()) -> Path:
    """Run the backbone of a spacy-transformers ``TransformerModel`` in ONNX Runtime from now on.

    Exports it (or finds it in the cache) and opens the session at once; returns the model file.
    Raises ValueError when the model has no weights yet, runs on a GPU, or is torch int8 already
    (``spacy_ner_project.quantize_transformer.v1``: ONNX Runtime has its own ``int8``)."""
    if not model.attrs.get("has_transformer"):
        raise ValueError(
            "The transformer has no weights yet: load a trained pipeline (spacy.load) or "
            f"call nlp.initialize() before switching to {PURPOSE}."
        )
    shim = model.layers[0].shims[0]
    if not isinstance(shim, HFShim):
        raise ValueError(f"{PURPOSE} needs spacy-transformers' HFShim, not {type(shim).__name__}.")
    if _is_torch_int8(shim._model):
        raise ValueError(
            "The backbone is torch int8 already (quantize_transformer.v1): load the float32 "
            f"pipeline for {PURPOSE}; its int8 option quantises in ONNX Runtime."
        )
    if not isinstance(shim, BackboneShim):  # spacy-transformers' own architecture: one call per batch
        shim.layer_lr_decay, shim.bucket_call_cost, shim._lr_scales = 1.0, None, None
    if not isinstance(shim, OnnxBackboneShim) or shim.onnx_settings != settings:
        shim.__class__ = OnnxBackboneShim
        shim.onnx_settings = settings
        shim._sessions = None
    shim.session()
    assert shim.onnx_path is not None
    return shim.onnx_path


def onnx_pipeline(nlp: Language, *, settings: OnnxSettings = OnnxSettings()) -> Language:
    """Run every transformer component's backbone of an in-memory pipeline in ONNX Runtime now
    (and, with ``int8``, its Maxout layers with int8 weights)."""
    for component in transformer_components(nlp, purpose=PURPOSE):
        use_onnx_runtime(component.model, settings=settings)
    return _int8_maxouts(nlp) if settings.int8 else nlp


def _int8_maxouts(nlp: Language) -> Language:
    """Every component's Maxout layers predict with int8 weights (blas_ops.use_int8_maxout)."""
    for _, component in nlp.pipeline:
        model = getattr(component, "model", None)
        if isinstance(model, Model):
            use_int8_maxout(model)
    return nlp


def onnx_model_files(nlp: Language) -> list[Optional[Path]]:
    """Per transformer component, the ONNX file its open session runs (None where no session is
    open: a torch backbone, or an ONNX one that exports its new weights at the next prediction)."""
    files = []
    for component in transformer_components(nlp, purpose=PURPOSE):
        shim = component.model.layers[0].shims[0]
        files.append(shim.onnx_path if isinstance(shim, OnnxBackboneShim) else None)
    return files


def onnx_backbone_v1(
    int8: bool = False, cache_dir: Optional[str] = None, threads: Optional[int] = None
) -> Callable[[Language], Language]:
    """``[nlp.after_pipeline_creation]`` callback: the backbones in ONNX Runtime once weights are loaded.

    ``int8``: int8 weights (ONNX Runtime's dynamic quantisation) instead of float32, and the
    pipeline's Maxout layers with int8 weights (torch's);
    ``cache_dir``: where exported files are kept (None: ``~/.cache/spacy_ner_project/onnx``);
    ``threads``: ONNX Runtime's intra-op threads (None: torch's thread count, followed when it changes)."""
    settings = OnnxSettings(int8=int8, cache_dir=Path(cache_dir) if cache_dir else None, threads=threads)
    import_onnxruntime()  # a missing [onnx] extra is one line, before any weights are read

    def after_pipeline_creation(nlp: Language) -> Language:
        def switch(model: Model) -> None:  # once weights are read (spacy train reads none: torch, float32)
            use_onnx_runtime(model, settings=settings)
            if settings.int8:
                _int8_maxouts(nlp)

        return apply_once_loaded(nlp, switch, purpose=PURPOSE)

    return after_pipeline_creation
