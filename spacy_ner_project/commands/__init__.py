"""The command line's commands, one module each: typer functions that parse options, call the
core library and print. ``cli.COMMANDS`` registers them by name; a module is imported only when
its command runs (or its ``--help`` is asked for). What several commands share is here."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from spacy_ner_project.errors import SettingPathError


@contextmanager
def path_option(option: str, path: Optional[Path]) -> Iterator[None]:
    """A SettingPathError about ``path``, the file given with ``option``, in that option's words
    (the library's names the config setting the option overrides)."""
    try:
        yield
    except SettingPathError as err:
        if path is None or not err.names(path):
            raise
        raise err.for_option(option) from err
