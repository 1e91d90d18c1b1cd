"""spacy-llm models: any OpenAI-compatible chat-completions server, and a caching wrapper.

The registered functions (setup.cfg entry points) and the public names of the model modules:

- ``model_settings``: ModelSettings, every setting with its one default (ModelDefaults);
- ``model_retry``: RetryPolicy (pure: attempt and error -> retry? after how long?) and the
  per-call CallBreaker;
- ``model_client``: ChatClient, one HTTP attempt with its deadline, proxy-free and abortable;
- ``model_responses``: ModelResponse / FailedResponse (``str`` with ``elapsed_s``), ModelStats,
  RequestPrompt (a prompt with request fields of its own);
- ``model_stream``: the streamed answer's events and the stop rule for runaway answers;
- ``model_cache``: CacheBinding (the models' use of the SQLite cache), the served model's
  identity, CachedModel;
- ``model_openai``: OpenAICompatibleModel (concurrency, deduplication, the retry loop).

See model_openai for the failed-response convention tasks rely on.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from .cache import ResponseCache
from .model_cache import CachedModel
from .model_client import parse_chat_completion
from .model_openai import OpenAICompatibleModel
from .model_responses import CacheCheck, FailedResponse, ModelResponse, ModelStats, PromptExecutor, RequestPrompt
from .model_settings import ModelDefaults, ModelSettings
from .model_stream import repetition_end

__all__ = [
    "CachedModel",
    "FailedResponse",
    "ModelDefaults",
    "ModelResponse",
    "ModelSettings",
    "ModelStats",
    "OpenAICompatibleModel",
    "RequestPrompt",
    "cached_model_v1",
    "openai_compatible_v1",
    "parse_chat_completion",
    "repetition_end",
]


def openai_compatible_v1(
    base_url: str,
    model: str,
    api_key_env: Optional[str] = ModelDefaults.DEFAULT_API_KEY_ENV,
    timeout: float = ModelDefaults.DEFAULT_TIMEOUT,
    max_retries: int = ModelDefaults.DEFAULT_MAX_RETRIES,
    concurrency: int = ModelDefaults.DEFAULT_CONCURRENCY,
    config: Dict[str, Any] = ModelDefaults.DEFAULT_CONFIG,
    cache: Optional[ResponseCache] = None,
    context_length: Optional[int] = ModelDefaults.DEFAULT_CONTEXT_LENGTH,
    backoff: float = ModelDefaults.DEFAULT_BACKOFF,
    max_backoff: float = ModelDefaults.DEFAULT_MAX_BACKOFF,
    max_retry_wait: float = ModelDefaults.DEFAULT_MAX_RETRY_WAIT,
    structured_output: Dict[str, Any] = ModelDefaults.DEFAULT_STRUCTURED_OUTPUT,
    cache_namespace: str = ModelDefaults.DEFAULT_CACHE_NAMESPACE,
    cache_check: Optional[CacheCheck] = None,
    stream: bool = ModelDefaults.DEFAULT_STREAM,
    stop_repetition: int = ModelDefaults.DEFAULT_STOP_REPETITION,
) -> OpenAICompatibleModel:
    """Registered as ``spacy_ner_project.OpenAICompatible.v1`` (llm_models). The defaults
    (ModelDefaults) suit a one-slot local server on a CPU.

    base_url (str): API root, e.g. http://localhost:11434/v1; requests go to {base_url}/chat/completions.
    model (str): Model name sent with each request.
    api_key_env (Optional[str]): Environment variable holding the API key (sent as a Bearer token);
        None for local servers. If named and unset, construction fails.
    timeout (float): Seconds per request attempt, all of it (connect, send, read): an attempt
        ends at this deadline whatever the server sends meanwhile.
    max_retries (int): Retries after the first attempt (timeouts, 408, 429, 5xx, malformed
        bodies); a failed connection is retried once at most. A Retry-After longer than
        max_retry_wait is shared by all the model's requests: max_retries waits in all, then
        the remaining requests fail at once.
    concurrency (int): Maximum requests in flight.
    config (Dict[str, Any]): Extra request parameters (temperature, max_tokens, stop, seed ...);
        it replaces the default ({"temperature": 0.0, "seed": 0}: the same answers every run)
        as a whole.
    cache (Optional[ResponseCache]): Response cache, e.g. spacy_ner_project.SQLiteCache.v1.
    context_length (Optional[int]): Model context length in tokens, for sharding long docs.
    backoff (float): First retry waits between backoff/2 and backoff seconds, doubling per retry.
    max_backoff (float): Upper bound of the computed wait.
    max_retry_wait (float): Longest wait a server's Retry-After gets (seconds or HTTP date);
        a server asking for more is retried after this many seconds.
    structured_output (Dict[str, Any]): Request fields that ask for the answer's JSON schema,
        merged into every request, e.g. ``@llm_misc = "spacy_ner_project.EntitySchema.v1"``; {}: none.
    cache_namespace (str): Your label folded into the cache key (e.g. the chat template or
        server build), for what GET {base_url}/models does not report. The key never holds
        base_url: a server restarted on another port hits the same entries.
    cache_check (Optional[Callable[[str], bool]]): Predicate on a server answer; an answer it
        rejects is returned but not cached (counted in stats.uncached_unusable).
    stream (bool): Ask for the answer as a stream of Server-Sent Events ("stream": true). A
        request given up on (timeout, Ctrl-C, stop_repetition) then closes its connection, and
        llama-cpp-python's one-slot server stops generating it at the next token instead of
        making the retry wait for it. A server that ignores it answers as usual; the answers
        are the same either way. llama-cpp-python's server must run with
        --interrupt_requests False (serve-llm does so), else it ends a stream early whenever
        another request waits (such a cut answer is retried, never used).
    stop_repetition (int): Stop an answer once it repeats itself this many times: the same
        unit of up to 64 characters (not only whitespace) this many times in a row at its end,
        or this many equal JSON strings in a row ("", "", ... or "Paris", "Paris", ...). The
        answer is the text up to there (a streamed one stops being generated), counted in
        stats.repetition_stops; 0 switches the rule off. The default, 8, is well above the
        longest repetition seen in normal answers (3, as in "1000"), see ModelDefaults.
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
        stream=stream,
        stop_repetition=stop_repetition,
    )


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
