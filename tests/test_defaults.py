"""One source for every default: registered functions, the classes they build, configs and README.

Each registered function that builds (or configures) an object of this project takes its
defaults from that object's dataclass fields or DEFAULT_* class constants; here every such pair
is compared through ``inspect.signature``. Configs (configs/*.cfg and the README's ``ini``
blocks) may leave a default out or restate it, but never restate it differently unless the
difference is a deliberate setting listed in ``DELIBERATE`` with its reason.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Tuple

import pytest
from confection import Config
from spacy.language import Language
from spacy.util import registry
from spacy_llm.registry import registry as llm_registry

from spacy_ner_project.components import consistency, gazetteer
from spacy_ner_project.components.cache import ResponseCache, sqlite_cache_v1
from spacy_ner_project.components.llm import schema
from spacy_ner_project.components.llm.registry import make_json_ner_task_v1
from spacy_ner_project.components.llm.task import JsonNERTask
from spacy_ner_project.components.models import (
    CachedModel,
    OpenAICompatibleModel,
    cached_model_v1,
    openai_compatible_v1,
)
from spacy_ner_project.components.scorers import make_fuzzy_ner_scorer
from spacy_ner_project.llm.align import AlignOptions
from spacy_ner_project.scoring.matching import MODES, MatchSettings
from spacy_ner_project.scoring.spans import score_fuzzy_ents

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.cfg"))
EMPTY = inspect.Parameter.empty

# (where, block, key) -> why this config sets a value other than the function's default
DELIBERATE: Dict[Tuple[str, str, str], str] = {
    ("llm_ner.cfg", "components.llm.model", "timeout"): "a local CPU server needs minutes per answer",
    ("llm_ner.cfg", "components.llm.model", "max_retries"): "a local server that timed out once times out again",
    ("llm_ner.cfg", "components.llm.model", "max_retry_wait"): "local servers ask for longer waits",
    ("llm_ner.cfg", "components.llm.model", "concurrency"): "a one-slot local server (Ollama, llama.cpp)",
    ("llm_ner.cfg", "components.llm.model", "context_length"): "Ollama's default context is 2048",
    ("llm_ner.cfg", "components.llm.model.structured_output", "style"): "the default server is Ollama",
    ("llm_ner.cfg", "components.llm.task", "labels"): "CoNLL-2003's labels",
    ("llm_ner.cfg", "components.llm.model.cache_check", "labels"): "CoNLL-2003's labels (the task's)",
    ("ner_trf.cfg", "components.transformer.model", "cpu_mixed_precision"): "bfloat16 on CPUs that have it",
}


def defaults(func: Callable[..., Any]) -> Dict[str, Any]:
    """Parameter name -> default of a function (parameters without one left out)."""
    return {
        name: p.default
        for name, p in inspect.signature(func).parameters.items()
        if p.default is not EMPTY and name != "self"
    }


def parameters(func: Callable[..., Any]) -> List[str]:
    return [name for name in inspect.signature(func).parameters if name != "self"]


def factory_defaults(name: str) -> Dict[str, Any]:
    return dict(Language.get_factory_meta(name).default_config)


# --- registered functions against the classes they mirror ----------------------------------


def test_fuzzy_scorer_defaults_are_match_settings() -> None:
    scorer = defaults(make_fuzzy_ner_scorer)
    for field in dataclasses.fields(MatchSettings):
        assert scorer[field.name] == field.default, f"fuzzy_ner_scorer.v1 {field.name} != MatchSettings"
    assert scorer["modes"] == list(MODES)
    core = defaults(score_fuzzy_ents)
    assert tuple(core["modes"]) == tuple(scorer["modes"]) and core["include_spacy"] == scorer["include_spacy"]
    assert core["settings"] == MatchSettings()


def test_json_ner_task_defaults_are_align_options_and_task_constants() -> None:
    task = defaults(make_json_ner_task_v1)
    for field in dataclasses.fields(AlignOptions):
        assert field.name in task, f"JsonNER.v1 does not expose AlignOptions.{field.name}"
        assert task[field.name] == field.default, f"JsonNER.v1 {field.name} != AlignOptions"
    assert task["existing_ents"] == JsonNERTask.DEFAULT_EXISTING_ENTS
    assert task["shard_overlap"] == JsonNERTask.DEFAULT_SHARD_OVERLAP


def test_openai_compatible_defaults_are_the_model_constants() -> None:
    registered, model = defaults(openai_compatible_v1), defaults(OpenAICompatibleModel.__init__)
    assert parameters(openai_compatible_v1) == parameters(OpenAICompatibleModel.__init__)
    assert registered == model
    for name, value in model.items():
        constant = f"DEFAULT_{name.upper()}"
        if hasattr(OpenAICompatibleModel, constant):
            assert value == getattr(OpenAICompatibleModel, constant), f"{name} != {constant}"
    assert registered["config"] == {"temperature": 0.0}  # deterministic answers unless a config says otherwise


def test_cached_model_and_cache_mirror_their_classes() -> None:
    assert parameters(cached_model_v1) == parameters(CachedModel.__init__)
    assert defaults(cached_model_v1) == defaults(CachedModel.__init__)
    assert parameters(sqlite_cache_v1) == parameters(ResponseCache.__init__)
    assert defaults(sqlite_cache_v1) == defaults(ResponseCache.__init__)


def test_entity_schema_default_style() -> None:
    assert defaults(schema.entity_schema_v1)["style"] == schema.DEFAULT_STYLE
    assert schema.DEFAULT_STYLE in schema.STYLES


def test_gazetteer_factory_defaults_are_the_gazetteer_constant() -> None:
    constant = gazetteer.Gazetteer.DEFAULT_MAX_TOKENS
    assert factory_defaults("entity_gazetteer") == {"max_tokens": constant}
    assert defaults(gazetteer.Gazetteer.__init__)["max_tokens"] == constant
    assert defaults(gazetteer.EntityGazetteer.__init__)["max_tokens"] == constant


def test_consistency_factory_defaults_are_harmonize_defaults() -> None:
    factory = factory_defaults("doc_consistency")
    rules = defaults(consistency.harmonize)
    assert {name: factory[name] for name in rules} == rules
    assert rules == {
        "relabel": consistency.Rules.RELABEL,
        "propagate": consistency.Rules.PROPAGATE,
        "min_count": consistency.Rules.MIN_COUNT,
        "min_share": consistency.Rules.MIN_SHARE,
    }


def test_transformer_model_defaults_are_spacy_transformers_own() -> None:
    ours = defaults(registry.architectures.get("spacy_ner_project.TransformerModel.v1"))
    theirs = defaults(registry.architectures.get("spacy-transformers.TransformerModel.v3"))
    shared = set(ours) & set(theirs)
    assert shared >= {"mixed_precision", "grad_scaler_config", "tokenizer_config", "transformer_config"}
    assert {name: ours[name] for name in shared} == {name: theirs[name] for name in shared}


# --- configs and README against the registered defaults -------------------------------------


def _registered(key: str, name: str) -> Callable[..., Any]:
    group = key[1:]
    if group.startswith("llm_"):
        return getattr(llm_registry, group).get(name)
    return registry.get(group, name)


def restated_values(config: Mapping[str, Any], path: str = "") -> Iterator[Tuple[str, str, Any, Any]]:
    """(block, key, config value, default) for every value a config block of ours restates."""
    func = None
    for key, value in config.items():
        if key.startswith("@") and str(value).startswith("spacy_ner_project."):
            func = _registered(key, value)
    if func is None and str(config.get("factory", "")) in ("entity_gazetteer", "doc_consistency"):
        known = factory_defaults(config["factory"])
    else:
        known = defaults(func) if func is not None else {}
    for key, value in config.items():
        where = f"{path}.{key}" if path else key
        if isinstance(value, Mapping) and any(str(k).startswith("@") for k in value):
            yield from restated_values(value, where)
            continue
        if key not in known or (isinstance(value, str) and "${" in value):
            if isinstance(value, Mapping):
                yield from restated_values(value, where)
            continue
        default = known[key]
        if isinstance(value, Mapping) and isinstance(default, Mapping):
            for sub in set(value) & set(default):  # e.g. config.temperature of the model
                yield path, f"{key}.{sub}", value[sub], default[sub]
        elif not isinstance(default, Mapping):
            yield path, key, value, default


def _ini_block(text: str) -> Config:
    """A README snippet as a config: inline comments dropped, parent sections added."""
    text = re.sub(r"\s+#.*$", "", text, flags=re.MULTILINE)
    sections = re.findall(r"^\[(.+)\]$", text, flags=re.MULTILINE)
    parents = dict.fromkeys(
        ".".join(section.split(".")[:i]) for section in sections for i in range(1, section.count(".") + 1)
    )
    header = "".join(f"[{parent}]\n" for parent in parents if parent not in sections)
    return Config().from_str(header + text, interpolate=False)


def _readme_ini_blocks() -> List[Config]:
    readme = (ROOT / "README.md").read_text(encoding="utf8")
    return [_ini_block(block) for block in re.findall(r"```ini\n(.*?)```", readme, flags=re.DOTALL)]


SOURCES = [(path.name, lambda path=path: Config().from_disk(path, interpolate=True)) for path in CONFIGS] + [
    (f"README.md ini block {i}", lambda i=i: _readme_ini_blocks()[i]) for i in range(len(_readme_ini_blocks()))
]


@pytest.mark.parametrize("name,load", SOURCES, ids=[name for name, _ in SOURCES])
def test_configs_restate_defaults_only_as_they_are(name: str, load: Callable[[], Config]) -> None:
    wrong = []
    for block, key, value, default in restated_values(load()):
        if (name, block, key) in DELIBERATE:
            assert value != default, f"{name} [{block}] {key}: now the default, drop it from DELIBERATE"
            continue
        if value != default and not (isinstance(default, tuple) and list(default) == value):
            wrong.append(f"[{block}] {key} = {value!r}, default {default!r}")
    assert not wrong, f"{name} restates defaults differently (set them as the default, drop them, or list them in DELIBERATE): {wrong}"


def test_config_check_sees_the_blocks_of_ours() -> None:
    seen = {
        (name, block, key)
        for name, load in SOURCES
        for block, key, _, _ in restated_values(load())
    }
    assert ("llm_ner.cfg", "components.llm.task", "fuzzy_cutoff") in seen
    assert ("llm_ner.cfg", "components.llm.model", "config.temperature") in seen
    assert ("README.md ini block 0", "components.ner.scorer", "text_threshold") in seen
    assert set(DELIBERATE) <= seen, f"DELIBERATE names settings no config has: {set(DELIBERATE) - seen}"


def test_command_options_default_to_the_library_defaults() -> None:
    """--gpu-id and --displacy-limit of the commands and the library functions they call share
    spacy_ner_project.defaults (the commands cannot import the library for --help)."""
    from spacy_ner_project import defaults as shared
    from spacy_ner_project.commands.evaluate import evaluate_cli, llm_evaluate_cli
    from spacy_ner_project.commands.train import train_cli
    from spacy_ner_project.evaluation.evaluate import run_evaluation
    from spacy_ner_project.evaluation.report import render_html, write_report

    def option_default(func: Callable[..., Any], name: str) -> Any:
        return inspect.signature(func).parameters[name].default.default  # typer.OptionInfo

    for command in (evaluate_cli, llm_evaluate_cli, train_cli):
        assert option_default(command, "gpu_id") == shared.CPU
    assert defaults(run_evaluation)["gpu_id"] == shared.CPU
    for command in (evaluate_cli, llm_evaluate_cli):
        assert option_default(command, "displacy_limit") == shared.DISPLACY_LIMIT
    assert defaults(render_html)["displacy_limit"] == defaults(write_report)["displacy_limit"] == shared.DISPLACY_LIMIT
