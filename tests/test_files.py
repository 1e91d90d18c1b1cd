"""Output files: written atomically, with the mode the user's umask gives (not mkstemp's 0600)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterator

import pytest

from spacy_ner_project.files import write_atomic


@pytest.fixture
def umask() -> Iterator[None]:
    previous = os.umask(0o022)
    os.umask(previous)
    yield
    os.umask(previous)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_write_atomic_follows_umask(tmp_path: Path, umask: None, mask: int, mode: int) -> None:
    os.umask(mask)
    output = tmp_path / "out.spacy"
    write_atomic(b"data", output)
    assert stat.S_IMODE(output.stat().st_mode) == mode
    assert output.read_bytes() == b"data"
    assert [p.name for p in tmp_path.iterdir()] == ["out.spacy"]  # no temporary file left


def test_convert_output_is_readable_by_others(tmp_path: Path, umask: None) -> None:
    from spacy_ner_project.conll.conversion import convert

    os.umask(0o022)
    source = tmp_path / "train.txt"
    source.write_text("EU B-ORG\nrejects O\nGerman B-MISC\ncall O\n", encoding="utf-8")
    output = tmp_path / "train.spacy"
    convert(source, output)
    assert stat.S_IMODE(output.stat().st_mode) == 0o644
