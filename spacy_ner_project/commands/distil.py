"""``distil``: a trained transformer pipeline with fewer backbone layers, trained to reproduce
the original's hidden states (:mod:`spacy_ner_project.training.distil`)."""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import typer
from wasabi import msg

from spacy_ner_project.commands.bounds import at_least
from spacy_ner_project.defaults import CPU, DISTIL_BATCH_POSITIONS, DISTIL_EPOCHS, DISTIL_KEEP, DISTIL_LEARN_RATE
from spacy_ner_project.errors import UserError

_KEEP = ",".join(str(layer) for layer in DISTIL_KEEP)


def parse_layers(text: str) -> Tuple[int, ...]:
    """``"0,2,4,5"`` → ``(0, 2, 4, 5)``; a UserError naming --keep otherwise."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UserError(f"--keep {text!r}: give the teacher layers to keep as numbers separated by commas, e.g. {_KEEP}") from None


def distil_cli(
    teacher: Path = typer.Argument(..., help="Trained transformer pipeline folder (the teacher)"),
    output: Path = typer.Argument(..., help="Folder for the distilled pipeline"),
    docs: Path = typer.Option(..., "--docs", help="DocBin of texts like the ones it will see (labels unused), e.g. the training set"),
    keep: str = typer.Option(_KEEP, "--keep", help="Teacher layers the student starts from, 0-based, in order"),
    epochs: int = typer.Option(DISTIL_EPOCHS, "--epochs", help="Passes over the documents' windows", callback=at_least(1)),
    learn_rate: float = typer.Option(DISTIL_LEARN_RATE, "--learn-rate", help="Peak learning rate (AdamW, linear warm-up and decay)"),
    batch_positions: int = typer.Option(
        DISTIL_BATCH_POSITIONS, "--batch-positions", help="Padded word pieces per batch", callback=at_least(1)
    ),
    gpu_id: int = typer.Option(CPU, "--gpu-id", "-g", help=f"GPU id, {CPU} for CPU", callback=at_least(CPU, meaning="the CPU")),
) -> None:
    """Distil a transformer pipeline's backbone into fewer layers (the teacher's NER unchanged); resumable."""
    from spacy_ner_project.pipelines import use_device
    from spacy_ner_project.training.distil import CHECKPOINT, DistilSettings, distil_to_disk

    settings = DistilSettings(keep=parse_layers(keep), epochs=epochs, learn_rate=learn_rate, batch_positions=batch_positions)
    use_device(gpu_id)
    try:
        outcome = distil_to_disk(str(teacher), output, docs=docs, settings=settings)
    except KeyboardInterrupt:
        msg.warn(f"Stopped. Finished epochs are kept in {output / CHECKPOINT}: run the same command again to resume.")
        raise typer.Exit(130) from None
    losses = ", ".join(f"{loss:.4f}" for loss in outcome.epoch_losses)
    msg.good(
        f"Distilled {outcome.teacher_layers} layers into {outcome.student_layers} on {outcome.windows} windows "
        f"({outcome.positions} word pieces) in {outcome.seconds:.0f}s; mean loss per epoch: {losses}"
    )
    msg.good(f"Saved the pipeline to {output}; score it with: python -m spacy_ner_project evaluate {output} DEV.spacy")
