"""Backbone names: the embedded MiniLM by path, local folders, hub names with offline fallback."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from thinc.api import Model

from spacy_ner_project.training import backbone
from spacy_ner_project.training.backbone import BackboneUnavailable, embedded_backbone_path, resolve_backbone
from spacy_ner_project.components.architectures import transformer_model_v1


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(backbone, "_hub_reachable", lambda timeout=3.0: pytest.fail("offline: no probe"))


def test_embedded_is_a_local_folder() -> None:
    path = embedded_backbone_path()
    assert (path / "config.json").exists() and (path / "vocab.txt").exists()
    assert resolve_backbone("embedded") == str(path)
    assert resolve_backbone("all-MiniLM-L6-v2") == str(path)


def test_local_folder_passes_through(tmp_path: Path) -> None:
    assert resolve_backbone(str(tmp_path)) == str(tmp_path)


def test_hub_name_falls_back_offline_with_a_warning(offline, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="spacy_ner_project.training.backbone"):
        assert resolve_backbone("distilbert-base-cased") == str(embedded_backbone_path())
    assert "distilbert-base-cased" in caplog.text and "falling back" in caplog.text


def test_hub_name_without_fallback_raises(offline) -> None:
    with pytest.raises(BackboneUnavailable, match="distilbert-base-cased.*embedded"):
        resolve_backbone("distilbert-base-cased", fallback=None)


def test_unreachable_hub_is_detected_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(backbone, "_hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(BackboneUnavailable):
        resolve_backbone("no-such-org/no-such-model", fallback=None)


def test_architecture_resolves_only_at_initialize(offline) -> None:
    model = transformer_model_v1("distilbert-base-cased", get_spans=lambda docs: [[d[:]] for d in docs], fallback="embedded")
    assert isinstance(model, Model)
    assert model.attrs["name"] == "distilbert-base-cased"  # nothing resolved or loaded yet
    model.initialize()
    assert model.get_dim("nO") == 384  # the embedded MiniLM
    assert model.attrs["name"] == "distilbert-base-cased"  # the config keeps the requested name
