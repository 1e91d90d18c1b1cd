"""CoNLL converter: round trip, grouping, IOB1/IOB2, and every bad-input case."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_ner_project.cli import app
from spacy_ner_project.errors import UserError
from spacy_ner_project.conll import (
    CHUNK_PHRASES,
    ChunkTagError,
    ConllFormatError,
    RawToken,
    convert,
    read_conll,
    scheme_evidence,
)

# Invented sentences; two documents, IOB2.
IOB2 = """-DOCSTART- -X- -X- O

Anna NNP B-NP B-PER
Kowalski NNP I-NP I-PER
joined VBD B-VP O
Helix NNP B-NP B-ORG
Motors NNPS I-NP I-ORG
in IN B-PP O
Valmora NNP B-NP B-LOC
. . O O

Valmora NNP B-NP B-LOC
Eastmarch NNP I-NP B-LOC
won VBD B-VP O
. . O O

-DOCSTART- -X- -X- O

Valmoran JJ B-NP B-MISC
fans NNS I-NP O
cheered VBD B-VP O
. . O O
"""

# The same data in IOB1: entities start with I- unless they follow one of the same type.
IOB1 = IOB2.replace("B-PER", "I-PER").replace("B-ORG", "I-ORG").replace("B-MISC", "I-MISC")
IOB1 = IOB1.replace("Valmora NNP B-NP B-LOC\nEastmarch NNP I-NP B-LOC", "Valmora NNP B-NP I-LOC\nEastmarch NNP I-NP B-LOC")
IOB1 = IOB1.replace("in IN B-PP O\nValmora NNP B-NP B-LOC", "in IN B-PP O\nValmora NNP B-NP I-LOC")


def write(tmp_path: Path, text: str | bytes, name: str = "data.txt") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def load_docs(path: Path):
    return list(DocBin().from_disk(path).get_docs(spacy.blank("en").vocab))


def ents(doc) -> list[tuple[str, str]]:
    return [(e.text, e.label_) for e in doc.ents]


EXPECTED_ENTS = [
    [("Anna Kowalski", "PER"), ("Helix Motors", "ORG"), ("Valmora", "LOC"), ("Valmora", "LOC"), ("Eastmarch", "LOC")],
    [("Valmoran", "MISC")],
]


def test_round_trip_iob2(tmp_path: Path) -> None:
    out = tmp_path / "out.spacy"
    stats = convert(write(tmp_path, IOB2), out)
    docs = load_docs(out)
    assert [ents(d) for d in docs] == EXPECTED_ENTS
    assert [d.user_data["doc_id"] for d in docs] == ["data-0", "data-1"]
    assert [s.text for s in docs[0].sents] == ["Anna Kowalski joined Helix Motors in Valmora .", "Valmora Eastmarch won ."]
    assert all(t.ent_iob_ in "BIO" and t.ent_iob_ != "" for d in docs for t in d)  # no missing values
    assert (stats.docs, stats.sentences, stats.tokens, stats.total_entities) == (2, 3, 16, 6)
    assert stats.entities == {"LOC": 3, "MISC": 1, "ORG": 1, "PER": 1}
    assert stats.scheme == "iob2"


def test_iob1_reads_identically(tmp_path: Path) -> None:
    assert scheme_evidence([[RawToken(1, 3, "x", "I", "PER")]]).scheme == "iob1"
    out1, out2 = tmp_path / "a.spacy", tmp_path / "b.spacy"
    assert convert(write(tmp_path, IOB1, "a.txt"), out1).scheme == "iob1"
    convert(write(tmp_path, IOB2, "b.txt"), out2)
    assert [ents(d) for d in load_docs(out1)] == [ents(d) for d in load_docs(out2)] == EXPECTED_ENTS


def test_iob1_b_after_o_is_a_warning_unless_strict(tmp_path: Path) -> None:
    text = "Anna NNP B-NP I-PER\nsaw VBD O O\nOslo NNP B-NP B-LOC\n"
    path = write(tmp_path, text)
    corpus = read_conll(path, scheme="iob1")
    assert len(corpus.warnings) == 1 and ":3:" in corpus.warnings[0]
    assert corpus.documents[0].sentences[0].tags == ["B-PER", "O", "B-LOC"]
    with pytest.raises(ConllFormatError) as err:
        read_conll(path, scheme="iob1", strict=True)
    assert err.value.line == 3


def test_group_every_n_sentences_and_no_docstart(tmp_path: Path) -> None:
    assert len(read_conll(write(tmp_path, IOB2), n_sents=2).documents) == 2  # 3 sentences -> 2 + 1
    assert [len(d.sentences) for d in read_conll(write(tmp_path, IOB2), n_sents=2).documents] == [2, 1]
    no_docstart = IOB2.replace("-DOCSTART- -X- -X- O\n", "")
    assert len(read_conll(write(tmp_path, no_docstart)).documents) == 3  # one doc per sentence


def test_bom_and_crlf_are_handled(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbf" + IOB2.replace("\n", "\r\n").encode("utf-8")
    corpus = read_conll(write(tmp_path, data))
    assert corpus.documents[0].sentences[0].words[0] == "Anna"
    assert [len(d.sentences) for d in corpus.documents] == [2, 1]


@pytest.mark.parametrize(
    "text,line,fragment,kwargs",
    [
        ("Anna NNP B-NP B-PER\nsaw VBD O\n", 2, "columns", {}),
        ("Anna NNP B-NP B-PER\nsaw VBD O X-PER\n", 2, "unknown tag", {}),
        ("Anna NNP B-NP B-\n", 1, "unknown tag", {}),
        ("Anna NNP B-NP B-PERSON\n", 1, "unknown entity type", {"labels": ["PER", "ORG"]}),
        ("Anna NNP B-NP B-PER\nsaw VBD O O\nKowalski NNP B-NP I-PER\n", 3, "IOB2", {"scheme": "iob2"}),
        ("Anna NNP B-NP B-PER\nSmith NNP I-NP I-ORG\n", 2, "IOB2", {"scheme": "iob2"}),
        ("Anna\n", 1, "column", {}),
    ],
)
def test_bad_input_names_file_and_line(tmp_path: Path, text: str, line: int, fragment: str, kwargs) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConllFormatError) as err:
        read_conll(path, **kwargs)
    assert err.value.line == line
    assert err.value.path == str(path)
    assert f"{path}:{line}:" in str(err.value) and fragment in str(err.value)


def test_auto_detects_iob1_by_majority_and_warns_on_b_after_o(tmp_path: Path) -> None:
    # mostly IOB1 (two entities start with I-), one B- after O: read as IOB1, a warning on that line
    path = write(tmp_path, "Anna NNP B-NP I-PER\nsaw VBD O O\nOslo NNP B-NP I-LOC\nand CC O O\nRome NNP B-NP B-LOC\n")
    corpus = read_conll(path)
    assert corpus.scheme == "iob1"
    assert corpus.warnings == [f"{path}:5:15: 'B-LOC' follows 'O'; in IOB1 'B-' only separates two adjacent "
                               "entities of the same type; read as the start of an entity"]
    assert corpus.documents[0].sentences[0].tags == ["B-PER", "O", "B-LOC", "O", "B-LOC"]


# An IOB2 file (entities start with B-) with one stray I-ORG after O on line 15.
STRAY_I = IOB2.replace("won VBD B-VP O\n", "won VBD B-VP O\nHelix NNP B-NP I-ORG\n")


def test_a_stray_i_tag_in_an_iob2_file_is_an_error_naming_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, STRAY_I)
    with pytest.raises(ConllFormatError) as err:
        read_conll(path)
    assert (err.value.line, err.value.column) == (15, 16)
    assert str(err.value).startswith(f"{path}:15:16: 'I-ORG' follows 'O'; in IOB2 an entity starts with 'B-'")
    assert "--scheme iob1" in str(err.value)
    # asked for, the file is read as IOB1: the stray tag starts an entity, B- after O are warnings
    corpus = read_conll(path, scheme="iob1")
    assert corpus.scheme == "iob1" and len(corpus.warnings) == 5
    assert corpus.documents[0].sentences[1].tags == ["B-LOC", "B-LOC", "O", "B-ORG", "O"]


def test_a_tie_between_schemes_reads_iob2(tmp_path: Path) -> None:
    path = write(tmp_path, "Anna NNP B-NP B-PER\nsaw VBD O O\nOslo NNP B-NP I-LOC\n")
    with pytest.raises(ConllFormatError) as err:
        read_conll(path)
    assert (err.value.line, err.value.column) == (3, 15)


@pytest.mark.parametrize(
    "text,line,column,fragment",
    [
        ("Anna NNP B-NP B-PER\nJo\x00hn NNP I-NP I-PER\n", 2, 3, "U+0000"),
        ("Anna NNP B-NP B-PER\n\ufeffJohn NNP I-NP I-PER\n", 2, 1, "U+FEFF (BYTE ORDER MARK)"),
        ("Anna NNP B-NP B-PER\n\u200b NNP O O\n", 2, 1, "nothing but invisible"),
        ("Anna NNP B-NP B-PER\nsaw VBD O O\n\u200b\u200d O O O\n", 3, 1, "nothing but invisible"),
        ("Anna NNP B-NP B-PER\nSmi\u200bth NNP I-NP I-PER\n", 2, 4, "U+200B (ZERO WIDTH SPACE)"),
        ("Anna NNP B-NP B-PER\nSmith NNP I-NP I-PER\u200d\n", 2, 21, "U+200D (ZERO WIDTH JOINER)"),  # a joiner in a tag
        ("Anna NNP B-NP B-PER\n\u200c\u200d NNP O O\n", 2, 1, "nothing but invisible"),  # joiners alone
        ("Anna NNP B-NP B-PER\nSmi\u2060th NNP I-NP I-PER\n", 2, 4, "U+2060 (WORD JOINER)"),
        ("Anna NNP B-NP B-PER\nsaw VBD O O-\u200bX\n", 2, 13, "U+200B (ZERO WIDTH SPACE)"),  # in a tag too
        ("Anna NNP B-NP B-PER\nsaw VBD O O\n  -DOCSTART- -X- -X- O\n", 3, 3, "-DOCSTART- inside a sentence"),
    ],
)
def test_invisible_characters_and_inner_docstart_name_line_and_column(
    tmp_path: Path, text: str, line: int, column: int, fragment: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConllFormatError) as err:
        read_conll(path)
    assert (err.value.line, err.value.column) == (line, column)
    assert str(err.value).startswith(f"{path}:{line}:{column}: ") and fragment in str(err.value)


# Words whose zero-width non-joiner (U+200C) or joiner (U+200D) is part of their spelling.
JOINED_WORDS = [
    "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian mi-khaham ("I want"): ZWNJ after the prefix
    "\u0915\u094d\u200d\u0937",  # Devanagari ka + virama + ZWJ + ssa: the half form of ka
    "\U0001F469\u200d\U0001F4BB",  # the emoji "woman technologist": woman + ZWJ + laptop
    "\u0d28\u0d4d\u200d",  # Malayalam na + virama + ZWJ at the end of a word (a chillu in the old encoding)
]


def test_text_joiners_are_part_of_words(tmp_path: Path) -> None:
    text = "".join(f"{word} X B-MISC\nsaw VBD O\n\n" for word in JOINED_WORDS)
    out = tmp_path / "out.spacy"
    stats = convert(write(tmp_path, text), out)
    docs = load_docs(out)
    assert [doc[0].text for doc in docs] == JOINED_WORDS
    assert [ents(doc) for doc in docs] == [[(word, "MISC")] for word in JOINED_WORDS]
    assert stats.total_entities == len(JOINED_WORDS)


# An invented sentence with POS and chunk columns but no NER column: the last column is chunks.
CHUNKS_ONLY = "Mira NNP B-NP\nsang VBD B-VP\nat IN B-PP\nthe DT B-NP\nold JJ I-NP\nmill NN I-NP\n. . O\n"


def test_a_chunk_column_where_the_ner_column_should_be_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, CHUNKS_ONLY)
    out = tmp_path / "out.spacy"
    with pytest.raises(ChunkTagError) as err:
        convert(path, out)
    assert (err.value.line, err.value.column, err.value.label) == (1, 10, "NP")
    assert str(err.value).startswith(f"{path}:1:10: 'B-NP' is a chunk tag (NP: noun phrase), not an entity")
    assert "NER column" in str(err.value) and "--" not in str(err.value)  # the library names no option
    assert not out.exists()
    for tag, label in (("I-ADVP", "ADVP"), ("B-SBAR", "SBAR"), ("B-PRT", "PRT"), ("I-UCP", "UCP")):
        with pytest.raises(ChunkTagError, match=f"{label}: "):
            read_conll(write(tmp_path, f"Mira NNP O\nsang VBD {tag}\n", "one.txt"))


def test_chunk_phrase_types_are_entities_when_the_labels_name_them(tmp_path: Path) -> None:
    corpus = read_conll(write(tmp_path, CHUNKS_ONLY), labels=["NP", "VP", "PP"])
    assert corpus.documents[0].sentences[0].tags == ["B-NP", "B-VP", "B-PP", "B-NP", "I-NP", "I-NP", "O"]
    with pytest.raises(ChunkTagError):  # labels that leave one out
        read_conll(write(tmp_path, CHUNKS_ONLY), labels=["NP", "PP"])
    assert set(CHUNK_PHRASES) == {"NP", "VP", "PP", "ADJP", "ADVP", "SBAR", "PRT", "CONJP", "INTJ", "LST", "UCP"}


def test_docstart_after_a_blank_line_or_another_docstart_is_fine(tmp_path: Path) -> None:
    text = "-DOCSTART- -X- -X- O\n-DOCSTART- -X- -X- O\n\nAnna NNP B-NP B-PER\n\n-DOCSTART- -X- -X- O\nOslo NNP B-NP B-LOC\n"
    assert [len(d.sentences) for d in read_conll(write(tmp_path, text)).documents] == [1, 1]


@pytest.mark.parametrize("link", ["same", "symlink", "hardlink", "relative"])
def test_convert_refuses_its_input_as_output_before_reading(tmp_path: Path, monkeypatch, link: str) -> None:
    source = write(tmp_path, IOB2)
    target = {"same": source, "symlink": tmp_path / "link.spacy", "hardlink": tmp_path / "hard.spacy", "relative": Path("sub/../data.txt")}[link]
    if link == "symlink":
        target.symlink_to(source)
    elif link == "hardlink":
        target.hardlink_to(source)
    elif link == "relative":
        (tmp_path / "sub").mkdir()
        monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("spacy_ner_project.conll.conversion.read_conll", lambda *a, **k: pytest.fail("read before the check"))
    with pytest.raises(UserError, match="is the input file"):
        convert(source, target)
    assert source.read_text(encoding="utf-8") == IOB2


@pytest.mark.parametrize("data", [b"", b"\n\n  \n", b"-DOCSTART- -X- -X- O\n\n"])
def test_empty_files(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(ConllFormatError, match="empty|no token lines"):
        read_conll(write(tmp_path, data))


def test_non_utf8_bytes(tmp_path: Path) -> None:
    data = "Anna NNP B-NP B-PER\n".encode() + "Müller NNP I-NP I-PER\n".encode("latin-1")
    with pytest.raises(ConllFormatError) as err:
        read_conll(write(tmp_path, data))
    assert err.value.line == 2 and "UTF-8" in str(err.value)


def test_failed_conversion_leaves_no_output(tmp_path: Path) -> None:
    out = tmp_path / "out.spacy"
    with pytest.raises(ConllFormatError):
        convert(write(tmp_path, IOB2 + "broken line with too many columns here\n"), out)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "data.txt"]  # no temporary file left either
    # an existing output survives a failed conversion untouched
    out.write_bytes(b"previous")
    with pytest.raises(ConllFormatError):
        convert(write(tmp_path, b""), out)
    assert out.read_bytes() == b"previous"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("progress", [True, False])
def test_progress_bar_over_documents_on_a_terminal_only_when_asked(tmp_path: Path, monkeypatch, progress: bool) -> None:
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    convert(write(tmp_path, IOB2), tmp_path / "out.spacy", progress=progress)
    assert ("data.txt" in terminal.getvalue() and "2/2" in terminal.getvalue()) is progress


def test_cli_shows_no_progress_bar_off_a_terminal(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["convert", str(write(tmp_path, IOB2)), str(tmp_path / "out.spacy")])
    assert result.exit_code == 0 and "2/2" not in result.output


def test_cli_prints_counts_and_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "out.spacy"
    result = runner.invoke(app, ["convert", str(write(tmp_path, IOB2)), str(out)])
    assert result.exit_code == 0, result.output
    assert "| data.txt | 2 | 3 | 16 | 6 | 3 | 1 | 1 | 1 |" in result.output
    bad = write(tmp_path, "Anna NNP B-NP B-PER\nsaw VBD O\n", "bad.txt")
    result = runner.invoke(app, ["convert", str(bad), str(tmp_path / "bad.spacy")])
    assert result.exit_code == 1
    assert "bad.txt:2" in result.output
    assert not (tmp_path / "bad.spacy").exists()


SHARED = Path(__file__).resolve().parents[2] / "shared" / "conll2003"
README_ROWS = {  # from the shared data README
    "train.txt": (946, 14041, 203621, 23499, 7140, 3438, 6321, 6600),
    "dev.txt": (216, 3250, 51362, 5942, 1837, 922, 1341, 1842),
    "test.txt": (231, 3453, 46435, 5648, 1668, 702, 1661, 1617),
    "iob1/eng.train": (946, 14041, 203621, 23499, 7140, 3438, 6321, 6600),
    "iob1/eng.testa": (216, 3250, 51362, 5942, 1837, 922, 1341, 1842),
    "iob1/eng.testb": (231, 3453, 46435, 5648, 1668, 702, 1661, 1617),
}


@pytest.mark.skipif(not SHARED.exists(), reason="CoNLL-2003 is not at ../shared/conll2003")
@pytest.mark.parametrize("name", sorted(README_ROWS))
def test_counts_match_the_shared_readme(name: str) -> None:
    from spacy_ner_project.conll import count

    corpus = read_conll(SHARED / name)
    stats = count(corpus.documents)
    row = (stats.docs, stats.sentences, stats.tokens, stats.total_entities) + tuple(
        stats.entities[label] for label in ("LOC", "MISC", "ORG", "PER")
    )
    assert row == README_ROWS[name]
    assert corpus.scheme == ("iob1" if name.startswith("iob1") else "iob2")
