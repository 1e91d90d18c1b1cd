"""The project's error for problems the user can fix, and how such problems read as one line.

The core raises :class:`UserError` (or lets an ``OSError`` through); the command line turns
both into one ``✘ message`` line and exit code 1 in one place (``cli.py``), never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional


class UserError(ValueError):
    """Bad input or an unusable path; ``str()`` is the one line to show: it names the path
    or value and says what to do. A ``ValueError``, so callers catching that keep working."""


class SettingPathError(UserError):
    """A file a setting names that cannot serve it: ``str()`` is ``problem`` (naming ``path``),
    then what to do: ``fix`` (to the file, if anything can be done to it) or point ``setting``
    elsewhere. The library names the config setting; the command line, which knows the option
    that gave the path, says the same in the option's words (:meth:`for_option`)."""

    def __init__(self, path: Path | str, *, problem: str, setting: str, fix: str = "") -> None:
        self.path = Path(path)
        self.problem = problem
        self.setting = setting
        self.fix = fix
        super().__init__(self._line(f"point {setting} elsewhere"))

    def _line(self, elsewhere: str) -> str:
        return f"{self.problem}: {self.fix} or {elsewhere}" if self.fix else f"{self.problem}: {elsewhere}"

    def names(self, path: Path | str) -> bool:
        """Whether the error is about ``path`` (the same file, however it was written)."""
        return Path(path).resolve() == self.path.resolve()

    def for_option(self, option: str) -> UserError:
        """The same line for a path given with the command-line option ``option``."""
        return UserError(self._line(f"give {option} another file"))


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (line breaks included) as one space."""
    return " ".join(text.split())


def os_error_message(error: OSError, *, path: Path | str | None = None, action: str = "access") -> str:
    """'cannot ACTION PATH: REASON; check ...' for an OSError (``path`` defaults to the error's)."""
    target = path if path is not None else error.filename
    reason = error.strerror or str(error) or type(error).__name__
    if target is None:
        return one_line(f"{reason}; check the paths given and their permissions")
    return one_line(f"cannot {action} {target}: {reason}; check that the path exists and that you may {action} it")


def error_line(error: BaseException) -> str:
    """The one line the command line shows for a UserError or an OSError."""
    if isinstance(error, OSError):
        return os_error_message(error)
    return one_line(str(error)) or type(error).__name__


OptionName = Callable[..., str]


def keyword(field: str, value: Optional[Any] = None) -> str:
    """The library's name of an option: its keyword, with the value when given (``existing='resume'``)."""
    return field if value is None else f"{field}={value!r}"


class OptionError(UserError):
    """A UserError whose fix is an option. ``words(name)`` writes the message, naming each
    option as ``name(field)`` or ``name(field, value)``; ``str()`` names them as keywords
    (:func:`keyword`), and the command line writes them again as its flags."""

    def __init__(self, words: Callable[[OptionName], str]) -> None:
        super().__init__(words(keyword))
        self.words = words

    def __reduce__(self) -> Any:
        """Pickled (from a Ray worker to the driver) as the UserError of its library words."""
        return UserError, (str(self),)
