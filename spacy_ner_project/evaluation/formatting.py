"""The project's one way to show a share as a percentage (reports, console, benchmarks)."""

from __future__ import annotations

from typing import Optional

MISSING = "-"


def percent(value: Optional[float], *, digits: int = 2) -> str:
    """``0.91234`` as ``"91.23"`` (``digits`` decimals); None as ``"-"``."""
    return MISSING if value is None else f"{100 * value:.{digits}f}"


def percent_of(part: float, whole: float, *, digits: int = 2) -> str:
    """``part / whole`` as :func:`percent`; ``"-"`` when ``whole`` is 0."""
    return percent(part / whole if whole else None, digits=digits)


def percent_value(value: Optional[float], *, digits: int = 2) -> Optional[float]:
    """``0.91234`` as the number ``91.23`` (for JSON); None stays None."""
    return None if value is None else round(100 * value, digits)
