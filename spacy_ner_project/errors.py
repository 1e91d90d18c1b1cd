"""The project's error for problems the user can fix, and how such problems read as one line.

The core raises :class:`UserError` (or lets an ``OSError`` through); the command line turns
both into one ``✘ message`` line and exit code 1 in one place (``cli.py``), never a traceback.
"""

from __future__ import annotations

from pathlib import Path


class UserError(ValueError):
    """Bad input or an unusable path; ``str()`` is the one line to show: it names the path
    or value and says what to do. A ``ValueError``, so callers catching that keep working."""


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
