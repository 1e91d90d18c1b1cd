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
        from spacy.util import registry

        func = registry.get(SPACY_GROUPS[group], name)
    else:
        from spacy_llm.registry import registry as llm_registry

        func = getattr(llm_registry, LLM_GROUPS[group]).get(name)
    assert callable(func)
