"""The local-LLM launcher's lifecycle against a stand-in server (no llama-cpp-python needed)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import pytest

from spacy_ner_project.commands.serve_llm import run_with_server, substitute_base_url
from spacy_ner_project.llm.server import (
    KNOWN_MODELS,
    LocalLLMServer,
    LocalServerError,
    ServerSettings,
    resolve_model,
    server_command,
)

FAKE = (sys.executable, str(Path(__file__).parent / "fake_llama_server.py"))


@pytest.fixture
def gguf(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF")
    return path


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def settings(gguf: Path, **options: object) -> ServerSettings:
    return ServerSettings(**{"model": str(gguf), "launcher": FAKE, "startup_timeout": 20.0, **options})  # type: ignore[arg-type]


def test_serves_until_the_block_ends_then_stops(gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SERVER_MODE", "serve")
    with LocalLLMServer(settings(gguf, alias="tiny")) as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{server.base_url}/models", trust_env=False).json()["data"][0]["id"] == "tiny"
        pid = server.process.pid
    assert not alive(pid) and server.process is None


def test_stops_the_server_when_the_block_raises(gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SERVER_MODE", "serve")
    with pytest.raises(KeyboardInterrupt):
        with LocalLLMServer(settings(gguf)) as server:
            pid = server.process.pid
            raise KeyboardInterrupt
    assert not alive(pid)


def test_a_server_that_exits_gives_one_line_with_the_log_tail(gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SERVER_MODE", "exit")
    with pytest.raises(LocalServerError) as err:
        LocalLLMServer(settings(gguf)).start()
    message = str(err.value)
    assert "exited with code 3" in message and "cannot load the model file" in message and "\n" not in message


def test_a_server_that_never_answers_is_killed_after_the_timeout(gguf: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FAKE_SERVER_MODE", "hang")
    log = tmp_path / "server.log"
    with pytest.raises(LocalServerError, match=r"did not answer .*/v1/models within 1s"):
        LocalLLMServer(settings(gguf, startup_timeout=1.0, log_path=log)).start()
    pid = int(log.read_text().split()[3])  # "fake server pid N ..."
    assert not alive(pid)


def test_run_with_server_substitutes_the_base_url_and_returns_the_exit_code(gguf: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FAKE_SERVER_MODE", "serve")
    out = tmp_path / "out.txt"
    script = "import os, sys; open(sys.argv[1], 'w').write(sys.argv[2] + ' ' + os.environ['LLM_BASE_URL']); sys.exit(7)"
    code = run_with_server(settings(gguf), [sys.executable, "-c", script, str(out), "{base_url}/models"])
    url, env_url = out.read_text().split()
    assert code == 7 and url == f"{env_url}/models" and env_url.startswith("http://127.0.0.1:")


def test_model_names_and_paths(gguf: Path) -> None:
    assert resolve_model(str(gguf)) == gguf
    with pytest.raises(LocalServerError, match="neither a known name"):
        resolve_model("no-such-model")
    passthrough = server_command(ServerSettings(model="gemma3-270m"), gguf=gguf, port=1, workdir=gguf.parent)
    assert passthrough[passthrough.index("--chat_format") + 1] == "hf-tokenizer-config"
    assert "--chat_format" not in server_command(ServerSettings(model="smollm2"), gguf=gguf, port=1, workdir=gguf.parent)
    assert set(KNOWN_MODELS) == {"gemma3-270m", "smollm2"}
    assert substitute_base_url(["--base-url", "{base_url}"], "http://x/v1") == ["--base-url", "http://x/v1"]
