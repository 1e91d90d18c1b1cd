"""Every entry point declared in setup.cfg resolves to a registered, callable function."""

from __future__ import annotations

import configparser
from importlib.metadata import entry_points
from pathlib import Path

import pytest

SETUP_CFG = Path(__file__).resolve().parents[1] / "setup.cfg"
# spaCy's registries by entry-point group; spacy-llm's live in catalogue's "thinc" namespace.
SPACY_GROUPS = {
    "spacy_factories": "factories",
    "spacy_scorers": "scorers",
    "spacy_architectures": "architectures",
    "spacy_misc": "misc",
    "spacy_readers": "readers",
    "spacy_span_getters": "span_getters",  # spacy-transformers' registry, added to spaCy's
}
LLM_GROUPS = {
    "thinc_llm_tasks": "llm_tasks",
    "thinc_llm_models": "llm_models",
    "thinc_llm_misc": "llm_misc",
}


def declared_entry_points() -> list[tuple[str, str, str]]:
    parser = configparser.ConfigParser()
    parser.read(SETUP_CFG)
    declared = []
    for group, block in parser["options.entry_points"].items():
        for line in block.strip().splitlines():
            name, target = (part.strip() for part in line.split("=", 1))
            declared.append((group, name, target))
    return declared


DECLARED = declared_entry_points()
REGISTRY_ENTRIES = [d for d in DECLARED if d[0] in SPACY_GROUPS or d[0] in LLM_GROUPS]


def test_only_known_groups_are_declared() -> None:
    known = set(SPACY_GROUPS) | set(LLM_GROUPS) | {"console_scripts"}
    unknown = {group for group, _, _ in DECLARED} - known
    assert not unknown, f"entry point groups nobody reads: {unknown}"


@pytest.mark.parametrize("group,name,target", REGISTRY_ENTRIES, ids=[d[1] for d in REGISTRY_ENTRIES])
def test_entry_point_is_installed_and_resolves(group: str, name: str, target: str) -> None:
    installed = {ep.name: ep for ep in entry_points(group=group)}
    assert name in installed, f"{name} is in setup.cfg but not installed: reinstall the package"
    assert installed[name].value == target
    func = installed[name].load()
    assert callable(func)


@pytest.mark.parametrize("group,name,target", REGISTRY_ENTRIES, ids=[d[1] for d in REGISTRY_ENTRIES])
def test_registered_name_is_found_by_spacy(group: str, name: str, target: str) -> None:
    if group != "spacy_factories":  # spaCy forbids dots in factory names; their config is versioned
        assert name.startswith("spacy_ner_project.") and name.rsplit(".", 1)[-1].startswith("v"), (
            f"{name} is not a versioned name (spacy_ner_project.Name.v1)"
        )
    if group == "spacy_factories":
        import spacy

        nlp = spacy.blank("en")
        nlp.add_pipe(name)  # found through the entry point, with its default config
        func = nlp.get_pipe(name)
    elif group in SPACY_GROUPS:
        import spacy_transformers  # noqa: F401  (adds span_getters to spaCy's registry)
        from spacy.util import registry

        func = registry.get(SPACY_GROUPS[group], name)
    else:
        from spacy_llm.registry import registry as llm_registry

        func = getattr(llm_registry, LLM_GROUPS[group]).get(name)
    assert callable(func)


# --- a trained (non-LLM) pipeline loads without the LLM, report or CLI packages ---------------

# What the modules of a trained pipeline's entry points must not import (they are the [llm],
# report and CLI tooling). Judged against what spaCy and spacy-transformers import themselves:
# `import spacy` brings httpx, jinja2 and typer, spacy-transformers brings jinja2.sandbox, and
# spaCy loads the entry points of every installed plugin (spacy-llm's `llm` factory imports
# spacy_llm whenever spacy-llm is installed: keeping it out of a lean install is the extras'
# job, not these modules').
HEAVY = (
    "spacy_llm",
    "httpx",
    "json_repair",
    "matplotlib",
    "jinja2",
    "sentence_transformers",
    "typer",
    "spacy_ner_project.cli",
    "spacy_ner_project.commands",
    "spacy_ner_project.components.llm",
    "spacy_ner_project.components.models",
    "spacy_ner_project.evaluation",
)
TRAINED_PIPELINE_MODULES = ("architectures", "scorers", "precision", "quantize", "gazetteer", "consistency")

_PROBE = """
import json, sys
from importlib.metadata import entry_points
import spacy
import spacy_transformers
# what spaCy loads of other plugins when it scans the entry points (spacy.blank, spacy.load)
for group in {groups!r}:
    for point in entry_points(group=group):
        if not point.value.startswith("spacy_ner_project."):
            point.load()
heavy = {heavy!r}
def loaded():
    return {{name for name in sys.modules if name.split(".")[0] in heavy or name in heavy
            or any(name.startswith(h + ".") for h in heavy)}}
before = loaded()
new = {{}}
for step in {steps!r}:
    exec(step)
    new[step] = sorted(loaded() - before)
    before |= set(new[step])
print(json.dumps(new))
"""


def _new_heavy_imports(steps: list[str]) -> dict[str, list[str]]:
    import json
    import subprocess
    import sys

    code = _PROBE.format(heavy=HEAVY, steps=steps, groups=sorted(SPACY_GROUPS))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_trained_pipeline_imports_no_llm_report_or_cli_packages(tmp_path: Path) -> None:
    """Each module a trained pipeline's entry points name, then spacy.load and a call, in one
    fresh interpreter: none of them imports what HEAVY names."""
    import spacy
    from spacy.tokens import Doc, Span
    from spacy.training import Example

    nlp = spacy.blank("en")
    nlp.add_pipe("entity_gazetteer")
    ner = nlp.add_pipe("ner", config={"scorer": {"@scorers": "spacy_ner_project.fuzzy_ner_scorer.v1"}})
    ner.add_label("ORG")
    nlp.add_pipe("doc_consistency")
    gold = Doc(nlp.vocab, words=["Acme", "hired", "Sam", "."])
    gold.ents = [Span(gold, 0, 1, label="ORG")]
    nlp.initialize(lambda: [Example(nlp.make_doc("Acme hired Sam ."), gold)])
    nlp.to_disk(tmp_path / "pipeline")
    steps = [f"import spacy_ner_project.components.{name}" for name in TRAINED_PIPELINE_MODULES]
    steps.append(f"nlp = spacy.load({str(tmp_path / 'pipeline')!r}); nlp('Acme hired Sam .')")
    found = {step: names for step, names in _new_heavy_imports(steps).items() if names}
    assert not found, f"a trained pipeline imports LLM/report/CLI packages: {found}"
