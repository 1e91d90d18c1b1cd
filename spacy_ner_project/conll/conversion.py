"""One CoNLL file to a ``.spacy`` DocBin: check the options and paths, read, build the Docs,
write atomically (a failed conversion leaves no partial output; the output may not be the input)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from spacy_ner_project.conll.docs import blank_vocab, to_docbin
from spacy_ner_project.conll.reader import check_options, read_conll
from spacy_ner_project.conll.schemes import Scheme
from spacy_ner_project.conll.stats import ConllStats, count
from spacy_ner_project.files import check_not_same_file, check_output_file, write_atomic
from spacy_ner_project.progress import progress as progress_bar


def convert(
    input_path: Path | str,
    output_path: Path | str,
    *,
    scheme: Scheme = "auto",
    n_sents: int = 0,
    labels: Optional[Sequence[str]] = None,
    strict: bool = False,
    lang: str = "en",
    progress: bool = False,
) -> ConllStats:
    """Convert one CoNLL file to a ``.spacy`` DocBin; returns the counts (with the scheme read
    and the reader's warnings). The options and the output path are checked before the input
    is read. ``progress``: a bar over the documents on stderr (only when it is a terminal).
    See :func:`~spacy_ner_project.conll.reader.read_conll` for the options."""
    input_path, output_path = Path(input_path), Path(output_path)
    check_not_same_file(input_path, output_path)
    check_output_file(output_path)
    check_options(scheme=scheme, n_sents=n_sents)
    vocab = blank_vocab(lang)
    corpus = read_conll(input_path, scheme=scheme, n_sents=n_sents, labels=labels, strict=strict)
    documents = progress_bar(corpus.documents, total=len(corpus.documents), desc=input_path.name, enabled=progress)
    write_atomic(to_docbin(documents, vocab).to_bytes(), output_path)
    stats = count(corpus.documents)
    stats.scheme = corpus.scheme
    stats.warnings = corpus.warnings
    return stats
