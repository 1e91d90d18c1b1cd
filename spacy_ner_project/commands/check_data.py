"""``check-data``: the first step of the project's workflows on CoNLL data
(:func:`spacy_ner_project.conll.splits.check_splits`): every missing split file named at once."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from wasabi import msg

from spacy_ner_project.conll.splits import SPLIT_FILES, check_splits
from spacy_ner_project.errors import UserError


def check_data_cli(
    data_dir: Path = typer.Argument(..., help="Folder with the split files (the project's vars.data_dir)"),
    files: Optional[List[str]] = typer.Option(None, "--file", help=f"A file the folder must hold (repeatable; default: {', '.join(SPLIT_FILES)})"),
) -> None:
    """Check that a data folder holds every split file (train.txt, dev.txt, test.txt), naming each missing one."""
    try:
        paths = check_splits(data_dir, files or SPLIT_FILES)
    except UserError as err:  # the project's var that moves the folder, for spacy project run
        raise UserError(f"{err}; with spacy project run: --vars.data_dir FOLDER") from None
    msg.good(f"{data_dir}: {', '.join(path.name for path in paths)}")
