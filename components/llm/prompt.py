"""The prompt's text pieces: shipped templates, document tags, label order and definitions."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Dict, Iterable, List, Sequence

TEMPLATE_DIR = Path(__file__).parent / "templates"

# json_ner.v2 puts each text between <document-ID> and </document-ID>, ID chosen by document_tags.
DOCUMENT_TAG_PREFIX = "document-"
_ID_HEX_DIGITS = 8
# An opening or closing tag of json_ner.v2 (group 1: "/" for a closing one): text up to the
# last one in a response is an echoed prompt.
DOCUMENT_TAG_RE = re.compile(rf"<(/?){DOCUMENT_TAG_PREFIX}[0-9a-f]{{{_ID_HEX_DIGITS}}}>")

# Short CoNLL-2003 definitions, as in the seed notebook's prompt (used for labels that have one).
DEFAULT_LABEL_DEFINITIONS: Dict[str, str] = {
    "PER": "person",
    "ORG": "organization",
    "LOC": "location",
    "MISC": "miscellaneous, e.g. nationalities, events, works",
}


def read_template(name: str) -> str:
    """A prompt template shipped with this package, e.g. ``read_template("json_ner.v1")``."""
    path = TEMPLATE_DIR / f"{name}.jinja"
    if not path.exists():
        known = sorted(p.stem for p in TEMPLATE_DIR.glob("*.jinja"))
        raise ValueError(f"no template {name!r}; shipped templates: {known}")
    return path.read_text(encoding="utf8")


def document_tags(texts: Sequence[str]) -> List[str]:
    """One tag name per text (``document-`` + 8 hex digits) that occurs in none of ``texts``.

    The ID is derived from the text (SHA-256 of a counter and the text; the counter goes up
    from 0 until the name occurs in no text, case-insensitively, and no earlier text has it), so
    a text cannot close its own block or another's, and the same texts always give the same
    prompt (cached answers are found again).
    """
    haystacks = [text.casefold() for text in texts]
    tags: List[str] = []
    for text in texts:
        salt = 0
        while True:
            digest = hashlib.sha256(f"{salt}\n{text}".encode("utf8")).hexdigest()[:_ID_HEX_DIGITS]
            tag = DOCUMENT_TAG_PREFIX + digest
            if tag not in tags and not any(tag in haystack for haystack in haystacks):
                break
            salt += 1
        tags.append(tag)
    return tags


def order_labels(labels: Iterable[str]) -> List[str]:
    """Unique labels: the CoNLL ones first in their usual order (PER ORG LOC MISC), then sorted."""
    unique = set(labels)
    known = [label for label in DEFAULT_LABEL_DEFINITIONS if label in unique]
    return known + sorted(unique - set(known))
