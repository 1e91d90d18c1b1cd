"""Load a pipeline to evaluate: a saved directory, an installed package, ``blank:xx``, or a
config file that is assembled and initialised (as ``spacy assemble`` does, with few-shot
examples from ``paths.train`` when it is set), with spaCy config overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

import spacy
from spacy.language import Language
from spacy.training import Example
from spacy.util import dict_to_dot, load_config, load_model_from_config

from spacy_ner_project.errors import UserError
from spacy_ner_project.evaluation.gold import read_gold

CONFIG_SUFFIX = ".cfg"
WHAT = (
    "give a pipeline directory saved with nlp.to_disk (e.g. training/x/model-best), an installed pipeline "
    f"package or a config file ({CONFIG_SUFFIX})"
)


def model_overrides(
    *,
    component: str,
    model: Optional[str] = None,
    base_url: Optional[str] = None,
    cache: Optional[Path] = None,
) -> Dict[str, Any]:
    """spaCy config overrides (dot notation) for an LLM component's model settings.

    ``model`` and ``base_url`` are keys of spacy_ner_project.OpenAICompatible.v1; ``cache``
    sets its ``cache`` to spacy_ner_project.SQLiteCache.v1 at that path."""
    settings: Dict[str, Any] = {}
    if model is not None:
        settings["model"] = model
    if base_url is not None:
        settings["base_url"] = base_url
    if cache is not None:
        settings["cache"] = {"@llm_misc": "spacy_ner_project.SQLiteCache.v1", "path": str(cache)}
    if not settings:
        return {}
    return dict_to_dot({"components": {component: {"model": settings}}}, for_overrides=True)


def training_examples(path: Path, *, unit: str) -> Callable[[], List[Example]]:
    """get_examples for nlp.initialize: the gold docs (or sentences) of ``path``, e.g. for an
    LLM task's few-shot examples (``n_prompt_examples`` in [initialize.components.llm])."""
    if not path.is_file():
        raise UserError(
            f"few-shot examples come from paths.train = {path}, which does not exist: run the convert "
            "command first, or pass --paths.train null for zero-shot prompts"
        )
    docs = read_gold(path, unit=unit)
    return lambda: [Example(doc.copy(), doc) for doc in docs]


def assemble(config_path: Path, *, overrides: Mapping[str, Any], unit: str = "sents") -> Language:
    """The pipeline of a config file, assembled and initialised; ``paths.train`` (when set) gives
    ``nlp.initialize`` its examples, split by ``unit``."""
    config = load_config(config_path, overrides=dict(overrides), interpolate=False)
    train = config.get("paths", {}).get("train")
    get_examples = training_examples(Path(train), unit=unit) if train else None
    nlp = load_model_from_config(config, auto_fill=True)
    nlp.initialize(get_examples)
    return nlp


def load_pipeline(source: str, *, overrides: Optional[Mapping[str, Any]] = None, unit: str = "sents") -> Language:
    """A pipeline directory, an installed package or ``blank:xx`` (``spacy.load``), or a config
    file (:func:`assemble`; ``unit`` splits its few-shot examples); ``overrides`` apply either
    way. A path that is no pipeline, or a name that is neither, is a ``UserError`` naming it."""
    overrides = dict(overrides or {})
    path = Path(source)
    if str(source).startswith("blank:"):
        return spacy.load(source, config=overrides)
    if path.is_file() and path.suffix == CONFIG_SUFFIX:
        return assemble(path, overrides=overrides, unit=unit)
    if path.exists() and not (path / "config.cfg").is_file():
        kind = "a directory without config.cfg" if path.is_dir() else "a file"
        raise UserError(f"{source} is not a spaCy pipeline ({kind}); {WHAT}")
    if not path.exists() and not spacy.util.is_package(str(source)):
        raise UserError(f"{source}: no such pipeline directory, config file or installed package; {WHAT}")
    return spacy.load(source, config=overrides)
