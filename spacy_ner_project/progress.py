"""The project's one progress bar: tqdm on stderr, quiet when stderr is not a terminal."""

from __future__ import annotations

import sys
from typing import Iterable, Iterator, Optional, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def shown(*, enabled: bool = True) -> bool:
    """Whether a bar would be drawn: asked for, and stderr is a terminal."""
    return enabled and sys.stderr.isatty()


def bar(*, total: Optional[int] = None, desc: str = "", unit: str = "it", enabled: bool = True) -> tqdm:
    """A tqdm bar on stderr; disabled unless ``enabled`` and stderr is a terminal."""
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, disable=not shown(enabled=enabled))


def progress(iterable: Iterable[T], *, total: Optional[int] = None, desc: str = "", enabled: bool = True) -> Iterator[T]:
    """``iterable``, advancing a bar per item while it is consumed (see :func:`bar`)."""
    with bar(total=total, desc=desc, enabled=enabled) as meter:
        for item in iterable:
            yield item
            meter.update(1)
