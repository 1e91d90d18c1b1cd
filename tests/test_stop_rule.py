"""The stop rule for runaway answers (model_stream.repetition_end): chosen cases, and the
incremental implementation cross-checked against the rule as its docstring writes it."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import List, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spacy_ner_project.components.model_stream import MAX_UNIT, RepetitionGuard, cut_runaway, repetition_end
from spacy_ner_project.components.models import ModelDefaults

K = ModelDefaults.DEFAULT_STOP_REPETITION
STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
GAP = re.compile(r"\s*,\s*")


def unit_repeated_at(prefix: str, *, times: int, max_unit: int) -> bool:
    """Rule (a), as written: the prefix ends with a unit of 1..max_unit characters, not all
    whitespace, written ``times`` times in a row."""
    for size in range(1, max_unit + 1):
        unit = prefix[-size:]
        if len(prefix) >= size * times and not unit.isspace() and prefix.endswith(unit * times):
            return True
    return False


def strings_repeated_at(prefix: str, *, times: int) -> bool:
    """Rule (b), as written: the last ``times`` JSON string literals are equal, separated by a
    comma and whitespace only, the last one ending the prefix."""
    literals = list(STRING.finditer(prefix))[-times:]
    if len(literals) < times or literals[-1].end() != len(prefix):
        return False
    if len({literal.group() for literal in literals}) != 1:
        return False
    return all(GAP.fullmatch(prefix[a.end() : b.start()]) for a, b in zip(literals, literals[1:]))


def rule_as_written(text: str, *, times: int, max_unit: int = MAX_UNIT) -> Optional[int]:
    for end in range(1, len(text) + 1):
        prefix = text[:end]
        if unit_repeated_at(prefix, times=times, max_unit=max_unit) or strings_repeated_at(prefix, times=times):
            return end
    return None


@pytest.mark.parametrize(
    "text,times,end",
    [
        ('{"PER": ["," ,"' + '","' * 20, 8, len('{"PER": ["," ,"' + '","' * 7 + '"')),  # the run of empty strings
        ('{"LOC": [' + '"Paris", ' * 12, 8, len('{"LOC": [' + '"Paris", ' * 7 + '"Paris"')),  # rule (b) first
        ("x" * 20, 8, 8),
        ("ab" * 10, 8, 16),
        ('["' + "The Republic of South Africa " * 3 + '"]', 3, len('["' + "The Republic of South Africa " * 3)),  # (a) inside a string
        ('["' + "The Republic of South Africa " * 3 + '"]', 8, None),
        ("[" + ", ".join(f'"{"Bank of New York " * 3}"' for _ in range(4)) + "]", 4, len("[" + ", ".join(['"' + "Bank of New York " * 3 + '"'] * 4))),
        ('{\n' + " " * 40 + '"PER": []}', 8, None),  # indentation is no runaway
        ("\n" * 30, 8, None),
        ('["Sam", "Sam", "Sam"]', 8, None),  # a weak model listing a name thrice: normal
        ('{"MISC": ["1000000", "111", "..."]}', 8, None),
        ('["a", "a",  "a" ,"a"]', 4, len('["a", "a",  "a" ,"a"')),  # any whitespace around the comma
        ('["a", "a"] ["a", "a"]', 4, None),  # a bracket between: not one list
        (r'["a\"", "a\"", "a\""]', 3, len(r'["a\"", "a\"", "a\""')),  # escaped quotes stay inside the string
    ],
    ids=["empty-strings", "paris", "one-char", "two-chars", "unit-in-a-string", "unit-thrice", "long-strings", "indentation",
         "blank-lines", "name-thrice", "digit-runs", "loose-commas", "two-lists", "escaped-quotes"],
)
def test_chosen_cases(text: str, times: int, end: Optional[int]) -> None:
    assert repetition_end(text, times=times) == end
    assert rule_as_written(text, times=times) == end


def test_the_default_never_fires_on_the_projects_cached_answers() -> None:
    """Where the project's earlier runs left answers of Gemma 3 270M to CoNLL sentences
    (cache/): the longest repetition in them is 3 ("1000", "111"), none at 4 or more."""
    path = Path(__file__).resolve().parents[1] / "cache" / "llm_responses.sqlite"
    if not path.is_file():
        pytest.skip("no cached answers here")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        answers = [row[0] for row in db.execute("SELECT response FROM responses")]
    assert [answer for answer in answers if repetition_end(answer, times=max(4, K - 4)) is not None] == []


ALPHABET = st.sampled_from(list('ab" ,\\\n['))
# pieces of JSON-ish text: strings (some with escapes), separators, brackets, stray quotes
TOKENS = st.sampled_from(['"ab"', '"b"', '""', '"a\\""', ", ", ",", " ", "\n", "[", "]", '"', "\\", "a"])


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=ALPHABET, max_size=60), times=st.integers(min_value=2, max_value=4), max_unit=st.integers(1, 6))
def test_the_guard_is_the_rule_as_written(text: str, times: int, max_unit: int) -> None:
    assert repetition_end(text, times=times, max_unit=max_unit) == rule_as_written(text, times=times, max_unit=max_unit)


@settings(max_examples=300, deadline=None)
@given(
    head=st.lists(TOKENS, max_size=6),
    item=st.sampled_from(['"ab"', '"b"', '""', '"a\\""', '"\\\\"', '"a']),
    separator=st.sampled_from([", ", ",", " ,\n", " ", "", ",,", "]"]),
    count=st.integers(min_value=1, max_value=5),
    tail=st.lists(TOKENS, max_size=6),
    times=st.integers(min_value=2, max_value=4),
)
def test_the_guard_is_the_rule_as_written_for_json_strings(
    head: List[str], item: str, separator: str, count: int, tail: List[str], times: int
) -> None:
    """Runs of one JSON string (some with escapes) between other JSON-ish pieces, with units of
    one character only, so that rule (b) decides most cases."""
    text = "".join(head) + separator.join([item] * count) + "".join(tail)
    assert repetition_end(text, times=times, max_unit=1) == rule_as_written(text, times=times, max_unit=1)


@settings(max_examples=150, deadline=None)
@given(
    unit=st.text(alphabet=ALPHABET, min_size=1, max_size=5),
    head=st.text(alphabet=ALPHABET, max_size=10),
    cuts=st.lists(st.integers(min_value=0, max_value=80), max_size=8),
)
def test_pieces_of_any_size_give_the_same_cut(unit: str, head: str, cuts: List[int]) -> None:
    """Streamed in pieces of any size, or read whole: the answer is cut at the same place."""
    text = head + unit * 10
    whole = repetition_end(text, times=4)
    guard = RepetitionGuard(times=4)
    bounds = [0, *sorted(min(cut, len(text)) for cut in cuts), len(text)]
    seen = [guard.feed(text[a:b]) for a, b in zip(bounds, bounds[1:])]
    assert seen[-1] == whole
    assert whole is not None or unit.isspace()  # ten repetitions of anything visible are a runaway
    assert cut_runaway(text, stop_repetition=4).text == (text if whole is None else text[:whole])


def test_off_and_too_small() -> None:
    assert cut_runaway("x" * 100, stop_repetition=0).repetition_stop is False
    with pytest.raises(ValueError, match="at least 2 repetitions"):
        RepetitionGuard(times=1)
