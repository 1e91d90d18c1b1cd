"""The local-LLM launcher's lifecycle against a stand-in server (no llama-cpp-python needed)."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator, List

import httpx
import pytest

from spacy_ner_project.commands.serve_llm import run_with_server, substitute_base_url
from spacy_ner_project.llm.server import (
    KNOWN_MODELS,
    LocalLLMServer,
    LocalServerError,
    PortError,
    ServerSettings,
    port_held_by_group,
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


def server_pid(log: Path) -> int:
    return int(log.read_text().split()[3])  # "fake server pid N ..."


Impostor = Callable[[str], int]


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch) -> List[subprocess.Popen]:
    """The processes the launcher starts in this test."""
    processes: List[subprocess.Popen] = []
    popen = subprocess.Popen

    def recording(*args: Any, **kwargs: Any) -> subprocess.Popen:
        processes.append(popen(*args, **kwargs))
        return processes[-1]

    monkeypatch.setattr("spacy_ner_project.llm.server.subprocess.Popen", recording)
    return processes


@pytest.fixture
def impostor() -> Iterator[Impostor]:
    """Start another program's server on a free 127.0.0.1 port, listing one model id in GET
    /v1/models (any other server a user may run: Ollama, a second serve-llm ...); its port."""
    servers = []

    def start(model_id: str) -> int:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                data = json.dumps({"object": "list", "data": [{"id": model_id, "object": "model"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return int(server.server_address[1])

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_serves_until_the_block_ends_then_stops(gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SERVER_MODE", "serve")
    with LocalLLMServer(settings(gguf, alias="tiny")) as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{server.base_url}/models", trust_env=False).json()["data"][0]["id"] == "tiny"
        pid = server.process.pid
        # the launcher sees that the server it started holds the port (where the system tells)
        assert port_held_by_group(server.port, pid) is (True if Path("/proc/net/tcp").is_file() else None)
        assert port_held_by_group(server.port, os.getpgid(0)) is not True
    assert not alive(pid) and server.process is None


def test_a_port_that_is_free_is_used(gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from spacy_ner_project.llm.server import free_port

    monkeypatch.setenv("FAKE_SERVER_MODE", "serve")
    port = free_port()
    with LocalLLMServer(settings(gguf, port=port)) as server:
        assert server.base_url == f"http://127.0.0.1:{port}/v1"


def test_a_port_in_use_is_refused_before_the_server_starts(gguf: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, impostor: Impostor) -> None:
    """Before: the launcher started its server, took the other server's answer for its own,
    reported success and sent every request there."""
    monkeypatch.setenv("FAKE_SERVER_MODE", "serve")
    monkeypatch.setenv("FAKE_SERVER_LOAD_S", "1")  # a real server loads its model before it binds
    port = impostor("tiny")
    log = tmp_path / "server.log"
    server = LocalLLMServer(settings(gguf, alias="tiny", port=port, log_path=log))
    with pytest.raises(PortError) as err:
        server.start()
    assert str(err.value) == f"port {port} on 127.0.0.1 is in use by another program; give another port, or none for a free one"
    assert (err.value.port, server.process) == (port, None) and not log.exists()  # nothing was started


def test_another_program_taking_the_port_while_the_server_starts_is_caught(
    gguf: Path, monkeypatch: pytest.MonkeyPatch, impostor: Impostor, launched: List[subprocess.Popen]
) -> None:
    """The port was free when checked, then another program (here listing the same model id)
    took it while the model loaded: its answer is not taken for the server's."""
    monkeypatch.setenv("FAKE_SERVER_MODE", "serve")
    monkeypatch.setenv("FAKE_SERVER_LOAD_S", "1")
    monkeypatch.setattr("spacy_ner_project.llm.server.check_port", lambda port: None)  # free when checked
    if not Path("/proc/net/tcp").is_file():
        pytest.skip("this system does not tell which process holds a port")
    port = impostor("tiny")
    with pytest.raises(PortError, match=rf"^port {port} on 127.0.0.1 is held by another program, which answered "
                                        rf"http://127.0.0.1:{port}/v1/models; give another port"):
        LocalLLMServer(settings(gguf, alias="tiny", port=port)).start()
    assert len(launched) == 1 and launched[0].poll() is not None  # the server started here was stopped


def test_a_server_listing_another_model_is_not_taken_for_ours(
    gguf: Path, monkeypatch: pytest.MonkeyPatch, impostor: Impostor, launched: List[subprocess.Popen]
) -> None:
    """Where the system cannot tell who holds the port, the model list tells a stranger apart."""
    monkeypatch.setenv("FAKE_SERVER_MODE", "serve")
    monkeypatch.setenv("FAKE_SERVER_LOAD_S", "1")
    monkeypatch.setattr("spacy_ner_project.llm.server.check_port", lambda port: None)
    monkeypatch.setattr("spacy_ner_project.llm.server.port_held_by_group", lambda port, pgid: None)
    port = impostor("llama3.1:8b")
    with pytest.raises(PortError) as err:
        LocalLLMServer(settings(gguf, alias="tiny", port=port)).start()
    assert "lists models ['llama3.1:8b'], not 'tiny'" in str(err.value) and "\n" not in str(err.value)
    assert len(launched) == 1 and launched[0].poll() is not None


def test_a_launcher_that_ignores_the_alias_is_named(gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SERVER_MODE", "serve")
    monkeypatch.setenv("FAKE_SERVER_LISTS", "something-else")
    monkeypatch.setattr("spacy_ner_project.llm.server.port_held_by_group", lambda port, pgid: True)
    with pytest.raises(LocalServerError, match=r"lists models \['something-else'\] at .*, not 'tiny': its launcher must"):
        LocalLLMServer(settings(gguf, alias="tiny")).start()


@pytest.mark.parametrize(
    "options,fragment",
    [({"n_ctx": -5}, "n_ctx must be at least 1, got -5"), ({"port": 70000}, "port must be a TCP port (1 to 65535), got 70000"),
     ({"n_threads": 0}, "n_threads must be at least 1"), ({"startup_timeout": 0}, "startup_timeout must be more than 0")],
)
def test_settings_out_of_bounds_are_one_line(options: dict, fragment: str) -> None:
    with pytest.raises(LocalServerError, match=re.escape(fragment)):
        ServerSettings(model="smollm2", **options)


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
    assert not alive(server_pid(log))


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


def test_server_option_uses_a_running_server_and_starts_nothing(tmp_path: Path, impostor: Impostor) -> None:
    """serve-llm --server URL: the command runs against URL; no launcher runs (none is set up here)."""
    import sys

    from typer.testing import CliRunner

    from spacy_ner_project.cli import app

    out = tmp_path / "url.txt"
    url = f"http://127.0.0.1:{impostor('other')}/v1"
    code = f"import os, sys; open({str(out)!r}, 'w').write(sys.argv[1] + ' ' + os.environ['LLM_BASE_URL'])"
    result = CliRunner().invoke(app, ["serve-llm", "--model", "nope-not-a-model", "--server", url, "--", sys.executable, "-c", code, "{base_url}"])
    assert result.exit_code == 0, result.output
    assert out.read_text() == f"{url} {url}" and "nothing started" in result.output
    bad = CliRunner().invoke(app, ["serve-llm", "--model", "x", "--server", "localhost:8080", "--", "true"])
    assert bad.exit_code == 1 and "give an OpenAI-compatible base URL" in bad.output


def test_the_server_leaves_the_client_a_core_by_default(gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from spacy_ner_project.llm import server as launcher

    monkeypatch.setattr(launcher.os, "cpu_count", lambda: 2)
    command = server_command(ServerSettings(model="gemma3-270m"), gguf=gguf, port=1, workdir=gguf.parent)
    assert command[command.index("--n_threads") + 1] == "1"
    monkeypatch.setattr(launcher.os, "cpu_count", lambda: 1)
    assert launcher.default_threads() == 1
    explicit = server_command(ServerSettings(model="gemma3-270m", n_threads=2), gguf=gguf, port=1, workdir=gguf.parent)
    assert explicit[explicit.index("--n_threads") + 1] == "2"
