"""Reading a CoNLL NER file: lines -> validated documents of IOB2-tagged sentences.

Reading is strict: every problem is a :class:`ConllFormatError` that names the file and the
1-based line (and column where one character or tag is at fault).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import AbstractSet, List, Mapping, Optional, Sequence, Tuple

from spacy_ner_project.conll.corpus import ConllCorpus, ConllDocument, RawToken, Sentence
from spacy_ner_project.conll.schemes import SCHEMES, Scheme, SchemeEvidence, iob2_tags, scheme_evidence, violations
from spacy_ner_project.errors import UserError

DOCSTART = "-DOCSTART-"
_TAG_RE = re.compile(r"^(?:O|([BI])-(\S+))$")
_FIELD_RE = re.compile(r"\S+")  # the same fields as str.split(): both use Unicode whitespace
_INVISIBLE_CATEGORIES = ("Cc", "Cf")  # control (NUL ...) and format (BOM, zero-width ...) characters
# Format characters that belong to ordinary text: the zero-width non-joiner and joiner shape
# words in Persian, the Indic scripts and others, and join emoji sequences (👩‍💻). Accepted
# inside a token; never in a tag, and never a whole field on their own.
TEXT_JOINERS = frozenset("\u200c\u200d")
# The phrase types of chunk tags (CoNLL-2000; CoNLL-2003's third column): a last column with
# these holds chunks, not entities (the NER column is missing), unless the labels name them.
CHUNK_PHRASES: Mapping[str, str] = {
    "NP": "noun phrase",
    "VP": "verb phrase",
    "PP": "prepositional phrase",
    "ADJP": "adjective phrase",
    "ADVP": "adverb phrase",
    "SBAR": "subordinate clause",
    "PRT": "particle",
    "CONJP": "conjunction phrase",
    "INTJ": "interjection",
    "LST": "list marker",
    "UCP": "unlike coordinated phrase",
}
_STEM_SUFFIXES = {".txt", ".conll", ".iob", ".bio"}  # dropped from the file name in document ids


class ConllFormatError(UserError):
    """A CoNLL file that cannot be converted; ``path``, ``line`` and ``column`` (1-based) say where."""

    def __init__(self, path: Path | str, line: Optional[int], message: str, *, column: Optional[int] = None) -> None:
        self.path = str(path)
        self.line = line
        self.column = column
        where = self.path if line is None else f"{self.path}:{line}" if column is None else f"{self.path}:{line}:{column}"
        super().__init__(f"{where}: {message}")


class ChunkTagError(ConllFormatError):
    """A tag whose type is a chunk phrase (``B-NP``): the last column holds chunk tags, not
    entities. ``label`` is the phrase type; allowing it among the labels reads it as an entity."""

    def __init__(self, path: Path | str, line: int, column: int, *, tag: str, label: str) -> None:
        self.tag = tag
        self.label = label
        super().__init__(
            path,
            line,
            f"{tag!r} is a chunk tag ({label}: {CHUNK_PHRASES[label]}), not an entity: the last column must "
            f"hold the NER tags, and this file's NER column seems to be missing; if {label} really is an "
            "entity type, name it among the allowed labels",
            column=column,
        )


def _decode_lines(path: Path) -> List[str]:
    """Lines of ``path`` as text: UTF-8 (a BOM is dropped), CRLF/CR line ends accepted."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConllFormatError(path, None, "not found; give the path of a CoNLL file") from None
    except IsADirectoryError:
        raise ConllFormatError(path, None, "is a directory; give the path of a CoNLL file") from None
    except OSError as err:
        raise ConllFormatError(path, None, f"cannot read it: {err.strerror or err}; check that you may read it") from None
    if not data.strip():
        raise ConllFormatError(path, None, "the file is empty; expected CoNLL lines 'TOKEN ... TAG'")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        # split like bytes.splitlines (\n, \r\n, \r only), not on Unicode line separators
        return re.split(r"\r\n|\r|\n", data.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    for number, raw in enumerate(data.splitlines(), start=1):  # find the line to report
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ConllFormatError(
                path,
                number,
                f"bytes that are not UTF-8 at column {err.start + 1} ({raw[err.start:err.start + 4]!r}); "
                "re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)",
            ) from None
    raise AssertionError("unreachable: the whole file failed to decode but no line did")  # pragma: no cover


def _parse_tag(path: Path, number: int, column: int, tag: str, labels: Optional[Sequence[str]]) -> Tuple[str, str]:
    """The prefix ("B", "I" or "O") and the entity type of a tag; an unknown tag, a type outside
    ``labels`` or a chunk phrase type that ``labels`` does not name is an error."""
    match = _TAG_RE.match(tag)
    if match is None:
        raise ConllFormatError(path, number, f"unknown tag {tag!r}; expected 'O', 'B-TYPE' or 'I-TYPE'", column=column)
    prefix, label = match.group(1) or "O", match.group(2) or ""
    if label in CHUNK_PHRASES and (labels is None or label not in labels):
        raise ChunkTagError(path, number, column, tag=tag, label=label)
    if labels is not None and prefix != "O" and label not in labels:
        raise ConllFormatError(
            path, number, f"unknown entity type {label!r} in tag {tag!r}; allowed: {', '.join(labels)}", column=column
        )
    return prefix, label


def _is_invisible(char: str) -> bool:
    return unicodedata.category(char) in _INVISIBLE_CATEGORIES


def _check_visible(path: Path, number: int, column: int, field: str, *, allowed: AbstractSet[str] = TEXT_JOINERS) -> None:
    """Refuse a field holding control or format characters (NUL, a BOM, a zero-width space ...):
    invisible in an editor, they would end up inside the stored tokens or labels. The characters
    in ``allowed`` (by default the text joiners, see :data:`TEXT_JOINERS`) may be part of a field,
    but a field of nothing but invisible characters is refused."""
    if field.isprintable():  # fast path: no C* category character at all
        return
    only_invisible = all(_is_invisible(char) for char in field)
    for offset, char in enumerate(field):
        if only_invisible or (_is_invisible(char) and char not in allowed):
            name = "BYTE ORDER MARK" if char == "\ufeff" else unicodedata.name(char, "control character")
            where = "is nothing but invisible characters" if only_invisible else "contains an invisible character"
            raise ConllFormatError(
                path,
                number,
                f"field {field!r} {where}: U+{ord(char):04X} ({name}); remove it from the file",
                column=column + offset,
            )


def _read_raw(path: Path, labels: Optional[Sequence[str]]) -> Tuple[List[Tuple[bool, List[RawToken]]], bool]:
    """Split a file into sentences of tokens; flag docstarts.

    Returns a list of (starts_new_document, tokens) and whether any ``-DOCSTART-`` was seen.
    """
    lines = _decode_lines(path)
    sentences: List[Tuple[bool, List[RawToken]]] = []
    current: List[RawToken] = []
    pending_docstart = False
    saw_docstart = False
    n_columns: Optional[int] = None
    for number, line in enumerate(lines, start=1):
        fields = [(match.start() + 1, match.group()) for match in _FIELD_RE.finditer(line)]
        if not fields:
            if current:
                sentences.append((pending_docstart, current))
                current, pending_docstart = [], False
            continue
        for index, (column, field) in enumerate(fields):
            is_tag = index == len(fields) - 1 > 0  # the last of two or more fields: a joiner has no place there
            _check_visible(path, number, column, field, allowed=frozenset() if is_tag else TEXT_JOINERS)
        columns = [field for _, field in fields]
        if columns[0] == DOCSTART:
            if current:
                raise ConllFormatError(
                    path,
                    number,
                    f"{DOCSTART} inside a sentence (line {current[-1].line} is a token line); "
                    "put a blank line before it to end the sentence",
                    column=fields[0][0],
                )
            pending_docstart = saw_docstart = True
            continue
        if n_columns is None:
            if len(columns) < 2:
                raise ConllFormatError(
                    path, number, f"found {len(columns)} column; expected at least 2 (TOKEN ... NER_TAG)"
                )
            n_columns = len(columns)
        elif len(columns) != n_columns:
            raise ConllFormatError(
                path,
                number,
                f"found {len(columns)} columns, but earlier lines have {n_columns}; "
                "every token line needs the same columns (TOKEN ... NER_TAG)",
            )
        tag_column = fields[-1][0]
        prefix, label = _parse_tag(path, number, tag_column, columns[-1], labels)
        current.append(RawToken(number, tag_column, columns[0], prefix, label))
    if current:
        sentences.append((pending_docstart, current))
    if not sentences:
        raise ConllFormatError(path, None, "no token lines found; expected CoNLL lines 'TOKEN ... TAG'")
    return sentences, saw_docstart


def read_conll(
    path: Path | str,
    *,
    scheme: Scheme = "auto",
    n_sents: int = 0,
    labels: Optional[Sequence[str]] = None,
    strict: bool = False,
) -> ConllCorpus:
    """Read and validate a CoNLL NER file into documents of IOB2-tagged sentences.

    scheme: "iob1", "iob2" or "auto": IOB1 when more entities start with 'I-' than with 'B-'
        (after 'O' or another type), else IOB2 (see :class:`SchemeEvidence`). IOB2 forbids
        'I-X' after 'O' or another type: that is an error naming the line and column, also
        for a stray 'I-' in a file detected as IOB2 (pass scheme="iob1" if the file is IOB1).
    strict: IOB1 reserves 'B-X' for an entity directly after another X entity; the
        original CoNLL-2003 train file breaks that twice ('B-MISC' after 'O'). The
        meaning is unambiguous (an entity starts), so by default such tags are read as
        entity starts and reported in ``warnings``; strict=True makes them errors.
    n_sents: 0 groups sentences by ``-DOCSTART-`` lines (a file without any becomes
        one document per sentence); n > 0 groups every n sentences, ignoring docstarts.
    labels: if given, entity types outside it are errors. A chunk phrase type (:data:`CHUNK_PHRASES`:
        'B-NP' in a file whose NER column is missing) is an error unless ``labels`` names it.
    """
    path = Path(path)
    check_options(scheme=scheme, n_sents=n_sents)
    raw, saw_docstart = _read_raw(path, labels)
    evidence = scheme_evidence(t for _, t in raw)
    effective = scheme if scheme != "auto" else evidence.scheme or "iob2"
    warnings: List[str] = []
    for _, tokens in raw:
        for token, problem in violations(tokens, effective):
            if effective == "iob2" or strict:
                raise ConllFormatError(
                    path, token.line, f"{problem} ({_scheme_note(scheme, effective, evidence)})", column=token.column
                )
            warnings.append(f"{path}:{token.line}:{token.column}: {problem}; read as the start of an entity")
    stem = path.stem if path.suffix in _STEM_SUFFIXES else path.name
    documents: List[ConllDocument] = []
    for index, (starts_doc, tokens) in enumerate(raw):
        if n_sents > 0:
            new_doc = index % n_sents == 0
        else:
            new_doc = starts_doc or not saw_docstart or not documents
        if new_doc:
            documents.append(ConllDocument(doc_id=f"{stem}-{len(documents)}"))
        words = [token.word for token in tokens]
        documents[-1].sentences.append(Sentence(words=words, tags=iob2_tags(tokens, effective)))
    return ConllCorpus(documents=documents, scheme=effective, warnings=warnings)


def check_options(*, scheme: str, n_sents: int) -> None:
    if scheme not in SCHEMES:
        raise UserError(f"scheme must be 'auto', 'iob1' or 'iob2', not {scheme!r}")
    if n_sents < 0:
        raise UserError(f"n_sents must be 0 (group by -DOCSTART-) or positive, not {n_sents}")


def _scheme_note(asked: str, effective: str, evidence: SchemeEvidence) -> str:
    """Why the scheme applies, and what to do if it is the wrong one."""
    if asked != "auto":
        return f"scheme {effective}"
    if effective == "iob1":
        return f"scheme iob1, detected: {evidence.i_starts} entities start with 'I-'; read with a warning unless reading is strict"
    if evidence.i_starts and evidence.b_starts:
        return (
            f"scheme iob2: {evidence.b_starts} entities start with 'B-' and {evidence.i_starts} with a stray 'I-'; "
            "fix the tag, or pass --scheme iob1 if the file is IOB1"
        )
    return "scheme iob2; pass --scheme iob1 if the file is IOB1"
