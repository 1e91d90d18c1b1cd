"""spaCy's own commands on the project's configs, as spaCy users run them before training:
``spacy debug config`` and ``spacy debug data`` on every config in configs/ against a small
corpus (the invented demo corpus), and ``nlp.initialize()`` in user code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest
import spacy
from spacy.tokens import DocBin
from spacy.training import Example
from spacy.util import load_config

from spacy_ner_project.conll import convert
from spacy_ner_project.training.overrides import TOTAL_STEPS, training_overrides

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.cfg"))
TRAINED = [path for path in CONFIGS if "ner" in load_config(path, interpolate=False)["nlp"]["pipeline"]]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    out = tmp_path_factory.mktemp("corpus")
    paths = {split: out / f"{split}.spacy" for split in ("train", "dev")}
    for split, path in paths.items():
        convert(ROOT / "assets" / "demo" / f"{split}.iob", path, n_sents=1)  # one doc per sentence: enough examples for debug data
    return paths


@pytest.fixture(scope="module")
def source_pipeline(corpus: Dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved transformer pipeline (initialised, not trained) for configs that take their
    components from one (configs/ner_trf_distilled.cfg: paths.distilled)."""
    config = load_config(ROOT / "configs" / "ner_trf.cfg", overrides={"paths.train": str(corpus["train"]), "paths.dev": str(corpus["dev"])}, interpolate=False)
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    docs = list(DocBin().from_disk(corpus["train"]).get_docs(nlp.vocab))[:8]
    nlp.initialize(lambda: [Example(nlp.make_doc(doc.text), doc) for doc in docs])
    path = tmp_path_factory.mktemp("source") / "pipeline"
    nlp.to_disk(path)
    return path


def path_args(config: Path, corpus: Dict[str, Path], source: Path) -> list:
    """--paths.train/--paths.dev, and --paths.distilled where the config has that path."""
    args = ["--paths.train", str(corpus["train"]), "--paths.dev", str(corpus["dev"])]
    return args + (["--paths.distilled", str(source)] if "distilled" in load_config(config, interpolate=False)["paths"] else [])


def spacy_command(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "spacy", *args], capture_output=True, text=True,
                            env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"spacy {' '.join(args)} exited {result.returncode}:\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]
    return output


@pytest.mark.parametrize("config", TRAINED, ids=[path.name for path in TRAINED])
def test_spacy_debug_data_runs_on_every_trained_config(config: Path, corpus: Dict[str, Path], source_pipeline: Path) -> None:
    output = spacy_command("debug", "data", str(config), *path_args(config, corpus, source_pipeline))
    assert "Training stats" in output and "Named Entity Recognition" in output


@pytest.mark.parametrize("config", TRAINED, ids=[path.name for path in TRAINED])
def test_spacy_debug_config_runs_on_every_trained_config(config: Path, corpus: Dict[str, Path], source_pipeline: Path) -> None:
    output = spacy_command("debug", "config", str(config), *path_args(config, corpus, source_pipeline))
    assert "Config is valid" in output


ASSEMBLED = [path for path in CONFIGS if path not in TRAINED]


@pytest.mark.parametrize("config", ASSEMBLED, ids=[path.name for path in ASSEMBLED])
def test_spacy_assemble_runs_on_every_llm_config(config: Path, corpus: Dict[str, Path], tmp_path: Path) -> None:
    """The LLM config is an assemble config, as spacy-llm's are (no [training]: spacy debug config
    and spacy train are for training configs): spacy assemble saves a pipeline that loads, offline."""
    spacy_command("assemble", str(config), str(tmp_path / "llm"), "--paths.train", str(corpus["train"]))
    nlp = spacy.load(tmp_path / "llm")
    assert nlp.pipe_names == ["llm"]


@pytest.mark.parametrize("config", TRAINED, ids=[path.name for path in TRAINED])
def test_max_steps_and_the_schedule_agree(config: Path, tmp_path: Path) -> None:
    raw = load_config(config, interpolate=False)
    rate = raw["training"]["optimizer"]["learn_rate"]
    if isinstance(rate, dict) and "total_steps" in rate:
        assert rate["total_steps"] == raw["training"]["max_steps"]
        assert training_overrides(config, train=tmp_path, dev=tmp_path, max_steps=40)[TOTAL_STEPS] == 40


def test_nlp_initialize_in_user_code(corpus: Dict[str, Path]) -> None:
    """What spacy debug data does: initialize a pipeline built from the config, optimizer included."""
    config = load_config(ROOT / "configs" / "ner_trf.cfg", overrides={"paths.train": str(corpus["train"]), "paths.dev": str(corpus["dev"]), "corpora.train.limit": 4}, interpolate=False)
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    docs = list(DocBin().from_disk(corpus["train"]).get_docs(nlp.vocab))[:8]
    nlp.initialize(lambda: [Example(nlp.make_doc(doc.text), doc) for doc in docs])  # the optimizer is built here
    assert nlp.pipe_names == ["transformer", "ner"] and set(nlp.get_pipe("ner").labels) <= {"PER", "ORG", "LOC", "MISC"}
    assert nlp.get_pipe("ner").labels
