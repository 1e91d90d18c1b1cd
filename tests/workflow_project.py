"""A minimal copy of the project (project.yml and configs/) beside a tiny CoNLL corpus written
from tagged sentences: what the workflow tests run `spacy project run` in."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import List, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
Sentence = Sequence[Tuple[str, str]]  # (word, IOB2 tag)


def write_conll(path: Path, sentences: List[Sentence]) -> None:
    """One -DOCSTART- document of ``sentences`` in CoNLL-2003's four-column layout."""
    lines = ["-DOCSTART- -X- -X- O", ""]
    for sentence in sentences:
        lines += [f"{word} _ _ {tag}" for word, tag in sentence] + [""]
    path.write_text("\n".join(lines) + "\n", encoding="utf8")


def project_with_corpus(tmp_path: Path, sentences: List[Sentence]) -> Path:
    """``tmp_path/project`` (project.yml, configs/) and ``tmp_path/data`` with train/dev/test.txt."""
    copy = tmp_path / "project"
    copy.mkdir()
    shutil.copy(ROOT / "project.yml", copy / "project.yml")
    shutil.copytree(ROOT / "configs", copy / "configs")
    data = tmp_path / "data"
    data.mkdir()
    for name in ("train.txt", "dev.txt", "test.txt"):
        write_conll(data / name, sentences)
    return copy
