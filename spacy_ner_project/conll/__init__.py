"""CoNLL-2003 (IOB1 or IOB2, with or without ``-DOCSTART-``) to spaCy ``DocBin``.

- :mod:`~spacy_ner_project.conll.corpus`: what a file is read into (tokens, sentences, documents);
- :mod:`~spacy_ner_project.conll.schemes`: IOB1/IOB2 rules, scheme evidence, IOB2 tags and spans;
- :mod:`~spacy_ner_project.conll.reader`: lines -> validated documents (errors name file:line:column);
- :mod:`~spacy_ner_project.conll.docs`: documents -> spaCy Docs and a DocBin;
- :mod:`~spacy_ner_project.conll.stats`: counts;
- :mod:`~spacy_ner_project.conll.conversion`: one file -> ``.spacy``, written atomically.
"""

from spacy_ner_project.conll.conversion import convert
from spacy_ner_project.conll.corpus import ConllCorpus, ConllDocument, RawToken, Sentence
from spacy_ner_project.conll.docs import DOC_ID_KEY, blank_vocab, to_doc, to_docbin
from spacy_ner_project.conll.reader import (
    CHUNK_PHRASES,
    DOCSTART,
    TEXT_JOINERS,
    ChunkTagError,
    ConllFormatError,
    check_options,
    read_conll,
)
from spacy_ner_project.conll.schemes import Scheme, SchemeEvidence, iob2_spans, scheme_evidence
from spacy_ner_project.conll.stats import ConllStats, count

__all__ = [
    "CHUNK_PHRASES",
    "DOCSTART",
    "DOC_ID_KEY",
    "TEXT_JOINERS",
    "ChunkTagError",
    "ConllCorpus",
    "ConllDocument",
    "ConllFormatError",
    "ConllStats",
    "RawToken",
    "Scheme",
    "SchemeEvidence",
    "Sentence",
    "blank_vocab",
    "check_options",
    "convert",
    "count",
    "iob2_spans",
    "read_conll",
    "scheme_evidence",
    "to_doc",
    "to_docbin",
]
