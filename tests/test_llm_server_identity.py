"""What the local server tells about itself (against the stand-in server, no llama-cpp-python
needed): its model id names the GGUF's SHA-256 and the chat template, and it never cuts a
streamed answer short for a waiting request."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import httpx
import pytest

from spacy_ner_project.commands.serve_llm import run_with_server
from spacy_ner_project.llm.server import HASH_DIGITS, LocalLLMServer, ServerSettings, file_sha256, model_alias, server_command

FAKE = (sys.executable, str(Path(__file__).parent / "fake_llama_server.py"))
WEIGHTS = b"GGUF" + bytes(range(256)) * 9000  # a little over 2 MB: hashed in several blocks


@pytest.fixture
def gguf(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(WEIGHTS)
    return path


def expected_alias(name: str, data: bytes, chat_format: str) -> str:
    return f"{name}@sha256:{hashlib.sha256(data).hexdigest()[:HASH_DIGITS]}+{chat_format}"


def test_the_served_model_id_names_the_weights_and_the_template(gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SERVER_MODE", "serve")
    settings = ServerSettings(model=str(gguf), launcher=FAKE, startup_timeout=20.0)
    with LocalLLMServer(settings) as server:  # started: the launcher found its alias in the list
        listed = httpx.get(f"{server.base_url}/models", trust_env=False).json()["data"][0]["id"]
    assert listed == server.alias == expected_alias("tiny", WEIGHTS, "gguf")
    assert model_alias(ServerSettings(model=str(gguf), chat_format="chatml"), gguf=gguf) == expected_alias("tiny", WEIGHTS, "chatml")
    assert model_alias(ServerSettings(model="gemma3-270m"), gguf=gguf) == expected_alias("gemma3-270m", WEIGHTS, "passthrough")
    assert model_alias(ServerSettings(model=str(gguf), alias="mine"), gguf=gguf) == "mine"  # a given alias as it is


def test_other_weights_in_the_same_file_are_another_model(gguf: Path) -> None:
    before = model_alias(ServerSettings(model=str(gguf)), gguf=gguf)
    other = WEIGHTS[:-1] + b"\x00"
    gguf.write_bytes(other)
    os.utime(gguf, ns=(1, 1))  # a file replaced in place: another modification time, the same size
    assert model_alias(ServerSettings(model=str(gguf)), gguf=gguf) == expected_alias("tiny", other, "gguf") != before


def test_a_file_is_hashed_once_per_process(gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert file_sha256(gguf) == hashlib.sha256(WEIGHTS).hexdigest()
    opened = []
    original = Path.open

    def counting(self: Path, *args: object, **kwargs: object) -> object:
        opened.append(self)
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "open", counting)
    assert file_sha256(gguf) == file_sha256(gguf.parent / ".." / gguf.parent.name / gguf.name)
    assert opened == []


def test_the_server_never_cuts_a_stream_for_a_waiting_request(gguf: Path) -> None:
    command = server_command(ServerSettings(model="gemma3-270m"), gguf=gguf, port=1, workdir=gguf.parent)
    assert command[command.index("--interrupt_requests") + 1] == "False"


def test_serve_llm_says_which_model_it_serves(gguf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("FAKE_SERVER_MODE", "serve")
    settings = ServerSettings(model=str(gguf), launcher=FAKE, startup_timeout=20.0)
    assert run_with_server(settings, [sys.executable, "-c", "pass"]) == 0
    out = capsys.readouterr().out
    assert f"serving '{expected_alias('tiny', WEIGHTS, 'gguf')}'" in out and "http://127.0.0.1:" in out
