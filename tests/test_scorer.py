"""The fuzzy NER scorer: cross-checked against spaCy and nervaluate, and usable from spaCy."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import pytest
import spacy
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from nervaluate import Evaluator
from spacy.scorer import Scorer, get_ner_prf
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.util import registry
from spacy.vocab import Vocab

from spacy_ner_project.scoring.matching import MODES, Entity, MatchSettings, ModeTally, match_entities
from spacy_ner_project.scoring.spans import boundary_confusion, score_fuzzy_ents, score_key

LABELS = ("PER", "LOC", "ORG")
VOCAB = Vocab()
SCORER_NAME = "spacy_ner_project.fuzzy_ner_scorer.v1"

SpanSpec = Tuple[int, int, str]  # start, end (exclusive), label


@st.composite
def spans(draw: st.DrawFn, n_tokens: int) -> List[SpanSpec]:
    """Non-overlapping labelled spans over n_tokens tokens."""
    result: List[SpanSpec] = []
    position = 0
    while position < n_tokens and draw(st.booleans()):
        start = draw(st.integers(position, n_tokens - 1))
        end = draw(st.integers(start + 1, min(n_tokens, start + 4)))
        result.append((start, end, draw(st.sampled_from(LABELS))))
        position = end
    return result


@st.composite
def documents(draw: st.DrawFn, *, retokenize: bool = False, partial: bool = False) -> Tuple[Example, List[SpanSpec], List[SpanSpec]]:
    """An Example with random gold and predicted entities.

    retokenize: the predicted doc merges some adjacent gold tokens (spaCy aligns them).
    partial: the gold doc may leave tokens outside its entities unannotated.
    """
    n_tokens = draw(st.integers(1, 14))
    words = [draw(st.sampled_from(["a", "bb", "c", "Dd", "e"])) for _ in range(n_tokens)]
    gold_spans = draw(spans(n_tokens))
    gold = Doc(VOCAB, words=words)
    missing = partial and draw(st.booleans())
    gold.set_ents(
        [Span(gold, s, e, label=label) for s, e, label in gold_spans],
        default="missing" if missing else "outside",
    )
    pred_words = list(words)
    if retokenize:
        merged: List[str] = []
        for word in words:
            if merged and draw(st.integers(0, 3)) == 0:
                merged[-1] += word
            else:
                merged.append(word)
        pred_words = merged
    pred = Doc(VOCAB, words=pred_words)
    pred_spans = draw(spans(len(pred_words)))
    pred.ents = [Span(pred, s, e, label=label) for s, e, label in pred_spans]
    return Example(pred, gold), gold_spans, pred_spans


def example_from(
    words: Sequence[str], gold: Sequence[SpanSpec], pred: Sequence[SpanSpec], spaces: Optional[Sequence[bool]] = None
) -> Example:
    spaces = list(spaces) if spaces is not None else None
    gold_doc = Doc(VOCAB, words=list(words), spaces=spaces)
    gold_doc.ents = [Span(gold_doc, s, e, label=label) for s, e, label in gold]
    pred_doc = Doc(VOCAB, words=list(words), spaces=spaces)
    pred_doc.ents = [Span(pred_doc, s, e, label=label) for s, e, label in pred]
    return Example(pred_doc, gold_doc)


def spacy_keys(scores: Dict[str, Any]) -> Dict[str, Any]:
    return {key: scores[key] for key in ("ents_p", "ents_r", "ents_f", "ents_per_type")}


def strict_as_spacy(scores: Dict[str, Any]) -> Dict[str, Any]:
    per_type = scores[score_key("strict", "per_type")]
    return {
        "ents_p": scores[score_key("strict", "p")],
        "ents_r": scores[score_key("strict", "r")],
        "ents_f": scores[score_key("strict", "f")],
        "ents_per_type": None
        if per_type is None
        else {label: {k: v[k] for k in ("p", "r", "f")} for label, v in per_type.items()},
    }


# --- strict mode is spaCy ---------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(documents(retokenize=True, partial=True), min_size=1, max_size=4))
def test_strict_equals_spacy_get_ner_prf(docs: List[Tuple[Example, Any, Any]]) -> None:
    examples = [example for example, _, _ in docs]
    scores = score_fuzzy_ents(examples, include_spacy=False)
    assert strict_as_spacy(scores) == spacy_keys(get_ner_prf(examples))  # exact, floats included


@settings(max_examples=150, deadline=None)
@given(st.lists(documents(), min_size=1, max_size=4))
def test_strict_and_boundary_equal_spacy_score_spans(docs: List[Tuple[Example, Any, Any]]) -> None:
    examples = [example for example, _, _ in docs]
    scores = score_fuzzy_ents(examples, include_spacy=False)
    labeled = Scorer.score_spans(examples, "ents")
    unlabeled = Scorer.score_spans(examples, "ents", labeled=False)
    strict = strict_as_spacy(scores)
    if labeled["ents_p"] is None:  # score_spans reports no spans as None, like get_ner_prf
        assert strict["ents_p"] is None
        return
    assert strict["ents_p"] == labeled["ents_p"]
    assert strict["ents_r"] == labeled["ents_r"]
    assert strict["ents_f"] == labeled["ents_f"]
    for label, prf in labeled["ents_per_type"].items():
        assert strict["ents_per_type"][label] == prf
    for suffix in ("p", "r", "f"):
        assert scores[score_key("boundary", suffix)] == unlabeled[f"ents_{suffix}"]


def test_include_spacy_keys_match_spacy_and_never_clash() -> None:
    example = example_from(["Ann", "met", "Bob"], [(0, 1, "PER"), (2, 3, "PER")], [(0, 1, "PER"), (2, 3, "ORG")])
    with_spacy = score_fuzzy_ents([example])
    assert spacy_keys(with_spacy) == spacy_keys(get_ner_prf([example]))
    without = score_fuzzy_ents([example], include_spacy=False)
    assert not [key for key in without if key.startswith("ents_") or key in ("token_acc", "speed")]
    assert all(key.startswith("fuzzy_ents_") for key in without)
    assert set(with_spacy) - set(without) == {"ents_p", "ents_r", "ents_f", "ents_per_type"}


# --- overlap and boundary agree with nervaluate where the definitions coincide --------------


def nervaluate_results(docs: List[Tuple[Example, List[SpanSpec], List[SpanSpec]]], min_pct: float) -> Dict[str, Any]:
    # nervaluate's ends are inclusive: end - 1.
    true = [[{"label": label, "start": s, "end": e - 1} for s, e, label in gold] for _, gold, _ in docs]
    pred = [[{"label": label, "start": s, "end": e - 1} for s, e, label in p] for _, _, p in docs]
    return Evaluator(true, pred, tags=list(LABELS), loader="dict", min_overlap_percentage=min_pct).evaluate()


def overlaps_one_to_one(gold: List[SpanSpec], pred: List[SpanSpec]) -> bool:
    """Each span overlaps at most one span on the other side: there the schemes coincide."""

    def hits(span: SpanSpec, others: List[SpanSpec]) -> int:
        return sum(1 for o in others if o[0] < span[1] and span[0] < o[1])

    return all(hits(g, pred) <= 1 for g in gold) and all(hits(p, gold) <= 1 for p in pred)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.lists(documents(), min_size=1, max_size=4), st.sampled_from([1.0, 25.0, 50.0, 75.0, 100.0]))
def test_overlap_boundary_strict_agree_with_nervaluate(
    docs: List[Tuple[Example, List[SpanSpec], List[SpanSpec]]], min_pct: float
) -> None:
    assume(all(overlaps_one_to_one(gold, pred) for _, gold, pred in docs))
    examples = [example for example, _, _ in docs]
    scores = score_fuzzy_ents(
        examples, settings=MatchSettings(min_overlap=min_pct / 100), include_spacy=False
    )
    overall = nervaluate_results(docs, min_pct)["overall"]
    # our mode -> nervaluate scheme: overlap = ent_type, boundary = exact, strict = strict
    for mode, scheme in (("overlap", "ent_type"), ("boundary", "exact"), ("strict", "strict")):
        theirs = overall[scheme]
        counts = scores[score_key(mode, "counts")]
        assert counts["correct"] + counts["partial"] + counts["wrong_type"] == theirs.correct, mode
        if scores[score_key(mode, "p")] is None:
            assert theirs.actual == theirs.possible == 0
            continue
        assert scores[score_key(mode, "p")] == pytest.approx(theirs.precision, abs=1e-12), mode
        assert scores[score_key(mode, "r")] == pytest.approx(theirs.recall, abs=1e-12), mode
        assert scores[score_key(mode, "f")] == pytest.approx(theirs.f1, abs=1e-12), mode


# --- invariants of the counts ----------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.lists(documents(retokenize=True, partial=True), min_size=1, max_size=4))
def test_counts_add_up_and_fuzzy_modes_never_score_below_strict(docs: List[Tuple[Example, Any, Any]]) -> None:
    examples = [example for example, _, _ in docs]
    scores = score_fuzzy_ents(examples, include_spacy=False)
    matched = {}
    for mode in MODES:
        counts = scores[score_key(mode, "counts")]
        tp = counts["correct"] + counts["partial"] + counts["wrong_type"]
        assert tp + counts["missed"] == counts["gold"]
        assert tp + counts["spurious"] == counts["pred"]
        if mode != "boundary":
            assert counts["wrong_type"] == 0
        if mode in ("strict", "boundary"):
            assert counts["partial"] == 0
        if mode == "strict":
            assert counts["partial"] == counts["wrong_type"] == 0
        for label, per_type in (scores[score_key(mode, "per_type")] or {}).items():
            assert per_type["correct"] + per_type["partial"] + per_type["wrong_type"] + per_type["missed"] == per_type["gold"]
        matched[mode] = tp
    assert matched["overlap"] >= matched["strict"] and matched["boundary"] >= matched["strict"]


def test_per_type_counts_in_every_mode() -> None:
    words = ["Ann", "Lee", "visited", "New", "York", "and", "Acme", "Corp", "today", "with", "Bob"]
    gold = [(0, 2, "PER"), (3, 5, "LOC"), (6, 8, "ORG"), (10, 11, "PER")]
    pred = [(0, 1, "PER"), (3, 5, "ORG"), (6, 8, "ORG"), (8, 9, "LOC")]
    scores = score_fuzzy_ents([example_from(words, gold, pred)], include_spacy=False)

    def row(mode: str, label: str) -> Tuple[int, ...]:
        t = scores[score_key(mode, "per_type")][label]
        return t["gold"], t["pred"], t["correct"], t["partial"], t["wrong_type"], t["missed"], t["spurious"]

    # strict: only Acme Corp
    assert row("strict", "PER") == (2, 1, 0, 0, 0, 2, 1)
    assert row("strict", "ORG") == (1, 2, 1, 0, 0, 0, 1)
    assert scores[score_key("strict", "counts")] == {
        "gold": 4, "pred": 4, "correct": 1, "partial": 0, "wrong_type": 0, "missed": 3, "spurious": 3
    }
    # overlap: "Ann" covers half of "Ann Lee" -> partial PER
    assert row("overlap", "PER") == (2, 1, 0, 1, 0, 1, 0)
    assert scores[score_key("overlap", "per_type")]["PER"]["r"] == pytest.approx(0.5)
    # boundary: New York LOC predicted ORG -> wrong type, by the gold label
    assert row("boundary", "LOC") == (1, 1, 0, 0, 1, 0, 1)
    assert row("boundary", "ORG") == (1, 2, 1, 0, 0, 0, 0)
    org = scores[score_key("boundary", "per_type")]["ORG"]
    assert (org["p"], org["r"]) == pytest.approx((1.0, 1.0))
    assert scores[score_key("boundary", "p")] == pytest.approx(2 / 4)
    # overlap with a minimum share of 0.6 of the gold tokens: "Ann" no longer counts
    strict_overlap = score_fuzzy_ents(
        [example_from(words, gold, pred)], modes=["overlap"], settings=MatchSettings(min_overlap=0.6), include_spacy=False
    )
    assert strict_overlap[score_key("overlap", "per_type")]["PER"]["partial"] == 0


# --- text mode: the notebook's example ------------------------------------------------------


def text_mode(
    gold: List[Tuple[str, str]], pred: List[Tuple[str, str]], *, settings: MatchSettings = MatchSettings()
) -> Dict[str, float]:
    """Text-mode totals of one document's (label, text) entities, without offsets."""
    tally = ModeTally("text")
    tally.add_document(
        [Entity(label, text=text) for label, text in gold],
        [Entity(label, text=text) for label, text in pred],
        settings=settings,
    )
    return tally.totals().to_dict()


def test_text_mode_reproduces_the_chatgpt_example() -> None:
    words, spaces = ["I", "asked", "ChatGPT", "'s", "API"], [True, True, False, True, False]
    example = example_from(words, [(2, 3, "PRODUCT")], [(2, 4, "PRODUCT")], spaces)
    assert example.predicted.ents[0].text == "ChatGPT's"
    scores = score_fuzzy_ents([example])
    assert scores["ents_f"] == 0.0 and scores[score_key("strict", "f")] == 0.0
    assert scores[score_key("text", "f")] == pytest.approx(1.0)
    assert scores[score_key("text", "counts")]["partial"] == 1
    # from strings alone, without offsets
    result = text_mode([("PRODUCT", "ChatGPT")], [("PRODUCT", "ChatGPT's")])
    assert result["f"] == pytest.approx(1.0) and result["partial"] == 1
    assert text_mode([("PRODUCT", "ChatGPT")], [("PRODUCT", "ChatGPT")])["correct"] == 1
    assert text_mode([("PRODUCT", "ChatGPT")], [("ORG", "ChatGPT's")])["f"] == 0.0  # label matters
    too_strict = text_mode(
        [("PRODUCT", "ChatGPT")], [("PRODUCT", "ChatGPT's")], settings=MatchSettings(text_threshold=90)
    )
    assert too_strict["missed"] == 1 and too_strict["spurious"] == 1
    partial = text_mode(
        [("PRODUCT", "ChatGPT")], [("PRODUCT", "the ChatGPT API")], settings=MatchSettings(text_scorer="partial_ratio")
    )
    assert partial["partial"] == 1


def test_bad_settings_raise_with_the_fix() -> None:
    with pytest.raises(ValueError, match="ratio, partial_ratio"):
        MatchSettings(text_scorer="levenshtein")
    with pytest.raises(ValueError, match="between 0 and 1"):
        MatchSettings(min_overlap=50)
    with pytest.raises(ValueError, match="choose from strict"):
        score_fuzzy_ents([], modes=["fuzzy"])


# --- one-to-one matching and tie-breaking ---------------------------------------------------


def test_one_to_one_and_ties() -> None:
    s = MatchSettings()
    gold = [Entity("LOC", 0, 4, "a b c d")]
    # both overlap; the one covering more of the gold entity wins, the other is spurious
    pred = [Entity("LOC", 0, 1, "a"), Entity("LOC", 1, 4, "b c d")]
    assert match_entities(gold, pred, mode="overlap", settings=s) == [(0, 1)]
    # equal scores: earliest gold, then earliest pred
    twice = [Entity("LOC", 0, 1, "Paris"), Entity("LOC", 5, 6, "Paris")]
    once = [Entity("LOC", 9, 10, "Paris")]
    assert match_entities(twice, once, mode="text", settings=s) == [(0, 0)]
    assert match_entities(once, twice, mode="text", settings=s) == [(0, 0)]
    result = text_mode([("LOC", "Paris")], [("LOC", "Paris"), ("LOC", "Paris")])
    assert (result["correct"], result["spurious"], result["p"]) == (1, 1, pytest.approx(0.5))
    # boundary prefers the same label
    same_bounds = [Entity("ORG", 0, 2, "x"), Entity("LOC", 0, 2, "x")]
    assert match_entities([Entity("LOC", 0, 2, "x")], same_bounds, mode="boundary", settings=s) == [(0, 1)]


def test_boundary_confusion_counts_label_errors() -> None:
    example = example_from(
        ["Ann", "in", "Rome", "at", "Acme", "x"], [(0, 1, "PER"), (2, 3, "LOC"), (4, 5, "ORG")], [(0, 1, "PER"), (2, 3, "ORG"), (5, 6, "LOC")]
    )
    confusion = boundary_confusion([example])
    assert confusion == {("PER", "PER"): 1, ("LOC", "ORG"): 1, ("ORG", "(none)"): 1, ("(none)", "LOC"): 1}


# --- usable from spaCy: registry, config and nlp.evaluate -----------------------------------

CONFIG = """
[nlp]
lang = "en"
pipeline = ["ner"]

[components]

[components.ner]
factory = "ner"

[components.ner.scorer]
@scorers = "spacy_ner_project.fuzzy_ner_scorer.v1"
modes = ["strict", "text"]
text_threshold = 85.0
include_spacy = true
"""


def test_scorer_from_config_replaces_the_ner_default() -> None:
    nlp = spacy.util.load_model_from_config(spacy.util.load_config_from_str(CONFIG), auto_fill=True)
    words, spaces = ["I", "asked", "ChatGPT", "'s", "API"], [True, True, False, True, False]
    scores = nlp.get_pipe("ner").score([example_from(words, [(2, 3, "PRODUCT")], [(2, 4, "PRODUCT")], spaces)])
    assert scores["ents_f"] == 0.0  # spaCy's keys kept
    assert scores[score_key("text", "f")] == pytest.approx(1.0)
    assert score_key("overlap", "f") not in scores  # only the configured modes
    assert scores["fuzzy_ents_settings"]["text_threshold"] == 85.0


def test_scorer_through_nlp_evaluate() -> None:
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler", config={"scorer": {"@scorers": SCORER_NAME}})
    ruler.add_patterns([{"label": "ORG", "pattern": "Acme"}, {"label": "PER", "pattern": "Ann"}])
    gold = nlp.make_doc("Ann works at Acme Corp")
    gold.ents = [Span(gold, 0, 1, "PER"), Span(gold, 3, 5, "ORG")]
    scores = nlp.evaluate([Example(nlp.make_doc(gold.text), gold)])
    assert scores["ents_p"] == pytest.approx(0.5) and scores[score_key("strict", "p")] == scores["ents_p"]
    assert scores[score_key("overlap", "f")] == pytest.approx(1.0)
    assert scores[score_key("overlap", "counts")]["partial"] == 1
    factory = registry.scorers.get(SCORER_NAME)
    assert factory(modes=["boundary"])([Example(nlp(gold.text), gold)])[score_key("boundary", "r")] == pytest.approx(0.5)
