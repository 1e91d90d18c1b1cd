"""Shared fixtures: a local chat-completions server (see tests/chat_server.py)."""

from __future__ import annotations

from typing import Iterator

import pytest
from chat_server import ChatServer


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    """A started ChatServer on 127.0.0.1 answering "{}"; set .responder/.latency or script faults."""
    with ChatServer() as server:
        yield server


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    """Every test that starts Ray (the ``ray_session`` fixture) carries the ``ray`` marker, so
    ``python -m pytest -m ray`` selects exactly those."""
    for item in items:
        if "ray_session" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ray)
