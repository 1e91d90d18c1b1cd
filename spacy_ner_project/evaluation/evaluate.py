"""Score one or more pipelines on the same gold documents with spaCy's scorer and the fuzzy scorer.

This is the project's one evaluation path: trained pipelines, saved or assembled LLM pipelines
(a config file) and in-memory pipelines are all scored by :func:`score_pipeline`, and the
benchmarks use it too. :meth:`Evaluation.metrics` is the one metrics schema (``metrics.json``;
written with ``report.md`` and ``report.html`` by :mod:`spacy_ner_project.evaluation.report`):

- ``data``, ``unit`` (``docs`` or ``sents``), ``n_docs``, ``support`` (gold entities per type),
  ``settings`` (the fuzzy matcher's), ``sources``, ``disagreements``;
- ``pipelines``: per pipeline, spaCy's keys (what ``nlp.evaluate`` gives: tokenizer and every
  component's scorer, plus ``ents_p/r/f/per_type`` from ``get_ner_prf``), ``fuzzy_ents_*`` and
  ``speed`` (words per second; None for an LLM pipeline of which no request got an answer);
- ``confusion``: per pipeline, {gold label: {predicted label: count}};
- ``llm``: per pipeline with an LLM model only (:mod:`spacy_ner_project.evaluation.llm`):
  ``model_stats``, ``task_report``, ``seconds``, ``docs_per_second`` (None when no request got
  an answer), ``problems``, ``warnings``.

The entities may come from any component (``ner``, ``llm``, an entity ruler...): each
pipeline's ``doc.ents`` are scored directly.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from spacy.language import Language
from spacy.scorer import Scorer
from spacy.tokens import Doc
from spacy.training import Example

from spacy_ner_project.conll import DOC_ID_KEY
from spacy_ner_project.defaults import CPU
from spacy_ner_project.errors import OptionError, UserError
from spacy_ner_project.evaluation import llm
from spacy_ner_project.evaluation.gold import UNITS, read_gold
from spacy_ner_project.pipelines import load_pipeline, pipeline_config, use_device
from spacy_ner_project.progress import progress
from spacy_ner_project.scoring.matching import MODES, MatchSettings
from spacy_ner_project.scoring.spans import NO_ENTITY, boundary_confusion, score_fuzzy_ents
from spacy_ner_project.threads import pipe_in_threads

__all__ = ["Evaluation", "PipelineResult", "UNITS", "load_pipeline", "read_gold", "score_pipeline", "run_evaluation"]

DEFAULT_SETTINGS = MatchSettings()
EntitySet = frozenset  # of (start_char, end_char, label)


@dataclass
class PipelineResult:
    """One pipeline's scores, predicted docs and label confusion on the gold docs; ``llm``: what
    its LLM model did (None for a pipeline without one)."""

    name: str
    source: str
    scores: Dict[str, Any]
    predictions: List[Doc]
    confusion: Dict[str, Dict[str, int]]
    llm: Optional[Dict[str, Any]] = None


@dataclass
class Evaluation:
    """All pipelines scored on the same gold documents (or sentences: ``unit``)."""

    data: str
    gold: List[Doc]
    results: List[PipelineResult]
    settings: MatchSettings = field(default_factory=MatchSettings)
    unit: str = "docs"

    @property
    def support(self) -> Dict[str, int]:
        """Gold entities per type (the tables' Number column), over annotated docs."""
        counts: Counter = Counter(
            ent.label_ for doc in self.gold if doc.has_annotation("ENT_IOB") for ent in doc.ents
        )
        return dict(sorted(counts.items()))

    def doc_id(self, index: int) -> str:
        return str(self.gold[index].user_data.get(DOC_ID_KEY, f"#{index}"))

    def disagreements(self) -> List[int]:
        """Indices of the docs where some pipeline's entities differ from gold (and so from each other)."""
        return [
            index
            for index, gold in enumerate(self.gold)
            if any(entity_set(r.predictions[index]) != entity_set(gold) for r in self.results)
        ]

    def metrics(self) -> Dict[str, Any]:
        """Everything as JSON-serialisable data (written as metrics.json; the schema is in the module docstring)."""
        return {
            "data": self.data,
            "unit": self.unit,
            "n_docs": len(self.gold),
            "support": self.support,
            "settings": {
                "modes": list(MODES),
                "min_overlap": self.settings.min_overlap,
                "text_threshold": self.settings.text_threshold,
                "text_scorer": self.settings.text_scorer,
            },
            "sources": {r.name: r.source for r in self.results},
            "pipelines": {r.name: r.scores for r in self.results},
            "confusion": {r.name: r.confusion for r in self.results},
            "llm": {r.name: r.llm for r in self.results if r.llm is not None},
            "disagreements": [{"index": i, "doc_id": self.doc_id(i)} for i in self.disagreements()],
        }


def entity_set(doc: Doc) -> EntitySet:
    return frozenset((ent.start_char, ent.end_char, ent.label_) for ent in doc.ents)


def pipeline_names(sources: Sequence[str], names: Optional[Sequence[str]] = None) -> List[str]:
    """``names`` checked against ``sources``, or unique names derived from the sources (a config
    file's stem: ``configs/llm_ner.cfg`` is ``llm_ner``)."""
    if names:
        if len(names) != len(sources):
            raise OptionError(lambda name: f"got {len(names)} {name('name')} for {len(sources)} pipelines; give one per pipeline or none")
        if len(set(names)) != len(names):
            raise UserError(f"pipeline names must be unique, got {list(names)}")
        return list(names)
    derived = [(Path(source).stem if str(source).endswith(".cfg") else Path(source).name) or str(source) for source in sources]
    if len(set(derived)) != len(derived):
        derived = [f"{name}-{i + 1}" for i, name in enumerate(derived)]
    return derived


def predict(
    nlp: Language, gold: Sequence[Doc], *, batch_size: Optional[int] = None, threads: int = 1,
    show_progress: bool = False,
) -> Tuple[List[Doc], float]:
    """Run ``nlp`` on the gold texts (tokenized by ``nlp``, like ``spacy evaluate``) in batches of
    ``batch_size`` (None: the pipeline's ``nlp.batch_size``), in ``threads`` worker threads
    (:func:`~spacy_ner_project.threads.pipe_in_threads`; 1: ``nlp.pipe``); docs and seconds."""
    start = time.perf_counter()
    texts = (nlp.make_doc(doc.text) for doc in gold)
    docs = pipe_in_threads(nlp, texts, threads=threads, batch_size=batch_size or nlp.batch_size)
    predictions = list(progress(docs, total=len(gold), desc="docs", enabled=show_progress))
    return predictions, time.perf_counter() - start


def confusion_table(examples: Sequence[Example]) -> Dict[str, Dict[str, int]]:
    """{gold label: {predicted label: count}} over boundary-matched entities, NO_ENTITY last."""
    counts = boundary_confusion(examples)
    labels = sorted({label for pair in counts for label in pair} - {NO_ENTITY}) + [NO_ENTITY]
    return {g: {p: counts.get((g, p), 0) for p in labels} for g in labels}


def score_predictions(
    nlp: Language, predictions: Sequence[Doc], gold: Sequence[Doc], *, settings: MatchSettings = DEFAULT_SETTINGS
) -> Dict[str, Any]:
    """spaCy's scores (what ``nlp.evaluate`` reports) and every fuzzy mode's of predicted docs
    against gold docs (same texts, in order)."""
    examples = [Example(pred, ref) for pred, ref in zip(predictions, gold)]
    scores: Dict[str, Any] = dict(Scorer(nlp).score(examples))
    scores.update(score_fuzzy_ents(examples, modes=MODES, settings=settings, include_spacy=True))
    return scores


def score_pipeline(
    nlp: Language,
    gold: Sequence[Doc],
    *,
    name: str,
    source: str = "",
    batch_size: Optional[int] = None,
    threads: int = 1,
    settings: MatchSettings = DEFAULT_SETTINGS,
    show_progress: bool = False,
) -> PipelineResult:
    """Predict with ``nlp`` and score its ``doc.ents`` with spaCy's scorer and every fuzzy mode.

    For a pipeline with an LLM model the result's ``llm`` block records the run, and the
    progress bar (``show_progress``, on a terminal) counts done / cached / failed prompts;
    otherwise the bar counts docs."""
    if threads > 1 and llm.llm_model(nlp) is not None:
        raise UserError(f"{name}: worker threads run trained pipelines; an LLM pipeline has its own request "
                        "concurrency (its model's settings): give it threads 1")
    with llm.observe(nlp, n_docs=len(gold), show_progress=show_progress) as run:
        predictions, seconds = predict(nlp, gold, batch_size=batch_size, threads=threads,
                                       show_progress=show_progress and run is None)
    examples = [Example(pred, ref) for pred, ref in zip(predictions, gold)]
    scores = score_predictions(nlp, predictions, gold, settings=settings)
    n_words = sum(len(doc) for doc in predictions)
    timed = seconds > 0 and (run is None or not llm.every_request_failed(predictions))
    scores["speed"] = n_words / seconds if timed else None
    block = run.block(predictions) if run is not None else None
    return PipelineResult(name, source, scores, predictions, confusion_table(examples), block)


def evaluate_pipelines(
    pipelines: Mapping[str, Language],
    gold: Sequence[Doc],
    *,
    data: str = "",
    unit: str = "docs",
    sources: Optional[Mapping[str, str]] = None,
    batch_size: Optional[int] = None,
    threads: int = 1,
    settings: MatchSettings = DEFAULT_SETTINGS,
    show_progress: bool = False,
) -> Evaluation:
    """Score every ``{name: nlp}`` on the same gold docs."""
    if not pipelines:
        raise UserError("no pipelines to evaluate; give at least one pipeline")
    sources = sources or {}
    results = [
        score_pipeline(
            nlp, gold, name=name, source=sources.get(name, name), batch_size=batch_size,
            threads=threads, settings=settings, show_progress=show_progress,
        )
        for name, nlp in pipelines.items()
    ]
    return Evaluation(data=data, gold=list(gold), results=results, settings=settings, unit=unit)


def route_overrides(
    configs: Mapping[str, Any], overrides: Mapping[str, Any], llm_overrides: Mapping[str, Any], *, llm_component: str
) -> Dict[str, Dict[str, Any]]:
    """Per source, the overrides it takes: each of ``overrides`` where the source's config has
    its top section (``llm.model`` where there is an ``[llm]``, ``paths.train`` where there is a
    ``[paths]``), ``llm_overrides`` where it has the component ``llm_component``; an override
    that no source takes is a UserError naming it (a typo is never ignored)."""
    routed: Dict[str, Dict[str, Any]] = {source: {} for source in configs}
    for key, value in overrides.items():
        takers = [source for source, config in configs.items() if key.split(".", 1)[0] in config]
        if not takers:
            raise UserError(f"no pipeline's config has a [{key.split('.', 1)[0]}] section for the override {key}; check its name")
        for source in takers:
            routed[source][key] = value
    for source, config in configs.items():
        if llm_overrides and llm_component in (config.get("components") or {}):
            routed[source].update(llm_overrides)
    return routed


def run_evaluation(
    sources: Sequence[str],
    data_path: Path,
    *,
    names: Optional[Sequence[str]] = None,
    n_docs: Optional[int] = None,
    unit: str = "docs",
    overrides: Optional[Mapping[str, Any]] = None,
    llm_overrides: Optional[Mapping[str, Any]] = None,
    llm_component: str = "llm",
    gpu_id: int = CPU,
    batch_size: Optional[int] = None,
    threads: int = 1,
    settings: MatchSettings = DEFAULT_SETTINGS,
    show_progress: bool = False,
) -> Evaluation:
    """Load the pipelines (folders, package names, ``blank:LANG`` or config files, see
    :func:`~spacy_ner_project.pipelines.load_pipeline`; ``overrides`` and ``llm_overrides``
    (:func:`~spacy_ner_project.pipelines.model_overrides`) to each that can take them:
    :func:`route_overrides`, so that an LLM and trained pipelines share one report) on
    GPU ``gpu_id`` (a :class:`~spacy_ner_project.pipelines.DeviceError` when it cannot be used)
    and score them on the first ``n_docs`` units of ``data_path`` (None or 0: all), each run in
    ``threads`` worker threads (see :func:`predict`)."""
    if threads > 1 and gpu_id != CPU:
        raise UserError(f"worker threads (threads {threads}) run pipelines on the CPU; on GPU {gpu_id} give threads 1")
    use_device(gpu_id)
    gold = read_gold(data_path, n_docs=n_docs, unit=unit)  # first: a bad path fails before a cache file is made
    labels = pipeline_names(sources, names)

    configs = {source: pipeline_config(source) for source in sources}
    routed = route_overrides(configs, overrides or {}, llm_overrides or {}, llm_component=llm_component)
    pipelines = {name: load_pipeline(source, overrides=routed[source], unit=unit) for name, source in zip(labels, sources)}
    return evaluate_pipelines(
        pipelines,
        gold,
        data=str(data_path),
        unit=unit,
        sources=dict(zip(labels, map(str, sources))),
        batch_size=batch_size,
        threads=threads,
        settings=settings,
        show_progress=show_progress,
    )


def match_settings(*, min_overlap: float, text_threshold: float, text_scorer: str) -> MatchSettings:
    """MatchSettings from command line options; a value out of range is a UserError."""
    try:
        return MatchSettings(min_overlap=min_overlap, text_threshold=text_threshold, text_scorer=text_scorer)
    except ValueError as err:
        raise UserError(str(err)) from err
