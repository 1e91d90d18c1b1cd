"""The README as CI and a newcomer read it: its four numbered lines are what .ci/run runs, the
default test run leaves out what the slow line runs, every relative link resolves, and spaCy's
generated tables of commands, workflows and assets match project.yml."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START = "<!-- WEASEL: AUTO-GENERATED DOCS START (do not remove) -->"
END = "<!-- WEASEL: AUTO-GENERATED DOCS END (do not remove) -->"


def numbered_lines() -> Dict[str, str]:
    """'(a)'..'(d)': the command on the line after the README comment that starts with '# (x)'
    (what .ci/run's readme_line reads)."""
    lines = README.read_text(encoding="utf-8").splitlines()
    return {match.group(1): lines[i + 1] for i, line in enumerate(lines) if (match := re.match(r"# \(([a-z])\)", line))}


def ci_reading(tag: str) -> str:
    """What .ci/run's readme_line function prints for ``tag``, run by bash as CI runs it."""
    script = (ROOT / ".ci" / "run").read_text()
    function = re.search(r"readme_line\(\) \{.*?\n\}", script, re.S)
    assert function, ".ci/run has no readme_line function"
    result = subprocess.run(["bash", "-c", f"{function.group(0)}\nreadme_line {tag}"], cwd=ROOT, capture_output=True, text=True, check=True)
    return result.stdout.rstrip("\n")


def test_the_four_lines_are_what_ci_runs() -> None:
    lines = numbered_lines()
    assert sorted(lines) == ["a", "b", "c", "d"]
    assert lines["b"] == 'pip install torch==2.13.0 && pip install -e ".[all,test]" && python -m pytest'
    assert lines["a"].startswith('pip install torch==2.13.0 && pip install -e ".[all]"')
    for tag in "bcd":
        assert ci_reading(tag) == lines[tag]
        assert f"readme_line {tag}" in (ROOT / ".ci" / "run").read_text()


def test_ci_runs_line_b_in_a_fresh_venv_before_any_extra() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    venv, step1, step2 = script.index("python -m venv"), script.index("readme_line b"), script.index("readme_line c")
    assert venv < step1 < step2
    assert "pip install" not in script[:step1].split("python -m venv", 1)[1].split("readme_line b")[0].replace("pip list", "")


def test_the_default_run_leaves_out_the_slow_tests_and_line_d_runs_them() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert "addopts = \"-m 'not slow' -rs\"" in pyproject
    assert numbered_lines()["d"] == "python -m pytest -m slow"
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml")

    declared = tomllib.loads(pyproject)["tool"]["pytest"]["ini_options"]["markers"]
    markers = [marker.split(":", 1)[0] for marker in declared]
    assert set(re.findall(r"\b(ray|llm_local|onnx|browser)\b", numbered_lines()["c"])) == set(markers) - {"slow"}


@pytest.mark.parametrize("page", [README, *sorted((ROOT / "docs").glob("*.md"))], ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if ROOT not in path.parents:  # the data beside the project (weasel links it where it exists)
            continue
        assert path.exists(), f"{page.name} links {target}, which does not exist"


def test_generated_project_tables_are_current(tmp_path: Path) -> None:
    """`python -m spacy project document --output README.md` would change nothing."""
    copy = tmp_path / "README.md"
    copy.write_text(README.read_text(encoding="utf-8"), encoding="utf-8")
    subprocess.run([sys.executable, "-m", "spacy", "project", "document", str(ROOT), "--output", str(copy)],
                   capture_output=True, text=True, check=True)
    text = README.read_text(encoding="utf-8")
    assert START in text and END in text
    assert unlinked(copy.read_text(encoding="utf-8")) == unlinked(text), (
        "README's project tables are stale: run python -m spacy project document --output README.md"
    )


def unlinked(text: str) -> str:
    """The text with weasel's links to local assets as plain names: weasel links an asset only
    where the file exists (CoNLL-2003 beside the project on one machine, not on another)."""
    return re.sub(r"\[`([^`]+)`\]\(\1\)", r"`\1`", text)


def test_every_module_has_its_line_in_the_layout() -> None:
    """docs/development.md names each module of the library and the components with its job."""
    page = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    modules = [path.relative_to(ROOT).as_posix() for base in ("spacy_ner_project", "components")
               for path in sorted((ROOT / base).rglob("*.py")) if "__pycache__" not in path.parts]
    rows = dict(re.findall(r"^\| `([^`]+\.py)` \| (.+) \|$", page, re.M))
    missing = [module for module in modules if module not in rows or not rows[module].strip()]
    assert not missing, f"docs/development.md's module table lacks {missing}: regenerate it from the docstrings"
    assert not set(rows) - set(modules), f"the module table names files that are gone: {sorted(set(rows) - set(modules))}"
