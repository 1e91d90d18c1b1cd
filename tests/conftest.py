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
