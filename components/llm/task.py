"""JsonNERTask: prompt an LLM for {"PER": [...], ...} and turn its answer into token-aligned ents.

A spacy-llm sharding task. Per doc it renders one prompt per shard (long docs are cut by a
spacy-llm shard mapper into overlapping shards), parses each shard's answer
(``parser.parse_answer``), and places every returned string in the ORIGINAL doc
(``spacy_ner_project.llm.align``) — doc.text is never rebuilt from shards. What became of the
request and what could not become an entity (the status, errors, raw answers, unplaced strings,
unknown labels, dropped spans, fuzzy placements, request time) is kept on the doc as an
``LLMOutcome`` under ``doc.user_data[LLM_RECORD_KEY]`` (``"spacy_ner_project.llm"``): its form
is documented in ``spacy_ner_project.llm.record``, which also reads it back
(``read_llm_outcome``). Per-doc errors are logged at DEBUG only (evaluation summarises them).
"""

from __future__ import annotations

import json
import logging
from typing import AbstractSet, Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Type

import jinja2
import jinja2.sandbox
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy_llm.tasks.builtin_task import BuiltinTask
from spacy_llm.ty import FewshotExample, Scorer, ShardMapper, TaskResponseParser

from spacy_ner_project.llm.align import AlignOptions, Mention, Unplaced, align_doc, normalize
from spacy_ner_project.llm.record import (
    LLM_RECORD_KEY,
    DroppedItem,
    FuzzyItem,
    LLMOutcome,
    UnknownLabelItem,
    UnplacedItem,
    write_llm_outcome,
)

from .examples import JsonNERExample, choose_prompt_examples, sentence_examples
from .parser import ParsedAnswer
from .prompt import document_tags, order_labels
from .shards import original_doc, overlapping_shard_mapper, reduce_shards_to_original

logger = logging.getLogger("spacy_ner_project.llm")

EXISTING_ENTS_POLICIES = ("keep", "overwrite")
# few-shot sentences taken from training examples at initialize: shorter ones (CoNLL datelines,
# bylines) show little, longer ones cost prompt tokens
PROMPT_EXAMPLE_MIN_TOKENS = 4
PROMPT_EXAMPLE_MAX_TOKENS = 40
# unplaced reasons that mean "not in the text": such a string equal to an example's entity was
# copied from the prompt's examples
_NOT_IN_TEXT = ("not_found", "case_mismatch")


class JsonNERTask(BuiltinTask):
    """The task object; ``spacy_ner_project.JsonNER.v1`` (``registry.make_json_ner_task_v1``) builds it.

    The DEFAULT_* class constants are the defaults of the registered function (one place).
    """

    DEFAULT_EXISTING_ENTS = "keep"
    # tokens shared by consecutive shards: an entity of up to this many tokens cut by a shard
    # boundary is whole in the next shard
    DEFAULT_SHARD_OVERLAP = 16

    def __init__(
        self,
        *,
        labels: Sequence[str],
        template: str,
        label_definitions: Dict[str, str],
        prompt_examples: Optional[List[JsonNERExample]],
        label_map: Dict[str, str],
        shard_mapper: ShardMapper,
        shard_overlap: int,
        align_options: AlignOptions,
        existing_ents: str,
        scorer: Scorer,
        parse_responses: TaskResponseParser,
        prompt_example_type: Type[FewshotExample] = JsonNERExample,
    ) -> None:
        if existing_ents not in EXISTING_ENTS_POLICIES:
            raise ValueError(f"existing_ents must be one of {EXISTING_ENTS_POLICIES}, got {existing_ents!r}")
        try:
            jinja2.sandbox.SandboxedEnvironment().from_string(template)
        except jinja2.TemplateSyntaxError as err:
            raise ValueError(f"the prompt template is not valid Jinja: {err}") from err
        super().__init__(
            parse_responses=parse_responses,
            prompt_example_type=prompt_example_type,
            template=template,
            prompt_examples=prompt_examples,
            shard_mapper=overlapping_shard_mapper(shard_mapper, overlap=shard_overlap),
            shard_reducer=reduce_shards_to_original,
        )
        self._labels: List[str] = order_labels(labels)
        self._label_definitions: Dict[str, str] = dict(label_definitions)
        self._label_map = dict(label_map)
        self._align_options = align_options
        self._existing_ents = existing_ents
        self._scorer = scorer
        self._warned_labels: Set[str] = set()

    # --- labels (spacy-llm's LabeledTask protocol) -------------------------------------------
    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self._labels)

    def add_label(self, label: str, label_definition: Optional[str] = None) -> int:
        if not isinstance(label, str) or not label:
            raise ValueError(f"a label must be a non-empty string, got {label!r}")
        if label_definition is not None:
            self._label_definitions[label] = label_definition
        if label in self._labels:
            return 0
        self._labels = order_labels([*self._labels, label])
        return 1

    def clear(self) -> None:
        self._labels = []

    @property
    def label_definitions(self) -> Dict[str, str]:
        return dict(self._label_definitions)

    @property
    def prompt_examples(self) -> List[JsonNERExample]:
        return list(self._prompt_examples)

    # --- initialisation ----------------------------------------------------------------------
    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        nlp: Language,
        labels: List[str] = [],
        n_prompt_examples: int = 0,
        prompt_example_seed: int = 0,
        prompt_example_max_tokens: int = PROMPT_EXAMPLE_MAX_TOKENS,
    ) -> None:
        """Labels: ``labels`` here, else the configured ones, else those in the examples.

        Few-shot examples: ``n_prompt_examples`` sentences (-1: all) of the examples are added to
        those from the config's example file: sentences with entities and
        ``PROMPT_EXAMPLE_MIN_TOKENS`` to ``prompt_example_max_tokens`` tokens (a whole document when
        it has no sentence boundaries), chosen by ``examples.choose_prompt_examples`` with
        ``prompt_example_seed`` (every label shown when n allows; the same examples for the same
        seed and data).
        """
        infer = not labels and not self._labels
        found: List[str] = list(labels) or list(self._labels)
        candidates: List[JsonNERExample] = []
        for eg in get_examples():
            if infer:
                found.extend(ent.label_ for ent in eg.reference.ents)
            if n_prompt_examples:
                candidates.extend(
                    sentence_examples(eg, min_tokens=PROMPT_EXAMPLE_MIN_TOKENS, max_tokens=prompt_example_max_tokens)
                )
        if not found:
            raise ValueError(
                "the JSON NER task has no labels: set `labels` on the task, in "
                "[initialize.components.llm], or initialize with examples that have entities"
            )
        self._labels = order_labels(found)
        self._prompt_examples.extend(choose_prompt_examples(candidates, n=n_prompt_examples, seed=prompt_example_seed))

    # --- prompting ---------------------------------------------------------------------------
    def _get_prompt_data(self, shard: Doc, i_shard: int, i_doc: int, n_shards: int) -> Dict[str, Any]:
        if not self._labels:
            raise ValueError(
                "the JSON NER task has no labels: set `labels` in its config or run nlp.initialize() "
                "with annotated examples before processing text"
            )
        tags = document_tags([eg.text for eg in self._prompt_examples] + [shard.text])
        examples = [
            {"text": eg.text, "tag": tag, "answer": _json({lab: eg.entities.get(lab, []) for lab in self._labels})}
            for eg, tag in zip(self._prompt_examples, tags)
        ]
        return {
            "document_tag": tags[-1],
            "labels": self._labels,
            "label_definitions": {k: v for k, v in self._label_definitions.items() if k in self._labels},
            "answer_format": "{" + ", ".join(f'"{label}": [...]' for label in self._labels) + "}",
            "examples": examples,
        }

    # --- parsing -----------------------------------------------------------------------------
    def parse_responses(
        self, shards: Iterable[Iterable[Doc]], responses: Iterable[Iterable[Any]]
    ) -> Iterable[Doc]:
        """Per doc: parse its shards' answers, align the strings to the original doc, set ents."""
        shards_per_doc = [list(doc_shards) for doc_shards in shards]
        answers_per_doc = self._parse_responses(self, shards_per_doc, responses)
        for doc_shards, answers in zip(shards_per_doc, answers_per_doc):
            yield self._annotate(original_doc(doc_shards), list(answers))

    @property
    def label_map(self) -> Dict[str, str]:
        return dict(self._label_map)

    def _annotate(self, doc: Doc, answers: List[ParsedAnswer]) -> Doc:
        """Set the entities that its shards' answers (in shard order) place in ``doc``; leave the
        doc's LLMOutcome on it."""
        entities = [entity for parsed in answers for entity in parsed.entities]
        unknown_labels = [self._unknown_label(raw_label, text) for parsed in answers for raw_label, text in parsed.unknown]
        for i, parsed in enumerate(answers):
            if parsed.error:
                # kept on the doc; one warning per doc would flood a run (evaluation summarises them)
                logger.debug("doc %r...: shard %d: %s", doc.text[:40], i, parsed.error)
        keep = self._existing_ents == "keep"
        existing = [(ent.start, ent.end) for ent in doc.ents] if keep else []
        result = align_doc(doc, entities, options=self._align_options, blocked=existing)
        spans = [Span(doc, m.start_token, m.end_token, label=m.label) for m in result.mentions]
        doc.set_ents(spans, default="unmodified" if keep else "outside")
        copied = {normalize(text) for eg in self._prompt_examples for texts in eg.entities.values() for text in texts}
        outcome = LLMOutcome.from_shards(
            answers,
            unknown_labels=unknown_labels,
            unplaced=[_unplaced(u, copied=copied) for u in result.unplaced],
            dropped=[
                DroppedItem(**_span_fields(m), reason="existing_entity" if _overlaps(m, existing) else "overlap")
                for m in result.overlapped
            ],
            fuzzy=[FuzzyItem(**_span_fields(m), score=round(m.score, 1)) for m in result.mentions if m.method == "fuzzy"],
        )
        write_llm_outcome(doc, outcome)
        return doc

    def _unknown_label(self, raw_label: str, text: str) -> UnknownLabelItem:
        """An answer's string under a label that maps to no task label (warned once per label)."""
        if raw_label not in self._warned_labels:
            self._warned_labels.add(raw_label)
            logger.warning(
                "LLM answered with label %r, which is not one of %s and not in the label map: "
                "its entities are kept in doc.user_data[%r]['unknown_labels']; add it to "
                "`label_map` to use them",
                raw_label,
                self._labels,
                LLM_RECORD_KEY,
            )
        return UnknownLabelItem(label=raw_label, text=text)

    # --- scoring and serialisation -----------------------------------------------------------
    def scorer(self, examples: Iterable[Example]) -> Dict[str, Any]:
        return self._scorer(examples)

    @property
    def _cfg_keys(self) -> List[str]:
        return ["_labels", "_label_definitions"]


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _unplaced(unplaced: Unplaced, *, copied: AbstractSet[str]) -> UnplacedItem:
    """A string that could not be placed; its reason is "copied_from_examples" when it is not in
    the text and its normalized form is in ``copied`` (the few-shot examples' entity strings)."""
    from_examples = unplaced.reason in _NOT_IN_TEXT and normalize(unplaced.text) in copied
    return UnplacedItem(label=unplaced.label, text=unplaced.text, reason="copied_from_examples" if from_examples else unplaced.reason)


def _overlaps(m: Mention, ranges: Sequence[Tuple[int, int]]) -> bool:
    return any(start < m.end_token and m.start_token < end for start, end in ranges)


def _span_fields(m: Mention) -> Dict[str, Any]:
    return {"label": m.label, "text": m.text, "start_char": m.start_char, "end_char": m.end_char}
