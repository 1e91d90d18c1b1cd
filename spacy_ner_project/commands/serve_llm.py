"""``serve-llm``: start a local llama.cpp server (spacy_ner_project.llm.server), run a command
against it, stop the server.

    python -m spacy_ner_project serve-llm --model smollm2 -- \\
        python -m spacy_ner_project llm-evaluate configs/llm_ner.cfg corpus/conll2003/dev.spacy \\
        --output metrics/llm_local/dev --base-url {base_url}

``{base_url}`` in the command's arguments becomes the server's base URL
(http://127.0.0.1:PORT/v1, a free port unless ``--port`` names one), which is also exported as
``LLM_BASE_URL``. The server lists its model as ``NAME@sha256:HASH+CHAT_FORMAT`` (the GGUF's
hash and the template), which keys the response cache: a rerun on another port hits it. The exit code is the
command's; without a command the server runs until Ctrl-C. The server is stopped in every
case: the command's end, a failure, Ctrl-C or SIGTERM.

``--server URL`` uses a server that is already running (any OpenAI-compatible base URL)
instead of starting one: ``{base_url}`` becomes URL and nothing is started or stopped, so one
command line in project.yml serves the local model by default (``--server local``) and any
other server by a var (the bootstrap workflow).
"""

from __future__ import annotations

import os
import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Iterator, List, Optional, Sequence

import typer
from wasabi import msg

from spacy_ner_project.commands.bounds import above, at_least, between
from spacy_ner_project.errors import UserError
from spacy_ner_project.llm.server import HOST, KNOWN_MODELS, LocalLLMServer, PortError, ServerSettings

BASE_URL_PLACEHOLDER = "{base_url}"
BASE_URL_ENV = "LLM_BASE_URL"
_DEFAULTS = ServerSettings(model="")


def substitute_base_url(command: Sequence[str], base_url: str) -> List[str]:
    """The command with every ``{base_url}`` replaced by the server's base URL, and a leading
    ``python`` run by this interpreter (as ``spacy project run`` runs its scripts, so the
    command finds the same packages whether or not a virtual environment is activated)."""
    import sys

    substituted = [arg.replace(BASE_URL_PLACEHOLDER, base_url) for arg in command]
    if substituted and substituted[0] in ("python", "python3"):
        substituted[0] = sys.executable
    return substituted


def _raise_on_sigterm(signum: int, frame: Optional[FrameType]) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


LOCAL = "local"  # --server's value that starts the local server


def run_against(base_url: str, command: Sequence[str]) -> int:
    """Run ``command`` against a server that is already running; returns its exit code (130
    after Ctrl-C)."""
    if not command:
        raise UserError(f"--server {base_url} starts nothing: give a command after --")
    if not base_url.startswith(("http://", "https://")):
        raise UserError(f"--server {base_url!r}: give an OpenAI-compatible base URL (http://HOST:PORT/v1) or '{LOCAL}'")
    msg.info(f"using the server at {base_url} (nothing started)")
    child = subprocess.Popen(substitute_base_url(command, base_url), env={**os.environ, BASE_URL_ENV: base_url})
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.wait()  # the terminal's Ctrl-C reached it too
        return 130


def run_with_server(settings: ServerSettings, command: Sequence[str]) -> int:
    """Start the server, run ``command`` (or wait for Ctrl-C when empty), stop the server;
    returns the command's exit code (130 after Ctrl-C)."""
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)  # SIGTERM unwinds like Ctrl-C
    child: Optional[subprocess.Popen] = None
    try:
        with LocalLLMServer(settings) as server:
            # the served model id names the weights (SHA-256) and the chat template: the cache's key
            msg.good(f"llama.cpp server for {settings.model!r} at {server.base_url}, serving {server.alias!r}")
            if not command:
                msg.info("serving until Ctrl-C")
                while True:
                    signal.pause()
            child = subprocess.Popen(
                substitute_base_url(command, server.base_url), env={**os.environ, BASE_URL_ENV: server.base_url}
            )
            return child.wait()
    except KeyboardInterrupt:
        if child is not None and child.poll() is None:
            child.terminate()  # a terminal Ctrl-C reached it too; SIGTERM did not
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        msg.warn("interrupted: the server was stopped")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def port_option(port: Optional[int]) -> Iterator[None]:
    """The core's PortError in the words of the ``--port`` option, when the user gave it."""
    try:
        yield
    except PortError as err:
        if port is None:
            raise
        raise UserError(f"--port {port}: {HOST}:{port} {err.reason}; give another port, or leave --port out for a free one") from err


def serve_llm_cli(
    ctx: typer.Context,
    model: str = typer.Option(..., "--model", "-m", help=f"Known model ({', '.join(KNOWN_MODELS)}) or path to a .gguf file"),
    chat_format: Optional[str] = typer.Option(None, "--chat-format", help="'passthrough' (base models), 'gguf' (the GGUF's template) or a llama-cpp-python chat format; default: the model's"),
    n_ctx: int = typer.Option(_DEFAULTS.n_ctx, "--n-ctx", help="Context length in tokens (>= the config's context_length plus max_tokens)", callback=at_least(1)),
    n_threads: Optional[int] = typer.Option(None, "--n-threads", help="CPU threads (default: all cores but one, which the client keeps)", callback=at_least(1)),
    port: Optional[int] = typer.Option(None, "--port", help=f"Port on {HOST} (default: a free one); refused when another program holds it", callback=between(1, 65535)),
    startup_timeout: float = typer.Option(_DEFAULTS.startup_timeout, "--startup-timeout", help="Seconds to wait for the server to answer /v1/models", callback=above(0)),
    log: Optional[Path] = typer.Option(None, "--log", help="Write the server's log here (default: a temporary file, kept on failure)"),
    server: str = typer.Option(LOCAL, "--server", help=f"'{LOCAL}' starts the server; a base URL (http://HOST:PORT/v1) uses one already running instead"),
) -> None:
    """Start llama-cpp-python's OpenAI-compatible server on 127.0.0.1 (a free port unless --port),
    run the command after `--` with {base_url} substituted, and stop the server."""
    try:  # a LocalServerError is a UserError: cli.py prints it as one line
        if server != LOCAL:
            code = run_against(server, list(ctx.args))
        else:
            settings = ServerSettings(
                model=model, chat_format=chat_format, n_ctx=n_ctx, n_threads=n_threads, port=port,
                startup_timeout=startup_timeout, log_path=log,
            )
            with port_option(port):
                code = run_with_server(settings, list(ctx.args))
    except FileNotFoundError as err:  # the command after `--` does not exist
        raise UserError(f"cannot run {ctx.args[0]!r}: {err.strerror}; give a command on PATH after --") from err
    raise typer.Exit(code)

