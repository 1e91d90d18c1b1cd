"""Distil a trained pipeline's transformer backbone into fewer layers.

A trained transformer pipeline (the *teacher*) is copied with only some of its backbone's
layers kept (the *student*, initialised from the teacher's own fine-tuned layers). The
student then learns to reproduce the teacher's hidden states, layer for kept layer, on the
windows the pipeline itself feeds its backbone (its span getter over the given documents).
Its last layer learns the teacher's last, which is all the NER reads, so the teacher's NER
head works on the student unchanged. No labels are used: any text of the domain serves.

Used by the ``distil`` command. The result is a pipeline like the teacher but for the
backbone, loadable with ``spacy.load`` and as fast as a model trained with that many layers;
configs/ner_trf_distilled.cfg fine-tunes it on gold. On CoNLL-2003 (benchmarks/distillation.md)
it needs no labels but does not beat training the fewer layers on gold: the default's 6 layers
distilled into 4 lost 1.77 dev F1 (1.17 after fine-tuning; from scratch: 0.84), into 5, 0.84
(0.41 after fine-tuning).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple

from spacy.language import Language
from spacy.tokens import Doc

from spacy_ner_project.defaults import DISTIL_BATCH_POSITIONS, DISTIL_EPOCHS, DISTIL_KEEP, DISTIL_LEARN_RATE
from spacy_ner_project.errors import UserError
from spacy_ner_project.hardware import cpu_supports_bf16
from spacy_ner_project.progress import bar

logger = logging.getLogger(__name__)

TRANSFORMER = "transformer"
CHECKPOINT = "distil-checkpoint.pt"  # in OUTPUT while distil_to_disk runs; resumed from, deleted at the end


@dataclass(frozen=True)
class DistilSettings:
    """How to distil. ``keep``: the teacher's layers the student starts from, in order
    (0-based); the student's layer ``j`` learns the output of teacher layer ``keep[j]``, its
    last layer the teacher's last. Every other field is an optimisation setting. The defaults
    are in :mod:`spacy_ner_project.defaults`, which the command's options read too."""

    keep: Tuple[int, ...] = DISTIL_KEEP
    epochs: int = DISTIL_EPOCHS
    learn_rate: float = DISTIL_LEARN_RATE
    batch_positions: int = DISTIL_BATCH_POSITIONS
    warmup: float = 0.06  # share of the steps
    seed: int = 0
    bf16: Optional[bool] = None  # None: bfloat16 autocast where the CPU has it natively

    def __post_init__(self) -> None:
        if not self.keep or list(self.keep) != sorted(set(self.keep)) or self.keep[0] < 0:
            raise UserError(f"keep must name distinct layers in increasing order, got {self.keep}")
        if self.epochs < 1 or self.batch_positions < 1 or self.learn_rate <= 0 or not 0 <= self.warmup < 1:
            raise UserError(f"distillation needs epochs >= 1, batch_positions >= 1, learn_rate > 0 and 0 <= warmup < 1: got {self}")


@dataclass(frozen=True)
class DistilOutcome:
    """What a distillation did: sizes, the mean loss of each epoch, seconds."""

    teacher_layers: int
    student_layers: int
    windows: int
    positions: int
    epoch_losses: Tuple[float, ...]
    seconds: float


@dataclass(frozen=True)
class _Batch:
    inputs: dict  # input_ids, attention_mask (and token_type_ids): torch tensors, padded
    mask: Any  # float tensor (windows, positions, 1): 1 at real word pieces
    targets: Tuple[Any, ...]  # the teacher's hidden states the student's layers learn


def backbone(nlp: Language) -> Tuple[Any, Any, Callable[[List[Doc]], List[List[Any]]]]:
    """The Hugging Face model, its tokenizer and the span getter of ``nlp``'s transformer."""
    if TRANSFORMER not in nlp.pipe_names:
        raise UserError(f"the pipeline has no '{TRANSFORMER}' component (it has {nlp.pipe_names})")
    model = nlp.get_pipe(TRANSFORMER).model
    shim = model.layers[0].shims[0]
    hf = shim._hfmodel
    if hf is None or hf.transformer is None:
        raise UserError("the pipeline's transformer has no weights (was it trained or loaded?)")
    return hf.transformer, hf.tokenizer, model.attrs["get_spans"]


def encoder_layers(module: Any) -> Any:
    """The ``torch.nn.ModuleList`` of a BERT-like model's transformer layers."""
    layers = getattr(getattr(module, "encoder", None), "layer", None)
    if layers is None:
        raise UserError(f"distillation needs a BERT-like backbone (encoder.layer), not {type(module).__name__}")
    return layers


def student_of(teacher: Any, *, keep: Sequence[int]) -> Any:
    """A copy of ``teacher`` with only its layers ``keep``, in that order."""
    import torch

    layers = encoder_layers(teacher)
    if keep[-1] >= len(layers):
        raise UserError(f"the backbone has {len(layers)} layers; cannot keep layer {keep[-1]}")
    student = copy.deepcopy(teacher)
    student.encoder.layer = torch.nn.ModuleList(copy.deepcopy(layers[i]) for i in keep)
    student.config.num_hidden_layers = len(keep)
    return student


def window_texts(docs: Sequence[Doc], get_spans: Callable[[List[Doc]], List[List[Any]]]) -> List[str]:
    """The texts of the windows the pipeline feeds its backbone, document by document."""
    return [span.text for spans in get_spans(list(docs)) for span in spans]


def _batches(texts: Sequence[str], tokenizer: Any, *, batch_positions: int) -> List[dict]:
    """Tokenised windows in batches of similar length, each at most ``batch_positions``
    padded positions (a longer window goes alone)."""
    lengths = [len(ids) for ids in tokenizer(list(texts), add_special_tokens=True, truncation=True)["input_ids"]]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    groups: List[List[int]] = []
    for i in order:
        if groups and (len(groups[-1]) + 1) * lengths[i] <= batch_positions:
            groups[-1].append(i)
        else:
            groups.append([i])
    return [
        dict(tokenizer([texts[i] for i in group], padding="longest", truncation=True, return_tensors="pt"))
        for group in groups
    ]


def _layer_outputs(model: Any, inputs: dict, picks: Sequence[int]) -> Tuple[Any, ...]:
    output = model(**inputs, output_hidden_states=True, return_dict=True)
    return tuple(output.hidden_states[i] for i in picks)


def teacher_batches(teacher: Any, encoded: List[dict], *, keep: Sequence[int], progress: bool = True) -> List[_Batch]:
    """The teacher's float32 hidden states, for each kept layer, on every batch."""
    import torch

    picks = [i + 1 for i in keep[:-1]] + [len(encoder_layers(teacher))]  # hidden_states[0] = embeddings
    device = next(teacher.parameters()).device
    teacher.eval()
    batches = []
    with torch.no_grad(), bar(total=len(encoded), desc="teacher", unit="batch", enabled=progress) as meter:
        for encoding in encoded:
            inputs = {name: tensor.to(device) for name, tensor in encoding.items()}
            mask = inputs["attention_mask"].unsqueeze(-1).float()
            batches.append(_Batch(inputs, mask, _layer_outputs(teacher, inputs, picks)))
            meter.update(1)
    return batches


def _loss(student: Any, batch: _Batch, *, bf16: bool) -> Any:
    import torch

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        outputs = _layer_outputs(student, batch.inputs, range(1, len(batch.targets) + 1))
    positions = batch.mask.sum() * batch.targets[0].shape[-1]
    return sum(((out.float() - target) ** 2 * batch.mask).sum() / positions for out, target in zip(outputs, batch.targets))


def _settings_key(settings: DistilSettings, *, batches: int, texts: str) -> dict:
    """What a checkpoint must match to be resumed: the settings, the number of batches and the
    fingerprint of the texts."""
    return {**dataclasses.asdict(settings), "keep": list(settings.keep), "batches": batches, "texts": texts}


def fingerprint(texts: Sequence[str]) -> str:
    """A digest of the windows' texts, in order: a checkpoint is resumed on the same texts only."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    return digest.hexdigest()


def _save_checkpoint(path: Path, state: dict) -> None:
    import torch

    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    partial.replace(path)  # atomic: a stop while saving keeps the previous epoch's


def _load_checkpoint(path: Optional[Path], key: dict) -> Optional[dict]:
    import torch

    if path is None or not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - a damaged file: torch raises many types
        raise UserError(f"cannot read the distillation checkpoint {path} ({err}): delete it to start again") from err
    if state.get("key") != key:
        raise UserError(
            f"the distillation checkpoint {path} was written with other settings or documents: "
            "run with the same ones to resume, or delete it to start again"
        )
    return state


def train_student(
    student: Any,
    batches: List[_Batch],
    *,
    settings: DistilSettings,
    checkpoint: Optional[Path] = None,
    texts: str = "",
    progress: bool = True,
) -> Tuple[float, ...]:
    """Train ``student`` (in place) on the teacher's hidden states; the mean loss per epoch.

    With ``checkpoint``, the student, the optimiser and the losses are saved there after each
    epoch, and a run with the same settings and texts (``texts``: their :func:`fingerprint`)
    resumes from it (after the last finished epoch): a stopped run (Ctrl-C) loses at most the
    epoch it was in."""
    import torch

    device = next(student.parameters()).device
    bf16 = device.type == "cpu" and (cpu_supports_bf16() if settings.bf16 is None else settings.bf16)
    steps = settings.epochs * len(batches)
    warmup = max(1, int(settings.warmup * steps))
    optimizer = torch.optim.AdamW(student.parameters(), lr=settings.learn_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / max(1, steps - warmup)))
    )
    key = _settings_key(settings, batches=len(batches), texts=texts)
    losses: List[float] = []
    state = _load_checkpoint(checkpoint, key)
    if state is not None:
        student.load_state_dict(state["student"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        losses = list(state["losses"])
        logger.info("resuming from %s after epoch %d of %d", checkpoint, len(losses), settings.epochs)
    student.train()
    with bar(total=steps, desc="distil", unit="batch", enabled=progress) as meter:
        meter.update(len(losses) * len(batches))
        for epoch in range(len(losses), settings.epochs):
            torch.manual_seed(settings.seed + epoch)  # per epoch (dropout, order): a resumed run repeats an unstopped one
            order = list(range(len(batches)))
            random.Random(settings.seed + epoch).shuffle(order)
            total = 0.0
            for done, i in enumerate(order, start=1):
                loss = _loss(student, batches[i], bf16=bf16)
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
                optimizer.step()
                schedule.step()
                total += loss.item()
                meter.update(1)
                meter.set_postfix(epoch=epoch + 1, loss=f"{total / done:.4f}")
            losses.append(total / len(batches))
            if not math.isfinite(losses[-1]):
                raise UserError(f"distillation diverged (epoch losses {losses}): try a lower learn rate")
            logger.info("epoch %d of %d: mean loss %.5f", epoch + 1, settings.epochs, losses[-1])
            if checkpoint is not None:
                _save_checkpoint(
                    checkpoint,
                    {
                        "key": key,
                        "student": student.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "schedule": schedule.state_dict(),
                        "losses": losses,
                    },
                )
    student.eval()
    return tuple(losses)


def use_student(nlp: Language, student: Any) -> None:
    """Make ``student`` ``nlp``'s backbone (in place); ``nlp.to_disk`` then saves it, and its
    config records the layer count."""
    trf = nlp.get_pipe(TRANSFORMER).model
    shim = trf.layers[0].shims[0]
    shim._hfmodel = dataclasses.replace(shim._hfmodel, transformer=student)
    shim._model = student
    layers = student.config.num_hidden_layers
    model_config = nlp.config["components"][TRANSFORMER]["model"]
    model_config.setdefault("transformer_config", {})["num_hidden_layers"] = layers


def distil(
    nlp: Language,
    docs: Sequence[Doc],
    *,
    settings: DistilSettings = DistilSettings(),
    checkpoint: Optional[Path] = None,
    progress: bool = True,
) -> DistilOutcome:
    """Replace ``nlp``'s backbone (in place) by a student with the layers ``settings.keep``,
    trained to reproduce the original's hidden states on ``docs``' windows (on the device the
    backbone is on). ``checkpoint``: see :func:`train_student`. The teacher's hidden states of
    every kept layer are held in memory: 1.5 GB for CoNLL-2003's training texts and 4 layers."""
    if not docs:
        raise UserError("distillation needs documents: none were given")
    started = time.perf_counter()
    teacher, tokenizer, get_spans = backbone(nlp)
    teacher_layers = len(encoder_layers(teacher))
    student = student_of(teacher, keep=settings.keep)
    texts = window_texts(docs, get_spans)
    encoded = _batches(texts, tokenizer, batch_positions=settings.batch_positions)
    batches = teacher_batches(teacher, encoded, keep=settings.keep, progress=progress)
    losses = train_student(
        student, batches, settings=settings, checkpoint=checkpoint, texts=fingerprint(texts), progress=progress
    )
    use_student(nlp, student)
    positions = int(sum(float(batch.mask.sum()) for batch in batches))
    return DistilOutcome(
        teacher_layers=teacher_layers,
        student_layers=len(settings.keep),
        windows=len(texts),
        positions=positions,
        epoch_losses=losses,
        seconds=time.perf_counter() - started,
    )


def distil_to_disk(
    teacher: str,
    output: Path,
    *,
    docs: Path,
    settings: DistilSettings = DistilSettings(),
    progress: bool = True,
) -> DistilOutcome:
    """Load the pipeline ``teacher``, distil its backbone on the texts of the DocBin ``docs``
    (labels unused) and save the result to ``output``, with the distillation in its meta.

    ``output`` must not hold a pipeline already; while the run lasts it holds a checkpoint
    (:data:`CHECKPOINT`), so the same call after a stop resumes after the last finished epoch."""
    from spacy_ner_project.docbin import check_docbin, read_docbin
    from spacy_ner_project.pipelines import load_pipeline

    output = Path(output)
    if output.resolve() == Path(teacher).resolve():
        raise UserError(f"OUTPUT {output} is the teacher pipeline: give another folder")
    if (output / "config.cfg").exists():
        raise UserError(f"OUTPUT {output} already holds a pipeline: give another folder, or delete it first")
    if output.exists() and not output.is_dir():
        raise UserError(f"OUTPUT {output} is a file: give a folder")
    check_docbin(docs)  # before the pipeline loads
    nlp = load_pipeline(teacher)
    backbone(nlp)  # a pipeline without a transformer fails here, before the documents are read
    output.mkdir(parents=True, exist_ok=True)
    outcome = distil(
        nlp, read_docbin(docs, vocab=nlp.vocab), settings=settings, checkpoint=output / CHECKPOINT, progress=progress
    )
    nlp.meta["distillation"] = {
        "teacher": str(teacher),
        "teacher_layers": outcome.teacher_layers,
        "keep": list(settings.keep),
        "docs": str(docs),
        "windows": outcome.windows,
        "epochs": settings.epochs,
        "epoch_losses": [round(loss, 6) for loss in outcome.epoch_losses],
    }
    nlp.to_disk(output)
    (output / CHECKPOINT).unlink(missing_ok=True)
    return outcome
