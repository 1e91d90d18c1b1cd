"""The command line's commands, one module each: typer functions that parse options, call the
core library and print. ``cli.COMMANDS`` registers them by name; a module is imported only when
its command runs (or its ``--help`` is asked for). What several commands share is here."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Tuple

from spacy_ner_project.errors import OptionError, OptionName, SettingPathError, UserError


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


def flag_namer(
    flags: Mapping[str, str] = {}, value_flags: Mapping[Tuple[str, Any], str] = {}
) -> OptionName:
    """The command line's name of an option the library names by its keyword (and value):
    ``flags`` and ``value_flags`` where a command's flag is not ``--`` + the keyword in dashes."""

    def flag(field: str, value: Optional[Any] = None) -> str:
        if (field, value) in value_flags:
            return value_flags[(field, value)]
        name = flags.get(field, "--" + field.replace("_", "-"))
        return name if value is None else f"{name} {value}"

    return flag


@contextmanager
def in_flags(flags: Mapping[str, str] = {}, value_flags: Mapping[Tuple[str, Any], str] = {}) -> Iterator[None]:
    """The core's OptionError in the words of the command's flags (:func:`flag_namer`)."""
    try:
        yield
    except OptionError as err:
        raise UserError(err.words(flag_namer(flags, value_flags))) from err
