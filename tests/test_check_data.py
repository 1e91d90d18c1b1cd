"""The data folder is checked before any work: every unusable split file named in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from spacy_ner_project.cli import app
from spacy_ner_project.conll.splits import SPLIT_FILES, check_splits, split_problems
from spacy_ner_project.errors import UserError


def test_every_problem_is_named_in_order(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text("")
    (tmp_path / "test.txt").mkdir()
    assert split_problems(tmp_path) == ["train.txt (empty)", "dev.txt (missing)", "test.txt (not a file)"]
    with pytest.raises(UserError, match=r"lacks train.txt \(empty\); dev.txt \(missing\); test.txt \(not a file\)"):
        check_splits(tmp_path)


def test_a_complete_folder_gives_its_paths(tmp_path: Path) -> None:
    for name in SPLIT_FILES:
        (tmp_path / name).write_text("EU B-ORG\n")
    assert check_splits(tmp_path) == [tmp_path / name for name in SPLIT_FILES]


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nope does not exist"):
        check_splits(tmp_path / "nope")


def test_the_command_is_one_line_naming_each_file_and_the_var(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["check-data", str(tmp_path)])
    assert result.exit_code == 1
    (line,) = [line for line in result.output.splitlines() if line.strip()]
    assert line.startswith("✘ ") and all(f"{name} (missing)" in line for name in SPLIT_FILES)
    assert "--vars.data_dir" in line
    ok = CliRunner().invoke(app, ["check-data", str(tmp_path), "--file", "only.txt"])
    assert ok.exit_code == 1 and "only.txt (missing)" in ok.output and "train.txt" not in ok.output.split("must hold")[0]
