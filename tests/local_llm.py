"""The tests of a real local LLM (marker ``llm_local``): what they need, and the marks that skip
them with the reason where it is missing."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from typing import List

import pytest

from spacy_ner_project.llm.server import KNOWN_MODELS


def missing(model: str) -> str:
    """Why ``model`` cannot be served here (the [local-llm] extra or its model package is not
    installed), or "" when it can."""
    if importlib.util.find_spec("llama_cpp") is None:
        return 'llama-cpp-python is not installed (pip install -e ".[local-llm]")'
    try:
        importlib.metadata.distribution(KNOWN_MODELS[model].distribution)
    except importlib.metadata.PackageNotFoundError:
        return f"{KNOWN_MODELS[model].distribution} is not installed (pip install -e \".[local-llm]\")"
    return ""


def local_llm_marks(model: str) -> List[pytest.MarkDecorator]:
    """A test module's ``pytestmark``: marker llm_local, skipped with the reason without ``model``."""
    reason = missing(model)
    return [pytest.mark.llm_local, pytest.mark.skipif(bool(reason), reason=reason or "ready")]
