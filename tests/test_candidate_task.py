"""spacy_ner_project.CandidateNER.v1: candidate spans, label answers, per-request constraints,
and the task in a real spaCy pipeline with canned answers (offline)."""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Dict, Iterable, List, Optional

import pytest
import spacy
from spacy.language import Language
from spacy.tokens import Doc
from spacy_llm.registry import registry as llm_registry

from spacy_ner_project.components.llm.candidates import (
    capitalised_runs,
    make_capitalised_runs_v1,
    make_ngram_candidates_v1,
    ngrams,
    sub_spans,
)
from spacy_ner_project.components.llm.label_answer import LabelReader
from spacy_ner_project.components.llm.schema import gbnf_literal, label_choice_fields, label_choice_schema
from spacy_ner_project.components.models import FailedResponse, RequestPrompt
from spacy_ner_project.llm.record import LLMStatus, read_llm_outcome

NLP = spacy.blank("en")
WORDS = {"PER": "person", "ORG": "organization", "LOC": "location", "MISC": "miscellaneous"}
QUESTION = re.compile(r'Text: (.*)\nWhat is "(.*)"\?$')


def texts(spans: Iterable[Any]) -> List[str]:
    return [span.text for span in spans]


# --- candidates ------------------------------------------------------------------------------


def test_capitalised_runs_are_maximal_and_in_order() -> None:
    doc = NLP("Maria Lopez flew from Lisbon to the World Health Assembly in New York")
    assert texts(capitalised_runs(doc)) == ["Maria Lopez", "Lisbon", "World Health Assembly", "New York"]
    assert texts(capitalised_runs(NLP("no names here ."))) == []
    assert texts(capitalised_runs(NLP("Ends with Paris"))) == ["Ends", "Paris"]


def test_sub_spans_add_every_part_up_to_the_bound_longest_first() -> None:
    doc = NLP("Shares Northwind Bank fell")
    spans = sub_spans(capitalised_runs(doc), max_tokens=2)
    assert texts(spans) == ["Shares Northwind Bank", "Shares Northwind", "Shares", "Northwind Bank", "Northwind", "Bank"]
    assert sub_spans([], max_tokens=3) == []


def test_ngrams_skip_punctuation_at_either_end() -> None:
    doc = NLP("Sam , Ann")
    assert texts(ngrams(doc, max_tokens=3)) == ["Sam , Ann", "Sam", "Ann"]


@pytest.mark.parametrize("make, kwargs", [(make_capitalised_runs_v1, {"max_sub_tokens": -1}), (make_ngram_candidates_v1, {"max_tokens": 0})])
def test_candidate_bounds_are_checked(make: Callable[..., Any], kwargs: Dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be a whole number"):
        make(**kwargs)


# --- answers and constraints -----------------------------------------------------------------

READER = LabelReader(labels=list(WORDS), label_words=WORDS, none_word="none", label_map={"PERSON": "PER", "GPE": "LOC"})


@pytest.mark.parametrize(
    "answer, label, unknown",
    [
        ("person", "PER", None),
        (" Location.\n", "LOC", None),
        ('{"label": "organization"}', "ORG", None),
        ('"miscellaneous"', "MISC", None),
        ("none", None, None),
        ("NONE - not a name", None, None),
        ("GPE", "LOC", None),
        ("animal", None, "animal"),
    ],
)
def test_label_answers(answer: str, label: Optional[str], unknown: Optional[str]) -> None:
    read = READER(answer)
    assert (read.label, read.unknown, read.error) == (label, unknown, None)


@pytest.mark.parametrize("answer", ["", "   ", "...", "{}"])
def test_answers_without_a_word_are_unparseable(answer: str) -> None:
    read = READER(answer)
    assert read.error is not None and read.status is LLMStatus.UNPARSEABLE


def test_gbnf_literals_escape_quotes_and_backslashes() -> None:
    assert gbnf_literal('say "hi"\\n') == '"say \\"hi\\"\\\\n"'
    assert gbnf_literal("a\nb") == '"a\\nb"'


def test_label_choice_fields_per_style() -> None:
    words = ["person", "none"]
    assert label_choice_fields(words, style="llama-cpp-python") == {"grammar": 'root ::= "person" | "none"'}
    schema = label_choice_schema(words)
    assert label_choice_fields(words, style="ollama") == {"format": schema}
    assert label_choice_fields(words, style="openai")["response_format"]["json_schema"]["schema"] == schema
    assert label_choice_fields(words, style="none") == {}
    with pytest.raises(ValueError, match="style must be one of"):
        label_choice_fields(words, style="grammar")
    with pytest.raises(ValueError, match="distinct"):
        label_choice_schema(["person", "person"])


# --- the task in a pipeline ------------------------------------------------------------------


class QuestionModel:
    """A spacy-llm model answering each question with ``answer(text, candidate)``."""

    def __init__(self, answer: Callable[[str, str], Any]) -> None:
        self.answer = answer
        self.context_length = None
        self.prompts: List[str] = []

    def __call__(self, prompts: Iterable[Iterable[str]]) -> Iterable[Iterable[Any]]:
        out = []
        for doc_prompts in prompts:
            answers = []
            for prompt in doc_prompts:
                self.prompts.append(prompt)
                match = QUESTION.search(prompt)
                assert match is not None, prompt
                answers.append(self.answer(match.group(1), match.group(2)))
            out.append(answers)
        return out


GAZETTEER = {"Sam": "person", "Lisbon": "location", "Acme Corp": "organization", "Ann": "person"}
MODELS: Dict[str, QuestionModel] = {}


@llm_registry.llm_models("test.questions.v1")
def question_model(name: str) -> QuestionModel:
    return MODELS[name]


def pipeline(model: QuestionModel, **task: Any) -> Language:
    MODELS["current"] = model
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "llm",
        config={
            "task": {"@llm_tasks": "spacy_ner_project.CandidateNER.v1", "labels": ["PER", "ORG", "LOC", "MISC"], **task},
            "model": {"@llm_models": "test.questions.v1", "name": "current"},
            "save_io": False,
        },
    )
    return nlp


def gazetteer(text: str, candidate: str) -> str:
    return GAZETTEER.get(candidate, "none")


def test_each_distinct_candidate_of_a_sentence_is_asked_once_and_labelled_everywhere() -> None:
    model = QuestionModel(gazetteer)
    nlp = pipeline(model, schema_style="llama-cpp-python")
    doc = nlp("Sam met Ann in Lisbon . Then Sam left Acme Corp for Lisbon")
    # without sentence boundaries the doc is one context: each text asked once
    asked = [QUESTION.search(p).group(2) for p in model.prompts]
    assert asked == ["Sam", "Ann", "Lisbon", "Then Sam", "Acme Corp"]
    assert [(e.text, e.label_) for e in doc.ents] == [("Sam", "PER"), ("Ann", "PER"), ("Lisbon", "LOC"), ("Acme Corp", "ORG"), ("Lisbon", "LOC")]
    assert all(isinstance(p, RequestPrompt) and p.request_fields["grammar"].startswith("root ::= ") for p in model.prompts)
    outcome = read_llm_outcome(doc)
    assert outcome is not None and outcome.status is LLMStatus.OK and outcome.n_shards == 5


def test_sentences_are_the_contexts() -> None:
    model = QuestionModel(gazetteer)
    nlp = pipeline(model)
    doc = nlp.make_doc("Sam met Ann . Sam left")
    for token in doc:
        token.is_sent_start = token.i in (0, 4)
    doc = nlp(doc)
    contexts = [QUESTION.search(p).group(1) for p in model.prompts]
    assert contexts == ["Sam met Ann .", "Sam met Ann .", "Sam left"]
    assert [(e.start, e.label_) for e in doc.ents] == [(0, "PER"), (2, "PER"), (4, "PER")]
    assert all(p.request_fields == {} for p in model.prompts)  # schema_style "none"


def test_failed_unknown_and_unparseable_answers_are_recorded() -> None:
    answers = {"Sam": FailedResponse("boom"), "Ann": "animal", "Lisbon": "..."}
    nlp = pipeline(QuestionModel(lambda text, candidate: answers[candidate]))
    doc = nlp("Sam met Ann in Lisbon")
    outcome = read_llm_outcome(doc)
    assert list(doc.ents) == []
    assert outcome is not None and outcome.status is LLMStatus.FAILED
    assert outcome.unknown_labels == [{"label": "animal", "text": "Ann"}]
    assert len(outcome.errors) == 2


def test_overlapping_labelled_candidates_keep_the_longest() -> None:
    labels = {"Shares Northwind Bank": "none", "Northwind Bank": "organization", "Northwind": "location"}
    nlp = pipeline(
        QuestionModel(lambda text, candidate: labels.get(candidate, "none")),
        candidates={"@llm_misc": "spacy_ner_project.CapitalisedRuns.v1", "max_sub_tokens": 2},
    )
    doc = nlp("Shares Northwind Bank fell")
    assert [(e.text, e.label_) for e in doc.ents] == [("Northwind Bank", "ORG")]
    assert [item["text"] for item in read_llm_outcome(doc).dropped] == ["Northwind"]


def test_existing_entities_are_not_asked_about() -> None:
    model = QuestionModel(gazetteer)
    nlp = pipeline(model)
    doc = nlp.make_doc("Sam met Ann")
    doc.set_ents([doc.char_span(0, 3, label="ORG")])
    doc = nlp(doc)
    assert [QUESTION.search(p).group(2) for p in model.prompts] == ["Ann"]
    assert [(e.text, e.label_) for e in doc.ents] == [("Sam", "ORG"), ("Ann", "PER")]


def test_a_doc_without_candidates_sends_nothing() -> None:
    model = QuestionModel(gazetteer)
    doc = pipeline(model)("nothing to see here")
    assert model.prompts == [] and list(doc.ents) == []


def test_words_must_cover_every_label_and_differ() -> None:
    with pytest.raises(ValueError, match="label_words has no word for MISC"):
        pipeline(QuestionModel(gazetteer), label_words={"PER": "person", "ORG": "org", "LOC": "place"})
    with pytest.raises(ValueError, match="must differ"):
        pipeline(QuestionModel(gazetteer), none_word="person")


def test_the_prompt_lists_the_words() -> None:
    model = QuestionModel(gazetteer)
    pipeline(model)("Sam")
    assert model.prompts[0].startswith(
        "Each question asks what a name in a text is: a person, organization, location, miscellaneous "
        "(nationality, event, work or other name) or none (not a name).\n\nText: Sam\nWhat is \"Sam\"?"
    )


def test_leading_stop_words_can_be_cut() -> None:
    doc = NLP("Then Sam met The Hague officials . After that")
    assert texts(make_capitalised_runs_v1()(doc)) == ["Then Sam", "The Hague", "After"]
    assert texts(make_capitalised_runs_v1(strip_stop_words=True)(doc)) == ["Sam", "Hague"]


@pytest.mark.parametrize(
    "ask_all, shown",
    [(False, [("Ann", "person"), ("Oslo", "location")]), (True, [("Then Ann", "none"), ("Oslo", "location"), ("Ann", "person")])],
)
def test_few_shot_examples_show_their_entities_or_every_candidate(ask_all: bool, shown: List[Any]) -> None:
    model = QuestionModel(gazetteer)
    nlp = pipeline(
        model,
        examples=[{"text": "Then Ann went to Oslo .", "entities": {"PER": ["Ann"], "LOC": ["Oslo"]}}],
        examples_ask_candidates=ask_all,
    )
    nlp("Sam")
    example_lines = re.findall(r'What is "(.*)"\? (\w+)', model.prompts[0])
    assert example_lines == shown
