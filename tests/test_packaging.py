"""Packaging a trained pipeline: the staged copy carries the plugin's author and licence and its
LICENSE file; the trained folder is never changed. (The wheels themselves are built by the `all`
workflow test in tests/test_project.py and installed into a fresh venv by the slow test in
tests/test_training.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import spacy
import srsly

from spacy_ner_project.errors import UserError
from spacy_ner_project.packaging import Packages, plugin_meta, stage_pipeline

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "ORG", "pattern": "Helix Motors"}])
    nlp.to_disk(tmp_path / "model-best")
    return tmp_path / "model-best"


def test_plugin_meta_has_author_and_licence() -> None:
    meta = plugin_meta()
    assert meta["license"] == "MIT" and meta["author"] and "@" in meta["email"]


def test_staged_pipeline_has_meta_and_licence_and_the_original_is_unchanged(pipeline: Path, tmp_path: Path) -> None:
    original = srsly.read_json(pipeline / "meta.json")
    staged = stage_pipeline(pipeline, tmp_path / "staged", license_file=ROOT / "LICENSE")
    meta = srsly.read_json(staged / "meta.json")
    assert meta["license"] == "MIT" and meta["author"] == plugin_meta()["author"]
    assert (staged / "LICENSE").read_text() == (ROOT / "LICENSE").read_text()
    assert srsly.read_json(pipeline / "meta.json") == original and not (pipeline / "LICENSE").exists()
    assert spacy.load(staged).pipe_names == ["entity_ruler"]


def test_a_pipelines_own_meta_wins(pipeline: Path, tmp_path: Path) -> None:
    meta = srsly.read_json(pipeline / "meta.json")
    srsly.write_json(pipeline / "meta.json", {**meta, "author": "Someone Else", "license": "CC BY 4.0"})
    staged = srsly.read_json(stage_pipeline(pipeline, tmp_path / "staged", license_file=None) / "meta.json")
    assert (staged["author"], staged["license"]) == ("Someone Else", "CC BY 4.0")


def test_a_folder_without_meta_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="has no meta.json"):
        stage_pipeline(tmp_path / "empty", tmp_path / "staged", license_file=None)


def test_install_line_finds_the_plugin_beside_the_pipeline(tmp_path: Path) -> None:
    dist = tmp_path / "en_x-0.1.0" / "dist"
    packages = Packages(pipeline_wheel=dist / "en_x-0.1.0-py3-none-any.whl", plugin_wheel=dist / "spacy_ner_project-0.1.0-py3-none-any.whl")
    assert packages.install_line == f"pip install --find-links {dist} {dist / 'en_x-0.1.0-py3-none-any.whl'}"
