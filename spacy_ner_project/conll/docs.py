"""CoNLL documents as spaCy Docs (sentence starts, entities, document id) and as a DocBin.

spaCy is imported inside the functions, so that reading CoNLL (and ``convert --help``) does
not load it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, List, Tuple

from spacy_ner_project.conll.corpus import ConllDocument
from spacy_ner_project.conll.schemes import iob2_spans
from spacy_ner_project.languages import blank

if TYPE_CHECKING:
    from spacy.tokens import Doc, DocBin
    from spacy.vocab import Vocab

DOC_ID_KEY = "doc_id"  # doc.user_data key holding the document id
DOCBIN_ATTRS = ("ORTH", "SENT_START", "ENT_IOB", "ENT_TYPE")  # what a converted DocBin stores


def to_doc(document: ConllDocument, vocab: "Vocab") -> "Doc":
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


def to_docbin(documents: Iterable[ConllDocument], vocab: "Vocab") -> "DocBin":
    """A DocBin of the documents' Docs (:data:`DOCBIN_ATTRS` and the user data)."""
    from spacy.tokens import DocBin

    doc_bin = DocBin(attrs=list(DOCBIN_ATTRS), store_user_data=True)
    for document in documents:
        doc_bin.add(to_doc(document, vocab))
    return doc_bin


def blank_vocab(lang: str) -> "Vocab":
    """The vocab of ``spacy.blank(lang)``; an unknown code, or a language whose tokenizer needs
    a package that is not installed, is a UserError (:class:`~spacy_ner_project.languages.LanguageError`)."""
    return blank(lang).vocab
