"""The config overrides of one training run (what ``python -m spacy_ner_project train`` passes
to ``spacy train``) and the checks of its paths.

They let one command line serve every config in ``configs/``: the backbone override is applied
only to configs that have a transformer (for the others the skipped backbone is logged at INFO).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Optional

from spacy_ner_project.docbin import check_docbin
from spacy_ner_project.errors import UserError, one_line

TRANSFORMER_NAME = "components.transformer.model.name"
TOTAL_STEPS = "training.optimizer.learn_rate.total_steps"
logger = logging.getLogger(__name__)


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


def _learn_rate(config: Any) -> Dict[str, Any]:
    """The config's learn-rate schedule block ({} when the rate is a number)."""
    rate = config.get("training", {}).get("optimizer", {}).get("learn_rate")
    return rate if isinstance(rate, dict) else {}


def training_overrides(
    config_path: Path,
    *,
    train: Path,
    dev: Path,
    backbone: Optional[str] = None,
    max_steps: Optional[int] = None,
    eval_frequency: Optional[int] = None,
) -> Dict[str, Any]:
    """Config overrides for one training run (the backbone only where there is one;
    ``max_steps`` also ends the learning-rate schedule where the config has one with
    ``total_steps``)."""
    from spacy.util import load_config

    try:
        config = load_config(config_path, interpolate=False)
    except Exception as err:  # noqa: BLE001 - configparser and thinc raise many types for a bad config
        raise UserError(f"{config_path} is not a valid spaCy config ({one_line(str(err))}); fix it or give another config") from err
    overrides: Dict[str, Any] = {"paths.train": str(train), "paths.dev": str(dev)}
    if backbone:
        transformer = config.get("components", {}).get("transformer")
        if transformer is None:
            logger.info("%s has no transformer: backbone %r not used", config_path, backbone)
        elif "source" in transformer:  # a trained transformer, e.g. configs/ner_trf_distilled.cfg: it has its backbone
            logger.info("%s takes its transformer from a trained pipeline: backbone %r not used", config_path, backbone)
        else:
            overrides[TRANSFORMER_NAME] = backbone
    if max_steps is not None:
        overrides["training.max_steps"] = max_steps
        if "total_steps" in _learn_rate(config):  # the schedule ends where training does (configs/ner_trf.cfg)
            overrides[TOTAL_STEPS] = max_steps
    if eval_frequency is not None:
        overrides["training.eval_frequency"] = eval_frequency
    frequency = eval_frequency if eval_frequency is not None else config.get("training", {}).get("eval_frequency")
    if max_steps and isinstance(frequency, int) and frequency > max_steps:
        # spaCy scores (and saves model-best) every eval_frequency steps only: step 0 alone otherwise
        logger.info("eval_frequency %d is more than max_steps %d: scoring at step %d", frequency, max_steps, max_steps)
        overrides["training.eval_frequency"] = max_steps
    return overrides

