"""A data folder's split files, checked all at once before any work: every file that is
missing, not a file or empty is named in one error, with what to do."""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

from spacy_ner_project.errors import UserError

SPLIT_FILES = ("train.txt", "dev.txt", "test.txt")  # the names the project reads (CoNLL-2003's README)


def split_problems(folder: Path, names: Sequence[str] = SPLIT_FILES) -> List[str]:
    """'NAME (missing)', 'NAME (a folder)' or 'NAME (empty)' for each unusable file, in order."""
    problems = []
    for name in names:
        path = folder / name
        if not path.exists():
            problems.append(f"{name} (missing)")
        elif not path.is_file():
            problems.append(f"{name} (not a file)")
        elif path.stat().st_size == 0:
            problems.append(f"{name} (empty)")
    return problems


def check_splits(folder: Path, names: Sequence[str] = SPLIT_FILES) -> List[Path]:
    """The split files' paths, or one UserError naming every unusable one and what to do."""
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        raise UserError(
            f"data folder {folder} {what}; it must hold {', '.join(names)} in CoNLL format "
            "(CoNLL-2003's licence forbids shipping it: place the files there, or point the project at another folder)"
        )
    problems = split_problems(folder, names)
    if problems:
        raise UserError(
            f"data folder {folder} lacks {'; '.join(problems)}: it must hold {', '.join(names)} in CoNLL format "
            "(place the files there, or point the project at a folder that has them)"
        )
    return [folder / name for name in names]
