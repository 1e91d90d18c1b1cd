"""``serve-llm``: start a local llama.cpp server (spacy_ner_project.llm.server), run a command
against it, stop the server.

    python -m spacy_ner_project serve-llm --model smollm2 -- \\
        python -m spacy_ner_project llm-evaluate configs/llm_ner.cfg corpus/conll2003/dev.spacy \\
        --output metrics/llm_local/dev --base-url {base_url}

``{base_url}`` in the command's arguments becomes the server's base URL
(http://127.0.0.1:PORT/v1), which is also exported as ``LLM_BASE_URL``. The exit code is the
command's; without a command the server runs until Ctrl-C. The server is stopped in every
case: the command's end, a failure, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from types import FrameType
from typing import List, Optional, Sequence

import typer
from wasabi import msg

from spacy_ner_project.errors import UserError
from spacy_ner_project.llm.server import KNOWN_MODELS, LocalLLMServer, ServerSettings

BASE_URL_PLACEHOLDER = "{base_url}"
BASE_URL_ENV = "LLM_BASE_URL"
_DEFAULTS = ServerSettings(model="")


def substitute_base_url(command: Sequence[str], base_url: str) -> List[str]:
    """The command with every ``{base_url}`` replaced by the server's base URL."""
    return [arg.replace(BASE_URL_PLACEHOLDER, base_url) for arg in command]


def _raise_on_sigterm(signum: int, frame: Optional[FrameType]) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_with_server(settings: ServerSettings, command: Sequence[str]) -> int:
    """Start the server, run ``command`` (or wait for Ctrl-C when empty), stop the server;
    returns the command's exit code (130 after Ctrl-C)."""
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)  # SIGTERM unwinds like Ctrl-C
    child: Optional[subprocess.Popen] = None
    try:
        with LocalLLMServer(settings) as server:
            msg.good(f"llama.cpp server for {settings.model!r} at {server.base_url}")
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


def serve_llm_cli(
    ctx: typer.Context,
    model: str = typer.Option(..., "--model", "-m", help=f"Known model ({', '.join(KNOWN_MODELS)}) or path to a .gguf file"),
    chat_format: Optional[str] = typer.Option(None, "--chat-format", help="'passthrough' (base models), 'gguf' (the GGUF's template) or a llama-cpp-python chat format; default: the model's"),
    n_ctx: int = typer.Option(_DEFAULTS.n_ctx, "--n-ctx", help="Context length in tokens (>= the config's context_length plus max_tokens)"),
    n_threads: Optional[int] = typer.Option(None, "--n-threads", help="CPU threads (default: all cores)"),
    startup_timeout: float = typer.Option(_DEFAULTS.startup_timeout, "--startup-timeout", help="Seconds to wait for the server to answer /v1/models"),
    log: Optional[Path] = typer.Option(None, "--log", help="Write the server's log here (default: a temporary file, kept on failure)"),
) -> None:
    """Start llama-cpp-python's OpenAI-compatible server on a free 127.0.0.1 port, run the
    command after `--` with {base_url} substituted, and stop the server."""
    settings = ServerSettings(
        model=model, chat_format=chat_format, n_ctx=n_ctx, n_threads=n_threads, startup_timeout=startup_timeout, log_path=log
    )
    try:  # a LocalServerError is a UserError: cli.py prints it as one line
        code = run_with_server(settings, list(ctx.args))
    except FileNotFoundError as err:  # the command after `--` does not exist
        raise UserError(f"cannot run {ctx.args[0]!r}: {err.strerror}; give a command on PATH after --") from err
    raise typer.Exit(code)
