"""CoNLL-2003 (IOB1 or IOB2, with or without ``-DOCSTART-``) to spaCy ``DocBin``.

Reading is strict: every problem is reported as a :class:`ConllFormatError` that names
the file and the 1-based line (and column where one character or tag is at fault), and
nothing is written until the whole file has been read and validated. Output files are
written atomically (temporary file + rename), so a failed conversion never leaves a
partial ``.spacy`` file behind, and the output may not be the input file itself.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Literal, NamedTuple, Optional, Sequence, Tuple

import typer
from wasabi import msg

from spacy_ner_project.errors import UserError, os_error_message

Scheme = Literal["auto", "iob1", "iob2"]
DOCSTART = "-DOCSTART-"
DOC_ID_KEY = "doc_id"  # doc.user_data key holding the document id
_TAG_RE = re.compile(r"^(?:O|([BI])-(\S+))$")
_FIELD_RE = re.compile(r"\S+")  # the same fields as str.split(): both use Unicode whitespace
_INVISIBLE_CATEGORIES = ("Cc", "Cf")  # control (NUL ...) and format (BOM, zero-width ...) characters


class ConllFormatError(UserError):
    """A CoNLL file that cannot be converted; ``path``, ``line`` and ``column`` (1-based) say where."""

    def __init__(self, path: Path | str, line: Optional[int], message: str, *, column: Optional[int] = None) -> None:
        self.path = str(path)
        self.line = line
        self.column = column
        where = self.path if line is None else f"{self.path}:{line}" if column is None else f"{self.path}:{line}:{column}"
        super().__init__(f"{where}: {message}")


class RawToken(NamedTuple):
    """One token line as read: where it is, its word, and its tag split into prefix and label."""

    line: int
    column: int  # of the tag
    word: str
    prefix: str  # "B", "I" or "O"
    label: str  # "" for O


@dataclass
class Sentence:
    words: List[str]
    tags: List[str]  # IOB2 after reading


@dataclass
class ConllDocument:
    doc_id: str
    sentences: List[Sentence] = field(default_factory=list)


@dataclass
class ConllStats:
    docs: int = 0
    sentences: int = 0
    tokens: int = 0
    entities: Counter = field(default_factory=Counter)
    scheme: str = ""
    warnings: List[str] = field(default_factory=list)

    @property
    def total_entities(self) -> int:
        return sum(self.entities.values())

    def as_dict(self) -> Dict[str, int]:
        row = {
            "docs": self.docs,
            "sentences": self.sentences,
            "tokens": self.tokens,
            "entities": self.total_entities,
        }
        row.update({label: self.entities[label] for label in sorted(self.entities)})
        return row


# --------------------------------------------------------------------------- reading


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
    match = _TAG_RE.match(tag)
    if match is None:
        raise ConllFormatError(path, number, f"unknown tag {tag!r}; expected 'O', 'B-TYPE' or 'I-TYPE'", column=column)
    prefix, label = match.group(1) or "O", match.group(2) or ""
    if labels is not None and prefix != "O" and label not in labels:
        raise ConllFormatError(
            path, number, f"unknown entity type {label!r} in tag {tag!r}; allowed: {', '.join(labels)}", column=column
        )
    return prefix, label


def _check_visible(path: Path, number: int, column: int, field: str) -> None:
    """Refuse a field holding control or format characters (NUL, a BOM, a zero-width space ...):
    invisible in an editor, they would end up inside the stored tokens or labels."""
    if field.isprintable():  # fast path: no C* category character at all
        return
    for offset, char in enumerate(field):
        if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
            name = "BYTE ORDER MARK" if char == "\ufeff" else unicodedata.name(char, "control character")
            where = "is nothing but invisible characters" if all(
                unicodedata.category(c) in _INVISIBLE_CATEGORIES for c in field
            ) else "contains an invisible character"
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
        for column, field in fields:
            _check_visible(path, number, column, field)
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


def _violations(tokens: Sequence[RawToken], scheme: str) -> Iterator[Tuple[RawToken, str]]:
    """Yield (token, message) for each tag the scheme forbids in one sentence."""
    previous = "O"  # label of the previous token ("O" for outside)
    for token in tokens:
        prefix, label = token.prefix, token.label
        if scheme == "iob2" and prefix == "I" and previous != label:
            yield token, f"'I-{label}' follows {_describe(previous)}; in IOB2 an entity starts with 'B-'"
        if scheme == "iob1" and prefix == "B" and previous != label:
            yield token, (
                f"'B-{label}' follows {_describe(previous)}; in IOB1 'B-' only separates two "
                "adjacent entities of the same type"
            )
        previous = label if prefix != "O" else "O"


def _describe(label: str) -> str:
    return "'O'" if label == "O" else f"a {label} entity"


@dataclass(frozen=True)
class SchemeEvidence:
    """How the entities of a file start after 'O' or another type: with 'I-' (only IOB1
    allows that) or with 'B-' (IOB2's way; IOB1 reserves 'B-' for adjacent same-type entities)."""

    i_starts: int = 0
    b_starts: int = 0

    @property
    def scheme(self) -> Optional[str]:
        """The majority decides, so that a few stray tags cannot flip a whole file: 'iob1' when
        'I-' starts outnumber 'B-' starts; 'iob2' when 'B-' starts are as many or more (a tie
        reads IOB2, the stricter scheme, so the stray 'I-' is reported); None when there is
        neither (the tags read the same in both schemes)."""
        if self.i_starts > self.b_starts:
            return "iob1"
        return "iob2" if self.b_starts else None


def scheme_evidence(sentences: Iterable[Sequence[RawToken]]) -> SchemeEvidence:
    i_starts = b_starts = 0
    for tokens in sentences:
        i_starts += sum(1 for _ in _violations(tokens, "iob2"))
        b_starts += sum(1 for _ in _violations(tokens, "iob1"))
    return SchemeEvidence(i_starts=i_starts, b_starts=b_starts)


def detect_scheme(sentences: Iterable[Sequence[RawToken]]) -> Optional[str]:
    """'iob1', 'iob2' or None (either reads the same): see :attr:`SchemeEvidence.scheme`."""
    return scheme_evidence(sentences).scheme


def _to_iob2(tokens: Sequence[RawToken]) -> List[str]:
    tags: List[str] = []
    previous = "O"
    for _, _, _, prefix, label in tokens:
        if prefix == "O":
            tags.append("O")
            previous = "O"
            continue
        starts = prefix == "B" or previous != label
        tags.append(("B-" if starts else "I-") + label)
        previous = label
    return tags


@dataclass
class ConllCorpus:
    documents: List[ConllDocument]
    scheme: str  # the scheme the tags were read with
    warnings: List[str] = field(default_factory=list)


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
    labels: if given, entity types outside it are errors.
    """
    path = Path(path)
    check_options(scheme=scheme, n_sents=n_sents)
    raw, saw_docstart = _read_raw(path, labels)
    evidence = scheme_evidence(t for _, t in raw)
    effective = scheme if scheme != "auto" else evidence.scheme or "iob2"
    warnings: List[str] = []
    for _, tokens in raw:
        for token, problem in _violations(tokens, effective):
            if effective == "iob2" or strict:
                raise ConllFormatError(
                    path, token.line, f"{problem} ({_scheme_note(scheme, effective, evidence)})", column=token.column
                )
            warnings.append(f"{path}:{token.line}:{token.column}: {problem}; read as the start of an entity")
    stem = path.stem if path.suffix in {".txt", ".conll", ".iob", ".bio"} else path.name
    documents: List[ConllDocument] = []
    for index, (starts_doc, tokens) in enumerate(raw):
        if n_sents > 0:
            new_doc = index % n_sents == 0
        else:
            new_doc = starts_doc or not saw_docstart or not documents
        if new_doc:
            documents.append(ConllDocument(doc_id=f"{stem}-{len(documents)}"))
        words = [token.word for token in tokens]
        tags = _to_iob2(tokens) if effective == "iob1" else [_iob_tag(t.prefix, t.label) for t in tokens]
        documents[-1].sentences.append(Sentence(words=words, tags=tags))
    return ConllCorpus(documents=documents, scheme=effective, warnings=warnings)


def check_options(*, scheme: str, n_sents: int) -> None:
    if scheme not in ("auto", "iob1", "iob2"):
        raise UserError(f"scheme must be 'auto', 'iob1' or 'iob2', not {scheme!r}")
    if n_sents < 0:
        raise UserError(f"n_sents must be 0 (group by -DOCSTART-) or positive, not {n_sents}")


def _scheme_note(asked: str, effective: str, evidence: SchemeEvidence) -> str:
    """Why the scheme applies, and what to do if it is the wrong one."""
    if asked != "auto":
        return f"scheme {effective}"
    if effective == "iob1":
        return f"scheme iob1, detected: {evidence.i_starts} entities start with 'I-'; without --strict it is read with a warning"
    if evidence.i_starts and evidence.b_starts:
        return (
            f"scheme iob2: {evidence.b_starts} entities start with 'B-' and {evidence.i_starts} with a stray 'I-'; "
            "fix the tag, or pass --scheme iob1 if the file is IOB1"
        )
    return "scheme iob2; pass --scheme iob1 if the file is IOB1"


def _iob_tag(prefix: str, label: str) -> str:
    return "O" if prefix == "O" else f"{prefix}-{label}"


# ------------------------------------------------------------------------- to spaCy


def iob2_spans(tags: Sequence[str]) -> List[Tuple[int, int, str]]:
    """(start, end, label) token spans of IOB2 tags, end exclusive."""
    spans: List[Tuple[int, int, str]] = []
    for i, tag in enumerate(tags):
        if tag.startswith("B-"):
            spans.append((i, i + 1, tag[2:]))
        elif tag.startswith("I-"):
            start, _, label = spans[-1]
            spans[-1] = (start, i + 1, label)
    return spans


def to_doc(document: ConllDocument, vocab) -> "Doc":  # noqa: F821 - spaCy type
    """A Doc with sentence starts, entities (all other tokens 'O') and the document id."""
    from spacy.tokens import Doc, Span

    words = [w for sent in document.sentences for w in sent.words]
    sent_starts: List[bool] = []
    ents: List[Tuple[int, int, str]] = []
    offset = 0
    for sent in document.sentences:
        sent_starts.extend([True] + [False] * (len(sent.words) - 1))
        ents.extend((offset + s, offset + e, label) for s, e, label in iob2_spans(sent.tags))
        offset += len(sent.words)
    spaces = [True] * len(words)
    spaces[-1] = False
    doc = Doc(vocab, words=words, spaces=spaces, sent_starts=sent_starts)
    doc.set_ents([Span(doc, s, e, label=label) for s, e, label in ents], default="outside")
    doc.user_data[DOC_ID_KEY] = document.doc_id
    return doc


def count(documents: Sequence[ConllDocument]) -> ConllStats:
    stats = ConllStats(docs=len(documents))
    for document in documents:
        for sent in document.sentences:
            stats.sentences += 1
            stats.tokens += len(sent.words)
            stats.entities.update(label for _, _, label in iob2_spans(sent.tags))
    return stats


def check_output_file(output: Path) -> None:
    """Refuse an output file path that names an existing directory (cheap; call it before long work)."""
    if output.is_dir():
        raise UserError(f"{output} is a directory; give the path of a file to write, not of a folder")


def write_atomic(data: bytes, output: Path) -> None:
    """Write ``data`` to ``output`` via a temporary file in the same folder and a rename.

    A directory in the way, a read-only or full file system, missing permissions: a
    :class:`UserError` naming ``output``; nothing is left behind."""
    output = Path(output)
    check_output_file(output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    except OSError as err:
        raise UserError(os_error_message(err, path=output, action="write")) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, output)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise UserError(os_error_message(err, path=output, action="write")) from None
        raise


def check_not_same_file(input_path: Path, output_path: Path) -> None:
    """Refuse an output that is the input, also through a symbolic or hard link."""
    # st_dev + st_ino, so links count; an output that does not exist yet cannot be the input
    if input_path.exists() and output_path.exists() and os.path.samefile(input_path, output_path):
        raise UserError(
            f"{output_path} is the input file {input_path}; give another output path (e.g. ending in .spacy)"
        )


def blank_vocab(lang: str) -> "Vocab":  # noqa: F821 - spaCy type
    """The vocab of ``spacy.blank(lang)``; an unknown code is a UserError."""
    import spacy

    try:
        return spacy.blank(lang).vocab
    except ImportError:
        raise UserError(f"unknown language code {lang!r}: use a spaCy language code such as en, de") from None


def convert(
    input_path: Path | str,
    output_path: Path | str,
    *,
    scheme: Scheme = "auto",
    n_sents: int = 0,
    labels: Optional[Sequence[str]] = None,
    strict: bool = False,
    lang: str = "en",
) -> ConllStats:
    """Convert one CoNLL file to a ``.spacy`` DocBin; returns the counts.

    The options and the output path are checked before the input is read."""
    from spacy.tokens import DocBin

    input_path, output_path = Path(input_path), Path(output_path)
    check_not_same_file(input_path, output_path)
    check_output_file(output_path)
    check_options(scheme=scheme, n_sents=n_sents)
    vocab = blank_vocab(lang)
    corpus = read_conll(input_path, scheme=scheme, n_sents=n_sents, labels=labels, strict=strict)
    doc_bin = DocBin(attrs=["ORTH", "SENT_START", "ENT_IOB", "ENT_TYPE"], store_user_data=True)
    for document in corpus.documents:
        doc_bin.add(to_doc(document, vocab))
    write_atomic(doc_bin.to_bytes(), output_path)
    stats = count(corpus.documents)
    stats.scheme = corpus.scheme
    stats.warnings = corpus.warnings
    return stats


def format_stats(name: str, stats: ConllStats, labels: Sequence[str]) -> str:
    """One Markdown row in the layout of the shared data README."""
    cells = [name, stats.docs, stats.sentences, stats.tokens, stats.total_entities]
    cells += [stats.entities.get(label, 0) for label in labels]
    return "| " + " | ".join(str(c) for c in cells) + " |"


def convert_cli(
    input_path: Path = typer.Argument(..., help="CoNLL file (IOB1 or IOB2)"),
    output_path: Path = typer.Argument(..., help="Output .spacy file (not the input)"),
    scheme: str = typer.Option("auto", "--scheme", "-s", help="auto (the majority of entity starts decides), iob1 or iob2"),
    n_sents: int = typer.Option(0, "--n-sents", "-n", help="Sentences per doc; 0 groups by -DOCSTART-"),
    labels: Optional[str] = typer.Option(None, "--labels", help="Comma-separated allowed entity types"),
    strict: bool = typer.Option(False, "--strict", help="IOB1: 'B-X' not after an X entity is an error"),
    lang: str = typer.Option("en", "--lang", help="Language of the vocab"),
) -> None:
    """Convert a CoNLL-2003 style NER file to a spaCy DocBin and print its counts."""
    allowed = [label.strip() for label in labels.split(",")] if labels else None
    stats = convert(input_path, output_path, scheme=scheme, n_sents=n_sents, labels=allowed, strict=strict, lang=lang)  # type: ignore[arg-type]
    for warning in stats.warnings:
        msg.warn(warning)
    types = sorted(stats.entities)
    header = ["file", "docs", "sentences", "tokens", "entities", *types]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    print(format_stats(input_path.name, stats, types))
    msg.good(f"Wrote {output_path} ({stats.scheme.upper()} tags)")
