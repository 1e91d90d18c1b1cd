"""Our side of ``benchmarks/inference_speed.py``: the levers one timed row changes, loading a
pipeline variant (precision x windows), running it, and picking the levers that won.

A row is a :class:`Setting`; its name lists what it changes from the default setting. Levers
that cannot change outputs (sorting, batch sizes, threads, inference_mode, worker threads) are checked: each
row's entities are compared with those of the first row that ran the same pipeline variant on
the same inputs (see :func:`texts_differing`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import spacy
import torch
from spacy.language import Language
from spacy.tokens import Doc

from spacy_ner_project.components.backbone_shim import DEFAULT_PACKED_INFERENCE, BackboneShim
from spacy_ner_project.components.length_buckets import DEFAULT_BUCKET_CALL_COST
from spacy_ner_project.threads import pipe_in_threads

from common import ROOT  # benchmarks/common.py

PRECISIONS = ("float32", "bf16", "int8", "int8+bf16", "onnx", "onnx-int8")
BF16_PRECISIONS = ("bf16", "int8+bf16")  # cpu_mixed_precision = true
TORCH_INT8_PRECISIONS = ("int8", "int8+bf16")  # spacy_ner_project.quantize_transformer.v1
ONNX_PRECISIONS = ("onnx", "onnx-int8")  # spacy_ner_project.onnx_backbone.v1 (float32, int8 = true)
INT8_PRECISIONS = (*TORCH_INT8_PRECISIONS, "onnx-int8")
STRIDED = "spacy-transformers.strided_spans.v1"
QUANTIZE = {"after_pipeline_creation": {"@misc": "spacy_ner_project.quantize_transformer.v1"}}
ONNX = "spacy_ner_project.onnx_backbone.v1"
MIN_GAIN = 0.03  # a lever "wins" when its row is at least 3% faster than the row it changes
# per text: (start_char, end_char, label) of each entity
Entities = list[tuple[tuple[int, int, str], ...]]


def config_batch_items() -> int:
    """``max_batch_items`` of configs/ner_trf.cfg: what a pipeline trained now runs with."""
    return int(spacy.util.load_config(ROOT / "configs" / "ner_trf.cfg")["components"]["transformer"]["max_batch_items"])


def backbone_shim(nlp: Language) -> BackboneShim:
    """The shim that runs the backbone inside the pipeline's transformer component."""
    for node in nlp.get_pipe("transformer").model.walk():
        for shim in node.shims:
            if isinstance(shim, BackboneShim):
                return shim
    raise SystemExit("No backbone shim in the pipeline's transformer component: not a TransformerModel.v1 pipeline?")


@dataclass(frozen=True)
class Setting:
    """One timed configuration of our pipeline; field order is the order of its name's parts."""

    precision: str = "float32"  # one of PRECISIONS
    inputs: str = "sentences"  # or "documents"
    no_overlap: bool = False  # strided windows W/W instead of the trained W/stride
    sort_by_length: bool = False  # texts longest first into nlp.pipe, order restored after
    batch_size: int = 64  # nlp.pipe
    max_batch_items: int = config_batch_items()  # the transformer's, configs/ner_trf.cfg
    # False: padded windows (in length buckets unless bucket_call_cost is None), as before packing
    packed_inference: bool = DEFAULT_PACKED_INFERENCE
    bucket_call_cost: int | None = DEFAULT_BUCKET_CALL_COST  # None: one backbone call per batch
    threads: int = 2
    inference_mode: bool = False
    # > 1: spacy_ner_project.threads.pipe_in_threads with this many workers (one intra-op thread each)
    workers: int = 1

    def changes(self, default: Setting) -> dict[str, Any]:
        """The fields that differ from ``default``, in field order."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != getattr(default, f.name)}

    def variant(self) -> tuple[str, bool]:
        """What the loaded pipeline depends on: (precision, no_overlap)."""
        return self.precision, self.no_overlap


def describe(changes: dict[str, Any], *, window: int | None) -> str:
    """A row name's levers, e.g. ``bf16, documents, no overlap (128/128), sorted, threads=1``."""
    parts = []
    for name, value in changes.items():
        if name in ("precision", "inputs"):
            parts.append(str(value))
        elif name == "no_overlap":
            parts.append(f"no overlap ({window}/{window})" if value else "trained windows")
        elif name == "packed_inference":
            parts.append("packed (no padding)" if value else "padded windows")
        elif name == "bucket_call_cost":
            parts.append("one call per batch" if value is None else f"length buckets (call cost {value})")
        elif name == "workers":
            parts.append(f"{value} worker threads" if value > 1 else "nlp.pipe")
        elif name in ("sort_by_length", "inference_mode"):
            parts.append(("sorted" if name == "sort_by_length" else name) if value else f"no {name}")
        else:
            parts.append(f"{name}={value}")
    return ", ".join(parts) or "default"


def span_getter_config(path: Path) -> dict[str, Any]:
    """The ``get_spans`` block of the pipeline's config.cfg."""
    return dict(spacy.util.load_config(path / "config.cfg")["components"]["transformer"]["model"]["get_spans"])


def trained_windows(path: Path) -> tuple[int, int] | None:
    """(window, stride) of the pipeline's strided span getter; None for another span getter."""
    spans = span_getter_config(path)
    if spans.get("@span_getters") != STRIDED:
        return None
    return int(spans["window"]), int(spans["stride"])


def windows_label(path: Path) -> str:
    """The pipeline's span getter in words: its registered name and settings."""
    spans = span_getter_config(path)
    name = spans.pop("@span_getters", "?")
    settings = ", ".join(f"{key} {value}" for key, value in spans.items())
    return f"{name} ({settings})" if settings else name


def load(path: Path, precision: str, *, window: int | None = None) -> Language:
    """The pipeline at ``path`` with its backbone in ``precision`` (one of PRECISIONS); with
    ``window``, strided windows of ``window`` tokens and stride ``window`` (no overlap). ONNX
    Runtime's intra-op threads follow ``torch.set_num_threads`` (the row's threads)."""
    model: dict[str, Any] = {"cpu_mixed_precision": precision in BF16_PRECISIONS}
    if window is not None:
        model["get_spans"] = {"@span_getters": STRIDED, "window": window, "stride": window}
    config: dict[str, Any] = {"components": {"transformer": {"model": model}}}
    if precision in TORCH_INT8_PRECISIONS:
        config["nlp"] = QUANTIZE
    elif precision in ONNX_PRECISIONS:
        config["nlp"] = {"after_pipeline_creation": {"@misc": ONNX, "int8": precision == "onnx-int8"}}
    return spacy.load(path, config=config)


def onnx_runtime_version() -> str | None:
    """The installed onnxruntime's version, None without the [onnx] extra (no ONNX rows then)."""
    try:
        import onnxruntime
    except ImportError:
        return None
    return str(onnxruntime.__version__)


def entities(doc: Doc) -> tuple[tuple[int, int, str], ...]:
    return tuple((ent.start_char, ent.end_char, ent.label_) for ent in doc.ents)


def longest_first(texts: Sequence[str]) -> list[int]:
    """Indices of ``texts`` by length in characters, longest first (ties: input order)."""
    return sorted(range(len(texts)), key=lambda i: -len(texts[i]))


def spacy_runner(nlp: Language, setting: Setting) -> Callable[[Sequence[str]], Entities]:
    """``run(texts)``: ``nlp.pipe`` (or ``pipe_in_threads``: ``setting.workers`` > 1) under
    ``setting``; the entities of each text, in input order."""
    transformer = nlp.get_pipe("transformer")
    shim = backbone_shim(nlp)

    def run(texts: Sequence[str]) -> Entities:
        torch.set_num_threads(setting.threads)
        transformer.cfg["max_batch_items"] = setting.max_batch_items
        shim.bucket_call_cost = setting.bucket_call_cost
        shim.packed_inference = setting.packed_inference
        order = longest_first(texts) if setting.sort_by_length else list(range(len(texts)))
        mode = torch.inference_mode() if setting.inference_mode else contextlib.nullcontext()
        ordered = (texts[i] for i in order)
        with mode:  # one worker: nlp.pipe itself
            found = [entities(doc) for doc in pipe_in_threads(nlp, ordered, threads=setting.workers,
                                                              batch_size=setting.batch_size)]
        restored: Entities = [()] * len(texts)
        for position, index in enumerate(order):
            restored[index] = found[position]
        return restored

    return run


def texts_differing(outputs: Entities, reference: Entities) -> int:
    """How many texts got other entities than in ``reference`` (same texts, same order)."""
    return sum(a != b for a, b in zip(outputs, reference, strict=True))


def winning_levers(baseline: Setting, timed: Iterable[tuple[Setting, float]], *,
                   min_gain: float = MIN_GAIN) -> dict[str, Any]:
    """The output-preserving levers to combine: greedily, fastest row first, the changes of each
    row that ran ``baseline``'s pipeline variant on its inputs at least ``min_gain`` faster than
    ``baseline`` and sets no lever to another value than a faster row already chose."""
    speeds = dict(timed)
    floor = speeds[baseline] * (1 + min_gain)
    chosen: dict[str, Any] = {}
    for setting, speed in sorted(speeds.items(), key=lambda item: -item[1]):
        changes = setting.changes(baseline)
        if speed < floor or not changes or {"precision", "inputs", "no_overlap"} & changes.keys():
            continue
        if all(chosen.get(name, value) == value for name, value in changes.items()):
            chosen.update(changes)
    return chosen


def lever_rows(default: Setting, *, windows: bool) -> list[Setting]:
    """The single-lever rows, float32: from ``default`` (sentences) and from documents."""
    documents = replace(default, inputs="documents")
    doc_levers: list[dict[str, Any]] = [
        {"no_overlap": True} if windows else {},
        {"sort_by_length": True},
        {"batch_size": 16},
        {"sort_by_length": True, "batch_size": 16},
        {"batch_size": 256},
        {"sort_by_length": True, "batch_size": 256},
        {"max_batch_items": 512},
        {"max_batch_items": 1024},
        {"packed_inference": False},  # padded windows in length buckets: the default before packing
        {"packed_inference": False, "bucket_call_cost": None},  # spacy-transformers' one call per batch
        {"packed_inference": False, "bucket_call_cost": None, "max_batch_items": 512},  # before buckets
        {"packed_inference": False, "bucket_call_cost": 64},
        {"packed_inference": False, "bucket_call_cost": 1024},
        {"threads": 1},
        {"inference_mode": True},
        {"workers": default.threads} if default.threads > 1 else {},
    ]
    rows = [default, replace(default, threads=1), documents]
    return rows + [replace(documents, **change) for change in doc_levers if change]


def precision_rows(documents: Setting, winners: dict[str, Any], precisions: Sequence[str], *,
                   windows: bool) -> list[Setting]:
    """Per precision, on documents: alone, with the winning levers, and those without overlap;
    the torch precisions with bfloat16 and the ONNX Runtime ones also on padded windows (what
    packing gains there); and each in worker threads (one per thread) where there are threads
    to share."""
    rows = []
    for precision in precisions:
        base = replace(documents, precision=precision)
        best = replace(base, **winners)
        rows += [base, best] + ([replace(best, no_overlap=True)] if windows else [])
        if precision in BF16_PRECISIONS or precision in ONNX_PRECISIONS:
            rows.append(replace(base, packed_inference=False))
        if documents.threads > 1:
            rows.append(replace(best, workers=documents.threads))
    return rows
