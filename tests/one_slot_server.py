"""A scripted one-slot chat-completions server that generates as llama-cpp-python's does.

    with OneSlotServer(token_interval=0.01) as server:
        server.script("runaway", LONG_ANSWER, "short answer")  # per generation of a matching prompt
        model = OpenAICompatibleModel(base_url=server.base_url, model="m")
        ...
        server.generations  # what the server did, request by request

Like ``python -m llama_cpp.server`` 0.3.x (its app.py): generations take turns behind one lock,
in arrival order; an answer is generated a token (``chars_per_token`` characters) every
``token_interval`` seconds; a request whose client is gone by its turn is not generated. A
non-streamed generation runs to its end even after its client went away (llama-cpp-python runs
it in a thread pool and writes the answer at the end), holding the slot meanwhile; a streamed
one (``"stream": true``: Server-Sent Events, ``data: [DONE]`` last) checks after every token
whether its client disconnected and stops there. With ``interrupt_requests`` (the real server's
default) a streamed generation also ends, with ``[DONE]`` and no finish reason, as soon as
another request waits for the slot. Every generation is recorded (:class:`Generation`): when
its request arrived, started and ended, when the server saw its client gone, the tokens made.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Deque, Dict, List, Optional

Responder = Callable[[str], str]
MODELS = [{"id": "one-slot-model", "object": "model", "owned_by": "one-slot"}]


@dataclass
class Generation:
    """One chat request as the server saw it (times from ``time.monotonic()``)."""

    prompt: str
    stream: bool
    arrived: float
    started: float = 0.0
    ended: float = 0.0
    tokens: int = 0  # tokens generated
    planned: int = 0  # tokens of the whole answer
    client_gone: Optional[float] = None  # when the server first saw its client gone
    cancelled: bool = False  # stopped before its last token, its client being gone
    interrupted: bool = False  # ended early because another request waited (interrupt_requests)

    @property
    def waited(self) -> float:
        """Seconds between arriving and getting the slot."""
        return self.started - self.arrived

    @property
    def dead_work(self) -> float:
        """Seconds the slot was held generating for a client that had gone (0: none)."""
        return 0.0 if self.client_gone is None else max(0.0, self.ended - self.client_gone)


class _Slot:
    """One generation at a time, in arrival order; says whether anyone waits."""

    def __init__(self) -> None:
        self._turns: Deque[object] = deque()
        self._busy = False
        self._condition = threading.Condition()

    def acquire(self) -> None:
        ticket = object()
        with self._condition:
            self._turns.append(ticket)
            self._condition.wait_for(lambda: not self._busy and self._turns[0] is ticket)
            self._turns.popleft()
            self._busy = True

    def release(self) -> None:
        with self._condition:
            self._busy = False
            self._condition.notify_all()

    def waiting(self) -> bool:
        with self._condition:
            return bool(self._turns)


def client_gone(connection: socket.socket) -> bool:
    """Whether the peer closed (or reset) the connection: readable, with nothing to read."""
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def chunk(content: Optional[str], *, finish_reason: Optional[str] = None, role: bool = False) -> Dict[str, Any]:
    """A ``chat.completion.chunk`` as llama-cpp-python streams it."""
    delta: Dict[str, Any] = {"role": "assistant"} if role else ({} if content is None else {"content": content})
    return {
        "id": "chatcmpl-one-slot",
        "object": "chat.completion.chunk",
        "model": "one-slot-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


class OneSlotServer:
    """See the module docstring; use as a context manager."""

    def __init__(
        self,
        *,
        responder: Responder = lambda prompt: "{}",
        token_interval: float = 0.01,
        chars_per_token: int = 3,
        interrupt_requests: bool = False,
    ) -> None:
        self.responder = responder
        self.token_interval = token_interval
        self.chars_per_token = chars_per_token
        self.interrupt_requests = interrupt_requests
        self.generations: List[Generation] = []
        self._scripts: Dict[str, List[str]] = {}
        self._slot = _Slot()
        self._lock = threading.Lock()
        self._httpd: Optional[ThreadingHTTPServer] = None

    def script(self, match: str, *answers: str) -> None:
        """The next generations of prompts containing ``match`` answer these, one each, in order;
        after them the responder answers."""
        with self._lock:
            self._scripts.setdefault(match, []).extend(answers)

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> "OneSlotServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server._send_json(self, 200, {"object": "list", "data": MODELS})

            def do_POST(self) -> None:
                server._chat(self)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    # -- generating ------------------------------------------------------------------------------

    def _answer(self, prompt: str) -> str:
        with self._lock:
            for match, answers in self._scripts.items():
                if match in prompt and answers:
                    return answers.pop(0)
        return self.responder(prompt)

    def _tokens(self, text: str) -> List[str]:
        size = self.chars_per_token
        return [text[i : i + size] for i in range(0, len(text), size)]

    def _chat(self, handler: BaseHTTPRequestHandler) -> None:
        body = json.loads(handler.rfile.read(int(handler.headers.get("Content-Length") or 0)) or b"{}")
        prompt = str(body["messages"][-1]["content"])
        record = Generation(prompt=prompt, stream=bool(body.get("stream")), arrived=time.monotonic())
        with self._lock:
            self.generations.append(record)
        connection = handler.connection
        self._slot.acquire()
        try:
            record.started = time.monotonic()
            tokens = self._tokens(self._answer(prompt))
            record.planned = len(tokens)
            if client_gone(connection):  # llama-cpp-python asks before it generates
                record.client_gone, record.cancelled = record.started, True
            elif record.stream:
                self._stream(handler, record, tokens)
            else:
                self._generate(record, tokens, connection)
            record.ended = time.monotonic()
        finally:
            self._slot.release()
        if not record.stream and not record.cancelled:
            try:
                self._send_json(handler, 200, _completion("".join(tokens)))
            except OSError:
                pass  # nobody is waiting for it any more

    def _next_token(self, record: Generation, connection: socket.socket) -> None:
        """Generate one token; note when the client is first seen gone."""
        time.sleep(self.token_interval)
        record.tokens += 1
        if record.client_gone is None and client_gone(connection):
            record.client_gone = time.monotonic()

    def _generate(self, record: Generation, tokens: List[str], connection: socket.socket) -> None:
        """Non-streamed: every token, whoever still waits for the answer."""
        for _ in tokens:
            self._next_token(record, connection)

    def _stream(self, handler: BaseHTTPRequestHandler, record: Generation, tokens: List[str]) -> None:
        """Streamed: a token, its event, then stop if the client is gone or (interrupt_requests)
        another request waits."""
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream; charset=utf-8")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        handler.close_connection = True
        try:
            _event(handler, json.dumps(chunk(None, role=True)))
            for token in tokens:
                self._next_token(record, handler.connection)
                _event(handler, json.dumps(chunk(token)))
                if record.client_gone is not None:
                    record.cancelled = record.tokens < len(tokens)
                    return
                if self.interrupt_requests and self._slot.waiting():
                    record.interrupted = record.tokens < len(tokens)
                    _event(handler, "[DONE]")
                    _end_chunks(handler)
                    return
            _event(handler, json.dumps(chunk(None, finish_reason="stop")))
            _event(handler, "[DONE]")
            _end_chunks(handler)
        except OSError:
            record.client_gone = record.client_gone or time.monotonic()
            record.cancelled = record.tokens < len(tokens)

    def _send_json(self, handler: BaseHTTPRequestHandler, status: int, payload: Dict[str, Any]) -> None:
        data = json.dumps(payload).encode("utf-8")
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


def _completion(content: str) -> Dict[str, Any]:
    return {
        "id": "chatcmpl-one-slot",
        "object": "chat.completion",
        "model": "one-slot-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
    }


def _event(handler: BaseHTTPRequestHandler, data: str) -> None:
    """One Server-Sent Event, as one chunk of the chunked body."""
    payload = f"data: {data}\n\n".encode("utf-8")
    handler.wfile.write(f"{len(payload):x}\r\n".encode("ascii") + payload + b"\r\n")
    handler.wfile.flush()


def _end_chunks(handler: BaseHTTPRequestHandler) -> None:
    handler.wfile.write(b"0\r\n\r\n")
    handler.wfile.flush()
