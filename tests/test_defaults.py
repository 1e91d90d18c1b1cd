"""One source for every default: registered functions, the classes they build, configs and README.

Each registered function that builds (or configures) an object of this project takes its
defaults from that object's dataclass fields or DEFAULT_* class constants; here every such pair
is compared through ``inspect.signature``. Configs (configs/*.cfg and the README's ``ini``
blocks) may leave a default out or restate it, but never restate it differently unless the
difference is a deliberate setting listed in ``DELIBERATE`` with its reason.

The LLM model's settings have one home, ModelDefaults (components/model_settings.py): a config
or project.yml that repeats one of its defaults (or, in project.yml, a value the LLM config
already sets) says why in a ``#`` comment on that line or the line above.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import shlex
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import pytest
import srsly
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
    ModelDefaults,
    ModelSettings,
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
PROJECT = ROOT / "project.yml"
EMPTY = inspect.Parameter.empty
OPENAI_COMPATIBLE = "spacy_ner_project.OpenAICompatible.v1"

# (where, block, key) -> why this config sets a value other than the function's default
DELIBERATE: Dict[Tuple[str, str, str], str] = {
    ("llm_ner.cfg", "components.llm.model", "context_length"): "Ollama's default context is 2048",
    ("llm_ner.cfg", "components.llm.model.structured_output", "style"): "the default server is Ollama",
    ("llm_ner.cfg", "components.llm.model.structured_output", "max_items"): "bounds a small model's answer (v1 schema: none)",
    ("llm_ner.cfg", "components.llm.model.structured_output", "max_length"): "bounds a small model's answer (v1 schema: none)",
    ("llm_ner.cfg", "components.llm.task", "labels"): "CoNLL-2003's labels",
    ("llm_ner.cfg", "components.llm.model.cache_check", "labels"): "CoNLL-2003's labels (the task's)",
    ("ner_trf.cfg", "components.transformer.model", "cpu_mixed_precision"): "bfloat16 on CPUs that have it",
    ("llm_candidates.cfg", "components.llm.task", "labels"): "CoNLL-2003's labels",
    ("llm_candidates.cfg", "components.llm.task", "schema_style"): "the default server is a local llama.cpp (serve-llm)",
    ("llm_candidates.cfg", "components.llm.model", "timeout"): "an answer is one word: a minute covers a long wait",
    ("llm_candidates.cfg", "components.llm.model", "concurrency"): "one question at a time keeps one sentence's prompts in a row (prefix reuse)",
    ("llm_candidates.cfg", "components.llm.model", "context_length"): "spacy-llm warns a sharding task without one",
    ("llm_candidates.cfg", "components.llm.task.candidates", "strip_stop_words"): "measured better on CoNLL dev",
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


def model_setting_defaults() -> Dict[str, Any]:
    """Setting -> default of ModelSettings (every setting that has one)."""
    found = {}
    for field in dataclasses.fields(ModelSettings):
        if field.default is not dataclasses.MISSING:
            found[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            found[field.name] = field.default_factory()
    return found


def test_openai_compatible_defaults_are_the_model_constants() -> None:
    registered, model = defaults(openai_compatible_v1), defaults(OpenAICompatibleModel.__init__)
    assert parameters(openai_compatible_v1) == parameters(OpenAICompatibleModel.__init__)
    assert registered == model
    settings = model_setting_defaults()
    assert set(settings) == set(model) - {"cache", "cache_check"}  # the objects a model uses are no settings
    for name, value in settings.items():
        constant = getattr(ModelDefaults, f"DEFAULT_{name.upper()}")
        assert value == constant and model[name] == constant, f"{name} != DEFAULT_{name.upper()}"
        assert getattr(OpenAICompatibleModel, f"DEFAULT_{name.upper()}") is constant
    assert registered["config"] == {"temperature": 0.0, "seed": 0}  # the same answers every run unless a config says otherwise


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


# --- LLM model settings: one home; configs and project.yml repeat a default only with a reason ---

REFERENCE = re.compile(r"\$\{([\w.]+)\.(\w+)\}")  # a config value that is ${section.key}
VARIABLE = re.compile(r"\$\{vars\.(\w+)\}")
LLM_COMMANDS = ("llm-evaluate", "llm-assemble")  # their --llm.KEY, --model and --base-url set the LLM config
SETTING_FLAGS = {"--model": "model", "--base-url": "base_url"}


def has_reason(lines: List[str], index: int) -> bool:
    """Whether line ``index`` has a ``#`` comment or comes right after a comment line."""
    return bool(re.search(r"\s#", lines[index])) or (index > 0 and lines[index - 1].lstrip().startswith("#"))


def config_lines(lines: List[str]) -> Dict[Tuple[str, str], int]:
    """(section, key) -> index of the line of a .cfg file that sets it."""
    found, section = {}, ""
    for index, line in enumerate(lines):
        header = re.match(r"^\[(.+)\]\s*$", line)
        if header:
            section = header.group(1)
        elif re.match(r"^[^#\s][^=]*=", line):
            found[(section, line.split("=", 1)[0].strip())] = index
    return found


def dig(config: Mapping[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        config = config[part]
    return config


def model_blocks(config: Mapping[str, Any], path: str = "") -> Iterator[str]:
    """The dotted sections of every OpenAICompatible.v1 block."""
    if config.get("@llm_models") == OPENAI_COMPATIBLE:
        yield path
    for key, value in config.items():
        if isinstance(value, Mapping):
            yield from model_blocks(value, f"{path}.{key}" if path else key)


def model_defaults_restated(path: Path) -> Iterator[Tuple[str, str, Any, bool]]:
    """(section, key, value, has a reason) for every model setting of a config that is its
    default; ``section`` and ``key`` are where the value is written ([llm] for ${llm.key})."""
    raw, resolved = Config().from_disk(path, interpolate=False), Config().from_disk(path, interpolate=True)
    lines = path.read_text(encoding="utf8").splitlines()
    where = config_lines(lines)
    settings = model_setting_defaults()
    for block in model_blocks(raw):
        wanted = [(block, key, default) for key, default in settings.items() if key != "config"]
        if isinstance(dig(raw, block).get("config"), Mapping):  # request parameters, e.g. temperature
            wanted += [(f"{block}.config", key, default) for key, default in ModelDefaults.DEFAULT_CONFIG.items()]
        for section, key, default in wanted:
            if key not in dig(raw, section):
                continue
            value = dig(resolved, section)[key]
            if value != default:
                continue
            reference = REFERENCE.fullmatch(str(dig(raw, section)[key]))
            source = (reference.group(1), reference.group(2)) if reference else (section, key)
            yield source[0], source[1], value, has_reason(lines, where[source])


@pytest.mark.parametrize("path", CONFIGS, ids=[path.name for path in CONFIGS])
def test_configs_repeat_a_model_default_only_saying_why(path: Path) -> None:
    restated = model_defaults_restated(path)
    unexplained = [f"[{section}] {key} = {value!r}" for section, key, value, why in restated if not why]
    assert not unexplained, (
        f"{path.name} repeats model defaults (ModelDefaults) without a comment saying why: drop them "
        f"or add a # comment on the line above: {unexplained}"
    )


def cli_value(text: str) -> Any:
    """A command-line override's value as spaCy reads it: JSON if it parses, else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def project_llm_settings() -> Iterator[Tuple[str, str, Any, Optional[str], Path]]:
    """(command, setting, value, the var it comes from or None, its config) for every LLM setting
    a project.yml command passes to llm-evaluate or llm-assemble."""
    project = srsly.read_yaml(PROJECT)
    variables = project["vars"]

    def resolve(text: str) -> str:
        return VARIABLE.sub(lambda match: str(variables[match.group(1)]), text)

    for command in project["commands"]:
        for script in command.get("script", []):
            words = shlex.split(script)
            starts = [i for i, word in enumerate(words) if word in LLM_COMMANDS]
            if not starts:
                continue
            words = words[starts[0] + 1 :]
            config = ROOT / resolve(words[0])
            for flag, raw in zip(words, words[1:]):
                setting = flag[len("--llm.") :] if flag.startswith("--llm.") else SETTING_FLAGS.get(flag)
                if setting is not None:
                    variable = VARIABLE.fullmatch(raw)
                    yield command["name"], setting, cli_value(resolve(raw)), variable and variable.group(1), config


def test_project_passes_llm_settings_only_on_purpose() -> None:
    """A value a command passes that the config (or the model's default) gives anyway must
    come from a var whose line (or the line above) says why it is passed."""
    lines = PROJECT.read_text(encoding="utf8").splitlines()
    settings = model_setting_defaults()
    problems = []
    for command, setting, value, variable, config_path in project_llm_settings():
        llm = Config().from_disk(config_path, interpolate=True)["llm"]
        if value != (llm[setting] if setting in llm else settings.get(setting, object())):
            continue
        if variable is None:
            problems.append(f"{command}: {setting} = {value!r} is already the config's or the default: drop it")
            continue
        (index,) = [i for i, line in enumerate(lines) if re.match(rf"^\s+{variable}:", line)]
        if not has_reason(lines, index):
            problems.append(f"{command}: {setting} from vars.{variable} = {value!r} is the config's too; no # comment says why")
    assert not problems, problems


def test_the_llm_setting_checks_see_what_they_check() -> None:
    seen = {(command, setting) for command, setting, *_ in project_llm_settings()}
    assert {("llm-evaluate", "model"), ("llm-assemble", "base_url"), ("llm-local-evaluate", "timeout")} <= seen
    restated = {(section, key) for section, key, _, _ in model_defaults_restated(ROOT / "configs" / "llm_ner.cfg")}
    assert {("llm", "timeout"), ("llm", "concurrency"), ("llm", "temperature")} <= restated


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
