"""Load a spaCy pipeline: the one way for every command that runs one (``evaluate``,
``llm-evaluate``, the project's ``compare``, ``annotate``, ``visualize``, ``llm-assemble``).

A pipeline source is one of:

- a folder saved with ``nlp.to_disk`` (it has ``config.cfg``), e.g. ``training/ner_cnn/model-best``;
- an installed pipeline package, e.g. ``en_core_web_sm``;
- ``blank:LANG``, a blank pipeline of that language;
- a config file (``.cfg``), assembled and initialised as ``spacy assemble`` does, with few-shot
  examples from ``paths.train`` when it is set (split by ``unit``: whole docs or sentences).

``overrides`` (spaCy config overrides in dot notation, e.g. ``{"components.llm.model.model":
"llama3.1:8b"}``) apply the same way to every kind. A source that is none of these is a
:class:`PipelineError` naming it and what to give instead, a GPU that cannot be used a
:class:`DeviceError`, and a config (or override) that spaCy refuses a ``UserError`` naming the
source, the setting and spaCy's reason; all name no command-line option (the command layer adds
its own where it helps).

spaCy is imported inside the functions, so that importing this module (``annotate --help``)
does not load it.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Mapping, Optional

from spacy_ner_project.defaults import CPU
from spacy_ner_project.errors import UserError, one_line
from spacy_ner_project.languages import LanguageError, blank, check_language

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.training import Example
    from thinc.api import Config

CONFIG_SUFFIX = ".cfg"
CONFIG_FILE = "config.cfg"
BLANK_PREFIX = "blank:"
FOLDER, PACKAGE, BLANK, CONFIG = "folder", "package", "blank", "config"  # the kinds of source
WHAT = (
    "give a pipeline folder saved with nlp.to_disk (e.g. training/x/model-best), an installed pipeline "
    f"package, {BLANK_PREFIX}LANG (e.g. {BLANK_PREFIX}en) or a config file ({CONFIG_SUFFIX})"
)
CACHE_FUNCTION = "spacy_ner_project.SQLiteCache.v1"


class PipelineError(UserError):
    """A pipeline source that is no pipeline; the message names it and what to give instead."""


class DeviceError(UserError):
    """GPU ``gpu_id`` cannot be used; ``reason`` says why (no GPU, no cupy)."""

    def __init__(self, gpu_id: int, reason: str) -> None:
        super().__init__(f"GPU {gpu_id} cannot be used: {reason}; use the CPU (device {CPU}) instead")
        self.gpu_id = gpu_id
        self.reason = reason


def use_device(gpu_id: int) -> None:
    """Run spaCy on GPU ``gpu_id`` (``CPU``, or any negative id: leave it on the CPU)."""
    if gpu_id < 0:
        return
    import spacy

    try:
        spacy.require_gpu(gpu_id)
    except ValueError as err:  # no GPU, or no cupy
        raise DeviceError(gpu_id, str(err)) from err


def source_kind(source: str) -> str:
    """``FOLDER``, ``PACKAGE``, ``BLANK`` or ``CONFIG``; a ``PipelineError`` for anything else."""
    path = Path(source)
    if str(source).startswith(BLANK_PREFIX):
        return BLANK
    if path.is_file() and path.suffix == CONFIG_SUFFIX:
        return CONFIG
    if path.is_dir() and (path / CONFIG_FILE).is_file():
        return FOLDER
    if path.exists():
        kind = f"a folder without {CONFIG_FILE}" if path.is_dir() else f"a file that is no {CONFIG_SUFFIX} config"
        raise PipelineError(f"{source} is not a spaCy pipeline ({kind}); {WHAT}")
    import spacy

    if not spacy.util.is_package(str(source)):
        raise PipelineError(f"{source}: no such pipeline folder, config file or installed package; {WHAT}")
    return PACKAGE


def blank_language(source: str) -> str:
    """The language of ``blank:LANG``, checked: an unknown code is a ``PipelineError``."""
    lang = str(source)[len(BLANK_PREFIX) :]
    with language_of(source):
        return check_language(lang)


def blank_pipeline(source: str, *, overrides: Mapping[str, Any]) -> Language:
    """The blank pipeline of ``blank:LANG``: an unknown code, or a language whose tokenizer needs
    a package that is not installed, is a ``PipelineError`` naming the source."""
    lang = blank_language(source)
    with language_of(source):
        return blank(lang, config=overrides)


@contextmanager
def language_of(source: str) -> Iterator[None]:
    """A LanguageError as a PipelineError that names the source (``blank:zz: ...``)."""
    try:
        yield
    except LanguageError as err:
        raise PipelineError(f"{source}: {err.reason}") from err


def package_config_path(name: str) -> Path:
    """``config.cfg`` of an installed pipeline package."""
    import spacy

    package_dir = spacy.util.get_package_path(name)
    found = sorted(package_dir.glob(f"*/{CONFIG_FILE}"))
    if not found:
        raise PipelineError(f"the installed package {name} has no */{CONFIG_FILE} under {package_dir}: reinstall it")
    return found[0]


def pipeline_config(source: str, *, overrides: Optional[Mapping[str, Any]] = None) -> Config:
    """The interpolated config of any kind of source (``overrides`` applied), without loading it."""
    from spacy.util import load_config

    kind = source_kind(source)
    overrides = dict(overrides or {})
    if kind == BLANK:
        return blank_pipeline(source, overrides=overrides).config
    if kind == PACKAGE:
        path = package_config_path(source)
    else:
        path = Path(source) / CONFIG_FILE if kind == FOLDER else Path(source)
    with config_errors(source, overrides=overrides):
        return load_config(path, overrides=overrides, interpolate=True)


def load_pipeline(source: str, *, overrides: Optional[Mapping[str, Any]] = None, unit: str = "sents") -> Language:
    """The pipeline of any kind of source (the module docstring), ``overrides`` applied; a
    config file is assembled (:func:`assemble`, ``unit`` splits its few-shot examples)."""
    import spacy

    kind = source_kind(source)
    overrides = dict(overrides or {})
    if kind == CONFIG:
        return assemble(Path(source), overrides=overrides, unit=unit)
    if kind == BLANK:
        return blank_pipeline(source, overrides=overrides)
    with config_errors(source, overrides=overrides):
        return spacy.load(source, config=overrides)


@contextmanager
def config_errors(source: str | Path, *, overrides: Mapping[str, Any]) -> Iterator[None]:
    """A config that spaCy refuses inside the block (``ConfigValidationError``: a bad value, an
    override of a section that cannot take one) as one UserError line: the source, each setting
    with spaCy's reason, and the overrides given."""
    from confection import ConfigValidationError

    try:
        yield
    except ConfigValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem.get('loc', ()))}: {problem.get('msg', '')}"
            for problem in error.errors or ()
        ) or one_line(error.desc or "")
        given = f" (overrides given: {', '.join(sorted(overrides))})" if overrides else ""
        # a registered function given key by key (--nlp.after_pipeline_creation.@misc NAME) cannot
        # fill a section that is null in the config; the section's whole value can
        hint = ("; give the section one JSON object instead, e.g. --nlp.after_pipeline_creation "
                """'{"@misc": "spacy_ner_project.onnx_backbone.v1", "int8": true}'"""
                if any("@" in key for key in overrides) else "")
        raise UserError(one_line(f"{source}: {error.title or 'invalid config'}: {problems}{given}{hint}")) from None


def training_examples(path: Path, *, unit: str) -> Callable[[], List[Example]]:
    """get_examples for nlp.initialize: the gold docs (or sentences) of ``path``, e.g. for an
    LLM task's few-shot examples (``n_prompt_examples`` in [initialize.components.llm])."""
    from spacy.training import Example

    from spacy_ner_project.evaluation.gold import read_gold

    if not path.is_file():
        raise UserError(
            f"few-shot examples come from paths.train = {path}, which does not exist: convert the training "
            "data first, or set paths.train to null for zero-shot prompts"
        )
    docs = read_gold(path, unit=unit)
    return lambda: [Example(doc.copy(), doc) for doc in docs]


def assemble(config_path: Path, *, overrides: Mapping[str, Any], unit: str = "sents") -> Language:
    """The pipeline of a config file, assembled and initialised; ``paths.train`` (when set) gives
    ``nlp.initialize`` its examples, split by ``unit``."""
    from spacy.util import load_config, load_model_from_config

    with config_errors(config_path, overrides=overrides):
        config = load_config(config_path, overrides=dict(overrides), interpolate=False)
        train = config.get("paths", {}).get("train")
        get_examples = training_examples(Path(train), unit=unit) if train else None
        nlp = load_model_from_config(config, auto_fill=True)
    nlp.initialize(get_examples)
    return nlp


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
    from spacy.util import dict_to_dot

    settings: Dict[str, Any] = {}
    if model is not None:
        settings["model"] = model
    if base_url is not None:
        settings["base_url"] = base_url
    if cache is not None:
        settings["cache"] = {"@llm_misc": CACHE_FUNCTION, "path": str(cache)}
    if not settings:
        return {}
    return dict_to_dot({"components": {component: {"model": settings}}}, for_overrides=True)
