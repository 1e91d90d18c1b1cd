"""Bounds of the commands' number options, checked while the options are parsed.

``typer.Option(..., callback=at_least(1))``: a value out of bounds is a UserError naming the
option and the bound (``--n-ctx -5: must be 1 or more``), which ``cli.py`` shows as one ``✘``
line with exit code 1, before the command loads anything (typer's own ``min=`` would be a
usage box with exit code 2). ``None`` (an optional option left out) always passes.
"""

from __future__ import annotations

from typing import Callable, Optional

import typer

from spacy_ner_project.errors import UserError

Check = Callable[[typer.CallbackParam, Optional[float]], Optional[float]]  # an int option's value passes through as it is


def option_name(param: typer.CallbackParam) -> str:
    """The option's long name (``--n-ctx``), as the user knows it."""
    names = [name for name in getattr(param, "opts", []) if name.startswith("--")]
    return max(names, key=len) if names else f"--{(param.name or '').replace('_', '-')}"


def _bounded(test: Callable[[float], bool], rule: str) -> Check:
    """A callback that passes a value for which ``test`` holds and refuses any other with ``rule``."""

    def check(param: typer.CallbackParam, value: Optional[float]) -> Optional[float]:
        if value is not None and not test(value):
            raise UserError(f"{option_name(param)} {_number(value)}: must be {rule}")
        return value

    return check


def _number(value: float) -> str:
    """A number as it would be typed: 70000, -1, 0.5 (not 0.0 for a float option given 0)."""
    return str(value) if isinstance(value, int) or not value.is_integer() else str(int(value))


def _shown(value: float, meaning: str) -> str:
    return f"{_number(value)} ({meaning})" if meaning else _number(value)


def at_least(minimum: float, *, meaning: str = "") -> Check:
    """Values of ``minimum`` or more; ``meaning`` says what the minimum means (``"all"``)."""
    return _bounded(lambda value: value >= minimum, f"{_shown(minimum, meaning)} or more")


def above(bound: float) -> Check:
    """Values greater than ``bound`` (seconds, shares)."""
    return _bounded(lambda value: value > bound, f"more than {_number(bound)}")


def between(minimum: float, maximum: float) -> Check:
    """Values from ``minimum`` to ``maximum``, both included."""
    return _bounded(lambda value: minimum <= value <= maximum, f"from {_number(minimum)} to {_number(maximum)}")
