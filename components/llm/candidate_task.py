"""CandidateNERTask: ask an LLM what each candidate span of a text is, one request per span.

``spacy_ner_project.CandidateNER.v1`` (registry.make_candidate_ner_task_v1). Per doc, a
candidate generator (candidates.py) proposes spans; for each distinct candidate text of each
sentence the task asks one question ("Text: <the sentence> / What is "<candidate>"?") whose
answer is one label word or the none word, constrained per request by the server's structured
output (schema.label_choice_fields, sent as the prompt's request fields:
``RequestPrompt.request_fields``). The answer's label goes to every span of that text in that
sentence, so a span gets one label, and the task places no string it was not asked about.

Why one request per span (benchmarks/llm_local.md measures it): a small model asked for every
candidate at once in one constrained JSON answer labels them all alike (it copies its own first
label), while separate questions are separate decisions; the questions of one sentence share the
prompt up to the candidate, so a server that reuses the previous prompt's prefix (llama.cpp)
evaluates only the last line again, and each answer is two or three tokens.

Overlapping labelled candidates (sub-span candidates) keep the longest, then the first
(``spacy.util.filter_spans``); the others are recorded as dropped. The doc's outcome is an
``LLMOutcome`` as for JsonNER.v1 (one answer per request, in request order).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

import jinja2
import jinja2.sandbox
import spacy
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from spacy_ner_project.components.models import FailedResponse, RequestPrompt
from spacy_ner_project.llm.record import (
    DroppedItem,
    LLMOutcome,
    LLMStatus,
    ShardAnswer,
    UnknownLabelItem,
    failed_request_error,
    write_llm_outcome,
)

from .candidates import CandidateGenerator
from .examples import JsonNERExample
from .label_answer import LabelReader
from .parser import ParsedAnswer
from .schema import label_choice_fields
from .task import JsonNERTask

# A question: (context start token, context end token, candidate text).
Question = Tuple[int, int, str]


def _distinct(asked: List[Tuple[Span, Question]]) -> List[Question]:
    """The questions of ``asked``, each once, in order."""
    return list(dict.fromkeys(question for _, question in asked))


@lru_cache(maxsize=None)
def _tokenizer(lang: str) -> Callable[[str], Doc]:
    """A blank pipeline's tokenizer for ``lang`` (few-shot examples are stored as text)."""
    return spacy.blank(lang).make_doc


class CandidateNERTask(JsonNERTask):
    """The task object; the DEFAULT_* class constants are the registered function's defaults."""

    DEFAULT_LABEL_WORDS: Mapping[str, str] = {
        "PER": "person",
        "ORG": "organization",
        "LOC": "location",
        "MISC": "miscellaneous",
    }
    DEFAULT_LABEL_DESCRIPTIONS: Mapping[str, str] = {"MISC": "nationality, event, work or other name"}
    DEFAULT_NONE_WORD = "none"
    DEFAULT_NONE_DESCRIPTION = "not a name"
    # structured output per request: "none" (no constraint), "llama-cpp-python" (a grammar),
    # "openai" or "ollama" (the answer's JSON schema in their form)
    DEFAULT_SCHEMA_STYLE = "none"
    # a doc without sentence boundaries is asked about in windows of this many tokens
    DEFAULT_MAX_CONTEXT_TOKENS = 128
    # few-shot examples show every candidate of their text (non-entities answered with the none
    # word), not only their entities
    DEFAULT_EXAMPLES_ASK_CANDIDATES = False

    def __init__(
        self,
        *,
        candidates: CandidateGenerator,
        label_words: Mapping[str, str],
        label_descriptions: Mapping[str, str],
        none_word: str,
        none_description: str,
        schema_style: str,
        max_context_tokens: int,
        examples_ask_candidates: bool,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if max_context_tokens < 1:
            raise ValueError(f"max_context_tokens must be at least 1; got {max_context_tokens}")
        self._candidates = candidates
        self._label_words = dict(label_words)
        self._label_descriptions = dict(label_descriptions)
        self._none_word = none_word
        self._none_description = none_description
        self._schema_style = schema_style
        self._max_context_tokens = max_context_tokens
        self._examples_ask_candidates = examples_ask_candidates
        self._compiled = jinja2.sandbox.SandboxedEnvironment().from_string(self._template)
        self._check_words()
        label_choice_fields(self._answer_words(), style=schema_style)  # a bad style fails now

    def _check_words(self) -> None:
        missing = [label for label in self._labels if not self._label_words.get(label)]
        if missing:
            raise ValueError(
                f"label_words has no word for {', '.join(missing)}: give each label the word the "
                "model answers with, e.g. {\"PER\": \"person\"}"
            )
        words = [word.casefold() for word in self._answer_words()]
        if len(set(words)) != len(words):
            raise ValueError(f"the answer words must differ from each other and from none_word; got {self._answer_words()}")

    def _answer_words(self) -> List[str]:
        return [self._label_words[label] for label in self._labels] + [self._none_word]

    def add_label(self, label: str, label_definition: Optional[str] = None) -> int:
        added = super().add_label(label, label_definition)
        self._label_words.setdefault(label, label.lower())
        return added

    # --- prompting ---------------------------------------------------------------------------
    def questions(self, doc: Doc) -> List[Question]:
        """What to ask about ``doc``: each distinct candidate text once per context (its sentence,
        or a window of ``max_context_tokens`` tokens), in text order; candidates that overlap
        an entity the doc has already are skipped when existing_ents is "keep"."""
        return _distinct(self._asked(doc))

    def _asked(self, doc: Doc) -> List[Tuple[Span, Question]]:
        """Each candidate span that is asked about, with the question that asks about it."""
        blocked = [(ent.start, ent.end) for ent in doc.ents] if self._existing_ents == "keep" else []
        return [
            (span, (*self._context(doc, span), span.text))
            for span in self._candidates(doc)
            if not any(start < span.end and span.start < end for start, end in blocked)
        ]

    def _context(self, doc: Doc, span: Span) -> Tuple[int, int]:
        if doc.has_annotation("SENT_START"):
            sentence = span.sent
            start, end = sentence.start, max(sentence.end, span.end)
        else:
            start, end = 0, len(doc)
        if end - start <= self._max_context_tokens:
            return start, end
        size = self._max_context_tokens
        window = max(start, min(span.start - (size - len(span)) // 2, end - size))
        return window, max(window + size, span.end)

    def generate_prompts(
        self, docs: Iterable[Doc], context_length: Optional[int] = None
    ) -> Iterable[Tuple[Iterable[Any], Iterable[Doc]]]:
        """Per doc: one RequestPrompt per question (none for a doc without candidates) and the doc."""
        fields = label_choice_fields(self._answer_words(), style=self._schema_style)
        shared: Optional[Dict[str, Any]] = None
        for doc in docs:
            shared = shared or self._shared_prompt_data(lang=doc.lang_)
            prompts = [
                RequestPrompt(
                    self._compiled.render(text=doc[start:end].text, candidate=candidate, **shared),
                    request_fields=fields,
                )
                for start, end, candidate in self.questions(doc)
            ]
            yield prompts, [doc]

    def _example_questions(self, example: JsonNERExample, *, lang: str) -> List[Dict[str, str]]:
        """The questions a few-shot example shows, answered: with ``examples_ask_candidates``
        its candidates in text order (a candidate that is one of its entity strings answered
        with that label's word, any other with the none word), then its entity strings that
        are no candidate; else its entity strings only."""
        words = {text: self._label_words.get(label, label.lower()) for label, texts in example.entities.items() if label in self._labels for text in texts}
        asked: Dict[str, str] = {}
        if self._examples_ask_candidates:
            doc = _tokenizer(lang)(example.text)
            for span in self._candidates(doc):
                asked.setdefault(span.text, words.get(span.text, self._none_word))
        for text, word in words.items():
            asked.setdefault(text, word)
        return [{"text": example.text, "candidate": text, "answer": word} for text, word in asked.items()]

    def _shared_prompt_data(self, *, lang: str = "en") -> Dict[str, Any]:
        if not self._labels:
            raise ValueError(
                "the candidate NER task has no labels: set `labels` in its config or run nlp.initialize() "
                "with annotated examples before processing text"
            )
        examples = [qa for eg in self._prompt_examples for qa in self._example_questions(eg, lang=lang)]
        return {
            "labels": self._labels,
            "label_words": self._label_words,
            "label_descriptions": self._label_descriptions,
            "none_word": self._none_word,
            "none_description": self._none_description,
            "examples": examples,
        }

    # --- parsing -----------------------------------------------------------------------------
    def parse_responses(
        self, shards: Iterable[Iterable[Doc]], responses: Iterable[Iterable[Any]]
    ) -> Iterable[Doc]:
        """Per doc: read each question's answer, label the candidate spans, set ents."""
        reader = LabelReader(
            labels=self._labels, label_words=self._label_words, none_word=self._none_word, label_map=self._label_map
        )
        for doc_shards, doc_responses in zip(shards, responses):
            (doc,) = list(doc_shards)
            yield self._label(doc, list(doc_responses), reader)

    def _label(self, doc: Doc, responses: List[Any], reader: LabelReader) -> Doc:
        asked = self._asked(doc)
        questions = _distinct(asked)
        if len(questions) != len(responses):
            raise ValueError(f"{len(responses)} answers for {len(questions)} questions about doc {doc.text[:40]!r}")
        answers: List[ShardAnswer] = []
        unknown: List[UnknownLabelItem] = []
        labelled: Dict[Question, str] = {}
        for question, response in zip(questions, responses):
            parsed = self._read(response, reader, candidate=question[2])
            answers.append(parsed)
            if parsed.entities:
                labelled[question] = parsed.entities[0][0]
            unknown.extend(UnknownLabelItem(label=raw, text=text) for raw, text in parsed.unknown)
        spans = [Span(doc, span.start, span.end, label=labelled[key]) for span, key in asked if key in labelled]
        keep = self._existing_ents == "keep"
        chosen = filter_spans(spans)
        doc.set_ents(chosen, default="unmodified" if keep else "outside")
        kept = {(span.start, span.end) for span in chosen}
        dropped = [
            DroppedItem(label=span.label_, text=span.text, start_char=span.start_char, end_char=span.end_char, reason="overlap")
            for span in spans
            if (span.start, span.end) not in kept
        ]
        write_llm_outcome(doc, LLMOutcome.from_shards(answers, unknown_labels=unknown, dropped=dropped))
        return doc

    @staticmethod
    def _read(response: Any, reader: LabelReader, *, candidate: str) -> ParsedAnswer:
        """One question's answer as a ParsedAnswer: the candidate under its label, or nothing."""
        elapsed_s = getattr(response, "elapsed_s", None)
        if isinstance(response, FailedResponse):
            return ParsedAnswer(error=failed_request_error(response.error), status=LLMStatus.FAILED, elapsed_s=elapsed_s)
        answer = reader(str(response))
        parsed = ParsedAnswer(error=answer.error, status=answer.status, answer=str(response), elapsed_s=elapsed_s)
        if answer.label is not None:
            parsed.entities.append((answer.label, candidate))
        if answer.unknown is not None:
            parsed.unknown.append((answer.unknown, candidate))
        return parsed

    @property
    def _cfg_keys(self) -> List[str]:
        return [
            *super()._cfg_keys, "_label_words", "_label_descriptions", "_none_word", "_none_description",
            "_examples_ask_candidates",
        ]
