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

from spacy_ner_project.docbin import check_docbin
from spacy_ner_project.errors import UserError, one_line

TRANSFORMER_NAME = "components.transformer.model.name"


def check_training_paths(config_path: Path, output_path: Path, *, train: Path, dev: Path) -> None:
    """Refuse, before training starts, a missing config, corpora that are not DocBins, or an
    output folder that is a file: each a UserError naming the path."""
    if not config_path.is_file():
        kind = "is a directory" if config_path.is_dir() else "not found"
        raise UserError(f"{config_path}: {kind}; give a training config file such as configs/ner_trf.cfg")
    for name, corpus in (("--train", train), ("--dev", dev)):
        if check_docbin(corpus) == 0:
            raise UserError(f"{corpus} ({name}) holds no documents; give a .spacy DocBin with annotated documents")
    if output_path.exists() and not output_path.is_dir():
        raise UserError(f"{output_path} is a file; give a folder for model-best and model-last")


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

    try:
        config = load_config(config_path, interpolate=False)
    except Exception as err:  # noqa: BLE001 - configparser and thinc raise many types for a bad config
        raise UserError(f"{config_path} is not a valid spaCy config ({one_line(str(err))}); fix it or give another config") from err
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
    config_path: Path = typer.Argument(..., help="Training config (configs/*.cfg)"),
    output_path: Path = typer.Argument(..., help="Output folder (model-best, model-last)"),
    train: Path = typer.Option(..., "--train", help="Training DocBin"),
    dev: Path = typer.Option(..., "--dev", help="Development DocBin (model selection)"),
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

    check_training_paths(config_path, output_path, train=train, dev=dev)
    overrides = training_overrides(
        config_path, train=train, dev=dev, backbone=backbone, max_steps=max_steps, eval_frequency=eval_frequency
    )
    overrides.update(parse_config_overrides(ctx.args))
    spacy_train(config_path, output_path, use_gpu=gpu_id, overrides=overrides)
