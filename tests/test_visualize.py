"""The visualize command renders gold beside predictions in one self-contained page."""

from __future__ import annotations

from pathlib import Path

import spacy
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_ner_project.cli import app
from spacy_ner_project.conll import convert

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo"


def test_visualize_writes_gold_and_predictions(tmp_path: Path) -> None:
    data = tmp_path / "test.spacy"
    convert(DEMO / "test.iob", data)
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "LOC", "pattern": "Oslo"}, {"label": "ORG", "pattern": "Helix Motors"}])
    nlp.to_disk(tmp_path / "ruler")
    out = tmp_path / "viz" / "displacy.html"
    result = CliRunner().invoke(app, ["visualize", str(tmp_path / "ruler"), str(data), "--output", str(out), "--limit", "3"])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    first = next(DocBin().from_disk(data).get_docs(nlp.vocab))
    assert page.count('class="doc-grid"') == 3
    assert first.ents[0].text.split()[0] in page
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")


def test_visualize_reports_missing_data(tmp_path: Path) -> None:
    spacy.blank("en").to_disk(tmp_path / "blank")
    result = CliRunner().invoke(app, ["visualize", str(tmp_path / "blank"), str(tmp_path / "none.spacy"), "-o", str(tmp_path / "x.html")])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert result.output.startswith(f"✘ {tmp_path / 'none.spacy'}: not found")
    assert not (tmp_path / "x.html").exists()
