"""``train``: ``spacy train`` with the project's switches (:mod:`spacy_ner_project.training.overrides`),
so that one command line serves every config in ``configs/``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from spacy_ner_project.commands.bounds import at_least
from spacy_ner_project.defaults import CPU
from spacy_ner_project.training.overrides import check_training_paths, training_overrides


def train_cli(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., help="Training config (configs/*.cfg)"),
    output_path: Path = typer.Argument(..., help="Output folder (model-best, model-last)"),
    train: Path = typer.Option(..., "--train", help="Training DocBin"),
    dev: Path = typer.Option(..., "--dev", help="Development DocBin (model selection)"),
    backbone: Optional[str] = typer.Option(
        None, "--backbone", help="'embedded', a local folder or a Hugging Face name (transformer configs)"
    ),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Override training.max_steps (0: no limit)", callback=at_least(0, meaning="no limit")),
    eval_frequency: Optional[int] = typer.Option(None, "--eval-frequency", help="Override training.eval_frequency", callback=at_least(1)),
    gpu_id: int = typer.Option(CPU, "--gpu-id", "-g", help=f"GPU id, {CPU} for CPU", callback=at_least(CPU, meaning="the CPU")),
) -> None:
    """Train a NER pipeline from a config (spacy train with the project's switches).

    Any further spaCy config override is passed on, e.g. --training.dropout 0.2.
    """
    from spacy.cli._util import parse_config_overrides
    from spacy.cli.train import train as spacy_train

    check_training_paths(config_path, output_path, train=train, dev=dev)
    overrides = training_overrides(
        config_path, train=train, dev=dev, backbone=backbone, max_steps=max_steps, eval_frequency=eval_frequency
    )
    overrides.update(parse_config_overrides(ctx.args))
    spacy_train(config_path, output_path, use_gpu=gpu_id, overrides=overrides)
