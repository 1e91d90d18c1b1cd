"""``python -m spacy_ner_project train``: ``spacy train`` with the project's switches.

It exists so that one command line serves every config in ``configs/``: the backbone
override is applied only to configs that have a transformer, and the GPU is used only
when asked for and available.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import typer
from wasabi import msg

TRANSFORMER_NAME = "components.transformer.model.name"


def training_overrides(
    config_path: Path,
    *,
    train: Path,
    dev: Path,
    backbone: Optional[str] = None,
    max_steps: Optional[int] = None,
    eval_frequency: Optional[int] = None,
) -> Dict[str, Any]:
    """Config overrides for one training run (the backbone only where there is one)."""
    from spacy.util import load_config

    config = load_config(config_path, interpolate=False)
    overrides: Dict[str, Any] = {"paths.train": str(train), "paths.dev": str(dev)}
    if backbone:
        has_transformer = "transformer" in config.get("components", {})
        if not has_transformer:
            msg.info(f"{config_path} has no transformer: backbone {backbone!r} not used")
        else:
            overrides[TRANSFORMER_NAME] = backbone
    if max_steps is not None:
        overrides["training.max_steps"] = max_steps
    if eval_frequency is not None:
        overrides["training.eval_frequency"] = eval_frequency
    return overrides


def train_cli(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Training config (configs/*.cfg)"),
    output_path: Path = typer.Argument(..., help="Output folder (model-best, model-last)"),
    train: Path = typer.Option(..., "--train", exists=True, help="Training DocBin"),
    dev: Path = typer.Option(..., "--dev", exists=True, help="Development DocBin (model selection)"),
    backbone: Optional[str] = typer.Option(
        None, "--backbone", help="'embedded', a local folder or a Hugging Face name (transformer configs)"
    ),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Override training.max_steps"),
    eval_frequency: Optional[int] = typer.Option(None, "--eval-frequency", help="Override training.eval_frequency"),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU id, -1 for CPU"),
) -> None:
    """Train a NER pipeline from a config (spacy train with the project's switches).

    Any further spaCy config override is passed on, e.g. --training.dropout 0.2.
    """
    from spacy.cli._util import parse_config_overrides
    from spacy.cli.train import train as spacy_train

    overrides = training_overrides(
        config_path, train=train, dev=dev, backbone=backbone, max_steps=max_steps, eval_frequency=eval_frequency
    )
    overrides.update(parse_config_overrides(ctx.args))
    spacy_train(config_path, output_path, use_gpu=gpu_id, overrides=overrides)
