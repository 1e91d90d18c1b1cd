"""``spacy_ner_project.OpenAICompatible.v1``: any OpenAI-compatible chat-completions server.

It speaks ``POST {base_url}/chat/completions`` to Ollama (http://localhost:11434/v1), vLLM
(http://localhost:8000/v1), the llama.cpp server (http://localhost:8080/v1) or OpenAI
(https://api.openai.com/v1). It contacts no host but its base URL and nothing at construction,
sends up to ``concurrency`` requests at once from a thread pool (so it also works when called
from inside a running event loop, e.g. Jupyter), and retries timeouts, 429, 408, 5xx and
malformed bodies with exponential backoff and jitter (model_retry.RetryPolicy). Parallelism
spans the docs of one ``nlp.pipe`` batch: raise ``batch_size`` to at least ``concurrency``.
Identical prompts in one call are sent once.

FAILED-RESPONSE CONVENTION (for tasks): when a request finally fails (retries exhausted, the
server cannot be reached, or an error retrying cannot fix such as HTTP 401/404), its response is
a :class:`~.model_responses.FailedResponse`: a ``str`` subclass whose value is ``""`` and whose
``.error`` holds a readable message. Any task therefore just sees an empty answer; a task that
wants to record the failure checks ``isinstance(response, FailedResponse)`` (or
``getattr(response, "error", None)``) and stores ``response.error`` on the doc. The other docs of
the batch keep their results; nothing is raised for a failed request. Every response carries
``elapsed_s`` (seconds its request took, None from the cache). Configuration errors (a bad
setting, a named API-key variable that is unset) raise ``ValueError`` at construction.

Bounded waits: every attempt ends ``timeout`` seconds after it began (connect, send and read
together; ChatClient's watchdog), so a server that answers a byte at a time cannot hold a
request longer. A ``Retry-After`` (seconds or an HTTP date) is honoured up to ``max_retry_wait``
seconds. A server asking for more limits the client, not one request: the model's requests
share that wait (SharedRetryAfter, across calls: a whole ``nlp.pipe`` run), ``max_retries``
such waits in all, after which the remaining requests fail at once, unsent, with the server's
reason, until the time it asked for has passed; the errors say how long it asked for. A refused
connection or unknown host (or a connection that timed out) is retried once, quickly, and after
``RetryPolicy.MAX_CONNECT_FAILURES`` consecutive connection failures the remaining requests of
the call fail at once with one error naming ``base_url``. Ctrl-C cuts every retry wait short,
sends no request not sent yet, aborts the ones in flight and raises KeyboardInterrupt in the
calling thread, within about a second, every time (see ``ctrl_c_queued``); the responses that
had arrived are already committed to the cache, so a rerun repeats none of them.

Streaming (``stream``, on by default): answers come as Server-Sent Events, and a request given
up on (its deadline, Ctrl-C, the stop rule) closes its connection, so a one-slot server stops
generating the abandoned answer at its next token instead of making the retry, or the next
request, wait for it (llama-cpp-python finishes a non-streamed answer whoever still waits for
it). A server that ignores ``stream`` answers as before. The stop rule (``stop_repetition``,
model_stream.repetition_end) ends an answer that repeats itself (``"", "", "", ...``): the
answer is the text up to there, counted in ``stats.repetition_stops``.

Per-request fields: a task may hand the model RequestPrompt prompts (model_responses); their
``request_fields`` are merged into their own request body after ``config`` and
``structured_output``, and are part of the prompt's identity (deduplication, cache key).

Cache identity: see model_cache.served_identity (never the URL or port: a server restarted on
another port hits the same cache). What ``/models`` cannot report belongs in ``cache_namespace``.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from contextlib import contextmanager
from queue import Empty, SimpleQueue
from types import FrameType
from typing import Any, ClassVar, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence

from .cache import ResponseCache, model_identity
from .model_cache import CacheBinding, served_identity
from .model_client import ChatClient, auth_headers
from .model_responses import CacheCheck, CountsRequests, FailedResponse, ModelResponse, flatten_unique, nest
from .model_retry import CallBreaker, RequestError, RetryPolicy, SharedRetryAfter
from .model_settings import SETTING_NAMES, ModelDefaults, ModelSettings


# What the queue of results gets when Ctrl-C is pressed (ctrl_c_queued).
_CTRL_C = object()


@contextmanager
def ctrl_c_queued(results: "SimpleQueue[Any]", *, item: Any) -> Iterator[None]:
    """While the block runs: Ctrl-C puts ``item`` on ``results`` instead of raising
    KeyboardInterrupt wherever the main thread happens to be (a KeyboardInterrupt raised inside
    a ``with lock:`` can leave the lock held, and a thread that needs it then never ends). The
    block raises it where it takes ``item`` from the queue; a Ctrl-C it did not take is raised
    when the block ends. Only in the main thread under Python's own handler; elsewhere (a
    handler of the application's, another thread) nothing changes."""
    in_charge = threading.current_thread() is threading.main_thread()
    if not in_charge or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    pressed: List[int] = []

    def on_ctrl_c(signum: int, frame: Optional[FrameType]) -> None:
        pressed.append(signum)
        results.put(item)  # SimpleQueue.put is reentrant: safe in a signal handler

    signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if pressed:
        raise KeyboardInterrupt


class OpenAICompatibleModel(ModelDefaults, CountsRequests):
    """Concurrent, retrying, optionally cached client of an OpenAI-compatible chat API.

    The DEFAULT_* class constants (ModelDefaults) are the defaults of ``__init__`` and of the
    registered ``spacy_ner_project.OpenAICompatible.v1``. ``settings`` holds the validated
    settings; each also reads as an attribute (``model.concurrency``). ``stats`` and
    ``on_progress``: see CountsRequests (progress after the cache lookup and each request).
    """

    # Seconds an interrupted call waits for its request threads to finish what they were doing
    # (an aborted request ends in milliseconds; a request thread is a daemon, never waited for at exit).
    STOP_WAIT: ClassVar[float] = 0.5
    # Seconds the calling thread waits on the results queue before it lets Python run a pending
    # Ctrl-C handler (see _next_result).
    RESULT_POLL: ClassVar[float] = 0.1

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key_env: Optional[str] = ModelDefaults.DEFAULT_API_KEY_ENV,
        timeout: float = ModelDefaults.DEFAULT_TIMEOUT,
        max_retries: int = ModelDefaults.DEFAULT_MAX_RETRIES,
        concurrency: int = ModelDefaults.DEFAULT_CONCURRENCY,
        config: Mapping[str, Any] = ModelDefaults.DEFAULT_CONFIG,
        cache: Optional[ResponseCache] = None,
        context_length: Optional[int] = ModelDefaults.DEFAULT_CONTEXT_LENGTH,
        backoff: float = ModelDefaults.DEFAULT_BACKOFF,
        max_backoff: float = ModelDefaults.DEFAULT_MAX_BACKOFF,
        max_retry_wait: float = ModelDefaults.DEFAULT_MAX_RETRY_WAIT,
        structured_output: Mapping[str, Any] = ModelDefaults.DEFAULT_STRUCTURED_OUTPUT,
        cache_namespace: str = ModelDefaults.DEFAULT_CACHE_NAMESPACE,
        cache_check: Optional[CacheCheck] = None,
        stream: bool = ModelDefaults.DEFAULT_STREAM,
        stop_repetition: int = ModelDefaults.DEFAULT_STOP_REPETITION,
    ) -> None:
        super().__init__()
        self.settings = ModelSettings(
            base_url=base_url,
            model=model,
            api_key_env=api_key_env,
            timeout=timeout,
            max_retries=max_retries,
            concurrency=concurrency,
            config=config,
            context_length=context_length,
            backoff=backoff,
            max_backoff=max_backoff,
            max_retry_wait=max_retry_wait,
            structured_output=structured_output,
            cache_namespace=cache_namespace,
            stream=stream,
            stop_repetition=stop_repetition,
        )
        settings = self.settings
        # where requests go: read on every request, so pointing the model at another server
        # takes effect at once (its settings, and so its cache identity, stay as they were)
        self.base_url = settings.base_url
        self.endpoint = settings.endpoint
        self.cache = cache
        self.cache_check = cache_check
        self.configured_id = model_identity(**settings.identity())
        self.retry_policy = RetryPolicy(
            max_retries=settings.max_retries,
            backoff=settings.backoff,
            max_backoff=settings.max_backoff,
            max_retry_wait=settings.max_retry_wait,
        )
        self._binding = CacheBinding(cache, check=cache_check)
        self._client = ChatClient(
            timeout=settings.timeout, max_connections=settings.concurrency, headers=auth_headers(settings.api_key_env)
        )
        self._retry_after = SharedRetryAfter(max_waits=settings.max_retries)
        self._model_id: Optional[str] = None
        self._identity_lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        """The settings read as attributes: ``model.concurrency`` is ``model.settings.concurrency``."""
        settings = self.__dict__.get("settings")
        if settings is None or name not in SETTING_NAMES:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(settings, name)

    @property
    def model_id(self) -> str:
        """The cache's model identity: the configured one plus what ``GET {base_url}/models``
        reports (asked on first access only; if it fails, the configured identity, logged once)."""
        with self._identity_lock:
            if self._model_id is None:
                self._model_id = served_identity(self.settings, self._client)
            return self._model_id

    def close(self) -> None:
        """Close pooled connections; the model reopens them if called again."""
        self._client.close()

    def __call__(self, prompts: Iterable[Iterable[str]]) -> Iterable[Iterable[str]]:
        """Per doc, the responses to its shard prompts (FailedResponse where a request finally failed)."""
        per_doc, unique = flatten_unique(prompts)
        n_prompts = sum(len(doc_prompts) for doc_prompts in per_doc)
        self._count(progress=False, prompts=n_prompts, deduplicated=n_prompts - len(unique))
        return nest(per_doc, self.complete(unique))

    def complete(self, prompts: Sequence[str]) -> Dict[str, ModelResponse]:
        """Responses to distinct prompts, by prompt: from the cache, else from the server.

        A cached answer that ``cache_check`` rejects is asked for again. On Ctrl-C (or any
        exception) while requests run, the requests not sent yet are dropped, those in flight
        aborted, and KeyboardInterrupt (the exception) raised once the request threads stopped.
        A RequestPrompt whose request fields the model sets itself raises ValueError, before
        anything is sent.
        """
        unique = list(dict.fromkeys(prompts))
        for prompt in unique:
            self.settings.payload(prompt)  # refuses reserved request fields now, not in a request thread
        model_id = self.model_id if self.cache is not None else self.configured_id
        answers = self._binding.lookup(model_id, unique)
        if answers:
            self._count(cache_hits=len(answers))
        todo = [prompt for prompt in unique if prompt not in answers]
        if todo:
            answers.update(self._request_all(todo, model_id))
        return answers

    def _request_all(self, todo: List[str], model_id: str) -> Dict[str, ModelResponse]:
        """The responses to ``todo`` from up to ``concurrency`` request threads.

        The calling thread only waits on a queue of results, and under Python's own Ctrl-C
        handler in the main thread a Ctrl-C becomes one more item of that queue (see
        :func:`ctrl_c_queued`): so it is handled at that one point, never inside a lock the
        request threads need, and the same way every time."""
        breaker = CallBreaker(max_connect_failures=RetryPolicy.MAX_CONNECT_FAILURES)
        pending: "SimpleQueue[str]" = SimpleQueue()
        for prompt in todo:
            pending.put(prompt)
        results: "SimpleQueue[Any]" = SimpleQueue()
        answers: Dict[str, ModelResponse] = {}
        threads: List[threading.Thread] = []
        with ctrl_c_queued(results, item=_CTRL_C):
            try:
                for number in range(min(self.settings.concurrency, len(todo))):
                    threads.append(self._start_worker(number, pending, results, breaker, model_id))
                while len(answers) < len(todo):
                    item = self._next_result(results)
                    if item is _CTRL_C:
                        raise KeyboardInterrupt
                    prompt, response = item
                    if isinstance(response, BaseException):
                        raise response  # a bug, not a failed request: stop the others, then raise it
                    answers[prompt] = response
            except BaseException:
                self._stop(breaker, threads)
                raise
        for thread in threads:
            thread.join()
        return answers

    @classmethod
    def _next_result(cls, results: "SimpleQueue[Any]") -> Any:
        """The next item of ``results``, waited for in slices of RESULT_POLL seconds: a Ctrl-C that
        the kernel delivers to a request thread (any thread may get a process's SIGINT) does not
        wake a main thread blocked on the queue, and Python runs its handler only once the main
        thread runs again; a wait without slices could then last until a request ends."""
        while True:
            try:
                return results.get(timeout=cls.RESULT_POLL)
            except Empty:
                continue

    def _start_worker(
        self,
        number: int,
        pending: "SimpleQueue[str]",
        results: "SimpleQueue[Any]",
        breaker: CallBreaker,
        model_id: str,
    ) -> threading.Thread:
        """A request thread: it takes prompts from ``pending`` until none is left or the call is
        interrupted, and puts (prompt, response or exception) on ``results``. A daemon, so a
        request stuck in a connect cannot keep the process from ending after Ctrl-C."""

        def work() -> None:
            while not breaker.interrupted:
                try:
                    prompt = pending.get_nowait()
                except Empty:
                    return
                try:
                    results.put((prompt, self._complete_one(prompt, breaker, model_id)))
                except BaseException as err:  # noqa: BLE001 - handed to the calling thread
                    results.put((prompt, err))

        thread = threading.Thread(target=work, name=f"llm-request-{number}", daemon=True)
        thread.start()
        return thread

    def _stop(self, breaker: CallBreaker, threads: List[threading.Thread]) -> None:
        """Interrupt the call: no request is sent any more, every wait ends, the requests in flight
        are aborted; wait (a little) for the request threads to finish what they were doing."""
        breaker.interrupt()
        self._client.abort()
        deadline = time.monotonic() + self.STOP_WAIT
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _complete_one(self, prompt: str, breaker: CallBreaker, model_id: str) -> ModelResponse:
        start = time.monotonic()
        attempt = 0
        while True:
            if breaker.interrupted:
                return FailedResponse(f"POST {self.endpoint} interrupted", elapsed_s=time.monotonic() - start)
            if breaker.broken is not None:
                return self._failed(breaker.broken, start)
            unsent = self._wait_for_the_server(breaker)
            if unsent is not None:
                return self._failed(f"POST {self.endpoint} not sent: {unsent}", start)
            if breaker.halt.is_set():
                continue  # interrupted, or the breaker tripped, during the wait
            attempt += 1
            sent_in = self._retry_after.era
            self._count(progress=False, requests=1)
            try:
                answer = self._client.post_chat(
                    self.endpoint,
                    self.settings.payload(prompt),
                    base_url=self.base_url,
                    breaker=breaker,
                    stop_repetition=self.settings.stop_repetition,
                )
            except RequestError as err:
                if self._again(attempt, err, breaker, sent_in=sent_in):
                    continue
                tried = f"after {attempt} attempt{'s' if attempt > 1 else ''}"
                capped = self.retry_policy.capped_wait(err)
                return self._failed(f"POST {self.endpoint} failed {tried}: {err.message}{capped}", start)
            breaker.connected()
            self._retry_after.answered(sent_in=sent_in)
            usable = self._binding.store(model_id, prompt, answer.text)
            self._count(answered=1, uncached_unusable=int(not usable), repetition_stops=int(answer.repetition_stop))
            return ModelResponse(answer.text, elapsed_s=time.monotonic() - start)

    def _wait_for_the_server(self, breaker: CallBreaker) -> Optional[str]:
        """Before sending: wait out the server's shared Retry-After, if one runs (cut short by
        ``breaker.halt``); the reason the request fails unsent once the shared waits are spent."""
        while not breaker.halt.is_set():
            seconds, unsent = self._retry_after.turn()
            if unsent is not None or seconds <= 0:
                return unsent
            breaker.halt.wait(seconds)
        return None

    def _again(self, attempt: int, err: RequestError, breaker: CallBreaker, *, sent_in: int) -> bool:
        """After a failed attempt: whether to go round again, because the policy retries it (after
        its wait, or the wait it shares with every request when the server asked for more than
        ``max_retry_wait``) or because the call was interrupted or this failed connection tripped
        the breaker (the request then fails with that one message)."""
        if err.connect:
            breaker.connect_failed(err.message)
        else:
            breaker.connected()
        if breaker.interrupted or (err.connect and breaker.broken is not None):
            return True
        if breaker.halt.is_set():
            return False
        shared = self.retry_policy.asks_too_long(err)
        if shared and not self._share_the_wait(attempt, err, sent_in=sent_in):
            return False
        if not self.retry_policy.retries(attempt, err):
            return False
        self._count(progress=False, retries=1)
        if not shared:  # a shared wait is waited out before the next attempt is sent
            breaker.halt.wait(self.retry_policy.delay(attempt, err, jitter=random.random()))
        return True

    def _share_the_wait(self, attempt: int, err: RequestError, *, sent_in: int) -> bool:
        """The server asked for more than ``max_retry_wait``: join (or begin) the wait shared by
        every request; False once the model's shared waits are spent."""
        assert err.retry_after is not None
        reason = (
            f"the server asked every request to wait {err.retry_after:.0f} s ({err.message}); after the "
            f"{self.settings.max_retries} waits of max_retry_wait = {self.settings.max_retry_wait:g} s that "
            "this model's requests share, it sends none until that time has passed"
        )
        wait = self.retry_policy.delay(attempt, err, jitter=random.random())
        return self._retry_after.limited(sent_in=sent_in, retry_after=err.retry_after, wait=wait, reason=reason)

    def _failed(self, message: str, start: float) -> FailedResponse:
        self._count(failures=1)
        return FailedResponse(message, elapsed_s=time.monotonic() - start)

    def __repr__(self) -> str:
        return (
            f"OpenAICompatibleModel(base_url={self.base_url!r}, model={self.model!r}, concurrency={self.concurrency})"
        )
