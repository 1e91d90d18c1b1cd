"""Checked reading of spaCy ``DocBin`` (``.spacy``) files: one clear error per kind of bad file.

``DocBin.from_disk`` answers a foreign or damaged file with a ``KeyError``, a msgpack
``ExtraData``, an empty message or a ``TypeError``; :func:`read_docbin` turns every such
case into a :class:`DocBinError` naming the file, what is wrong and what to do.

spaCy and srsly are imported inside the functions, so that importing this module (the
``train`` command's checks, ``train --help``) does not load them.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import TYPE_CHECKING, List, Sequence, Tuple

from spacy_ner_project.errors import UserError

if TYPE_CHECKING:
    from spacy.tokens import Doc
    from spacy.vocab import Vocab

# What DocBin.from_bytes requires of the unpacked message (spaCy 3.x, DocBin.to_bytes).
REQUIRED_FIELDS = ("attrs", "strings", "lengths", "spaces", "tokens", "cats")
MAKE_ONE = "convert CoNLL with `python -m spacy_ner_project convert` or save docs with DocBin.to_disk"


class DocBinError(UserError):
    """A file that cannot be read as a DocBin; the message names it and says what to do."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {problem}")


def _diagnose(data: bytes) -> str:
    """What is wrong with ``data`` that DocBin.from_bytes or get_docs refused."""
    import srsly

    try:
        unpacked = zlib.decompress(data)
    except zlib.error:
        return f"not a spaCy DocBin (.spacy) file: not zlib-compressed; {MAKE_ONE}"
    try:
        message = srsly.msgpack_loads(unpacked)
    except Exception:  # noqa: BLE001 - msgpack raises many types (ExtraData, FormatError, ValueError ...)
        return f"not a spaCy DocBin (.spacy) file: zlib-compressed, but not msgpack; {MAKE_ONE}"
    if not isinstance(message, dict):
        return f"not a spaCy DocBin (.spacy) file: msgpack of a {type(message).__name__}, not of a DocBin; {MAKE_ONE}"
    missing = [name for name in REQUIRED_FIELDS if name not in message]
    if missing:
        return f"not a spaCy DocBin (.spacy) file: msgpack without the DocBin fields {', '.join(missing)}; {MAKE_ONE}"
    return f"a damaged DocBin: its fields do not fit together; write it again ({MAKE_ONE})"


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DocBinError(path, f"not found; give a .spacy DocBin ({MAKE_ONE})") from None
    except IsADirectoryError:
        raise DocBinError(path, f"is a directory; give a .spacy DocBin file ({MAKE_ONE})") from None
    except OSError as err:
        raise DocBinError(path, f"cannot read it: {err.strerror or err}; check that you may read it") from None
    if not data:
        raise DocBinError(path, f"the file is empty; give a .spacy DocBin ({MAKE_ONE})")
    return data


def read_docbin(path: Path | str, *, vocab: Vocab) -> List[Doc]:
    """All docs of the DocBin at ``path``, built on ``vocab``.

    A missing, unreadable, empty, foreign (not zlib, not msgpack, not DocBin fields) or damaged
    file raises a :class:`DocBinError` (a ``ValueError``) naming ``path``."""
    from spacy.tokens import DocBin

    path = Path(path)
    data = _read_bytes(path)
    try:
        return list(DocBin().from_bytes(data).get_docs(vocab))
    except Exception as err:  # noqa: BLE001 - spaCy raises KeyError, TypeError, ValueError ... for foreign data
        raise DocBinError(path, _diagnose(data)) from err


def check_docbin(path: Path | str) -> int:
    """The number of docs in the DocBin at ``path``, without building them (a quick check
    before long work); the same :class:`DocBinError` as :func:`read_docbin` otherwise."""
    from spacy.tokens import DocBin

    path = Path(path)
    data = _read_bytes(path)
    try:
        return len(DocBin().from_bytes(data))
    except Exception as err:  # noqa: BLE001 - as in read_docbin
        raise DocBinError(path, _diagnose(data)) from err


def sentence_docbin(
    sentences: Sequence[Tuple[str, Sequence[Tuple[str, str]]]], path: Path | str, *, lang: str = "en"
) -> Path:
    """Write one-sentence gold Docs to ``path`` from ``(text, [(entity text, label), ...])``
    pairs (each entity at the first occurrence of its text; spaCy's tokenizer for ``lang``).
    For sentences written by hand in tests and benchmarks."""
    import spacy
    from spacy.tokens import DocBin

    nlp = spacy.blank(lang)
    docs = []
    for text, entities in sentences:
        doc = nlp.make_doc(text)
        for token in doc:
            token.is_sent_start = token.i == 0
        spans = [doc.char_span(text.index(t), text.index(t) + len(t), label=label) for t, label in entities]
        if any(span is None for span in spans):
            raise UserError(f"an entity of {text!r} does not fall on token boundaries: {entities}")
        doc.set_ents(spans, default="outside")
        docs.append(doc)
    path = Path(path)
    DocBin(docs=docs).to_disk(path)
    return path
