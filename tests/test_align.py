"""Alignment of LLM entity strings to token boundaries (spacy_ner_project.llm.align)."""

from __future__ import annotations

import time
from typing import List, Tuple

import pytest
import spacy
from hypothesis import given, settings
from hypothesis import strategies as st

from spacy_ner_project.llm.align import FUNCTION_WORDS, AlignOptions, Mention, align, align_doc, case_compatible
from spacy_ner_project.llm.align import function_word_refused, normalize, query_refusal, resolve_overlaps

NLP = spacy.blank("en")


def spans(text: str, entities: List[Tuple[str, str]], **options) -> List[Tuple[str, str]]:
    doc = NLP(text)
    result = align_doc(doc, entities, options=AlignOptions(**options))
    return [(m.label, text[m.start_char : m.end_char]) for m in result.mentions]


def ws_offsets(text: str) -> List[Tuple[int, int]]:
    """Whitespace tokenisation, to exercise the spaCy-free core."""
    offsets, pos = [], 0
    for word in text.split():
        start = text.index(word, pos)
        offsets.append((start, start + len(word)))
        pos = start + len(word)
    return offsets


def test_every_mention_case_insensitive_but_capitals_never_land_on_lower_case() -> None:
    text = "Apple sued apple growers. APPLE won."
    assert spans(text, [("ORG", "Apple")]) == [("ORG", "Apple"), ("ORG", "APPLE")]
    assert spans(text, [("ORG", "apple")]) == [("ORG", "Apple"), ("ORG", "apple"), ("ORG", "APPLE")]


def test_token_boundaries_only_us_not_in_used() -> None:
    text = "We used the bus to reach the US embassy with us."
    assert spans(text, [("LOC", "US")]) == [("LOC", "US")]


def test_token_offsets_are_returned() -> None:
    doc = NLP("Talks in New York ended.")
    (m,) = align_doc(doc, [("LOC", "new york")]).mentions
    assert (m.start_char, m.end_char, m.start_token, m.end_token) == (9, 17, 2, 4)
    assert doc[m.start_token : m.end_token].text == "New York"
    assert m.method == "exact" and m.score == 100.0


def test_whitespace_differences() -> None:
    assert spans("He flew to New   York .", [("LOC", "New York")]) == [("LOC", "New   York")]
    # CoNLL-style tokenised text vs. an LLM that writes it normally, and the reverse
    assert spans("the U.S. -based firm", [("MISC", "U.S.-based")]) == [("MISC", "U.S. -based")]
    assert spans("S.Korea 's team", [("LOC", "S. Korea")]) == [("LOC", "S.Korea")]


@pytest.mark.parametrize(
    "text,llm,expected",
    [
        ("He read “War and Peace” twice.", '"War and Peace"', "“War and Peace”"),
        ("O’Neill scored.", "O'Neill", "O’Neill"),
        ("O'Neill scored.", "O’Neill", "O'Neill"),
        ("O`Neill scored.", "O'Neill", "O`Neill"),
        ("the Rhein–Main area", "Rhein-Main", "Rhein–Main"),
    ],
)
def test_quote_apostrophe_dash_variants(text: str, llm: str, expected: str) -> None:
    assert spans(text, [("X", llm)]) == [("X", expected)]


def test_possessive_in_text_llm_gives_bare_name() -> None:
    # spaCy splits 's off: the entity is the name only
    assert spans("ChatGPT's answer was wrong.", [("MISC", "ChatGPT")]) == [("MISC", "ChatGPT")]
    assert spans("Germany 's team won.", [("LOC", "Germany")]) == [("LOC", "Germany")]


def test_possessive_from_llm_is_placed_on_the_name() -> None:
    assert spans("ChatGPT is popular.", [("MISC", "ChatGPT's")]) == [("MISC", "ChatGPT")]
    assert spans("ChatGPT's answer and ChatGPT again.", [("MISC", "ChatGPT’s")]) == [
        ("MISC", "ChatGPT"),
        ("MISC", "ChatGPT"),
    ]
    assert spans("the Teachers' union", [("ORG", "Teachers'")]) == [("ORG", "Teachers")]


def test_possessive_kept_when_not_stripping() -> None:
    assert spans("McDonald's sells.", [("ORG", "McDonald's")], strip_possessive=False) == [("ORG", "McDonald's")]
    assert spans("McDonald's sells.", [("ORG", "McDonald's")]) == [("ORG", "McDonald")]


def test_possessive_inside_an_unsplit_token_covers_the_token() -> None:
    text = "ChatGPT's answer"
    result = align(text, ws_offsets(text), [("MISC", "ChatGPT")])
    (m,) = result.mentions
    assert text[m.start_char : m.end_char] == "ChatGPT's" and m.method == "possessive"


def test_typos_are_matched_fuzzily_with_a_configurable_cutoff() -> None:
    text = "Mikhail Gorbachev met Schwarzenegger in Moscow."
    assert spans(text, [("PER", "Gorbachov"), ("PER", "Schwarzeneger")]) == [
        ("PER", "Gorbachev"),
        ("PER", "Schwarzenegger"),
    ]
    result = align_doc(NLP(text), [("PER", "Mikhial Gorbachev")])
    (m,) = result.mentions
    assert m.method == "fuzzy" and 88 <= m.score < 100 and text[m.start_char : m.end_char] == "Mikhail Gorbachev"
    assert spans(text, [("PER", "Gorbachov")], fuzzy_cutoff=None) == []
    assert spans(text, [("PER", "Gorbachov")], fuzzy_cutoff=99) == []


def test_fuzzy_does_not_confuse_different_names_or_short_strings() -> None:
    assert spans("Australia beat India.", [("LOC", "Austria")]) == []
    assert spans("We used it.", [("LOC", "us")]) == []
    assert spans("The UN met.", [("ORG", "US")]) == []


def test_unplaceable_strings_are_returned_with_their_label() -> None:
    result = align_doc(NLP("Sam met Ann."), [("PER", "Sam"), ("ORG", "OpenAI"), ("LOC", "  ")])
    assert [(m.label, m.text) for m in result.mentions] == [("PER", "Sam")]
    assert [(u.label, u.text, u.reason) for u in result.unplaced] == [
        ("ORG", "OpenAI", "not_found"),
        ("LOC", "  ", "empty"),
    ]


def test_overlaps_longest_then_earliest() -> None:
    text = "The New York Times reported from New York."
    result = align_doc(NLP(text), [("LOC", "New York"), ("ORG", "New York Times")])
    assert [(m.label, text[m.start_char : m.end_char], m.start_token) for m in result.mentions] == [
        ("ORG", "New York Times", 1),
        ("LOC", "New York", 6),
    ]
    assert [(m.label, m.start_token) for m in result.overlapped] == [("LOC", 1)]
    assert result.unplaced == ()


def test_same_span_two_labels_first_given_wins_and_loser_is_reported() -> None:
    result = align_doc(NLP("Paris is nice."), [("PER", "Paris"), ("LOC", "Paris")])
    assert [(m.label, m.text) for m in result.mentions] == [("PER", "Paris")]
    assert [(u.label, u.reason) for u in result.unplaced] == [("LOC", "overlap")]


def test_equal_length_overlap_earliest_wins() -> None:
    text = "a b c"
    result = align(text, ws_offsets(text), [("X", "b c"), ("Y", "a b")])
    assert [(m.label, m.start_token, m.end_token) for m in result.mentions] == [("Y", 0, 2)]


def test_resolve_overlaps_respects_blocked_ranges() -> None:
    m1 = Mention("X", "a", 0, 1, 0, 1, 100.0, "exact")
    m2 = Mention("Y", "b c", 2, 5, 1, 3, 100.0, "exact")
    kept, dropped = resolve_overlaps([(0, m1), (1, m2)], blocked=[(2, 4)])
    assert kept == [m1] and dropped == [m2]


def test_duplicates_counted_once_and_whitespace_tokens_never_bound_a_mention() -> None:
    doc = NLP("Sam\n\nSam")
    result = align_doc(doc, [("PER", "Sam"), ("PER", "sam"), ("PER", "Sam Sam")])
    assert [(m.start_token, m.end_token) for m in result.mentions] == [(0, 3)]


def test_normalize() -> None:
    assert normalize("  New\u00a0York’s “Best” ") == "newyork's'best'"
    assert normalize("STRASSE") == normalize("straße")


def test_offsets_outside_the_text_are_rejected() -> None:
    with pytest.raises(ValueError, match="outside a text"):
        align("abc", [(0, 5)], [("X", "abc")])


def test_bad_cutoff_is_rejected() -> None:
    with pytest.raises(ValueError, match="fuzzy_cutoff"):
        AlignOptions(fuzzy_cutoff=0)


def test_long_document_is_fast() -> None:
    words = [f"w{i % 997}" for i in range(20000)]
    words[12345] = "Schwarzenegger"
    text = " ".join(words)
    offsets = ws_offsets(text)
    queries = [("PER", "Schwarzeneger")] + [("ORG", f"Company{i}") for i in range(30)] + [("X", "w5")]
    start = time.perf_counter()
    result = align(text, offsets, queries)
    elapsed = time.perf_counter() - start
    assert [m.start_token for m in result.mentions if m.label == "PER"] == [12345]
    assert sum(m.label == "X" for m in result.mentions) == len([w for w in words if w == "w5"])
    assert len(result.unplaced) == 30
    assert elapsed < 10, f"alignment of a 20k-token document took {elapsed:.1f}s"


# --- guards against junk answers (issue 10) ---------------------------------------------------

JUNK_TEXT = "May flew with us to Paris. The team's plan may change, a source said."
JUNK_ANSWER = {"PER": ["the", "a", "May"], "ORG": [".", "'s"], "LOC": ["US", "Paris"]}


def reasons(text: str, entities: List[Tuple[str, str]]) -> List[Tuple[str, str]]:
    return [(u.text, u.reason) for u in align_doc(NLP(text), entities).unplaced]


def test_issue_example_junk_answer_places_only_may_and_paris() -> None:
    entities = [(label, s) for label, strings in JUNK_ANSWER.items() for s in strings]
    assert spans(JUNK_TEXT, entities) == [("PER", "May"), ("LOC", "Paris")]
    assert reasons(JUNK_TEXT, entities) == [
        ("the", "function_word"),
        ("a", "function_word"),
        (".", "no_alnum"),
        ("'s", "possessive"),
        ("US", "function_word"),
    ]


@pytest.mark.parametrize("string", ["'s", "’s", "'", "’", " 's ", "`s"])
def test_lone_possessive_is_never_placed(string: str) -> None:
    assert reasons("Sam 's dog and Ann ' s cat", [("ORG", string)]) == [(string, "possessive")]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("L", "N", "Zs", "Cc", "Cs")), min_size=1, max_size=4))
def test_string_without_letter_or_digit_is_never_placed(junk: str) -> None:
    text = f"Sam {junk} met Ann {junk} ."
    result = align(text, ws_offsets(text), [("ORG", junk)])
    assert result.mentions == ()
    assert [u.reason for u in result.unplaced] in (["no_alnum"], ["possessive"], ["empty"])


def test_function_words_are_refused_in_lower_case_and_on_lower_case_mentions() -> None:
    text = "May flew with us to the US. They may go. WHO and who. The end."
    assert spans(text, [("PER", "May")]) == [("PER", "May")]
    assert spans(text, [("PER", "MAY")]) == [("PER", "May")]
    assert spans(text, [("PER", "may")]) == []
    assert spans(text, [("LOC", "US")]) == [("LOC", "US")]
    assert spans(text, [("ORG", "WHO")]) == [("ORG", "WHO")]
    assert spans(text, [("ORG", "who")]) == [] and spans(text, [("X", "the")]) == []
    # documented: a capitalised function word on a capitalised mention is taken as a name
    assert spans(text, [("X", "The")]) == [("X", "The")]
    assert reasons("they may go", [("PER", "May")]) == [("May", "function_word")]
    # several words, or a word that only contains a function word, are not function words
    assert spans("The Hague and Bank of England", [("LOC", "the hague"), ("ORG", "bank of england")]) == [
        ("LOC", "The Hague"),
        ("ORG", "Bank of England"),
    ]
    assert spans("Theo and Usman", [("PER", "theo"), ("PER", "usman")]) == [("PER", "Theo"), ("PER", "Usman")]


def test_function_word_rule_as_a_pure_function() -> None:
    assert function_word_refused("may", ["May"]) and function_word_refused("the", [])
    assert function_word_refused("May", ["may", "may"]) and function_word_refused("May", [])
    assert not function_word_refused("May", ["may", "May"]) and not function_word_refused("US", ["US"])
    assert not function_word_refused("Paris", []) and not function_word_refused("of the", [])


def test_function_word_list_is_lower_case_single_words() -> None:
    assert {"the", "a", "an", "of", "to", "in", "us", "we", "may", "will", "can", "he", "she", "it", "they"} <= FUNCTION_WORDS
    assert all(w == w.lower() and w.isalpha() for w in FUNCTION_WORDS)


@pytest.mark.parametrize(
    "query,mention,ok",
    [
        ("US", "us", False),
        ("May", "may", False),
        ("Apple Inc", "apple inc", False),
        ("LEICESTERSHIRE", "Leicestershire", True),
        ("Leicestershire", "LEICESTERSHIRE", True),
        ("us", "US", True),
        ("paris", "paris", True),
        ("US", "1996", True),
        ("iPhone", "IPHONE", True),
    ],
)
def test_case_compatible(query: str, mention: str, ok: bool) -> None:
    assert case_compatible(query, mention) is ok


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(whitelist_categories=("Lu", "Ll")), min_size=1, max_size=8))
def test_lower_case_answer_matches_any_case_and_capitals_never_lower_case(word: str) -> None:
    assert case_compatible(word.lower(), word) and case_compatible(word.lower(), word.upper())
    if word.lower().islower() and any(c.isupper() for c in word):
        assert not case_compatible(word, word.lower())


def test_case_rule_applies_to_exact_and_fuzzy_candidates() -> None:
    assert reasons("apple pie with Pear", [("ORG", "Apple")]) == [("Apple", "case_mismatch")]
    assert spans("LEICESTERSHIRE beat Essex", [("ORG", "Leicestershire")]) == [("ORG", "LEICESTERSHIRE")]
    assert spans("the gorbachev era", [("PER", "Gorbachov")]) == []
    assert reasons("the gorbachev era", [("PER", "Gorbachov")]) == [("Gorbachov", "case_mismatch")]
    assert spans("the gorbachev era and Gorbachev", [("PER", "Gorbachov")]) == [("PER", "Gorbachev")]
    # a refused exact match does not stop the fuzzy stage from finding the capitalised typo
    assert spans("dover and Dovers", [("LOC", "Dover")], fuzzy_cutoff=80, min_fuzzy_chars=3) == [("LOC", "Dovers")]


def test_same_string_in_two_cases_is_tried_in_both() -> None:
    assert spans("the US embassy", [("LOC", "us"), ("LOC", "US")]) == [("LOC", "US")]


def test_query_refusal() -> None:
    assert [query_refusal(s) for s in [" ", "'s", ".", "--", "Paris", "3"]] == [
        "empty",
        "possessive",
        "no_alnum",
        "no_alnum",
        None,
        None,
    ]
