"""Document-level consistency: majority relabelling and propagation of entity strings."""

from __future__ import annotations

import spacy
from spacy.tokens import Doc, Span

from spacy_ner_project.components.consistency import harmonize, majority_labels


def make(words: str, ents: list[tuple[int, int, str]]) -> Doc:
    nlp = spacy.blank("en")
    doc = Doc(nlp.vocab, words=words.split())
    doc.ents = [Span(doc, s, e, label=l) for s, e, l in ents]
    return doc


TEXT = "Leicestershire beat Kent . Leicestershire lost . leicestershire won and Leicestershire drew in Kent"


def spans(doc: Doc) -> list[tuple[int, int, str]]:
    return [(e.start, e.end, e.label_) for e in doc.ents]


def test_minority_label_is_relabelled() -> None:
    doc = make(TEXT, [(0, 1, "ORG"), (2, 3, "LOC"), (4, 5, "ORG"), (10, 11, "LOC")])
    harmonize(doc, propagate=False)
    assert spans(doc) == [(0, 1, "ORG"), (2, 3, "LOC"), (4, 5, "ORG"), (10, 11, "ORG")]


def test_untagged_mentions_are_propagated_case_exactly() -> None:
    doc = make(TEXT, [(0, 1, "ORG"), (4, 5, "ORG"), (2, 3, "LOC")])
    harmonize(doc, relabel=False, min_count=2)
    # the second "Leicestershire" mention gets ORG; "leicestershire" (other case) and "Kent" (tagged once) do not
    assert spans(doc) == [(0, 1, "ORG"), (2, 3, "LOC"), (4, 5, "ORG"), (10, 11, "ORG")]


def test_ties_and_overlaps_are_left_alone() -> None:
    doc = make("New York and York and York", [(0, 2, "LOC"), (3, 4, "ORG"), (5, 6, "LOC")])
    assert (("York",)) not in majority_labels(doc.ents, min_share=0.5)  # ORG 1 vs LOC 1: tie
    harmonize(doc)
    assert spans(doc) == [(0, 2, "LOC"), (3, 4, "ORG"), (5, 6, "LOC")]  # "York" inside "New York" untouched


def test_factory_is_found_by_spacy() -> None:
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "ORG", "pattern": "Kent", "id": "k"}])
    nlp.add_pipe("doc_consistency", config={"min_count": 1})
    doc = nlp("Kent won . Kent lost .")
    assert [e.label_ for e in doc.ents] == ["ORG", "ORG"]
