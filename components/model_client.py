"""The HTTP side of the OpenAI-compatible model: one attempt at a chat completion.

:class:`ChatClient` owns a pooled httpx client, created on first use (construction never
touches the network) and blind to proxy environment variables (it talks to the URLs it is
given only), whose every attempt has the ``timeout`` deadline. An attempt returns the answer's
text or raises a :class:`~.model_retry.RequestError` that says whether retrying may help;
:meth:`ChatClient.abort` wakes the threads blocked on its sockets (Ctrl-C).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import weakref
from typing import Any, Dict, Mapping, Optional

import httpx

from .model_retry import RequestError, is_retryable_status, parse_retry_after


def snippet(text: str, limit: int = 200) -> str:
    """``text`` on one line, cut to ``limit`` characters (for error messages)."""
    text = text.strip().replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."


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


class _SocketTracker:
    """Remembers the client's sockets (through httpx's "trace" request extension, which every
    request of the client must pass, as pooled connections are reused) so that an interrupt can
    shut them down: closing an httpx client does not wake a thread blocked reading from one of
    its connections, shutting the socket down does."""

    def __init__(self) -> None:
        self._sockets: "weakref.WeakSet[socket.socket]" = weakref.WeakSet()
        self._lock = threading.Lock()

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            sock = info["return_value"].get_extra_info("socket")
            if sock is not None:
                with self._lock:
                    self._sockets.add(sock)

    def abort(self) -> None:
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed


class ChatClient:
    """Pooled, proxy-free HTTP for one model: up to ``max_connections`` at once, ``timeout``
    seconds per attempt, ``headers`` on every request (see :func:`auth_headers`)."""

    def __init__(self, *, timeout: float, max_connections: int, headers: Mapping[str, str]) -> None:
        self.timeout = timeout
        self._max_connections = max_connections
        self._headers = dict(headers)
        self._client: Optional[httpx.Client] = None
        self._lock = threading.Lock()
        self._sockets = _SocketTracker()

    def _get(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    timeout=httpx.Timeout(self.timeout),
                    limits=httpx.Limits(
                        max_connections=self._max_connections, max_keepalive_connections=self._max_connections
                    ),
                    headers=self._headers,
                    trust_env=False,  # no proxies from the environment: talk to the given URLs only
                )
            return self._client

    def post_chat(self, url: str, payload: Mapping[str, Any], *, base_url: str) -> str:
        """One attempt: the answer's text, or RequestError (its message names ``base_url`` when
        the server cannot be reached)."""
        try:
            response = self._get().post(url, json=payload, extensions={"trace": self._sockets.trace})
        except (httpx.ConnectError, httpx.ConnectTimeout) as err:
            message = f"cannot connect to {base_url}: {_connect_reason(err)} (is the server running?)"
            raise RequestError(message, retryable=True, connect=True)
        except httpx.TimeoutException as err:
            raise RequestError(f"timed out after {self.timeout:g}s ({type(err).__name__})", retryable=True)
        except httpx.TransportError as err:
            raise RequestError(f"connection error ({type(err).__name__}: {err})", retryable=True)
        status = response.status_code
        if status >= 400:
            retryable = is_retryable_status(status)
            raise RequestError(
                f"HTTP {status}{'' if retryable else _status_hint(status)}: {snippet(response.text)}",
                retryable=retryable,
                retry_after=parse_retry_after(response.headers.get("Retry-After")) if retryable else None,
            )
        return parse_chat_completion(response.text)

    def get_json(self, url: str, *, timeout: float) -> Any:
        """The JSON of ``GET url`` (at most ``timeout`` seconds); raises httpx.HTTPError or ValueError."""
        response = self._get().get(url, timeout=timeout, extensions={"trace": self._sockets.trace})
        response.raise_for_status()
        return response.json()

    def abort(self) -> None:
        """Wake every thread blocked on a request (their requests fail) and close the pool."""
        self._sockets.abort()
        self.close()

    def close(self) -> None:
        """Close pooled connections; the next request reopens them."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
