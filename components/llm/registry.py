"""Registered factories (entry points in setup.cfg: thinc_llm_tasks, thinc_llm_misc)."""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Union

from spacy.scorer import get_ner_prf
from spacy_llm.registry.reader import fewshot_reader
from spacy_llm.tasks.util.sharding import make_shard_mapper
from spacy_llm.ty import ExamplesConfigType, Scorer, ShardMapper
from spacy_llm.util import split_labels

from spacy_ner_project.llm.align import AlignOptions

from .candidate_task import CandidateNERTask
from .candidates import CandidateGenerator, make_capitalised_runs_v1
from .examples import JsonNERExample
from .parser import DEFAULT_LABEL_MAP, is_usable_answer, parse_json_responses
from .prompt import DEFAULT_LABEL_DEFINITIONS, read_template
from .task import JsonNERTask

DEFAULT_JSON_NER_TEMPLATE_V2 = read_template("json_ner.v2")
DEFAULT_CANDIDATE_NER_TEMPLATE_V1 = read_template("candidate_ner.v1")
# the alignment defaults are AlignOptions' own (one place): the registered function reads them here
_ALIGN_DEFAULTS = AlignOptions()


def make_json_ner_task_v1(
    labels: Union[List[str], str] = [],
    template: str = DEFAULT_JSON_NER_TEMPLATE_V2,
    label_definitions: Optional[Dict[str, str]] = None,
    examples: ExamplesConfigType = None,
    label_map: Optional[Dict[str, str]] = None,
    existing_ents: str = JsonNERTask.DEFAULT_EXISTING_ENTS,
    fuzzy_cutoff: Optional[float] = _ALIGN_DEFAULTS.fuzzy_cutoff,
    max_fuzzy_tokens: int = _ALIGN_DEFAULTS.max_fuzzy_tokens,
    min_fuzzy_chars: int = _ALIGN_DEFAULTS.min_fuzzy_chars,
    strip_possessive: bool = _ALIGN_DEFAULTS.strip_possessive,
    shard_mapper: Optional[ShardMapper] = None,
    shard_overlap: int = JsonNERTask.DEFAULT_SHARD_OVERLAP,
    parse_responses: Optional[Callable[..., Iterable[Any]]] = None,
    scorer: Optional[Scorer] = None,
) -> JsonNERTask:
    """``spacy_ner_project.JsonNER.v1``: ask for {"PER": [...], ...} and set token-aligned ents.

    labels: labels as a list or comma-separated string; empty: set at initialize (from the
        [initialize.components.llm] `labels`, or inferred from the examples).
    template: Jinja prompt template; gets text, document_tag, labels, label_definitions,
        answer_format and examples (each with text, tag and answer). Default json_ner.v2, which
        puts every text between <document-ID> and </document-ID> tags that occur in no text
        (prompt.document_tags), so a text cannot close its block. json_ner.v1 (the text in
        triple single quotes) is kept for saved pipelines (their config holds the template text)
        and for ``prompt.read_template("json_ner.v1")``.
    label_definitions: label -> short definition for the prompt; None: CoNLL-2003 definitions
        for PER/ORG/LOC/MISC. Pass {} for none.
    examples: few-shot examples, e.g. ``@misc = "spacy.FewShotReader.v1"`` over a JSON/JSONL/YAML
        file of {"text": ..., "entities": {"PER": [...]}}; more can come from training examples
        with ``n_prompt_examples`` in [initialize.components.llm].
    label_map: LLM label -> task label (case-insensitive); None: the default map
        (PERSON -> PER, ORGANIZATION -> ORG, LOCATION/GPE -> LOC, MISCELLANEOUS -> MISC).
        Build one with ``@llm_misc = "spacy_ner_project.LabelMap.v1"``.
    existing_ents: "keep" (entities set earlier stay; LLM spans that overlap them are dropped)
        or "overwrite" (the LLM's entities replace them).
    fuzzy_cutoff / max_fuzzy_tokens / min_fuzzy_chars / strip_possessive: alignment
        (spacy_ner_project.llm.align.AlignOptions, whose defaults these are).
    shard_mapper: spacy-llm shard mapper for docs whose prompt exceeds the model's context
        length (default spacy.ShardMapper.v1); the task makes shards overlap by
        ``shard_overlap`` tokens and maps answers onto the original doc.
    parse_responses: TaskResponseParser; default parse_json_responses (json-repair).
    scorer: default spaCy's get_ner_prf.
    """
    raw_examples = examples() if callable(examples) else examples
    prompt_examples = [JsonNERExample(**eg) for eg in raw_examples] if raw_examples else None
    return JsonNERTask(
        labels=split_labels(labels),
        template=template,
        label_definitions=DEFAULT_LABEL_DEFINITIONS if label_definitions is None else label_definitions,
        prompt_examples=prompt_examples,
        label_map=DEFAULT_LABEL_MAP if label_map is None else label_map,
        shard_mapper=shard_mapper or make_shard_mapper(),
        shard_overlap=shard_overlap,
        align_options=AlignOptions(
            fuzzy_cutoff=fuzzy_cutoff,
            max_fuzzy_tokens=max_fuzzy_tokens,
            min_fuzzy_chars=min_fuzzy_chars,
            strip_possessive=strip_possessive,
        ),
        existing_ents=existing_ents,
        scorer=scorer or get_ner_prf,
        parse_responses=parse_responses or parse_json_responses,
    )


def make_candidate_ner_task_v1(
    labels: Union[List[str], str] = [],
    template: str = DEFAULT_CANDIDATE_NER_TEMPLATE_V1,
    candidates: Optional[CandidateGenerator] = None,
    label_words: Optional[Dict[str, str]] = None,
    label_descriptions: Optional[Dict[str, str]] = None,
    none_word: str = CandidateNERTask.DEFAULT_NONE_WORD,
    none_description: str = CandidateNERTask.DEFAULT_NONE_DESCRIPTION,
    schema_style: str = CandidateNERTask.DEFAULT_SCHEMA_STYLE,
    max_context_tokens: int = CandidateNERTask.DEFAULT_MAX_CONTEXT_TOKENS,
    examples_ask_candidates: bool = CandidateNERTask.DEFAULT_EXAMPLES_ASK_CANDIDATES,
    examples: ExamplesConfigType = None,
    label_map: Optional[Dict[str, str]] = None,
    existing_ents: str = JsonNERTask.DEFAULT_EXISTING_ENTS,
    scorer: Optional[Scorer] = None,
) -> CandidateNERTask:
    """``spacy_ner_project.CandidateNER.v1``: one question per candidate span, one label word per
    answer (components/llm/candidate_task.py says why).

    labels: as JsonNER.v1's.
    template: Jinja prompt template; gets text (the candidate's sentence), candidate, labels,
        label_words, label_descriptions, none_word, none_description and examples (each with
        text, candidate and answer). Default candidate_ner.v1.
    candidates: a candidate generator (``@llm_misc = "spacy_ner_project.CapitalisedRuns.v1"``
        or ``"spacy_ner_project.NGramCandidates.v1"``); None: capitalised runs.
    label_words: label -> the word the model answers with; None: person, organization,
        location, miscellaneous for PER, ORG, LOC, MISC (other labels: the label in lower case).
    label_descriptions: label -> words in brackets after its word; None: MISC's.
    none_word / none_description: the answer for "not an entity", and its words in brackets.
    schema_style: constrain each answer to the answer words: "none", "llama-cpp-python" (a
        grammar), "openai" or "ollama" (a JSON schema ``{"label": ...}``), sent per request.
    max_context_tokens: the longest context asked about (a sentence, or a window of a doc
        without sentence boundaries).
    examples_ask_candidates: few-shot examples show every candidate of their text, answered
        (the none word for those that are no entity); False: one question per entity string.
    examples / label_map / existing_ents / scorer: as JsonNER.v1's.
    """
    raw_examples = examples() if callable(examples) else examples
    return CandidateNERTask(
        candidates=candidates or make_capitalised_runs_v1(),
        label_words=dict(CandidateNERTask.DEFAULT_LABEL_WORDS if label_words is None else label_words),
        label_descriptions=dict(
            CandidateNERTask.DEFAULT_LABEL_DESCRIPTIONS if label_descriptions is None else label_descriptions
        ),
        none_word=none_word,
        none_description=none_description,
        schema_style=schema_style,
        max_context_tokens=max_context_tokens,
        examples_ask_candidates=examples_ask_candidates,
        labels=split_labels(labels),
        template=template,
        label_definitions=dict(DEFAULT_LABEL_DEFINITIONS),
        prompt_examples=[JsonNERExample(**eg) for eg in raw_examples] if raw_examples else None,
        label_map=DEFAULT_LABEL_MAP if label_map is None else label_map,
        shard_mapper=make_shard_mapper(),
        shard_overlap=JsonNERTask.DEFAULT_SHARD_OVERLAP,
        align_options=_ALIGN_DEFAULTS,
        existing_ents=existing_ents,
        scorer=scorer or get_ner_prf,
        parse_responses=parse_json_responses,
    )


def make_label_map_v1(mapping: Dict[str, str] = {}, include_defaults: bool = True) -> Dict[str, str]:
    """``spacy_ner_project.LabelMap.v1``: a label map for JsonNER.v1's ``label_map``.

    mapping: extra LLM label -> task label entries (they win over the defaults).
    include_defaults: start from the default map (PERSON -> PER, GPE -> LOC, ...).
    """
    base = dict(DEFAULT_LABEL_MAP) if include_defaults else {}
    return {**base, **mapping}


def make_usable_answer_check_v1(
    labels: Union[List[str], str] = [], label_map: Optional[Dict[str, str]] = None
) -> Callable[[str], bool]:
    """``spacy_ner_project.UsableAnswerCheck.v1``: a predicate "is this response worth caching?".

    For a model's ``cache_check``: True when the response yields an entity list for the task
    (``parser.is_usable_answer``: at least one of ``labels`` answered, even with no entities),
    False for prose, an echoed prompt or JSON without a task label, which are then not cached.
    labels: the task's labels (list or comma-separated); label_map: as JsonNER.v1's (None: the
    default map).
    """
    task_labels: Sequence[str] = split_labels(labels)
    if not task_labels:
        raise ValueError("UsableAnswerCheck.v1 needs the task's labels, e.g. labels = ${llm.labels}")
    mapping = DEFAULT_LABEL_MAP if label_map is None else dict(label_map)

    def check(response: str) -> bool:
        return is_usable_answer(response, labels=task_labels, label_map=mapping)

    return check


def read_prompt_examples_v1(path: Optional[str] = None) -> Callable[[], Iterable[Dict[str, Any]]]:
    """``spacy_ner_project.PromptExamples.v1``: few-shot examples for JsonNER.v1's ``examples``.

    path: JSON, JSONL or YAML file of {"text": ..., "entities": {"PER": [...], ...}} objects
        (read by spacy-llm's few-shot reader); None gives no examples, so a config can keep the
        block and switch examples on with ``--paths.examples file.jsonl``.
    """
    if path is None:
        return lambda: []
    return fewshot_reader(path)
