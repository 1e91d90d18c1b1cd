"""Shared fixtures: a local chat-completions server (see tests/chat_server.py), as it is and as
the misbehaving servers of the fault tests (drip, a long Retry-After, 500 then 200)."""

from __future__ import annotations

from typing import Iterator

import pytest
from chat_server import ChatServer, drip, http_error

# The drip server's pace: a byte every DRIP_INTERVAL seconds, each read well within a timeout
# of a few seconds, the whole answer (some 300 bytes) minutes.
DRIP_INTERVAL = 0.5
# What the rate-limited server asks for: an hour.
LONG_RETRY_AFTER = "3600"
# Prompts with this in them get a 500 on their first request from the flaky server.
FLAKY = "flaky"


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    """A started ChatServer on 127.0.0.1 answering "{}"; set .responder/.latency or script faults."""
    with ChatServer() as server:
        yield server


@pytest.fixture
def drip_server(chat_server: ChatServer) -> ChatServer:
    """A server that sends every answer one byte every DRIP_INTERVAL seconds."""
    chat_server.fail_every("", drip(DRIP_INTERVAL))
    return chat_server


@pytest.fixture
def rate_limited_server(chat_server: ChatServer) -> ChatServer:
    """A server that answers every chat request 429 with ``Retry-After: 3600`` (LONG_RETRY_AFTER)."""
    chat_server.fail_every("", http_error(429, retry_after=LONG_RETRY_AFTER))
    return chat_server


@pytest.fixture
def flaky_server(chat_server: ChatServer) -> ChatServer:
    """A server that answers "answer PROMPT", but 500 to the first request of each prompt with
    FLAKY in it (some documents fail once, then succeed)."""
    chat_server.responder = lambda prompt: f"answer {prompt}"
    chat_server.fail_first(FLAKY, http_error(500))
    return chat_server


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    """Every test that starts Ray (the ``ray_session`` fixture) carries the ``ray`` marker, so
    ``python -m pytest -m ray`` selects exactly those."""
    for item in items:
        if "ray_session" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ray)



def _drop_permission_override() -> None:
    """In the child, before exec: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the
    bounding set, so root, too, is stopped by mode bits (prctl PR_CAPBSET_DROP)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def run_unprivileged(args: list, *, cwd: str) -> "subprocess.CompletedProcess[str]":
    """Run ``args`` so that mode bits bind it: as is for an ordinary user; for root, without the
    capabilities that override them. A test of a read-only folder can then fail under both."""
    import os
    import subprocess

    preexec = _drop_permission_override if os.geteuid() == 0 else None
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, preexec_fn=preexec)
