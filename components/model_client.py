"""The HTTP side of the OpenAI-compatible model: one attempt at a chat completion.

:class:`ChatClient` sends each attempt on one of its lanes (a pooled httpx client of one
connection each, created on first use: construction never touches the network), blind to proxy
environment variables (it talks to the URLs it is given only). An attempt has a deadline
``timeout`` seconds after it starts, for the whole of it (connect, send, read): httpx's own
timeouts bound each read only, so a watchdog shuts the attempt's socket down at the deadline.
An attempt returns the answer (:class:`~.model_stream.ChatAnswer`) or raises a
:class:`~.model_retry.RequestError` that says whether retrying may help;
:meth:`ChatClient.abort` wakes the threads blocked on its sockets (Ctrl-C), and an interrupted
call's later attempts are refused before they send anything.

A streamed answer (the request asked for ``"stream": true`` and the server answers
``text/event-stream``) is read event by event (model_stream.read_event_stream) under the same
deadline; when the deadline passes, Ctrl-C comes or the stop rule fires, the attempt's
connection is closed, which is how a server (llama-cpp-python) learns to stop
generating. A server that ignores ``stream`` answers with one JSON body, read as before; the
stop rule then cuts the whole answer where it would have stopped the stream.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import ssl
import threading
import time
import weakref
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterable, Iterator, Mapping, Optional, Tuple

import httpx

from .model_retry import CallBreaker, RequestError, is_retryable_status, parse_retry_after, snippet
from .model_stream import ChatAnswer, cut_runaway, read_event_stream

EVENT_STREAM = "text/event-stream"


def auth_headers(api_key_env: Optional[str]) -> Dict[str, str]:
    """The request headers: JSON, and the key in ``api_key_env`` as a Bearer token if named.

    Raises ValueError if the named variable is not set."""
    headers = {"Content-Type": "application/json"}
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise ValueError(
                f"api_key_env names the environment variable {api_key_env!r}, but it is not set: "
                f"export {api_key_env}=<your key>, or set api_key_env = null for a local server "
                "that needs no key"
            )
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def parse_chat_completion(body: str) -> str:
    """The message content of a chat-completions response body.

    Raises RequestError (retryable) for anything that is not a well-formed answer.
    """
    try:
        data = json.loads(body)
    except ValueError:
        raise RequestError(f"response body is not JSON: {snippet(body)!r}", retryable=True)
    if not isinstance(data, dict):
        raise RequestError(f"response JSON is not an object: {snippet(body)!r}", retryable=True)
    if "error" in data:
        raise RequestError(f"server returned an error: {snippet(json.dumps(data['error']))}", retryable=True)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise RequestError(f"response JSON has no choices: {snippet(body)!r}", retryable=True)
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise RequestError(
            f"response JSON has no choices[0].message.content string: {snippet(body)!r}", retryable=True
        )
    return content


def _connect_reason(err: httpx.HTTPError) -> str:
    text = str(err)
    lowered = text.lower()
    if "refused" in lowered:
        return "connection refused"
    if "name or service not known" in lowered or "name resolution" in lowered or "nodename nor servname" in lowered:
        return f"host name not found ({text})"
    if isinstance(err, httpx.TimeoutException):
        return "no connection within the timeout"
    return f"{type(err).__name__}: {text}"


def _status_hint(status: int) -> str:
    if status in (401, 403):
        return " (check api_key_env)"
    if status == 404:
        return " (check base_url and model)"
    return ""


# Why an attempt was cut short (Attempt.cut).
DEADLINE = "deadline"
INTERRUPTED = "interrupted"


class Attempt:
    """One request in flight: its ``deadline`` (a ``time.monotonic()`` time), the call's
    ``breaker`` it belongs to (None: no call, e.g. ``GET /models``) and, once a watchdog or an
    interrupt cut it short, why (``cut``: DEADLINE or INTERRUPTED)."""

    def __init__(self, *, deadline: float, breaker: Optional[CallBreaker] = None) -> None:
        self.deadline = deadline
        self.breaker = breaker
        self.cut: Optional[str] = None

    def remaining(self) -> float:
        """Seconds left until the deadline (at least a millisecond, as httpx wants a timeout > 0)."""
        return max(0.001, self.deadline - time.monotonic())


class _Lane:
    """One connection's worth of the client: its own httpx client (at most one connection, kept
    alive between requests), the sockets that client opened (seen through httpx's "trace"
    request extension) and the attempt it runs now. So a deadline or an interrupt ends exactly
    that attempt, by shutting its socket down: closing an httpx client does not wake a thread
    blocked reading from one of its connections, shutting the socket down does. A socket that
    connects after its attempt was cut (the connection was being made) is shut down at once."""

    def __init__(self, make_client: Callable[[], httpx.Client]) -> None:
        self._make_client = make_client
        self._client: Optional[httpx.Client] = None
        self._sockets: "weakref.WeakSet[socket.socket]" = weakref.WeakSet()
        self._attempt: Optional[Attempt] = None
        self._watchdog: Optional[threading.Timer] = None
        self._lock = threading.Lock()

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        """httpx's trace hook: remember each socket the lane's client connects."""
        if event not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return
        sock = info["return_value"].get_extra_info("socket")
        if sock is None:
            return
        with self._lock:
            self._sockets.add(sock)
            cut = self._attempt is not None and self._attempt.cut is not None
        if cut:
            _shut_down([sock])

    def begin(self, attempt: Attempt) -> httpx.Client:
        """Run ``attempt`` on this lane, watched until its deadline; its httpx client. Raises
        RequestError when the attempt's call was interrupted already (nothing is sent then)."""
        with self._lock:
            if attempt.breaker is not None and attempt.breaker.interrupted:
                raise RequestError("interrupted before it was sent", retryable=False)
            self._attempt = attempt
            watch = {"reason": DEADLINE, "attempt": attempt}
            self._watchdog = threading.Timer(attempt.remaining(), self.cut, kwargs=watch)
            self._watchdog.daemon = True
            self._watchdog.start()
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def end(self) -> None:
        """The attempt is over (answered or failed): stop watching it."""
        with self._lock:
            if self._watchdog is not None:
                self._watchdog.cancel()
            self._attempt = self._watchdog = None

    def cut(self, *, reason: str, attempt: Optional[Attempt] = None) -> None:
        """End the attempt running now (only if it is ``attempt``, when given) for ``reason``:
        shut its sockets down, so the thread waiting on them wakes and its request fails."""
        with self._lock:
            current = self._attempt
            if current is None or (attempt is not None and current is not attempt):
                return
            current.cut = current.cut or reason
            sockets = list(self._sockets)
        _shut_down(sockets)

    def close(self) -> None:
        """Close the lane's connection; its next attempt opens another."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


def _shut_down(sockets: Iterable[socket.socket]) -> None:
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # closed already


class ChatClient:
    """Pooled, proxy-free HTTP for one model: up to ``max_connections`` requests at once, each
    attempt ended ``timeout`` seconds after it started, whatever the server sends meanwhile
    (connect, send and read together: a server that answers one byte at a time cannot hold a
    request longer), ``headers`` on every request (see :func:`auth_headers`)."""

    def __init__(self, *, timeout: float, max_connections: int, headers: Mapping[str, str]) -> None:
        self.timeout = timeout
        self._headers = dict(headers)
        self._ssl_context: Optional[ssl.SSLContext] = None
        self._lock = threading.Lock()
        self._all_lanes = [_Lane(self._make_client) for _ in range(max_connections)]
        # last in, first out: the lane used last has its connection open still
        self._free_lanes: "queue.LifoQueue[_Lane]" = queue.LifoQueue()
        for lane in self._all_lanes:
            self._free_lanes.put(lane)

    def _make_client(self) -> httpx.Client:
        with self._lock:  # one TLS context for all lanes (loading the CA bundle takes a while)
            if self._ssl_context is None:
                self._ssl_context = httpx.create_ssl_context(trust_env=False)
        return httpx.Client(
            timeout=httpx.Timeout(self.timeout),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            headers=self._headers,
            verify=self._ssl_context,
            trust_env=False,  # no proxies from the environment: talk to the given URLs only
        )

    @contextmanager
    def _attempt(self, attempt: Attempt, lane: _Lane) -> Iterator[Tuple[httpx.Client, Dict[str, Any]]]:
        """``lane``'s client running ``attempt``, and the request options that bound it."""
        client = lane.begin(attempt)
        try:
            yield client, {"timeout": httpx.Timeout(attempt.remaining()), "extensions": {"trace": lane.trace}}
        finally:
            lane.end()

    @contextmanager
    def _free_lane(self) -> Iterator[_Lane]:
        """A lane no other thread uses (the request threads take turns; there are as many lanes)."""
        lane = self._free_lanes.get()
        try:
            yield lane
        finally:
            self._free_lanes.put(lane)

    def post_chat(
        self,
        url: str,
        payload: Mapping[str, Any],
        *,
        base_url: str,
        breaker: Optional[CallBreaker] = None,
        stop_repetition: int = 0,
    ) -> ChatAnswer:
        """One attempt, of at most ``timeout`` seconds once a lane is free: the answer (streamed
        or whole, as the server sends it), or RequestError (its message names ``base_url`` when
        the server cannot be reached). ``breaker``: the call the attempt belongs to; once it is
        interrupted, nothing more is sent. ``stop_repetition``: the stop rule's repetitions
        (model_stream.repetition_end; 0: off)."""
        with self._free_lane() as lane:
            return self._post(lane, url, payload, base_url=base_url, breaker=breaker, stop_repetition=stop_repetition)

    def _post(
        self,
        lane: _Lane,
        url: str,
        payload: Mapping[str, Any],
        *,
        base_url: str,
        breaker: Optional[CallBreaker],
        stop_repetition: int,
    ) -> ChatAnswer:
        """The answer to the POST on ``lane``, read within the attempt's deadline; RequestError
        when none came. Leaving the response unread (the stop rule) closes its connection."""
        attempt = Attempt(deadline=time.monotonic() + self.timeout, breaker=breaker)
        try:
            with self._attempt(attempt, lane) as (client, options):
                with client.stream("POST", url, json=payload, **options) as response:
                    return _read_answer(response, stop_repetition=stop_repetition)
        except (httpx.ConnectError, httpx.ConnectTimeout) as err:
            if attempt.cut is not None:
                raise self._cut_short(attempt, err)
            message = f"cannot connect to {base_url}: {_connect_reason(err)} (is the server running?)"
            raise RequestError(message, retryable=True, connect=True)
        except httpx.TransportError as err:
            if attempt.cut is None and isinstance(err, httpx.TimeoutException):
                attempt.cut = DEADLINE  # httpx's timeouts are the time left: it has passed
            raise self._cut_short(attempt, err)

    def _cut_short(self, attempt: Attempt, err: httpx.TransportError) -> RequestError:
        """The RequestError of an attempt that failed in transport with ``err``: its deadline passed,
        its call was interrupted, or the connection failed."""
        if attempt.cut == DEADLINE:
            return RequestError(
                f"timed out: no complete answer by the deadline, timeout = {self.timeout:g} s for the whole "
                "request (connect, send, read)",
                retryable=True,
            )
        if attempt.cut == INTERRUPTED:
            return RequestError("interrupted", retryable=False)
        return RequestError(f"connection error ({type(err).__name__}: {err})", retryable=True)

    def get_json(self, url: str, *, timeout: float) -> Any:
        """The JSON of ``GET url`` (at most ``timeout`` seconds in all), on a connection of its own
        (the calling thread takes no lane: Ctrl-C there must not leave the lanes' queue locked);
        raises httpx.HTTPError or ValueError."""
        lane = _Lane(self._make_client)
        try:
            with self._attempt(Attempt(deadline=time.monotonic() + timeout), lane) as (client, options):
                response = client.get(url, **options)
        finally:
            lane.close()
        response.raise_for_status()
        return response.json()

    def abort(self) -> None:
        """Wake every thread blocked on a request: its attempt fails at once. (Attempts of an
        interrupted call begun later are refused: see ``breaker`` of :meth:`post_chat`.)"""
        for lane in self._all_lanes:
            lane.cut(reason=INTERRUPTED)

    def close(self) -> None:
        """Close pooled connections; the next request reopens them."""
        for lane in self._all_lanes:
            lane.close()


def _read_answer(response: httpx.Response, *, stop_repetition: int) -> ChatAnswer:
    """The answer in an open response: an error status raises RequestError (with the server's
    Retry-After); an event stream is read up to its end or the stop rule; any other body whole."""
    status = response.status_code
    if status >= 400:
        response.read()
        retryable = is_retryable_status(status)
        retry_after = response.headers.get("Retry-After") if retryable else None
        raise RequestError(
            f"HTTP {status}{_retry_after_note(retry_after)}{'' if retryable else _status_hint(status)}: "
            f"{snippet(response.text)}",
            retryable=retryable,
            retry_after=parse_retry_after(retry_after),
        )
    if response.headers.get("Content-Type", "").split(";")[0].strip().lower() == EVENT_STREAM:
        return read_event_stream(response.iter_lines(), stop_repetition=stop_repetition)
    response.read()
    return cut_runaway(parse_chat_completion(response.text), stop_repetition=stop_repetition)


def _retry_after_note(value: Optional[str]) -> str:
    """' with Retry-After VALUE' for an error status that came with one (the server's own words)."""
    return f" with Retry-After {value.strip()}" if value and value.strip() else ""
