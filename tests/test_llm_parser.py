"""Parsing what real LLMs return for the JSON NER prompt (components/llm/parser.py)."""

from __future__ import annotations

from typing import Any, List, Tuple

import pytest
from spacy_llm.registry import registry as llm_registry

from spacy_ner_project.components.llm.parser import DEFAULT_LABEL_MAP, ParsedAnswer, is_usable_answer
from spacy_ner_project.components.llm.parser import LabelNormalizer, parse_answer, parse_json_responses
from spacy_ner_project.components.llm.registry import make_label_map_v1, make_usable_answer_check_v1
from spacy_ner_project.components.models import FailedResponse
from spacy_ner_project.llm.record import LLMStatus

LABELS = ["PER", "ORG", "LOC", "MISC"]


def parse(response: str) -> ParsedAnswer:
    return parse_answer(response, labels=LABELS, label_map=DEFAULT_LABEL_MAP)


def ents(response: str) -> List[Tuple[str, str]]:
    parsed = parse(response)
    assert parsed.error is None, parsed.error
    return parsed.entities


ECHOED_PROMPT = """You are an expert named entity recognition (NER) system. [...]
- PER: person
Copy each entity exactly as it appears in the text.
Answer with JSON only, without any explanation or Markdown, in this form:
{"PER": [...], "ORG": [...], "LOC": [...], "MISC": [...]}

Examples:

Text:
'''
Sam's dog met Ann in Paris.
'''
Answer: {"PER": ["Sam", "Ann"], "ORG": [], "LOC": ["Paris"], "MISC": []}

Text:
'''
Boris visited IBM's office in "Berlin", didn't he?
'''
Answer: {"PER": ["Boris"], "ORG": ["IBM"], "LOC": ["Berlin"], "MISC": []}"""


@pytest.mark.parametrize(
    "response,expected",
    [
        ('{"PER": ["Sam"], "ORG": ["OpenAI"], "LOC": [], "MISC": []}', [("PER", "Sam"), ("ORG", "OpenAI")]),
        ('```json\n{"PER": ["Sam"], "LOC": ["Paris"]}\n```', [("PER", "Sam"), ("LOC", "Paris")]),
        ('```\n{"PER": ["Sam"]}\n```', [("PER", "Sam")]),
        ('Sure! Here are the entities:\n{"PER": ["Sam"]}', [("PER", "Sam")]),
        ('{"PER": ["Sam"]}\n\nLet me know if you\'d like more!', [("PER", "Sam")]),
        ("{'PER': ['Sam', 'O\\'Neil'], 'ORG': []}", [("PER", "Sam"), ("PER", "O'Neil")]),
        ('{"PER": ["Sam", "Ann",], "ORG": [],}', [("PER", "Sam"), ("PER", "Ann")]),
        ('{"PER": ["Sam", "Ann"], "ORG": ["Acme Co', [("PER", "Sam"), ("PER", "Ann"), ("ORG", "Acme Co")]),
        (
            '[{"text": "Sam", "label": "PER"}, {"text": "Paris", "label": "LOC"}]',
            [("PER", "Sam"), ("LOC", "Paris")],
        ),
        ('[{"text": "Sam", "label": "PER"}, {"text": "Par', [("PER", "Sam")]),
        ('{"entities": [{"entity": "Sam", "type": "Person"}]}', [("PER", "Sam")]),
        ('{"entities": {"PER": ["Sam"]}}', [("PER", "Sam")]),
        ('{"PER": "Sam", "ORG": null}', [("PER", "Sam")]),
        ('{"PER": [{"text": "Sam"}], "MISC": [2024]}', [("PER", "Sam"), ("MISC", "2024")]),
        ('{"PER": [], "ORG": [], "LOC": [], "MISC": []}', []),
        ("[]", []),
        (ECHOED_PROMPT + '\n\nText:\n\'\'\'\nSam met Ann.\n\'\'\'\nAnswer: {"PER": ["Sam", "Ann"]}', [
            ("PER", "Sam"),
            ("PER", "Ann"),
        ]),
        (ECHOED_PROMPT + '\nText:\n\'\'\'\nNothing here.\n\'\'\'\nAnswer: {"PER": [], "ORG": []}', []),
        (
            '{"PER": ["Sam"]}\nOops, as objects: [{"text": "Ann", "label": "PER"}]',
            [("PER", "Ann")],
        ),
    ],
    ids=[
        "plain",
        "json-fence",
        "bare-fence",
        "prose-before",
        "prose-after",
        "single-quotes",
        "trailing-commas",
        "truncated",
        "list-of-objects",
        "list-of-objects-truncated",
        "wrapped-objects-other-keys",
        "wrapped-dict",
        "string-and-null-values",
        "object-and-number-items",
        "empty-answer",
        "empty-list",
        "echoed-prompt",
        "echoed-prompt-empty-answer",
        "last-answer-wins",
    ],
)
def test_answers_are_parsed(response: str, expected: List[Tuple[str, str]]) -> None:
    assert ents(response) == expected


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("PER", "PER"),
        ("per", "PER"),
        ("Person", "PER"),
        ("PERSON", "PER"),
        ("persons", "PER"),
        ("ORGANIZATION", "ORG"),
        ("Organisation", "ORG"),
        ("LOCATION", "LOC"),
        ("GPE", "LOC"),
        ("Miscellaneous", "MISC"),
        (" misc ", "MISC"),
        ("FOOD", None),
        ("DATE", None),
    ],
)
def test_label_normalisation(raw: str, expected: Any) -> None:
    assert LabelNormalizer(labels=LABELS, label_map=DEFAULT_LABEL_MAP)(raw) == expected


def test_label_map_target_must_be_a_task_label() -> None:
    # GPE maps to LOC, but a task without LOC has no place for it
    assert LabelNormalizer(labels=["PER"], label_map=DEFAULT_LABEL_MAP)("GPE") is None


def test_label_map_factory_extends_and_replaces_defaults() -> None:
    label_map = make_label_map_v1({"Company": "ORG", "GPE": "MISC"})
    to_task_label = LabelNormalizer(labels=LABELS, label_map=label_map)
    assert to_task_label("company") == "ORG"
    assert to_task_label("gpe") == "MISC"
    assert to_task_label("Person") == "PER"
    assert make_label_map_v1({"X": "PER"}, include_defaults=False) == {"X": "PER"}


def test_unknown_labels_are_reported_with_their_strings() -> None:
    parsed = parse('{"PERSON": ["Sam"], "FOOD": ["pizza", "pasta"], "DATE": []}')
    assert parsed.entities == [("PER", "Sam")]
    assert parsed.unknown == [("FOOD", "pizza"), ("FOOD", "pasta")]
    assert parsed.error is None


def test_unknown_label_in_list_of_objects() -> None:
    parsed = parse('[{"text": "Sam", "label": "PERSON"}, {"text": "Monday", "label": "DATE"}]')
    assert parsed.entities == [("PER", "Sam")] and parsed.unknown == [("DATE", "Monday")]


@pytest.mark.parametrize("response", ["", "   ", "I could not find any entities.", '{"a": 1}', "42"])
def test_no_answer_is_an_error_not_an_exception(response: str) -> None:
    parsed = parse(response)
    assert parsed.entities == [] and parsed.error


def test_task_parser_records_failed_requests_and_non_text() -> None:
    class Task:
        labels = ("PER",)
        label_map = DEFAULT_LABEL_MAP

    responses = [[FailedResponse("HTTP 500 after 5 retries"), '{"PER": ["Sam"]}'], [None]]
    answers = [list(a) for a in parse_json_responses(Task(), [[None, None], [None]], responses)]  # type: ignore[arg-type]
    assert answers[0][0].error == "request failed: HTTP 500 after 5 retries"
    assert answers[0][1].entities == [("PER", "Sam")]
    assert answers[1][0].error and "NoneType" in answers[1][0].error


def test_parsed_answers_carry_their_status_raw_answer_and_request_time() -> None:
    class Task:
        labels = ("PER",)
        label_map = DEFAULT_LABEL_MAP

    class Timed(str):
        elapsed_s = 0.75

    failed = FailedResponse("HTTP 500")
    responses = [[failed, Timed('{"PER": ["Sam"]}'), "Sorry.", None]]
    (answers,) = [list(a) for a in parse_json_responses(Task(), [[None] * 4], responses)]  # type: ignore[arg-type]
    assert [a.status for a in answers] == [LLMStatus.FAILED, LLMStatus.OK, LLMStatus.UNPARSEABLE, LLMStatus.UNPARSEABLE]
    assert [a.answer for a in answers] == [None, '{"PER": ["Sam"]}', "Sorry.", None]
    assert type(answers[1].answer) is str and [a.elapsed_s for a in answers] == [None, 0.75, None, None]
    assert parse("Sorry.").status is LLMStatus.UNPARSEABLE and parse('{"PER": []}').status is LLMStatus.OK


# --- echoed json_ner.v2 prompts and usable answers (issue 10 item 3) ---------------------------

V2_ECHO = (
    'Answer with JSON only, in this form:\n{"PER": [...], "ORG": [...], "LOC": [...], "MISC": [...]}\n\n'
    "Examples:\n\n<document-1a2b3c4d>\nSam is here.\n</document-1a2b3c4d>\n"
    'Answer: {"PER": ["Sam"], "ORG": [], "LOC": [], "MISC": []}\n\n'
    "<document-99aa77bb>\nAnn met Bob.\n</document-99aa77bb>\nAnswer:"
)


@pytest.mark.parametrize(
    "response,expected",
    [
        (V2_ECHO, None),
        (V2_ECHO + ' {"PER": ["Ann", "Bob"]}', [("PER", "Ann"), ("PER", "Bob")]),
        (V2_ECHO + ' {"PER": []}', []),
        (V2_ECHO.rsplit("\n</document-99aa77bb>", 1)[0], None),  # echo cut off inside the document
    ],
    ids=["echo-only", "echo-then-answer", "echo-then-empty-answer", "echo-stops-inside-document"],
)
def test_echoed_v2_prompt_never_yields_the_examples_answers(response: str, expected: Any) -> None:
    parsed = parse(response)
    if expected is None:
        assert parsed.entities == [] and parsed.error and "repeats the prompt" in parsed.error
    else:
        assert parsed.error is None and parsed.entities == expected


@pytest.mark.parametrize(
    "response,usable",
    [
        ('{"PER": [], "ORG": [], "LOC": [], "MISC": []}', True),
        ('{"PER": ["Sam"]}', True),
        ('```json\n{"Person": []}\n```', True),
        ('[{"text": "Sam", "label": "PERSON"}]', True),
        ('{"PER": ["Sam"], "ORG": ["Acme Co', True),  # truncated, still an entity list
        ("", False),
        ("I could not find any entities.", False),
        ("{}", False),
        ("[]", False),
        ('{"FOOD": ["pizza"]}', False),
        ('{"a": 1}', False),
        (V2_ECHO, False),
        (V2_ECHO + ' {"PER": []}', True),
    ],
)
def test_is_usable_answer(response: str, usable: bool) -> None:
    assert is_usable_answer(response, labels=LABELS, label_map=DEFAULT_LABEL_MAP) is usable


def test_labels_answered_lists_task_labels_even_without_strings() -> None:
    assert parse('{"PERSON": [], "FOOD": ["x"], "LOC": ["Paris"], "PER": ["Sam"]}').labels_answered == ["PER", "LOC"]


def test_usable_answer_check_is_registered_and_uses_the_label_map() -> None:
    make = llm_registry.llm_misc.get("spacy_ner_project.UsableAnswerCheck.v1")
    assert make is make_usable_answer_check_v1
    check = make(labels="PER,ORG")
    assert check('{"Person": []}') and not check('{"LOC": ["Paris"]}') and not check("no idea")
    custom = make(labels=["ORG"], label_map={"Company": "ORG"})
    assert custom('{"company": ["Acme"]}') and not custom('{"organization": ["Acme"]}')
    with pytest.raises(ValueError, match="labels"):
        make(labels=[])
