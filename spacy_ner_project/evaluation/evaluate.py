"""Score one or more pipelines on the same gold DocBin with spaCy's scorer and the fuzzy scorer.

``python -m spacy_ner_project evaluate PIPELINE [PIPELINE ...] DATA.spacy --output DIR`` writes
``metrics.json`` (every key: spaCy's plus ``fuzzy_ents_*``), ``report.md`` and a self-contained
``report.html`` (see :mod:`spacy_ner_project.evaluation.report`).

The entities may come from any component (``ner``, ``llm``, an entity ruler...): each pipeline's
``doc.ents`` are scored directly, so a pipeline without a ``ner`` component is scored the same
way. spaCy's keys are those ``nlp.evaluate`` gives (tokenizer and every component's scorer) plus
``ents_p/r/f/per_type`` from spaCy's ``get_ner_prf``, and ``speed`` in words per second.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import spacy
import typer
from spacy.language import Language
from spacy.scorer import Scorer
from spacy.tokens import Doc
from spacy.training import Example
from spacy.vocab import Vocab
from wasabi import msg

from spacy_ner_project.conll import DOC_ID_KEY
from spacy_ner_project.docbin import read_docbin
from spacy_ner_project.errors import UserError
from spacy_ner_project.scoring.matching import MODES, MatchSettings
from spacy_ner_project.scoring.spans import NO_ENTITY, boundary_confusion, score_fuzzy_ents

DEFAULT_SETTINGS = MatchSettings()
EntitySet = frozenset  # of (start_char, end_char, label)


@dataclass
class PipelineResult:
    """One pipeline's scores, predicted docs and label confusion on the gold docs."""

    name: str
    source: str
    scores: Dict[str, Any]
    predictions: List[Doc]
    confusion: Dict[str, Dict[str, int]]


@dataclass
class Evaluation:
    """All pipelines scored on the same gold documents."""

    data: str
    gold: List[Doc]
    results: List[PipelineResult]
    settings: MatchSettings = field(default_factory=MatchSettings)

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
        """Everything as JSON-serialisable data (written as metrics.json)."""
        return {
            "data": self.data,
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
            "disagreements": [{"index": i, "doc_id": self.doc_id(i)} for i in self.disagreements()],
        }


def entity_set(doc: Doc) -> EntitySet:
    return frozenset((ent.start_char, ent.end_char, ent.label_) for ent in doc.ents)


def read_gold(path: Path, *, n_docs: Optional[int] = None) -> List[Doc]:
    """The first ``n_docs`` (all when None) docs of a DocBin, which must carry entity annotation.

    Every problem (missing, foreign or damaged file, no docs, no entities) is a ``UserError``
    (a ``ValueError``) naming ``path``; see :func:`spacy_ner_project.docbin.read_docbin`."""
    if n_docs is not None and n_docs < 1:
        raise UserError(f"n_docs must be at least 1, got {n_docs}")
    docs = read_docbin(path, vocab=Vocab())
    if n_docs is not None:
        docs = docs[:n_docs]
    if not docs:
        raise UserError(f"{path} holds no documents; give a .spacy DocBin with gold documents")
    if not any(doc.has_annotation("ENT_IOB") for doc in docs):
        raise UserError(f"{path} has no entity annotation to score against; convert gold data with entities")
    return docs


def load_pipeline(source: str) -> Language:
    """``spacy.load(source)`` for a pipeline directory or an installed package (or ``blank:xx``);
    a path that is no pipeline, or a name that is neither, is a ``UserError`` naming it."""
    what = "give a pipeline directory saved with nlp.to_disk (e.g. training/x/model-best) or an installed pipeline package"
    path = Path(source)
    if not str(source).startswith("blank:"):
        if path.exists() and not (path / "config.cfg").is_file():
            kind = "a directory without config.cfg" if path.is_dir() else "a file"
            raise UserError(f"{source} is not a spaCy pipeline ({kind}); {what}")
        if not path.exists() and not spacy.util.is_package(str(source)):
            raise UserError(f"{source}: no such pipeline directory or installed package; {what}")
    return spacy.load(source)


def pipeline_names(sources: Sequence[str], names: Optional[Sequence[str]] = None) -> List[str]:
    """``names`` checked against ``sources``, or unique names derived from the sources."""
    if names:
        if len(names) != len(sources):
            raise UserError(f"got {len(names)} --name for {len(sources)} pipelines; give one per pipeline or none")
        if len(set(names)) != len(names):
            raise UserError(f"pipeline names must be unique, got {list(names)}")
        return list(names)
    derived = [Path(source).name or str(source) for source in sources]
    if len(set(derived)) != len(derived):
        derived = [f"{name}-{i + 1}" for i, name in enumerate(derived)]
    return derived


def predict(nlp: Language, gold: Sequence[Doc], *, batch_size: int) -> Tuple[List[Doc], float]:
    """Run ``nlp`` on the gold texts (tokenized by ``nlp``, like ``spacy evaluate``); docs and seconds."""
    start = time.perf_counter()
    predictions = list(nlp.pipe((nlp.make_doc(doc.text) for doc in gold), batch_size=batch_size))
    return predictions, time.perf_counter() - start


def confusion_table(examples: Sequence[Example]) -> Dict[str, Dict[str, int]]:
    """{gold label: {predicted label: count}} over boundary-matched entities, NO_ENTITY last."""
    counts = boundary_confusion(examples)
    labels = sorted({label for pair in counts for label in pair} - {NO_ENTITY}) + [NO_ENTITY]
    return {g: {p: counts.get((g, p), 0) for p in labels} for g in labels}


def score_pipeline(
    nlp: Language,
    gold: Sequence[Doc],
    *,
    name: str,
    source: str = "",
    batch_size: int = 64,
    settings: MatchSettings = DEFAULT_SETTINGS,
) -> PipelineResult:
    """Predict with ``nlp`` and score its ``doc.ents`` with spaCy's scorer and every fuzzy mode."""
    predictions, seconds = predict(nlp, gold, batch_size=batch_size)
    examples = [Example(pred, ref) for pred, ref in zip(predictions, gold)]
    scores: Dict[str, Any] = dict(Scorer(nlp).score(examples))  # what nlp.evaluate reports
    scores.update(score_fuzzy_ents(examples, modes=MODES, settings=settings, include_spacy=True))
    n_words = sum(len(doc) for doc in predictions)
    scores["speed"] = n_words / seconds if seconds > 0 else None
    return PipelineResult(name, source, scores, predictions, confusion_table(examples))


def evaluate_pipelines(
    pipelines: Mapping[str, Language],
    gold: Sequence[Doc],
    *,
    data: str = "",
    sources: Optional[Mapping[str, str]] = None,
    batch_size: int = 64,
    settings: MatchSettings = DEFAULT_SETTINGS,
) -> Evaluation:
    """Score every ``{name: nlp}`` on the same gold docs."""
    if not pipelines:
        raise UserError("no pipelines to evaluate; give at least one pipeline")
    sources = sources or {}
    results = [
        score_pipeline(nlp, gold, name=name, source=sources.get(name, name), batch_size=batch_size, settings=settings)
        for name, nlp in pipelines.items()
    ]
    return Evaluation(data=data, gold=list(gold), results=results, settings=settings)


def run_evaluation(
    sources: Sequence[str],
    data_path: Path,
    *,
    names: Optional[Sequence[str]] = None,
    n_docs: Optional[int] = None,
    gpu_id: int = -1,
    batch_size: int = 64,
    settings: MatchSettings = DEFAULT_SETTINGS,
) -> Evaluation:
    """Load the pipelines (paths or package names) and score them on ``data_path``."""
    if gpu_id >= 0:
        try:
            spacy.require_gpu(gpu_id)
        except ValueError as err:  # no GPU, or no cupy
            raise UserError(f"--gpu-id {gpu_id}: {err}; use --gpu-id -1 for the CPU") from err
    gold = read_gold(data_path, n_docs=n_docs)
    labels = pipeline_names(sources, names)
    pipelines = {name: load_pipeline(source) for name, source in zip(labels, sources)}
    return evaluate_pipelines(
        pipelines,
        gold,
        data=str(data_path),
        sources=dict(zip(labels, map(str, sources))),
        batch_size=batch_size,
        settings=settings,
    )


def match_settings(*, min_overlap: float, text_threshold: float, text_scorer: str) -> MatchSettings:
    """MatchSettings from command line options; a value out of range is a UserError."""
    try:
        return MatchSettings(min_overlap=min_overlap, text_threshold=text_threshold, text_scorer=text_scorer)
    except ValueError as err:
        raise UserError(str(err)) from err


def evaluate_cli(
    paths: List[str] = typer.Argument(
        ..., metavar="PIPELINE... DATA", help="One or more pipelines (directories or package names), then the gold .spacy file"
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Report directory: metrics.json, report.md, report.html"),
    names: Optional[List[str]] = typer.Option(None, "--name", "-n", help="Name of each pipeline in the report, in order"),
    n_docs: Optional[int] = typer.Option(None, "--n-docs", help="Score only the first N documents"),
    displacy_limit: int = typer.Option(10, "--displacy-limit", help="Documents rendered per displaCy section"),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU id, -1 for CPU"),
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="nlp.pipe batch size"),
    min_overlap: float = typer.Option(DEFAULT_SETTINGS.min_overlap, help="overlap mode: least share of gold tokens covered (0-1)"),
    text_threshold: float = typer.Option(DEFAULT_SETTINGS.text_threshold, help="text mode: least rapidfuzz similarity (0-100)"),
    text_scorer: str = typer.Option(DEFAULT_SETTINGS.text_scorer, help="text mode: rapidfuzz.fuzz scorer"),
) -> None:
    """Score pipelines on the same gold data with spaCy's and the fuzzy scorer; write one report."""
    from spacy_ner_project.evaluation.report import SUMMARY_HEADER, md_scheme_table, summary_rows, write_report

    if len(paths) < 2:
        raise UserError("give at least one pipeline and then the gold .spacy file")
    if output.exists() and not output.is_dir():
        raise UserError(f"{output} is a file; --output names the report directory, give a new or existing folder")
    evaluation = run_evaluation(
        paths[:-1],
        Path(paths[-1]),
        names=names,
        n_docs=n_docs,
        gpu_id=gpu_id,
        batch_size=batch_size,
        settings=match_settings(min_overlap=min_overlap, text_threshold=text_threshold, text_scorer=text_scorer),
    )
    write_report(evaluation, output, displacy_limit=displacy_limit)
    msg.table(summary_rows(evaluation), header=SUMMARY_HEADER, divider=True)
    print(md_scheme_table(evaluation, "spacy"))
    msg.good(f"Report written to {output} (metrics.json, report.md, report.html)")
