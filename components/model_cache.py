"""The models' use of the SQLite response cache (components/cache.py).

:class:`CacheBinding` is what both models share: the cached answers they may use and the
storing of new ones (never a failed request, never an answer ``cache_check`` rejects).
:func:`served_identity` is the OpenAI-compatible model's cache identity: its settings plus what
``GET {base_url}/models`` reports about the model the server runs, so a server restarted with
another model file gets no stale answers, and one restarted on another port (serve-llm picks a
free one) hits the same entries: where the server listens is no part of it. serve-llm's server
reports the GGUF file's SHA-256 and the chat format in the model id it lists
(spacy_ner_project/llm/server.py). :class:`CachedModel` puts any spacy-llm model behind the
cache (``spacy_ner_project.CachedModel.v1``). Both key a RequestPrompt by its text and its
request fields (components/cache.py).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Dict, Iterable, List, Optional

import httpx

from .cache import ResponseCache, model_identity
from .model_client import ChatClient
from .model_retry import snippet
from .model_responses import (
    CacheCheck,
    CountsRequests,
    FailedResponse,
    ModelResponse,
    PromptExecutor,
    flatten_unique,
    nest,
)
from .model_settings import ModelSettings

LOGGER = logging.getLogger("spacy_ner_project.llm")

# Fields of a GET /models entry that identify the served model. Not "created": vLLM sets it
# to the time of the request. llama.cpp's server reports the GGUF in "id" and its size,
# parameters and vocabulary in "meta"; vLLM the model path in "root" and a LoRA's "parent".
MODEL_IDENTITY_FIELDS = ("id", "owned_by", "root", "parent", "meta")
# Seconds (at most; never more than the model's timeout) for the one GET {base_url}/models.
IDENTITY_TIMEOUT = 10.0


class CacheBinding:
    """A model's use of ``cache`` (None: no cache; ``check`` still decides what is usable)."""

    def __init__(self, cache: Optional[ResponseCache], *, check: Optional[CacheCheck]) -> None:
        self.cache = cache
        self.check = check

    def usable(self, response: str) -> bool:
        """Whether ``cache_check`` (if any) accepts the answer."""
        return self.check is None or bool(self.check(response))

    def lookup(self, model_id: str, prompts: Iterable[str]) -> Dict[str, ModelResponse]:
        """The usable cached answers (``elapsed_s`` None) of those prompts that have one, by prompt."""
        if self.cache is None:
            return {}
        cached = self.cache.get_many(model_id, prompts)
        return {prompt: ModelResponse(answer) for prompt, answer in cached.items() if self.usable(answer)}

    def store(self, model_id: str, prompt: str, response: str) -> bool:
        """Cache a server's answer if it is usable, and say whether it was."""
        usable = self.usable(response)
        if usable and self.cache is not None:
            self.cache.put(model_id, prompt, str(response))
        return usable


def served_models(listing: Any, model: str) -> List[Dict[str, Any]]:
    """What identifies the served model in a ``GET /models`` answer: the identity fields of the
    configured model's entry when the server lists it (OpenAI lists every model the key may
    use), else of every entry (llama.cpp serves its one model under any name), sorted by id.

    Raises ValueError if ``listing`` is not an OpenAI model list.
    """
    entries = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(entries, list) or not all(isinstance(entry, dict) and "id" in entry for entry in entries):
        raise ValueError(f"not an OpenAI model list: {snippet(json.dumps(listing, default=str))!r}")
    picked = [entry for entry in entries if entry["id"] == model] or entries
    identities = [{key: entry[key] for key in MODEL_IDENTITY_FIELDS if key in entry} for entry in picked]
    return sorted(identities, key=lambda entry: str(entry["id"]))


def served_identity(settings: ModelSettings, client: ChatClient) -> str:
    """The cache's model identity: the settings' (ModelSettings.identity: not the URL) plus what
    ``GET {base_url}/models`` reports; if that fails, the settings' alone (with a warning, as the
    cache then cannot tell a server restarted with another model file)."""
    url = f"{settings.base_url}/models"
    try:
        listing = client.get_json(url, timeout=min(settings.timeout, IDENTITY_TIMEOUT))
        served = served_models(listing, settings.model)
    except (httpx.HTTPError, ValueError) as err:
        LOGGER.warning(
            "GET %s failed (%s): the response cache is keyed by the configured model %r only, "
            "so it cannot tell if the server now runs another model; set cache_namespace to tell them apart",
            url,
            snippet(str(err) or type(err).__name__),
            settings.model,
        )
        return model_identity(**settings.identity())
    return model_identity(**settings.identity(), served=served)


def _describe(model: Any) -> Dict[str, Any]:
    """What identifies a wrapped model's answers (spacy-llm REST models keep these privately)."""
    description: Dict[str, Any] = {"class": f"{type(model).__module__}.{type(model).__qualname__}"}
    for attr in ("configured_id", "model_id", "_name", "_endpoint", "_config"):
        if isinstance(getattr(type(model), attr, None), property):
            continue  # may do work (OpenAICompatibleModel.model_id asks the server): never at construction
        if hasattr(model, attr):
            description[attr.lstrip("_")] = getattr(model, attr)
    return description


class CachedModel(CountsRequests):
    """Any spacy-llm model behind a ResponseCache.

    Uncached prompts go to the wrapped model one at a time, so each response is committed as
    soon as it arrives (spacy-llm's built-in models are sequential anyway). A failed response
    (FailedResponse), or one that ``cache_check`` rejects, is not cached; an exception from the
    wrapped model propagates after the responses before it were stored. Responses carry
    ``elapsed_s`` (the wrapped model's time, None from the cache); ``stats`` and
    ``on_progress`` are as for every model here (CountsRequests).
    """

    def __init__(
        self, *, model: PromptExecutor, cache: ResponseCache, model_id: str, cache_check: Optional[CacheCheck] = None
    ) -> None:
        super().__init__()
        self.model = model
        self.cache = cache
        self.cache_check = cache_check
        self.model_id = model_identity(wrapper="CachedModel", model_id=model_id, model=_describe(model))
        self._binding = CacheBinding(cache, check=cache_check)

    @property
    def context_length(self) -> Optional[int]:
        return getattr(self.model, "context_length", None)

    def __call__(self, prompts: Iterable[Iterable[str]]) -> Iterable[Iterable[str]]:
        """Per doc, the responses to its shard prompts: cached, else from the wrapped model."""
        per_doc, unique = flatten_unique(prompts)
        n_prompts = sum(len(doc_prompts) for doc_prompts in per_doc)
        answers: Dict[str, str] = dict(self._binding.lookup(self.model_id, unique))
        self._count(prompts=n_prompts, deduplicated=n_prompts - len(unique), cache_hits=len(answers))
        for prompt in unique:
            if prompt not in answers:
                answers[prompt] = self._ask(prompt)
        return nest(per_doc, answers)

    def _ask(self, prompt: str) -> ModelResponse:
        start = time.monotonic()
        ((response,),) = [list(doc_responses) for doc_responses in self.model([[prompt]])]
        if isinstance(response, FailedResponse):
            self._count(requests=1, failures=1)
            return response
        usable = self._binding.store(self.model_id, prompt, response)
        self._count(requests=1, answered=1, uncached_unusable=int(not usable))
        return ModelResponse(str(response), elapsed_s=time.monotonic() - start)
