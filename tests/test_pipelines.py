"""One way to load a pipeline (spacy_ner_project.pipelines): a folder, a package, blank:LANG or a
config file, with the same overrides and the same one-line errors in every command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict

import pytest
import spacy
from spacy.tokens import DocBin, Span
from typer.testing import CliRunner

from spacy_ner_project.cli import app
from spacy_ner_project.pipelines import PipelineError, load_pipeline, pipeline_config, source_kind

RULER_CONFIG = """
[nlp]
lang = "en"
pipeline = ["entity_ruler"]
batch_size = 5

[components]

[components.entity_ruler]
factory = "entity_ruler"

[initialize]

[initialize.components]

[initialize.components.entity_ruler]
patterns = [{"label": "LOC", "pattern": "Oslo"}]
"""


@pytest.fixture
def files(tmp_path: Path) -> Dict[str, Path]:
    nlp = spacy.blank("en")
    doc = nlp("Anna saw Oslo .")
    doc.ents = [Span(doc, 0, 1, "PER"), Span(doc, 2, 3, "LOC")]
    DocBin(docs=[doc]).to_disk(tmp_path / "gold.spacy")
    (tmp_path / "in.jsonl").write_text(json.dumps({"id": "a", "text": "Anna saw Oslo ."}) + "\n", encoding="utf-8")
    (tmp_path / "ruler.cfg").write_text(RULER_CONFIG, encoding="utf-8")
    (tmp_path / "empty").mkdir()
    return {
        "gold": tmp_path / "gold.spacy",
        "input": tmp_path / "in.jsonl",
        "config": tmp_path / "ruler.cfg",
        "empty_dir": tmp_path / "empty",
        "file": tmp_path / "in.jsonl",
        "missing": tmp_path / "nowhere",
    }


def one_line(*args: str | Path) -> str:
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("✘ "), result.output
    return lines[0]


@pytest.mark.parametrize("kind", ["empty_dir", "file", "missing", "blank:xx_nope"])
def test_every_command_says_the_same_line_for_a_source_that_is_no_pipeline(
    files: Dict[str, Path], tmp_path: Path, kind: str
) -> None:
    source = files.get(kind, kind)
    lines = {
        "evaluate": one_line("evaluate", source, files["gold"], "--output", tmp_path / "r1"),
        "llm-evaluate": one_line("llm-evaluate", source, files["gold"], "--output", tmp_path / "r2", "--unit", "docs"),
        "visualize": one_line("visualize", source, files["gold"], "-o", tmp_path / "v.html"),
        "annotate": one_line("annotate", source, files["input"], tmp_path / "out", "--format", "jsonl"),
    }
    assert len(set(lines.values())) == 1, lines
    line = lines["evaluate"]
    assert str(source) in line and " --" not in line  # the core names no command-line option
    assert ("unknown language code" in line) if kind.startswith("blank:") else ("nlp.to_disk" in line)
    assert not (tmp_path / "out").exists() and not (tmp_path / "r1").exists()


def test_annotate_runs_a_config_file_and_blank_like_evaluate(files: Dict[str, Path], tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["annotate", str(files["config"]), str(files["input"]), str(tmp_path / "out"), "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for path in (tmp_path / "out").glob("*.jsonl") for line in path.read_text().splitlines()]
    assert [(e["text"], e["label"]) for e in row["entities"]] == [("Oslo", "LOC")]
    result = CliRunner().invoke(app, ["annotate", "blank:en", str(files["input"]), str(tmp_path / "blank"), "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["evaluate", str(files["config"]), str(files["gold"]), "--output", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output


def test_overrides_apply_to_every_kind_of_source(files: Dict[str, Path], tmp_path: Path) -> None:
    spacy.blank("en").to_disk(tmp_path / "folder")
    overrides = {"nlp.batch_size": 7}
    for source in ("blank:en", str(tmp_path / "folder"), str(files["config"])):
        assert load_pipeline(source, overrides=overrides).batch_size == 7, source
        assert pipeline_config(source, overrides=overrides)["nlp"]["batch_size"] == 7, source
    assert [source_kind(s) for s in ("blank:en", str(tmp_path / "folder"), str(files["config"]))] == ["blank", "folder", "config"]
    with pytest.raises(PipelineError, match="no such pipeline folder"):
        source_kind(str(tmp_path / "nowhere"))
