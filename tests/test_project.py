"""The spaCy project (project.yml) as users run it.

The fast tests load project.yml with weasel's own loader. The workflow tests copy the
project's files (``git ls-files``: never the user's corpus or training outputs) to a
temporary folder and run the README's commands there through ``python -m spacy project
run``, in a subprocess, with a tiny corpus and a few training steps.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
from weasel.util import get_checksum, load_project_config

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PATH_KEYS = ("deps", "outputs", "outputs_no_cache")
# two steps: spaCy evaluates after the first and the last (model-best is written at an evaluation)
FEW_STEPS = {"max_steps": 2, "eval_frequency": 2}
FEW_DEMO_STEPS = {"demo_max_steps": 2, "demo_eval_frequency": 2}


def readme_command(command: str) -> List[str]:
    """``command`` as the README writes it in a code block (argv), or a failed test."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    for line in "\n".join(blocks).splitlines():
        for part in line.split("#", 1)[0].split("&&"):
            if shlex.split(part) == shlex.split(command):
                return shlex.split(part)
    pytest.fail(f"README.md has no bash line running {command!r}: update the README or this test")


def vars_args(values: Dict[str, Any]) -> List[str]:
    return [arg for key, value in values.items() for arg in (f"--vars.{key}", str(value))]


def project_copy(dest: Path) -> Path:
    """The project's files (tracked, or new and not ignored) copied to ``dest``.

    Outside a git checkout: the folder without what .gitignore names (outputs, caches, venvs).
    """
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        lines = (ROOT / ".gitignore").read_text().splitlines()
        ignored = [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(".git", *ignored))
        return dest
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():  # listed but deleted in the working tree: not copied
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def run_project(argv: List[str], cwd: Path) -> str:
    """Run a README command line in ``cwd`` with this interpreter; its output, or a failed test."""
    command = [sys.executable, *argv[1:]] if argv[0] == "python" else argv
    # offline: the package step's `python -m build` cannot fetch setuptools into its isolated
    # environment, so spaCy falls back to `setup.py bdist_wheel` with the installed setuptools
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PIP_NO_INDEX": "1"}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{shlex.join(command)} exited {result.returncode}:\n{output[-4000:]}"
    return output


def workflow_outputs(project: Path, workflow: str, overrides: Dict[str, Any]) -> List[Path]:
    """Every output a workflow's commands declare, with the vars the run used."""
    config = load_project_config(project, overrides={f"vars.{k}": v for k, v in overrides.items()})
    commands = {command["name"]: command for command in config["commands"]}
    return [project / path for step in config["workflows"][workflow]
            for key in ("outputs", "outputs_no_cache") for path in commands[step].get(key, [])]


def write_tiny_corpus(dest: Path) -> Path:
    """train/dev/test.txt in CoNLL-2003 format, a few invented sentences (assets/make_demo_corpus.py)."""
    spec = importlib.util.spec_from_file_location("make_demo_corpus", ROOT / "assets" / "make_demo_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dest.mkdir(parents=True)
    for seed, split in enumerate(("train", "dev", "test"), start=11):
        module.write_split(dest / f"{split}.txt", n_docs=2, sents_per_doc=3, seed=seed)
    return dest


# --- project.yml as weasel loads it -------------------------------------------------------


@pytest.mark.parametrize("overrides", [{}, {"vars.data_dir": "/data/other corpus"}], ids=["defaults", "data_dir"])
def test_every_command_path_loads_as_one_path(overrides: Dict[str, str]) -> None:
    config = load_project_config(ROOT, overrides=overrides)
    for command in config["commands"]:
        for key in PATH_KEYS:
            for path in command.get(key, []):
                where = f"project.yml command {command['name']!r} {key}: {path!r}"
                assert isinstance(path, str) and ", " not in path, f"{where} is several paths joined"
                assert "${" not in path, f"{where} has an unresolved reference"
                if not overrides:
                    assert not re.search(r"\s", path), f"{where} has a space"


def test_data_dir_var_moves_every_corpus_path() -> None:
    config = load_project_config(ROOT, overrides={"vars.data_dir": "/elsewhere"})
    commands = {command["name"]: command for command in config["commands"]}
    assert commands["convert"]["deps"] == ["/elsewhere/train.txt", "/elsewhere/dev.txt", "/elsewhere/test.txt"]
    assert all(asset["dest"].startswith("/elsewhere/") for asset in config["assets"])


def test_every_workflow_step_names_a_command() -> None:
    config = load_project_config(ROOT)
    names = {command["name"] for command in config["commands"]}
    for workflow, steps in config["workflows"].items():
        assert steps, f"workflow {workflow!r} is empty"
        assert not set(steps) - names, f"workflow {workflow!r} names unknown commands {set(steps) - names}"


def test_asset_checksums_are_what_spacy_project_assets_compares(tmp_path: Path) -> None:
    """weasel compares MD5 (get_checksum); a SHA-256 here makes every asset 'incorrect'."""
    probe = tmp_path / "probe.txt"
    probe.write_text("probe\n")
    assert get_checksum(probe) == hashlib.md5(b"probe\n").hexdigest()
    assets = load_project_config(ROOT)["assets"]
    assert assets
    for asset in assets:
        assert re.fullmatch(r"[0-9a-f]{32}", asset["checksum"]), f"{asset['dest']}: not an MD5 checksum"
    present = [asset for asset in assets if (ROOT / asset["dest"]).is_file()]
    if not present:
        pytest.skip("CoNLL-2003 is not at vars.data_dir: the checksums were checked for form only")
    for asset in present:
        assert get_checksum(ROOT / asset["dest"]) == asset["checksum"], f"{asset['dest']}: checksum differs"


def test_readme_documents_the_workflows_the_tests_run() -> None:
    for command in ("python -m spacy project assets", "python -m spacy project run all",
                    "python -m spacy project run demo"):
        readme_command(command)


# --- the workflows, run as users run them -------------------------------------------------


@pytest.mark.slow  # trains (2 steps) and packages, through spacy project run: ~90 s on 2 cores
def test_all_workflow_on_a_tiny_corpus(tmp_path: Path) -> None:
    project = project_copy(tmp_path / "project")
    data = write_tiny_corpus(tmp_path / "data")
    overrides = {"data_dir": str(data), **FEW_STEPS}
    output = run_project([*readme_command("python -m spacy project run all"), ".", *vars_args(overrides)], project)

    assert "Running workflow 'all'" in output
    outputs = workflow_outputs(project, "all", overrides)
    missing = [str(path.relative_to(project)) for path in outputs if not path.exists()]
    assert not missing, f"the all workflow did not write {missing}"
    wheels = [path for path in outputs if path.suffix == ".whl"]
    assert len(wheels) == 1 and wheels[0].stat().st_size > 0
    # the plugin's wheel beside the pipeline's (pip install --find-links), meta and LICENSE filled in
    assert list(wheels[0].parent.glob("spacy_ner_project-*.whl"))
    package_meta = json.loads((wheels[0].parents[1] / "meta.json").read_text())
    assert package_meta["license"] == "MIT" and package_meta["author"]
    assert (wheels[0].parents[1] / "LICENSE").is_file()
    for split in ("dev", "test"):
        metrics = json.loads((project / "metrics" / "ner_trf" / split / "metrics.json").read_text())
        assert metrics["n_docs"] == 2 and "ents_f" in metrics["pipelines"]["ner_trf"]
    html = (project / "reports" / "ner_trf" / "displacy.html").read_text(encoding="utf-8")
    first_entity_word = next(line.split()[0] for line in (data / "test.txt").read_text().splitlines()
                             if line.endswith(("-PER", "-ORG", "-LOC", "-MISC")))
    assert "Predictions of" in html and first_entity_word in html  # gold is shown beside the predictions


@pytest.mark.parametrize("workflow", ["all", "llm", "llm-local"])
def test_a_missing_data_folder_stops_the_workflow_at_its_first_step(tmp_path: Path, workflow: str) -> None:
    project = project_copy(tmp_path / "project")
    data = tmp_path / "data"
    data.mkdir()
    (data / "dev.txt").write_text("EU B-ORG\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "spacy", "project", "run", workflow, ".", "--vars.data_dir", str(data)],
                            cwd=project, capture_output=True, text=True)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "train.txt (missing)" in output and "test.txt (missing)" in output and "dev.txt" in output
    assert "Running command" in output and output.count("Running command") == 1  # convert never ran
    assert not (project / "corpus").exists() or not any((project / "corpus").rglob("*.spacy"))


@pytest.mark.slow  # trains (2 steps) through spacy project run: ~45 s on 2 cores
def test_demo_workflow_with_few_steps(tmp_path: Path) -> None:
    project = project_copy(tmp_path / "project")
    run_project([*readme_command("python -m spacy project run demo"), ".", *vars_args(FEW_DEMO_STEPS)], project)
    outputs = workflow_outputs(project, "demo", FEW_DEMO_STEPS)
    missing = [str(path.relative_to(project)) for path in outputs if not path.exists()]
    assert not missing, f"the demo workflow did not write {missing}"


@pytest.mark.slow
def test_demo_workflow_as_the_readme_runs_it(tmp_path: Path) -> None:
    """The README's own line, with its 100 training steps (~100 s on 2 cores)."""
    project = project_copy(tmp_path / "project")
    run_project(readme_command("python -m spacy project run demo"), project)
    outputs = workflow_outputs(project, "demo", {})
    assert all(path.exists() for path in outputs), outputs
    metrics = json.loads((project / "metrics" / "demo_trf" / "test" / "metrics.json").read_text())
    assert metrics["pipelines"]["demo_trf"]["ents_f"] > 0.5  # the README: near-perfect on the invented corpus
