"""spacy-llm models: any OpenAI-compatible chat-completions server, and a caching wrapper.

FAILED-RESPONSE CONVENTION (for tasks)
--------------------------------------
A model here is a spacy-llm prompt executor: it takes, per doc, the list of its shard
prompts and returns, per doc, one response per prompt, in the same order. When a request
finally fails (retries exhausted, or an error retrying cannot fix such as HTTP 401/404),
its response is a :class:`FailedResponse`: a ``str`` subclass whose value is ``""`` and
whose ``.error`` holds a readable message. Any task therefore just sees an empty answer;
a task that wants to record the failure checks ``isinstance(response, FailedResponse)``
(or ``getattr(response, "error", None)``) and stores ``response.error`` on the doc. The other
docs of the batch keep their results; nothing is raised for a failed request. Failed
responses are never cached. Configuration errors (a named API-key variable that is unset,
a bad URL) raise ``ValueError`` at construction.

``spacy_ner_project.OpenAICompatible.v1`` speaks ``POST {base_url}/chat/completions`` to
Ollama (http://localhost:11434/v1), vLLM (http://localhost:8000/v1), the llama.cpp server
(http://localhost:8080/v1) or OpenAI (https://api.openai.com/v1). It contacts no host but
its base URL (no validation call at construction; proxy environment variables are ignored),
sends up to ``concurrency`` requests at once from a thread pool (so it also works when called
from inside a running event loop, e.g. Jupyter), and retries timeouts, connection errors, 429
(honouring ``Retry-After``), 408, 5xx and malformed bodies with exponential backoff and jitter.
Parallelism spans the docs of one ``nlp.pipe`` batch: raise ``batch_size`` to at least
``concurrency``. Identical prompts in one call are sent once.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

import httpx
from confection import SimpleFrozenDict

from .cache import ResponseCache, model_identity

PromptExecutor = Callable[[Iterable[Iterable[str]]], Iterable[Iterable[str]]]


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
    """Counters over the model's lifetime (read them in benchmarks and evaluation reports)."""

    prompts: int = 0
    cache_hits: int = 0
    deduplicated: int = 0
    requests: int = 0
    retries: int = 0
    failures: int = 0


class _RequestError(Exception):
    def __init__(self, message: str, *, retryable: bool, retry_after: Optional[float] = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


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


def _nest(per_doc: List[List[str]], answers: Mapping[str, str]) -> List[List[str]]:
    return [[answers[prompt] for prompt in prompts] for prompts in per_doc]


def _flatten_unique(prompts: Iterable[Iterable[str]]) -> tuple[List[List[str]], List[str]]:
    per_doc = [[str(prompt) for prompt in doc_prompts] for doc_prompts in prompts]
    unique = list(dict.fromkeys(prompt for doc_prompts in per_doc for prompt in doc_prompts))
    return per_doc, unique


class OpenAICompatibleModel:
    """Concurrent, retrying, optionally cached client of an OpenAI-compatible chat API."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key_env: Optional[str] = None,
        timeout: float = 60.0,
        max_retries: int = 5,
        concurrency: int = 8,
        config: Optional[Mapping[str, Any]] = None,
        cache: Optional[ResponseCache] = None,
        context_length: Optional[int] = None,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"base_url must start with http:// or https://, got {base_url!r} "
                "(e.g. http://localhost:11434/v1 for Ollama, https://api.openai.com/v1)"
            )
        if not model:
            raise ValueError("model must name the model to query, e.g. 'llama3.1:8b' or 'gpt-4o-mini'")
        if concurrency < 1 or max_retries < 0 or timeout <= 0 or backoff < 0 or max_backoff < 0:
            raise ValueError(
                "need concurrency >= 1, max_retries >= 0, timeout > 0, backoff >= 0 and max_backoff >= 0; "
                f"got concurrency={concurrency}, max_retries={max_retries}, timeout={timeout}, "
                f"backoff={backoff}, max_backoff={max_backoff}"
            )
        if "messages" in (config or {}) or "model" in (config or {}):
            raise ValueError("config holds request parameters only; set the model with `model`, not config")
        self.base_url = base_url.rstrip("/")
        self.endpoint = f"{self.base_url}/chat/completions"
        self.model = model
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.concurrency = int(concurrency)
        self.config: Dict[str, Any] = dict(config or {})
        self.cache = cache
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
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
        self.model_id = model_identity(
            protocol="openai-chat-completions", base_url=self.base_url, model=model, params=self.config
        )
        self.stats = ModelStats()
        self._stats_lock = threading.Lock()
        self._client: Optional[httpx.Client] = None
        self._client_lock = threading.Lock()

    @property
    def context_length(self) -> Optional[int]:
        """Context length in tokens, if configured (spacy-llm shards prompts to fit it)."""
        return self._context_length

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

    def _count(self, **increments: int) -> None:
        with self._stats_lock:
            for name, value in increments.items():
                setattr(self.stats, name, getattr(self.stats, name) + value)

    def __call__(self, prompts: Iterable[Iterable[str]]) -> Iterable[Iterable[str]]:
        """Per doc, the responses to its shard prompts (FailedResponse where a request failed)."""
        per_doc, unique = _flatten_unique(prompts)
        n_prompts = sum(len(doc_prompts) for doc_prompts in per_doc)
        self._count(prompts=n_prompts, deduplicated=n_prompts - len(unique))
        return _nest(per_doc, self.complete(unique))

    def complete(self, prompts: Sequence[str]) -> Dict[str, str]:
        """Responses to distinct prompts, by prompt: from the cache, else from the server."""
        answers: Dict[str, str] = {}
        if self.cache is not None:
            answers.update(self.cache.get_many(self.model_id, prompts))
            self._count(cache_hits=len(answers))
        todo = [prompt for prompt in dict.fromkeys(prompts) if prompt not in answers]
        if not todo:
            return answers
        client = self._get_client()
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(todo)), thread_name_prefix="llm-request")
        try:
            futures = {pool.submit(self._complete_one, client, prompt): prompt for prompt in todo}
            for future in as_completed(futures):
                answers[futures[future]] = future.result()
        finally:
            # On an interrupt, drop the queued requests; finished ones are already cached.
            pool.shutdown(wait=True, cancel_futures=True)
        return answers

    def _complete_one(self, client: httpx.Client, prompt: str) -> str:
        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                self._count(requests=1)
                response = self._post(client, prompt)
            except _RequestError as err:
                if err.retryable and attempt < attempts:
                    self._count(retries=1)
                    time.sleep(self._delay(attempt, err.retry_after))
                    continue
                self._count(failures=1)
                tried = f"after {attempt} attempt{'s' if attempt > 1 else ''}"
                return FailedResponse(f"POST {self.endpoint} failed {tried}: {err.message}")
            if self.cache is not None:
                self.cache.put(self.model_id, prompt, response)
            return response
        raise AssertionError("unreachable: the loop returns on its last attempt")

    def _delay(self, attempt: int, retry_after: Optional[float]) -> float:
        """Exponential backoff with jitter; never sooner than the server's Retry-After."""
        ceiling = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        delay = random.uniform(ceiling / 2, ceiling)
        return max(delay, retry_after) if retry_after is not None else delay

    def _post(self, client: httpx.Client, prompt: str) -> str:
        payload = {**self.config, "model": self.model, "messages": [{"role": "user", "content": prompt}]}
        try:
            response = client.post(self.endpoint, json=payload)
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
    api_key_env: Optional[str] = None,
    timeout: float = 60.0,
    max_retries: int = 5,
    concurrency: int = 8,
    config: Dict[str, Any] = SimpleFrozenDict(temperature=0.0),
    cache: Optional[ResponseCache] = None,
    context_length: Optional[int] = None,
    backoff: float = 1.0,
    max_backoff: float = 60.0,
) -> OpenAICompatibleModel:
    """Registered as ``spacy_ner_project.OpenAICompatible.v1`` (llm_models).

    base_url (str): API root, e.g. http://localhost:11434/v1; requests go to {base_url}/chat/completions.
    model (str): Model name sent with each request.
    api_key_env (Optional[str]): Environment variable holding the API key (sent as a Bearer token);
        None for local servers. If named and unset, construction fails.
    timeout (float): Seconds per request attempt.
    max_retries (int): Retries after the first attempt (timeouts, connection errors, 408, 429, 5xx,
        malformed bodies).
    concurrency (int): Maximum requests in flight.
    config (Dict[str, Any]): Extra request parameters (temperature, max_tokens, seed ...).
    cache (Optional[ResponseCache]): Response cache, e.g. spacy_ner_project.SQLiteCache.v1.
    context_length (Optional[int]): Model context length in tokens, for sharding long docs.
    backoff (float): First retry waits between backoff/2 and backoff seconds, doubling per retry.
    max_backoff (float): Upper bound of the computed wait (a longer Retry-After is still honoured).
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
    )


def _describe(model: Any) -> Dict[str, Any]:
    """What identifies a wrapped model's answers (spacy-llm REST models keep these privately)."""
    description: Dict[str, Any] = {"class": f"{type(model).__module__}.{type(model).__qualname__}"}
    for attr in ("model_id", "_name", "_endpoint", "_config"):
        if hasattr(model, attr):
            description[attr.lstrip("_")] = getattr(model, attr)
    return description


class CachedModel:
    """Any spacy-llm model behind a ResponseCache.

    Uncached prompts go to the wrapped model one at a time, so each response is committed as
    soon as it arrives (spacy-llm's built-in models are sequential anyway). A failed response
    (FailedResponse) is not cached; an exception from the wrapped model propagates after the
    responses before it were stored.
    """

    def __init__(self, *, model: PromptExecutor, cache: ResponseCache, model_id: str) -> None:
        self.model = model
        self.cache = cache
        self.model_id = model_identity(wrapper="CachedModel", model_id=model_id, model=_describe(model))
        self.stats = ModelStats()

    @property
    def context_length(self) -> Optional[int]:
        return getattr(self.model, "context_length", None)

    def __call__(self, prompts: Iterable[Iterable[str]]) -> Iterable[Iterable[str]]:
        per_doc, unique = _flatten_unique(prompts)
        n_prompts = sum(len(doc_prompts) for doc_prompts in per_doc)
        answers = self.cache.get_many(self.model_id, unique)
        self.stats.prompts += n_prompts
        self.stats.deduplicated += n_prompts - len(unique)
        self.stats.cache_hits += len(answers)
        for prompt in unique:
            if prompt in answers:
                continue
            self.stats.requests += 1
            (responses,) = [list(doc_responses) for doc_responses in self.model([[prompt]])]
            (response,) = responses
            if isinstance(response, FailedResponse):
                self.stats.failures += 1
            else:
                self.cache.put(self.model_id, prompt, str(response))
            answers[prompt] = response
        return _nest(per_doc, answers)


def cached_model_v1(model: PromptExecutor, cache: ResponseCache, model_id: str) -> CachedModel:
    """Registered as ``spacy_ner_project.CachedModel.v1`` (llm_models).

    model: any spacy-llm model, e.g. ``@llm_models = "spacy.GPT-4.v3"``.
    cache: e.g. ``@llm_misc = "spacy_ner_project.SQLiteCache.v1"``.
    model_id (str): Your name for the model's identity (e.g. "gpt-4o-mini@openai"); combined
        with the wrapped model's class, name, endpoint and config where it exposes them, so a
        changed model never gets another model's cached answers.
    """
    return CachedModel(model=model, cache=cache, model_id=model_id)
