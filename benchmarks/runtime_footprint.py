"""Benchmark (not a test): what ``pip install`` of a packaged trained pipeline brings into a fresh venv.

The method (the same for every measured plugin source):

1. a tiny trained pipeline: ``configs/ner_trf.cfg`` (embedded MiniLM backbone) trained for a
   few steps on the invented demo corpus (``assets/demo``, converted by
   ``spacy_ner_project.conll.convert``) with ``spacy train``; the installed packages do not
   depend on how well it is trained;
2. its wheel from ``spacy package --build wheel`` (requirements computed by spaCy from the
   config: ``spacy``, ``spacy-transformers``, ``spacy-ner-project``), built once and reused;
3. a wheel of the plugin from ``--source`` (a checkout: this one, or e.g. a ``git worktree``
   of an older commit to measure its ``setup.cfg``), ``pip wheel --no-deps``;
4. a fresh venv: ``pip install torch==<this machine's version>`` first (the CPU wheel on
   local disk, as the README says), then the plugin wheel, then the pipeline wheel, each
   with its dependencies from the package index;
5. ``pip list`` in the venv, the total size of its site-packages (and without torch, which
   is the same on both sides), and a check that the pipeline loads by name and predicts.

Results are merged into ``<output>.json`` under ``--label`` and ``<output>.md`` is written
from all labels (the first two labels side by side, with the packages only the first has).
Usage::

    git worktree add /tmp/before <old commit>
    python benchmarks/runtime_footprint.py --source /tmp/before --label before
    python benchmarks/runtime_footprint.py --label after

A few minutes per venv (downloads); ``--workdir`` keeps the pipeline wheel between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "assets" / "demo"
PACKAGE_NAME, PACKAGE_VERSION = "ner_footprint", "0.0.1"
SENTENCE = "Anna Kowalski joined Helix Motors in Valmora on Monday ."


def run(cmd: List[str], **kwargs: Any) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result.stdout


def pipeline_wheel(workdir: Path) -> Path:
    """The tiny trained pipeline's wheel under ``workdir`` (built once, then reused)."""
    packages = workdir / "packages"
    found = sorted(packages.glob(f"en_{PACKAGE_NAME}-{PACKAGE_VERSION}/dist/*.whl"))
    if found:
        return found[0]
    from spacy_ner_project.conll import convert

    corpus, training = workdir / "corpus", workdir / "training"
    for split in ("train", "dev"):
        convert(DEMO / f"{split}.iob", corpus / f"{split}.spacy")
    run([sys.executable, "-m", "spacy", "train", str(ROOT / "configs" / "ner_trf.cfg"), "--output", str(training),
         "--paths.train", str(corpus / "train.spacy"), "--paths.dev", str(corpus / "dev.spacy"),
         "--training.max_steps", "6", "--training.eval_frequency", "3",
         "--corpora.train.limit", "24", "--corpora.dev.limit", "4"])
    packages.mkdir(parents=True, exist_ok=True)
    run([sys.executable, "-m", "spacy", "package", str(training / "model-last"), str(packages),
         "--name", PACKAGE_NAME, "--version", PACKAGE_VERSION, "--build", "wheel", "--force"])
    return next(packages.glob(f"en_{PACKAGE_NAME}-{PACKAGE_VERSION}/dist/*.whl"))


def wheel_requirements(wheel: Path) -> List[str]:
    """``Requires-Dist`` lines of a wheel's METADATA."""
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(name).decode("utf-8")
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]


def tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def torch_version() -> str:
    from importlib.metadata import version

    return version("torch").split("+")[0]


def measure(*, source: Path, wheel: Path, workdir: Path) -> Dict[str, Any]:
    """Install torch, the plugin built from ``source`` and the pipeline wheel into a fresh venv."""
    wheels = Path(tempfile.mkdtemp(prefix="plugin-", dir=workdir))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)])
    plugin = next(wheels.glob("spacy_ner_project-*.whl"))
    env_dir = Path(tempfile.mkdtemp(prefix="venv-", dir=workdir))
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env["HF_HUB_OFFLINE"] = "1"
    for target in (f"torch=={torch_version()}", str(plugin), str(wheel)):
        run([python, "-m", "pip", "install", "-q", target], env=env)
    listed = json.loads(run([python, "-m", "pip", "list", "--format=json"], env=env))
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env=env).strip())
    torch_dir = site / "torch"
    script = (
        "import json, spacy\n"
        f"nlp = spacy.load('en_{PACKAGE_NAME}')\n"
        f"doc = nlp({SENTENCE!r})\n"
        "print(json.dumps({'pipes': nlp.pipe_names, 'n_tokens': len(doc)}))\n"
    )
    loaded = json.loads(run([python, "-c", script], env=env, cwd=env_dir).strip().splitlines()[-1])
    size, torch_size, plugin_requires = tree_size(site), tree_size(torch_dir), wheel_requirements(plugin)
    shutil.rmtree(env_dir)
    shutil.rmtree(wheels)
    return {
        "source": os.path.relpath(source, ROOT) if source.is_relative_to(ROOT) else "(another checkout)",
        "plugin_requires": plugin_requires,
        "n_packages": len(listed),
        "packages": sorted(f"{p['name']}=={p['version']}" for p in listed),
        "site_packages_mb": round(size / 1e6, 1),
        "site_packages_without_torch_mb": round((size - torch_size) / 1e6, 1),
        "loads_and_predicts": loaded,
    }


def _names(result: Dict[str, Any]) -> set:
    return {p.split("==")[0].lower() for p in result["packages"]}


def markdown(data: Dict[str, Any]) -> str:
    runs: Dict[str, Dict[str, Any]] = data["runs"]
    labels = list(runs)
    lines = [
        "# Runtime footprint of a packaged trained pipeline",
        "",
        "What `pip install` of the wheel from `spacy package` (a tiny `configs/ner_trf.cfg` pipeline) brings into",
        "a fresh venv, after `pip install torch==" + data["torch"] + "` (the CPU wheel) and the plugin's wheel.",
        "Written by `python benchmarks/runtime_footprint.py` (method in its docstring); Python " + data["python"] + ".",
        "",
        "Pipeline wheel requirements: " + ", ".join(f"`{r}`" for r in data["pipeline_requires"]) + ".",
        "",
        "| | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(labels),
        "| packages (`pip list`, pip and setuptools included) | " + " | ".join(str(runs[k]["n_packages"]) for k in labels) + " |",
        "| site-packages, MB | " + " | ".join(f"{runs[k]['site_packages_mb']:,.0f}" for k in labels) + " |",
        "| site-packages without torch, MB | " + " | ".join(f"{runs[k]['site_packages_without_torch_mb']:,.0f}" for k in labels) + " |",
        "| loads by name and predicts | " + " | ".join("yes" if runs[k]["loads_and_predicts"] else "no" for k in labels) + " |",
        "",
    ]
    for label in labels:
        base = [r for r in runs[label]["plugin_requires"] if "extra ==" not in r]
        lines.append(f"Plugin base requirements ({label}): " + ", ".join(f"`{r}`" for r in base) + ".")
        lines.append("")
    if len(labels) >= 2:
        first, second = labels[0], labels[1]
        gone = sorted(_names(runs[first]) - _names(runs[second]))
        added = sorted(_names(runs[second]) - _names(runs[first]))
        lines.append(f"Packages in `{first}` but not in `{second}` ({len(gone)}): " + (", ".join(gone) or "none") + ".")
        lines.append("")
        if added:
            lines.append(f"Packages in `{second}` but not in `{first}` ({len(added)}): " + ", ".join(added) + ".")
            lines.append("")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout whose plugin is installed (default: this one)")
    parser.add_argument("--label", default="after", help="name of this measurement in the JSON/Markdown")
    parser.add_argument("--workdir", type=Path, default=ROOT / "training" / "runtime_footprint",
                        help="scratch folder (the pipeline wheel is kept and reused)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "runtime_footprint",
                        help="writes <output>.json (merged by label) and <output>.md")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    wheel = pipeline_wheel(args.workdir.resolve())
    json_path = args.output.with_suffix(".json")
    data = json.loads(json_path.read_text()) if json_path.exists() else {"runs": {}}
    data.update(python=platform.python_version(), torch=torch_version(), pipeline_requires=wheel_requirements(wheel))
    data["runs"][args.label] = measure(source=args.source.resolve(), wheel=wheel, workdir=args.workdir.resolve())
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    args.output.with_suffix(".md").write_text(markdown(data))
    print(markdown(data))


if __name__ == "__main__":
    main()
