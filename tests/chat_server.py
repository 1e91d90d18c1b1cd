"""A local OpenAI-compatible chat-completions server for offline tests and benchmarks.

    with ChatServer(responder=dictionary_responder({"Paris": "LOC"}), latency=0.2) as server:
        model = OpenAICompatibleModel(base_url=server.base_url, model="test")
        server.fail("Paris", http_error(503), http_error(429, retry_after="0.1"), hang(5), malformed())

It listens on 127.0.0.1 (port chosen by the OS), answers ``POST /v1/chat/completions`` and
``GET /v1/models`` (the entries of ``.models``; ``models = None``: 404, a server without the
route), anything else gets 404; every request is recorded, and records every request with its timing so
tests can assert on concurrency, retries, headers and hosts. Answers come from a responder
function of the prompt: a fixed string, a small dictionary "NER" that returns JSON entities,
or replay of recorded (prompt, response) pairs from a JSONL file (``replay_responder``).
Faults are scripted per prompt substring: consumed one per matching request (``fail``), on the
first request of each matching prompt (``fail_first``), or on every matching request
(``fail_every``). ``freeze()`` makes every request from then on hang: a client that still
sends one after it was told to stop shows up as a hang.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

Responder = Callable[[str], str]


class NoAnswer(LookupError):
    """Raised by a responder that has nothing for a prompt; the server answers 404."""


@dataclass(frozen=True)
class Fault:
    """What the server does instead of answering normally, for one request."""

    kind: str  # "status" | "hang" | "body" | "drop" | "drip"
    status: int = 500
    retry_after: Optional[str] = None
    seconds: float = 0.0
    body: str = ""


def http_error(status: int, *, retry_after: Optional[str] = None, body: str = "") -> Fault:
    """Answer with this HTTP status (and Retry-After header, if given)."""
    return Fault("status", status=status, retry_after=retry_after, body=body or json.dumps({"error": {"message": f"scripted {status}"}}))


def http_date(when: datetime) -> str:
    """An HTTP date (RFC 9110 IMF-fixdate), for a Retry-After given as a date."""
    return email.utils.format_datetime(when, usegmt=True)


def hang(seconds: float) -> Fault:
    """Sleep this long before answering (longer than the client timeout: a timeout)."""
    return Fault("hang", seconds=seconds)


def malformed(body: str = "<html>502 Bad Gateway</html>") -> Fault:
    """Answer 200 with this body instead of a chat completion."""
    return Fault("body", status=200, body=body)


def drop() -> Fault:
    """Close the connection without answering (a connection error for the client)."""
    return Fault("drop")


def drip(interval: float) -> Fault:
    """Send the normal answer (status line, headers and body) one byte every ``interval``
    seconds: every read gets something, so only a deadline on the whole request ends it."""
    return Fault("drip", seconds=interval)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: Dict[str, str]
    body: Optional[dict]
    prompt: str
    started: float
    ended: float = 0.0
    status: int = 0


def prompt_sha256(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def chat_completion(content: str, *, model: str, index: int) -> dict:
    return {
        "id": f"chatcmpl-local-{index}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def fixed_responder(content: str) -> Responder:
    return lambda prompt: content


def last_quoted_block(prompt: str, quote: str = "'''") -> str:
    """The text between the last pair of ``quote`` marks (where json_ner.v1 puts the doc)."""
    parts = prompt.rsplit(quote, 2)
    return parts[-2] if len(parts) == 3 else prompt


def dictionary_responder(
    lexicon: Mapping[str, str], *, text_of: Callable[[str], str] = lambda prompt: prompt
) -> Responder:
    """A deterministic "LLM": JSON {label: [strings]} of the lexicon entries (string -> label)
    found at word boundaries in ``text_of(prompt)`` (by default the whole prompt)."""
    patterns = [(re.compile(rf"(?<!\w){re.escape(text)}(?!\w)"), text, label) for text, label in lexicon.items()]

    def respond(prompt: str) -> str:
        text = text_of(prompt)
        found: Dict[str, List[str]] = {}
        for pattern, entity, label in patterns:
            if pattern.search(text):
                found.setdefault(label, []).append(entity)
        return json.dumps(found)

    return respond


def load_replay(path: Union[str, Path]) -> List[dict]:
    """Recorded pairs from JSONL: each line has "response" and one of "prompt" (exact text),
    "prompt_sha256" (hash of the exact text) or "contains" (a substring of the prompt, e.g.
    the sentence, which survives template changes)."""
    entries = []
    for number, line in enumerate(Path(path).read_text(encoding="utf8").splitlines(), start=1):
        if not line.strip():
            continue
        entry = json.loads(line)
        if "response" not in entry or not {"prompt", "prompt_sha256", "contains"} & set(entry):
            raise ValueError(f"{path}:{number}: need 'response' and one of 'prompt', 'prompt_sha256', 'contains'")
        entries.append(entry)
    return entries


def replay_responder(entries: List[dict], *, fallback: Optional[Responder] = None) -> Responder:
    """Answer with the recorded response of the prompt: exact text or hash first, then the
    longest matching "contains"; otherwise the fallback, or 404 (NoAnswer)."""
    exact: Dict[str, str] = {}
    contains: List[Tuple[str, str]] = []
    for entry in entries:
        if "prompt" in entry:
            exact[prompt_sha256(entry["prompt"])] = entry["response"]
        elif "prompt_sha256" in entry:
            exact[entry["prompt_sha256"]] = entry["response"]
        else:
            contains.append((entry["contains"], entry["response"]))
    contains.sort(key=lambda pair: -len(pair[0]))

    def respond(prompt: str) -> str:
        digest = prompt_sha256(prompt)
        if digest in exact:
            return exact[digest]
        for needle, response in contains:
            if needle in prompt:
                return response
        if fallback is not None:
            return fallback(prompt)
        raise NoAnswer(f"no recorded response for prompt sha256={digest}")

    return respond


@dataclass
class _Script:
    faults: Dict[str, List[Fault]] = field(default_factory=dict)
    first: Dict[str, Fault] = field(default_factory=dict)
    every: Dict[str, Fault] = field(default_factory=dict)
    seen: set = field(default_factory=set)

    def next_fault(self, prompt: str) -> Optional[Fault]:
        for needle, queue in self.faults.items():
            if needle in prompt and queue:
                return queue.pop(0)
        for needle, fault in self.first.items():
            if needle in prompt and (needle, prompt) not in self.seen:
                self.seen.add((needle, prompt))
                return fault
        return next((fault for needle, fault in self.every.items() if needle in prompt), None)


DEFAULT_MODELS: List[Dict[str, Any]] = [{"id": "chat-server-model", "object": "model", "owned_by": "chat-server"}]


class ChatServer:
    """Threaded chat-completions server on 127.0.0.1; use as a context manager."""

    def __init__(
        self,
        *,
        responder: Responder = fixed_responder("{}"),
        latency: float = 0.0,
        record_to: Optional[Union[str, Path]] = None,
        models: Optional[List[Dict[str, Any]]] = DEFAULT_MODELS,
    ) -> None:
        self.responder = responder
        # What GET /v1/models lists; None answers 404 (a server without the route).
        self.models: Optional[List[Dict[str, Any]]] = [dict(m) for m in models] if models is not None else None
        self.latency = latency
        self.record_to = Path(record_to) if record_to else None
        self.requests: List[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._script = _Script()
        self._frozen = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._httpd: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # -- scripting -------------------------------------------------------------------------
    def fail(self, match: str, *faults: Fault) -> None:
        """Requests whose prompt contains ``match`` ("" = any) get these faults, in order,
        one per request; after that they are answered normally."""
        with self._lock:
            self._script.faults.setdefault(match, []).extend(faults)

    def fail_first(self, match: str, fault: Fault) -> None:
        """The first request of each prompt that contains ``match`` gets ``fault``; its later
        requests are answered normally (e.g. a 500 on some documents, then 200)."""
        with self._lock:
            self._script.first[match] = fault

    def fail_every(self, match: str, fault: Fault) -> None:
        """Every request whose prompt contains ``match`` ("" = any) gets ``fault``, for good
        (e.g. 429 with a long Retry-After), unless a fault scripted with ``fail`` or
        ``fail_first`` comes first."""
        with self._lock:
            self._script.every[match] = fault

    def freeze(self) -> None:
        """From now on every request hangs until the server stops (nothing is answered)."""
        self._frozen.set()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.max_in_flight = 0
            self._script = _Script()
            self._frozen.clear()

    @property
    def chat_requests(self) -> List[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> "ChatServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # keep-alive replies: no 40 ms Nagle/delayed-ACK stall

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server._handle(self, "GET")

            def do_POST(self) -> None:
                server._handle(self, "POST")

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="chat-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()  # ends hanging and dripping handlers
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "ChatServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request handling ----------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        prompt = ""
        if isinstance(body, dict) and body.get("messages"):
            prompt = str(body["messages"][-1].get("content", ""))
        record = RecordedRequest(method, handler.path, dict(handler.headers.items()), body, prompt, time.monotonic())
        with self._lock:
            self.requests.append(record)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            fault = self._script.next_fault(prompt) if method == "POST" else None
        try:
            if self._frozen.is_set():
                self._stopped.wait()
                return
            if self.latency:
                time.sleep(self.latency)
            self._respond(handler, record, fault)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout) before we answered
        finally:
            self._finish(record)

    def _finish(self, record: RecordedRequest) -> None:
        """Count the request as done (once): before the answer is written, so a client that
        sends its next request as soon as it has an answer never looks concurrent."""
        with self._lock:
            if record.ended:
                return
            record.ended = time.monotonic()
            self.in_flight -= 1

    def _respond(self, handler: BaseHTTPRequestHandler, record: RecordedRequest, fault: Optional[Fault]) -> None:
        if record.method == "GET" and record.path.endswith("/models") and self.models is not None:
            return self._send(handler, record, 200, json.dumps({"object": "list", "data": self.models}))
        if record.method != "POST" or not record.path.endswith("/chat/completions"):
            return self._send(handler, record, 404, json.dumps({"error": {"message": f"no route {record.path}"}}))
        if fault is not None and fault.kind == "drop":
            handler.close_connection = True
            handler.connection.shutdown(2)
            return None
        if fault is not None and fault.kind == "hang":
            self._stopped.wait(fault.seconds)
        if fault is not None and fault.kind in ("status", "body"):
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return self._send(handler, record, fault.status, fault.body, headers)
        if not isinstance(record.body, dict) or not record.body.get("messages"):
            return self._send(handler, record, 400, json.dumps({"error": {"message": "need a messages list"}}))
        try:
            content = self.responder(record.prompt)
        except NoAnswer as err:
            return self._send(handler, record, 404, json.dumps({"error": {"message": str(err)}}))
        if self.record_to is not None:
            with self._lock, self.record_to.open("a", encoding="utf8") as out:
                out.write(json.dumps({"prompt": record.prompt, "response": content}) + "\n")
        answer = chat_completion(content, model=str(record.body.get("model", "")), index=len(self.requests))
        if fault is not None and fault.kind == "drip":
            return self._drip(handler, record, json.dumps(answer), interval=fault.seconds)
        return self._send(handler, record, 200, json.dumps(answer))

    def _drip(self, handler: BaseHTTPRequestHandler, record: RecordedRequest, body: str, *, interval: float) -> None:
        """A 200 answer written one byte every ``interval`` seconds (until the client goes away
        or the server stops)."""
        data = body.encode("utf-8")
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        record.status = 200
        handler.close_connection = True
        self._finish(record)
        for byte in head.encode("ascii") + data:
            handler.wfile.write(bytes([byte]))
            if self._stopped.wait(interval):
                return

    def _send(
        self,
        handler: BaseHTTPRequestHandler,
        record: RecordedRequest,
        status: int,
        body: str,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        data = body.encode("utf-8")
        record.status = status
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        self._finish(record)
        handler.end_headers()
        handler.wfile.write(data)
