"""spacy-llm models: any OpenAI-compatible chat-completions server, and a caching wrapper.

FAILED-RESPONSE CONVENTION (for tasks)
--------------------------------------
A model here is a spacy-llm prompt executor: it takes, per doc, the list of its shard
prompts and returns, per doc, one response per prompt, in the same order. When a request
finally fails (retries exhausted, the server cannot be reached, or an error retrying cannot
fix such as HTTP 401/404), its response is a :class:`FailedResponse`: a ``str`` subclass whose
value is ``""`` and whose ``.error`` holds a readable message. Any task therefore just sees an
empty answer; a task that wants to record the failure checks ``isinstance(response,
FailedResponse)`` (or ``getattr(response, "error", None)``) and stores ``response.error`` on the
doc. The other docs of the batch keep their results; nothing is raised for a failed request.
Failed responses are never cached, nor are answers that the optional ``cache_check`` rejects.
Configuration errors (a named API-key variable that is unset, a bad URL) raise ``ValueError``
at construction.

``spacy_ner_project.OpenAICompatible.v1`` speaks ``POST {base_url}/chat/completions`` to
Ollama (http://localhost:11434/v1), vLLM (http://localhost:8000/v1), the llama.cpp server
(http://localhost:8080/v1) or OpenAI (https://api.openai.com/v1). It contacts no host but
its base URL and nothing at construction (proxy environment variables are ignored), sends up
to ``concurrency`` requests at once from a thread pool (so it also works when called from
inside a running event loop, e.g. Jupyter), and retries timeouts, 429, 408, 5xx and malformed
bodies with exponential backoff and jitter. Parallelism spans the docs of one ``nlp.pipe``
batch: raise ``batch_size`` to at least ``concurrency``. Identical prompts in one call are sent
once.

Bounded waits: a ``Retry-After`` (seconds or an HTTP date) is honoured up to
``max_retry_wait`` seconds; a server asking for more is retried after the cap, and the final
error says how long it asked for. A refused connection or unknown host (or a connection that
timed out) is retried once, quickly, and after ``MAX_CONNECT_FAILURES`` consecutive connection
failures the remaining requests of the call fail at once with one error naming ``base_url``.
Ctrl-C (KeyboardInterrupt in the calling thread) cuts every retry wait short, drops queued
requests and aborts the ones in flight; the responses that had arrived are already committed to
the cache, so a rerun repeats none of them.

Cache identity: with a cache, the first call asks ``GET {base_url}/models`` once and folds what
the server reports about the model it serves (ids, llama.cpp's ``owned_by``/``meta`` ...) into
the cache key, with ``base_url``, ``model``, ``config``, ``structured_output`` and the user's
``cache_namespace``: a server restarted with another model file gets no stale answers. What
``/models`` cannot report (llama.cpp's chat template, for one) belongs in ``cache_namespace``.
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import logging
import os
import random
import socket
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

import httpx
from confection import SimpleFrozenDict

from .cache import ResponseCache, model_identity

PromptExecutor = Callable[[Iterable[Iterable[str]]], Iterable[Iterable[str]]]
CacheCheck = Callable[[str], bool]

LOGGER = logging.getLogger("spacy_ner_project.llm")


class FailedResponse(str):
    """The response of a request that finally failed: the empty string, with ``.error``."""

    error: str

    def __new__(cls, error: str) -> "FailedResponse":
        response = super().__new__(cls, "")
        response.error = error
        return response

    def __repr__(self) -> str:
        return f"FailedResponse(error={self.error!r})"

    def __reduce__(self) -> Any:
        return (FailedResponse, (self.error,))


@dataclass
class ModelStats:
    """Counters over the model's lifetime (read them in benchmarks, reports and progress bars).

    prompts: prompts asked for (shards included, duplicates included);
    deduplicated: duplicates within one call, answered once;
    cache_hits: distinct prompts answered from the cache;
    answered: distinct prompts answered by the server;
    failures: distinct prompts whose request finally failed (FailedResponse);
    requests / retries: HTTP attempts, and those of them that were retries;
    uncached_unusable: server answers returned but not cached because cache_check rejected them.
    """

    prompts: int = 0
    cache_hits: int = 0
    deduplicated: int = 0
    requests: int = 0
    retries: int = 0
    failures: int = 0
    answered: int = 0
    uncached_unusable: int = 0

    @property
    def done(self) -> int:
        """Distinct prompts finished so far: from the cache, answered, or failed."""
        return self.cache_hits + self.answered + self.failures


ProgressHook = Callable[[ModelStats], None]


class _RequestError(Exception):
    def __init__(
        self, message: str, *, retryable: bool, retry_after: Optional[float] = None, connect: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.connect = connect  # the server could not be reached at all


def _parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _snippet(text: str, limit: int = 200) -> str:
    text = text.strip().replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."


def parse_chat_completion(body: str) -> str:
    """The message content of a chat-completions response body.

    Raises _RequestError (retryable) for anything that is not a well-formed answer.
    """
    try:
        data = json.loads(body)
    except ValueError:
        raise _RequestError(f"response body is not JSON: {_snippet(body)!r}", retryable=True)
    if not isinstance(data, dict):
        raise _RequestError(f"response JSON is not an object: {_snippet(body)!r}", retryable=True)
    if "error" in data:
        raise _RequestError(f"server returned an error: {_snippet(json.dumps(data['error']))}", retryable=True)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise _RequestError(f"response JSON has no choices: {_snippet(body)!r}", retryable=True)
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise _RequestError(
            f"response JSON has no choices[0].message.content string: {_snippet(body)!r}", retryable=True
        )
    return content


# Fields of a GET /models entry that identify the served model. Not "created": vLLM sets it
# to the time of the request. llama.cpp's server reports the GGUF in "id" and its size,
# parameters and vocabulary in "meta"; vLLM the model path in "root" and a LoRA's "parent".
MODEL_IDENTITY_FIELDS = ("id", "owned_by", "root", "parent", "meta")


def served_models(listing: Any, model: str) -> List[Dict[str, Any]]:
    """What identifies the served model in a ``GET /models`` answer: the identity fields of the
    configured model's entry when the server lists it (OpenAI lists every model the key may
    use), else of every entry (llama.cpp serves its one model under any name), sorted by id.

    Raises ValueError if ``listing`` is not an OpenAI model list.
    """
    entries = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(entries, list) or not all(isinstance(entry, dict) and "id" in entry for entry in entries):
        raise ValueError(f"not an OpenAI model list: {_snippet(json.dumps(listing, default=str))!r}")
    picked = [entry for entry in entries if entry["id"] == model] or entries
    identities = [{key: entry[key] for key in MODEL_IDENTITY_FIELDS if key in entry} for entry in picked]
    return sorted(identities, key=lambda entry: str(entry["id"]))


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


def _nest(per_doc: List[List[str]], answers: Mapping[str, str]) -> List[List[str]]:
    return [[answers[prompt] for prompt in prompts] for prompts in per_doc]


def _flatten_unique(prompts: Iterable[Iterable[str]]) -> tuple[List[List[str]], List[str]]:
    per_doc = [[str(prompt) for prompt in doc_prompts] for doc_prompts in prompts]
    unique = list(dict.fromkeys(prompt for doc_prompts in per_doc for prompt in doc_prompts))
    return per_doc, unique


class _Call:
    """What the requests of one call share: the event that cuts their waits short (set on an
    interrupt or when the circuit breaker trips) and the run of consecutive connection failures."""

    def __init__(self, *, max_connect_failures: int) -> None:
        self.halt = threading.Event()
        self.interrupted = False
        self.broken: Optional[str] = None  # the breaker's error, once it has tripped
        self._max_connect_failures = max_connect_failures
        self._connect_failures = 0
        self._lock = threading.Lock()

    def interrupt(self) -> None:
        self.interrupted = True
        self.halt.set()

    def connected(self) -> None:
        with self._lock:
            self._connect_failures = 0

    def connect_failed(self, message: str) -> None:
        with self._lock:
            self._connect_failures += 1
            if self._connect_failures >= self._max_connect_failures and self.broken is None:
                self.broken = message
                self.halt.set()


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


class OpenAICompatibleModel:
    """Concurrent, retrying, optionally cached client of an OpenAI-compatible chat API.

    The DEFAULT_* class constants are the defaults of ``__init__`` and of the registered
    ``spacy_ner_project.OpenAICompatible.v1``; the other constants are fixed policy.

    ``stats`` (ModelStats) is updated as each request finishes. ``on_progress`` (None, or set it
    after loading, e.g. ``nlp.get_pipe("llm")._model.on_progress = bar_update``) is called with a
    snapshot of ``stats`` after the cache lookup and after each finished request, from the request
    threads, one call at a time (under the stats lock: keep it cheap, never call the model from it).
    """

    DEFAULT_API_KEY_ENV: Optional[str] = None
    DEFAULT_TIMEOUT = 60.0
    DEFAULT_MAX_RETRIES = 5
    DEFAULT_CONCURRENCY = 8
    DEFAULT_CONFIG: Mapping[str, Any] = SimpleFrozenDict(temperature=0.0)
    DEFAULT_CONTEXT_LENGTH: Optional[int] = None
    DEFAULT_BACKOFF = 1.0
    DEFAULT_MAX_BACKOFF = 60.0
    DEFAULT_MAX_RETRY_WAIT = 30.0
    DEFAULT_STRUCTURED_OUTPUT: Mapping[str, Any] = SimpleFrozenDict()
    DEFAULT_CACHE_NAMESPACE = ""
    # Consecutive connection failures after which the rest of a call fails at once.
    MAX_CONNECT_FAILURES = 3
    # Retries of a request whose connection failed, and the longest wait before one.
    CONNECT_RETRIES = 1
    CONNECT_RETRY_WAIT = 0.25
    # Seconds (at most; never more than `timeout`) for the one GET {base_url}/models.
    IDENTITY_TIMEOUT = 10.0

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key_env: Optional[str] = DEFAULT_API_KEY_ENV,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        concurrency: int = DEFAULT_CONCURRENCY,
        config: Mapping[str, Any] = DEFAULT_CONFIG,
        cache: Optional[ResponseCache] = None,
        context_length: Optional[int] = DEFAULT_CONTEXT_LENGTH,
        backoff: float = DEFAULT_BACKOFF,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT,
        structured_output: Mapping[str, Any] = DEFAULT_STRUCTURED_OUTPUT,
        cache_namespace: str = DEFAULT_CACHE_NAMESPACE,
        cache_check: Optional[CacheCheck] = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"base_url must start with http:// or https://, got {base_url!r} "
                "(e.g. http://localhost:11434/v1 for Ollama, https://api.openai.com/v1)"
            )
        if not model:
            raise ValueError("model must name the model to query, e.g. 'llama3.1:8b' or 'gpt-4o-mini'")
        if (
            concurrency < 1
            or max_retries < 0
            or timeout <= 0
            or backoff < 0
            or max_backoff < 0
            or max_retry_wait < 0
        ):
            raise ValueError(
                "need concurrency >= 1, max_retries >= 0, timeout > 0, backoff >= 0, max_backoff >= 0 "
                f"and max_retry_wait >= 0; got concurrency={concurrency}, max_retries={max_retries}, "
                f"timeout={timeout}, backoff={backoff}, max_backoff={max_backoff}, max_retry_wait={max_retry_wait}"
            )
        config = dict(config or {})
        structured_output = dict(structured_output or {})
        for name, params in (("config", config), ("structured_output", structured_output)):
            if "messages" in params or "model" in params:
                raise ValueError(f"{name} holds request parameters only; set the model with `model`, not {name}")
        clash = sorted(set(config) & set(structured_output))
        if clash:
            raise ValueError(
                f"config and structured_output both set {', '.join(clash)}: keep it in one of them "
                "(structured_output = {} switches structured output off)"
            )
        self.base_url = base_url.rstrip("/")
        self.endpoint = f"{self.base_url}/chat/completions"
        self.model = model
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.concurrency = int(concurrency)
        self.config: Dict[str, Any] = config
        self.structured_output: Dict[str, Any] = structured_output
        self.cache = cache
        self.cache_namespace = cache_namespace
        self.cache_check = cache_check
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.max_retry_wait = float(max_retry_wait)
        self._context_length = context_length
        self._headers = {"Content-Type": "application/json"}
        if api_key_env:
            api_key = os.environ.get(api_key_env)
            if not api_key:
                raise ValueError(
                    f"api_key_env names the environment variable {api_key_env!r}, but it is not set: "
                    f"export {api_key_env}=<your key>, or set api_key_env = null for a local server "
                    "that needs no key"
                )
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._identity: Dict[str, Any] = dict(
            protocol="openai-chat-completions",
            base_url=self.base_url,
            model=model,
            params=self.config,
            structured_output=self.structured_output,
            namespace=cache_namespace,
        )
        self.configured_id = model_identity(**self._identity)
        self._model_id: Optional[str] = None
        self._identity_lock = threading.Lock()
        self.stats = ModelStats()
        self.on_progress: Optional[ProgressHook] = None
        self._stats_lock = threading.Lock()
        self._client: Optional[httpx.Client] = None
        self._client_lock = threading.Lock()
        self._sockets = _SocketTracker()

    @property
    def context_length(self) -> Optional[int]:
        """Context length in tokens, if configured (spacy-llm shards prompts to fit it)."""
        return self._context_length

    @property
    def model_id(self) -> str:
        """The cache's model identity: the configured one plus what ``GET {base_url}/models``
        reports (asked on first access only; if it fails, the configured identity, logged once)."""
        with self._identity_lock:
            if self._model_id is None:
                self._model_id = self._identify()
            return self._model_id

    def _identify(self) -> str:
        url = f"{self.base_url}/models"
        try:
            response = self._get_client().get(
                url, timeout=min(self.timeout, self.IDENTITY_TIMEOUT), extensions={"trace": self._sockets.trace}
            )
            response.raise_for_status()
            served = served_models(response.json(), self.model)
        except (httpx.HTTPError, ValueError) as err:
            LOGGER.warning(
                "GET %s failed (%s): the response cache is keyed by the configured model %r only, "
                "so it cannot tell if the server now runs another model; set cache_namespace to tell them apart",
                url,
                _snippet(str(err) or type(err).__name__),
                self.model,
            )
            return self.configured_id
        return model_identity(**self._identity, served=served)

    def _get_client(self) -> httpx.Client:
        # Created on first use, so construction never touches the network.
        with self._client_lock:
            if self._client is None:
                self._client = httpx.Client(
                    timeout=httpx.Timeout(self.timeout),
                    limits=httpx.Limits(
                        max_connections=self.concurrency, max_keepalive_connections=self.concurrency
                    ),
                    headers=self._headers,
                    trust_env=False,  # no proxies from the environment: talk to base_url only
                )
            return self._client

    def close(self) -> None:
        """Close pooled connections; the model reopens them if called again."""
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _count(self, *, progress: bool = False, **increments: int) -> None:
        with self._stats_lock:
            for name, value in increments.items():
                setattr(self.stats, name, getattr(self.stats, name) + value)
            if progress and self.on_progress is not None:
                self.on_progress(dataclasses.replace(self.stats))

    def _usable(self, response: str) -> bool:
        return self.cache_check is None or bool(self.cache_check(response))

    def __call__(self, prompts: Iterable[Iterable[str]]) -> Iterable[Iterable[str]]:
        """Per doc, the responses to its shard prompts (FailedResponse where a request failed)."""
        per_doc, unique = _flatten_unique(prompts)
        n_prompts = sum(len(doc_prompts) for doc_prompts in per_doc)
        self._count(prompts=n_prompts, deduplicated=n_prompts - len(unique))
        return _nest(per_doc, self.complete(unique))

    def complete(self, prompts: Sequence[str]) -> Dict[str, str]:
        """Responses to distinct prompts, by prompt: from the cache, else from the server.

        A cached answer that ``cache_check`` rejects is asked for again. On KeyboardInterrupt
        (or any exception) in the calling thread, queued requests are dropped, those in flight
        aborted, and the exception re-raised at once.
        """
        unique = list(dict.fromkeys(prompts))
        answers: Dict[str, str] = {}
        model_id = self.model_id if self.cache is not None else self.configured_id
        if self.cache is not None:
            cached = self.cache.get_many(model_id, unique)
            answers.update((prompt, answer) for prompt, answer in cached.items() if self._usable(answer))
            if answers:
                self._count(progress=True, cache_hits=len(answers))
        todo = [prompt for prompt in unique if prompt not in answers]
        if not todo:
            return answers
        call = _Call(max_connect_failures=self.MAX_CONNECT_FAILURES)
        client = self._get_client()
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(todo)), thread_name_prefix="llm-request")
        try:
            futures = {pool.submit(self._complete_one, client, prompt, call, model_id): prompt for prompt in todo}
            for future in as_completed(futures):
                answers[futures[future]] = future.result()
        except BaseException:
            # Ctrl-C: stop every wait, drop queued requests, abort those in flight. Responses
            # that had arrived are committed to the cache already.
            call.interrupt()
            pool.shutdown(wait=False, cancel_futures=True)
            self._sockets.abort()
            self.close()
            raise
        pool.shutdown(wait=True)
        return answers

    def _complete_one(self, client: httpx.Client, prompt: str, call: _Call, model_id: str) -> str:
        attempt = 0
        while True:
            if call.interrupted:
                return FailedResponse(f"POST {self.endpoint} interrupted")
            if call.broken is not None:
                return self._failed(call.broken)
            attempt += 1
            self._count(requests=1)
            try:
                response = self._post(client, prompt)
            except _RequestError as err:
                if err.connect:
                    call.connect_failed(err.message)
                    if call.broken is not None:
                        continue  # the breaker tripped: fail with its one message
                else:
                    call.connected()
                attempts = 1 + min(self.max_retries, self.CONNECT_RETRIES if err.connect else self.max_retries)
                if err.retryable and attempt < attempts and not call.halt.is_set():
                    self._count(retries=1)
                    call.halt.wait(self._delay(attempt, err))
                    continue
                if call.interrupted:
                    continue
                tried = f"after {attempt} attempt{'s' if attempt > 1 else ''}"
                return self._failed(f"POST {self.endpoint} failed {tried}: {err.message}{self._asked_to_wait(err)}")
            call.connected()
            usable = self._usable(response)
            if self.cache is not None and usable:
                self.cache.put(model_id, prompt, response)
            self._count(progress=True, answered=1, uncached_unusable=int(not usable))
            return response

    def _failed(self, message: str) -> FailedResponse:
        self._count(progress=True, failures=1)
        return FailedResponse(message)

    def _asked_to_wait(self, err: _RequestError) -> str:
        if err.retry_after is None or err.retry_after <= self.max_retry_wait:
            return ""
        return (
            f" (the server asked to wait {err.retry_after:.0f} s with Retry-After; waits are capped at "
            f"max_retry_wait = {self.max_retry_wait:g} s)"
        )

    def _delay(self, attempt: int, err: _RequestError) -> float:
        """Exponential backoff with jitter; a connection failure's retry comes quickly; never
        sooner than the server's Retry-After, up to max_retry_wait."""
        ceiling = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        delay = random.uniform(ceiling / 2, ceiling)
        if err.connect:
            return min(delay, self.CONNECT_RETRY_WAIT)
        if err.retry_after is not None:
            return max(delay, min(err.retry_after, self.max_retry_wait))
        return delay

    def _post(self, client: httpx.Client, prompt: str) -> str:
        payload = {
            **self.config,
            **self.structured_output,
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
        }
        try:
            response = client.post(self.endpoint, json=payload, extensions={"trace": self._sockets.trace})
        except (httpx.ConnectError, httpx.ConnectTimeout) as err:
            message = f"cannot connect to {self.base_url}: {_connect_reason(err)} (is the server running?)"
            raise _RequestError(message, retryable=True, connect=True)
        except httpx.TimeoutException as err:
            raise _RequestError(f"timed out after {self.timeout:g}s ({type(err).__name__})", retryable=True)
        except httpx.TransportError as err:
            raise _RequestError(f"connection error ({type(err).__name__}: {err})", retryable=True)
        status = response.status_code
        if status in (408, 429) or status >= 500:
            raise _RequestError(
                f"HTTP {status}: {_snippet(response.text)}",
                retryable=True,
                retry_after=_parse_retry_after(response.headers.get("Retry-After")),
            )
        if status >= 400:
            hint = " (check api_key_env)" if status in (401, 403) else " (check base_url and model)" if status == 404 else ""
            raise _RequestError(f"HTTP {status}{hint}: {_snippet(response.text)}", retryable=False)
        return parse_chat_completion(response.text)

    def __repr__(self) -> str:
        return f"OpenAICompatibleModel(base_url={self.base_url!r}, model={self.model!r}, concurrency={self.concurrency})"


def openai_compatible_v1(
    base_url: str,
    model: str,
    api_key_env: Optional[str] = OpenAICompatibleModel.DEFAULT_API_KEY_ENV,
    timeout: float = OpenAICompatibleModel.DEFAULT_TIMEOUT,
    max_retries: int = OpenAICompatibleModel.DEFAULT_MAX_RETRIES,
    concurrency: int = OpenAICompatibleModel.DEFAULT_CONCURRENCY,
    config: Dict[str, Any] = OpenAICompatibleModel.DEFAULT_CONFIG,
    cache: Optional[ResponseCache] = None,
    context_length: Optional[int] = OpenAICompatibleModel.DEFAULT_CONTEXT_LENGTH,
    backoff: float = OpenAICompatibleModel.DEFAULT_BACKOFF,
    max_backoff: float = OpenAICompatibleModel.DEFAULT_MAX_BACKOFF,
    max_retry_wait: float = OpenAICompatibleModel.DEFAULT_MAX_RETRY_WAIT,
    structured_output: Dict[str, Any] = OpenAICompatibleModel.DEFAULT_STRUCTURED_OUTPUT,
    cache_namespace: str = OpenAICompatibleModel.DEFAULT_CACHE_NAMESPACE,
    cache_check: Optional[CacheCheck] = None,
) -> OpenAICompatibleModel:
    """Registered as ``spacy_ner_project.OpenAICompatible.v1`` (llm_models).

    base_url (str): API root, e.g. http://localhost:11434/v1; requests go to {base_url}/chat/completions.
    model (str): Model name sent with each request.
    api_key_env (Optional[str]): Environment variable holding the API key (sent as a Bearer token);
        None for local servers. If named and unset, construction fails.
    timeout (float): Seconds per request attempt.
    max_retries (int): Retries after the first attempt (timeouts, 408, 429, 5xx, malformed
        bodies); a failed connection is retried once at most.
    concurrency (int): Maximum requests in flight.
    config (Dict[str, Any]): Extra request parameters (temperature, max_tokens, stop, seed ...).
    cache (Optional[ResponseCache]): Response cache, e.g. spacy_ner_project.SQLiteCache.v1.
    context_length (Optional[int]): Model context length in tokens, for sharding long docs.
    backoff (float): First retry waits between backoff/2 and backoff seconds, doubling per retry.
    max_backoff (float): Upper bound of the computed wait.
    max_retry_wait (float): Longest wait a server's Retry-After gets (seconds or HTTP date);
        a server asking for more is retried after this many seconds.
    structured_output (Dict[str, Any]): Request fields that ask for the answer's JSON schema,
        merged into every request, e.g. ``@llm_misc = "spacy_ner_project.EntitySchema.v1"``; {}: none.
    cache_namespace (str): Your label folded into the cache key (e.g. the chat template or
        server build), for what GET {base_url}/models does not report.
    cache_check (Optional[Callable[[str], bool]]): Predicate on a server answer; an answer it
        rejects is returned but not cached (counted in stats.uncached_unusable).
    """
    return OpenAICompatibleModel(
        base_url=base_url,
        model=model,
        api_key_env=api_key_env,
        timeout=timeout,
        max_retries=max_retries,
        concurrency=concurrency,
        config=config,
        cache=cache,
        context_length=context_length,
        backoff=backoff,
        max_backoff=max_backoff,
        max_retry_wait=max_retry_wait,
        structured_output=structured_output,
        cache_namespace=cache_namespace,
        cache_check=cache_check,
    )


def _describe(model: Any) -> Dict[str, Any]:
    """What identifies a wrapped model's answers (spacy-llm REST models keep these privately)."""
    description: Dict[str, Any] = {"class": f"{type(model).__module__}.{type(model).__qualname__}"}
    for attr in ("configured_id", "model_id", "_name", "_endpoint", "_config"):
        if isinstance(getattr(type(model), attr, None), property):
            continue  # may do work (OpenAICompatibleModel.model_id asks the server): never at construction
        if hasattr(model, attr):
            description[attr.lstrip("_")] = getattr(model, attr)
    return description


class CachedModel:
    """Any spacy-llm model behind a ResponseCache.

    Uncached prompts go to the wrapped model one at a time, so each response is committed as
    soon as it arrives (spacy-llm's built-in models are sequential anyway). A failed response
    (FailedResponse), or one that ``cache_check`` rejects, is not cached; an exception from the
    wrapped model propagates after the responses before it were stored. ``on_progress`` (set
    it after loading) gets a snapshot of ``stats`` after the cache lookup and each request.
    """

    def __init__(
        self, *, model: PromptExecutor, cache: ResponseCache, model_id: str, cache_check: Optional[CacheCheck] = None
    ) -> None:
        self.model = model
        self.cache = cache
        self.cache_check = cache_check
        self.model_id = model_identity(wrapper="CachedModel", model_id=model_id, model=_describe(model))
        self.stats = ModelStats()
        self.on_progress: Optional[ProgressHook] = None

    @property
    def context_length(self) -> Optional[int]:
        return getattr(self.model, "context_length", None)

    def _usable(self, response: str) -> bool:
        return self.cache_check is None or bool(self.cache_check(response))

    def _count(self, **increments: int) -> None:
        for name, value in increments.items():
            setattr(self.stats, name, getattr(self.stats, name) + value)
        if self.on_progress is not None:
            self.on_progress(dataclasses.replace(self.stats))

    def __call__(self, prompts: Iterable[Iterable[str]]) -> Iterable[Iterable[str]]:
        per_doc, unique = _flatten_unique(prompts)
        n_prompts = sum(len(doc_prompts) for doc_prompts in per_doc)
        cached = self.cache.get_many(self.model_id, unique)
        answers: Dict[str, str] = {prompt: answer for prompt, answer in cached.items() if self._usable(answer)}
        self._count(prompts=n_prompts, deduplicated=n_prompts - len(unique), cache_hits=len(answers))
        for prompt in unique:
            if prompt in answers:
                continue
            (responses,) = [list(doc_responses) for doc_responses in self.model([[prompt]])]
            (response,) = responses
            if isinstance(response, FailedResponse):
                self._count(requests=1, failures=1)
            elif self._usable(response):
                self.cache.put(self.model_id, prompt, str(response))
                self._count(requests=1, answered=1)
            else:
                self._count(requests=1, answered=1, uncached_unusable=1)
            answers[prompt] = response
        return _nest(per_doc, answers)


def cached_model_v1(
    model: PromptExecutor, cache: ResponseCache, model_id: str, cache_check: Optional[CacheCheck] = None
) -> CachedModel:
    """Registered as ``spacy_ner_project.CachedModel.v1`` (llm_models).

    model: any spacy-llm model, e.g. ``@llm_models = "spacy.GPT-4.v3"``.
    cache: e.g. ``@llm_misc = "spacy_ner_project.SQLiteCache.v1"``.
    model_id (str): Your name for the model's identity (e.g. "gpt-4o-mini@openai"); combined
        with the wrapped model's class, name, endpoint and config where it exposes them, so a
        changed model never gets another model's cached answers.
    cache_check (Optional[Callable[[str], bool]]): Predicate on an answer; one it rejects is
        returned but not cached (counted in stats.uncached_unusable).
    """
    return CachedModel(model=model, cache=cache, model_id=model_id, cache_check=cache_check)
