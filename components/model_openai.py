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

Bounded waits: a ``Retry-After`` (seconds or an HTTP date) is honoured up to
``max_retry_wait`` seconds; a server asking for more is retried after the cap, and the final
error says how long it asked for. A refused connection or unknown host (or a connection that
timed out) is retried once, quickly, and after ``RetryPolicy.MAX_CONNECT_FAILURES`` consecutive
connection failures the remaining requests of the call fail at once with one error naming
``base_url``. Ctrl-C (KeyboardInterrupt in the calling thread) cuts every retry wait short,
drops queued requests and aborts the ones in flight; the responses that had arrived are
already committed to the cache, so a rerun repeats none of them.

Cache identity: see model_cache.served_identity. What ``/models`` cannot report (llama.cpp's
chat template, for one) belongs in ``cache_namespace``.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence

from .cache import ResponseCache, model_identity
from .model_cache import CacheBinding, served_identity
from .model_client import ChatClient, auth_headers
from .model_responses import CacheCheck, CountsRequests, FailedResponse, ModelResponse, flatten_unique, nest
from .model_retry import CallBreaker, RequestError, RetryPolicy
from .model_settings import SETTING_NAMES, ModelDefaults, ModelSettings


class OpenAICompatibleModel(ModelDefaults, CountsRequests):
    """Concurrent, retrying, optionally cached client of an OpenAI-compatible chat API.

    The DEFAULT_* class constants (ModelDefaults) are the defaults of ``__init__`` and of the
    registered ``spacy_ner_project.OpenAICompatible.v1``. ``settings`` holds the validated
    settings; each also reads as an attribute (``model.concurrency``). ``stats`` and
    ``on_progress``: see CountsRequests (progress after the cache lookup and each request).
    """

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

        A cached answer that ``cache_check`` rejects is asked for again. On KeyboardInterrupt
        (or any exception) in the calling thread, queued requests are dropped, those in flight
        aborted, and the exception re-raised at once.
        """
        unique = list(dict.fromkeys(prompts))
        model_id = self.model_id if self.cache is not None else self.configured_id
        answers = self._binding.lookup(model_id, unique)
        if answers:
            self._count(cache_hits=len(answers))
        todo = [prompt for prompt in unique if prompt not in answers]
        if not todo:
            return answers
        breaker = CallBreaker(max_connect_failures=RetryPolicy.MAX_CONNECT_FAILURES)
        workers = min(self.settings.concurrency, len(todo))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm-request")
        try:
            futures = {pool.submit(self._complete_one, prompt, breaker, model_id): prompt for prompt in todo}
            for future in as_completed(futures):
                answers[futures[future]] = future.result()
        except BaseException:
            # Ctrl-C: stop every wait, drop queued requests, abort those in flight. Responses
            # that had arrived are committed to the cache already.
            breaker.interrupt()
            pool.shutdown(wait=False, cancel_futures=True)
            self._client.abort()
            raise
        pool.shutdown(wait=True)
        return answers

    def _complete_one(self, prompt: str, breaker: CallBreaker, model_id: str) -> ModelResponse:
        start = time.monotonic()
        attempt = 0
        while True:
            if breaker.interrupted:
                return FailedResponse(f"POST {self.endpoint} interrupted", elapsed_s=time.monotonic() - start)
            if breaker.broken is not None:
                return self._failed(breaker.broken, start)
            attempt += 1
            self._count(progress=False, requests=1)
            try:
                text = self._client.post_chat(self.endpoint, self.settings.payload(prompt), base_url=self.base_url)
            except RequestError as err:
                if self._again(attempt, err, breaker):
                    continue
                tried = f"after {attempt} attempt{'s' if attempt > 1 else ''}"
                capped = self.retry_policy.capped_wait(err)
                return self._failed(f"POST {self.endpoint} failed {tried}: {err.message}{capped}", start)
            breaker.connected()
            usable = self._binding.store(model_id, prompt, text)
            self._count(answered=1, uncached_unusable=int(not usable))
            return ModelResponse(text, elapsed_s=time.monotonic() - start)

    def _again(self, attempt: int, err: RequestError, breaker: CallBreaker) -> bool:
        """After a failed attempt: whether to go round again, because the policy retries it (after
        its wait) or because the call was interrupted or this failed connection tripped the
        breaker (the request then fails with that one message)."""
        if err.connect:
            breaker.connect_failed(err.message)
        else:
            breaker.connected()
        if breaker.interrupted or (err.connect and breaker.broken is not None):
            return True
        if breaker.halt.is_set() or not self.retry_policy.retries(attempt, err):
            return False
        self._count(progress=False, retries=1)
        breaker.halt.wait(self.retry_policy.delay(attempt, err, jitter=random.random()))
        return True

    def _failed(self, message: str, start: float) -> FailedResponse:
        self._count(failures=1)
        return FailedResponse(message, elapsed_s=time.monotonic() - start)

    def __repr__(self) -> str:
        return (
            f"OpenAICompatibleModel(base_url={self.base_url!r}, model={self.model!r}, concurrency={self.concurrency})"
        )
