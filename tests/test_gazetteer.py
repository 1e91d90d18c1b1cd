"""The training-set gazetteer (components/gazetteer.py): counts, leave-one-out, features, training."""

from __future__ import annotations

from pathlib import Path

import pytest
import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example

from spacy_ner_project.components.gazetteer import GAZETTEER_TAGS_KEY, Gazetteer

TRAIN = [
    ("Leicestershire beat Somerset at Leicester .", [(0, 1, "ORG"), (2, 3, "ORG"), (4, 5, "LOC")]),
    ("Somerset lost to Kent in May .", [(0, 1, "ORG"), (3, 4, "ORG")]),
    ("May Smith visited New York .", [(0, 2, "PER"), (3, 5, "LOC")]),
    ("Kent will visit Leicester in May .", [(0, 1, "ORG"), (3, 4, "LOC")]),
]


def gold(nlp: Language, words: str, ents: list[tuple[int, int, str]]) -> Doc:
    tokens = words.split()
    doc = Doc(nlp.vocab, words=tokens, spaces=[True] * (len(tokens) - 1) + [False])
    doc.ents = [Span(doc, s, e, label=label) for s, e, label in ents]
    return doc


@pytest.fixture()
def nlp() -> Language:
    return spacy.blank("en")


@pytest.fixture()
def gazetteer(nlp: Language) -> Gazetteer:
    g = Gazetteer()
    g.add_documents(gold(nlp, words, ents) for words, ents in TRAIN)
    return g


def test_counts_tagged_and_untagged_occurrences(gazetteer: Gazetteer) -> None:
    assert gazetteer.counts["somerset"] == {"ORG": 2}
    assert gazetteer.counts["kent"] == {"ORG": 2}
    assert gazetteer.counts["newyork"] == {"LOC": 1}
    # "May" is inside a PER once ("May Smith" is the entity), never an entity alone: no key
    assert "may" not in gazetteer.counts
    assert gazetteer.counts["leicester"] == {"LOC": 2}


def test_new_text_gets_longest_match_case_insensitive(nlp: Language, gazetteer: Gazetteer) -> None:
    doc = nlp.make_doc("SOMERSET play in new york and Leicestershire")
    tags = gazetteer.tags(doc)
    assert tags == ["B-ORG|high", "", "", "B-LOC|high", "I-LOC|high", "", "B-ORG|high"]


def test_training_document_does_not_see_its_own_entities(nlp: Language, gazetteer: Gazetteer) -> None:
    # "Leicestershire" and "New York" are named by one training document only: in that
    # document (recognised by its text) they get no tag; "Somerset" is named elsewhere too
    own = nlp.make_doc("Leicestershire beat Somerset at Leicester .")
    assert gazetteer.tags(own) == ["", "", "B-ORG|high", "", "B-LOC|high", ""]
    assert gazetteer.tags(nlp.make_doc("May Smith visited New York ."))[3:5] == ["", ""]
    # the same words in another text are tagged
    assert gazetteer.tags(nlp.make_doc("Leicestershire beat Somerset at Leicester !"))[0] == "B-ORG|high"


def test_share_of_untagged_occurrences_lowers_the_bucket(nlp: Language) -> None:
    g = Gazetteer()
    g.add_documents(
        [gold(nlp, "Reuters said .", [(0, 1, "ORG")])]
        + [gold(nlp, "reuters said it .", []) for _ in range(2)]
    )
    assert g.counts["reuters"] == {"ORG": 1, "O": 2}
    assert g.tags(nlp.make_doc("Reuters reported"))[0] == "B-ORG|low"


def test_roundtrip_keeps_counts_and_contributions(gazetteer: Gazetteer, nlp: Language) -> None:
    again = Gazetteer.from_dict(gazetteer.to_dict())
    for words, _ in TRAIN:
        doc = nlp.make_doc(" ".join(words.split()))
        assert again.tags(doc) == gazetteer.tags(doc)


def pipeline() -> Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_gazetteer")
    nlp.add_pipe(
        "ner",
        config={
            "model": {
                "@architectures": "spacy.TransitionBasedParser.v2",
                "state_type": "ner",
                "hidden_width": 32,
                "maxout_pieces": 2,
                "use_upper": False,
                "tok2vec": {
                    "@architectures": "spacy.Tok2Vec.v2",
                    "embed": {
                        "@architectures": "spacy_ner_project.GazetteerEmbed.v1",
                        "width": 8,
                        "embed": {
                            "@architectures": "spacy.MultiHashEmbed.v2",
                            "width": 32,
                            "attrs": ["NORM", "SHAPE"],
                            "rows": [500, 100],
                            "include_static_vectors": False,
                        },
                    },
                    "encode": {
                        "@architectures": "spacy.MaxoutWindowEncoder.v2",
                        "width": 40,
                        "depth": 1,
                        "window_size": 1,
                        "maxout_pieces": 2,
                    },
                },
            }
        },
    )
    return nlp


def test_pipeline_trains_saves_and_loads(tmp_path: Path) -> None:
    nlp = pipeline()
    examples = [Example(nlp.make_doc(" ".join(w.split())), gold(nlp, w, e)) for w, e in TRAIN]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(40):
        nlp.update(examples, sgd=optimizer, annotates=["entity_gazetteer"])
    doc = nlp("Somerset lost to Kent in May .")
    assert [(e.text, e.label_) for e in doc.ents] == [("Somerset", "ORG"), ("Kent", "ORG")]
    assert doc.user_data[GAZETTEER_TAGS_KEY][0] == "B-ORG|high"
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    again = loaded("Somerset lost to Kent in May .")
    assert [(e.text, e.label_) for e in again.ents] == [(e.text, e.label_) for e in doc.ents]
    assert again.user_data[GAZETTEER_TAGS_KEY] == doc.user_data[GAZETTEER_TAGS_KEY]


def test_missing_component_is_a_clear_error() -> None:
    nlp = pipeline()
    examples = [Example(nlp.make_doc(" ".join(w.split())), gold(nlp, w, e)) for w, e in TRAIN]
    optimizer = nlp.initialize(lambda: examples)
    with pytest.raises(ValueError, match="entity_gazetteer component"):
        nlp.update(examples, sgd=optimizer)  # not listed as annotating: the NER sees no tags
    with pytest.raises(ValueError, match="entity_gazetteer component"):
        nlp.get_pipe("ner")(nlp.make_doc("Kent won ."))


def test_training_data_without_entities_is_refused() -> None:
    nlp = pipeline()
    examples = [Example.from_dict(nlp.make_doc("nothing here ."), {"entities": []})]
    with pytest.raises(ValueError, match="no entities"):
        nlp.initialize(lambda: examples)
