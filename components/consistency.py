"""Factory ``doc_consistency``: make a document's entities agree with each other.

News documents name the same entity many times; a NER model that tags ``Leicestershire``
as ORG twice and LOC once, or misses one mention, is usually wrong about the minority.
After the NER component, per document:

- relabel: an entity string tagged with several types takes its majority type when that
  type has at least ``min_share`` of its mentions;
- propagate: untagged mentions (exact token match) of a string the document tags as an
  entity at least ``min_count`` times become entities of its majority type, where they
  overlap no other entity.

Whether it helps is measured on CoNLL-2003 dev (benchmarks/); it is off in the default
config and added with ``nlp.add_pipe("doc_consistency", after="ner")``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span
from spacy.training import Example


Key = Tuple[str, ...]  # an entity's token texts


class Rules:
    """Defaults of the rules, shared by ``harmonize`` and the ``doc_consistency`` factory."""

    RELABEL = True
    PROPAGATE = True
    MIN_COUNT = 2
    MIN_SHARE = 0.5


def majority_labels(ents: Iterable[Span], *, min_share: float) -> Dict[Key, Tuple[str, int]]:
    """For each entity (by its tokens): the majority label and how often it was tagged at all.

    Strings whose top labels tie, or whose top label has less than ``min_share`` of the
    mentions, have no majority and are left alone.
    """
    counts: Dict[Key, Counter] = defaultdict(Counter)
    for ent in ents:
        counts[tuple(t.text for t in ent)][ent.label_] += 1
    majority: Dict[Key, Tuple[str, int]] = {}
    for key, labels in counts.items():
        ranked = labels.most_common(2)
        total = sum(labels.values())
        tied = len(ranked) > 1 and ranked[0][1] == ranked[1][1]
        if not tied and ranked[0][1] / total >= min_share:
            majority[key] = (ranked[0][0], total)
    return majority


def harmonize(
    doc: Doc,
    *,
    relabel: bool = Rules.RELABEL,
    propagate: bool = Rules.PROPAGATE,
    min_count: int = Rules.MIN_COUNT,
    min_share: float = Rules.MIN_SHARE,
) -> Doc:
    """Apply the document-consistency rules to ``doc.ents`` in place; returns the doc."""
    ents = list(doc.ents)
    if not ents:
        return doc
    majority = majority_labels(ents, min_share=min_share)
    if relabel:
        ents = [_with_label(e, majority.get(tuple(t.text for t in e), (e.label_, 0))[0]) for e in ents]
    if propagate:
        frequent = {key: label for key, (label, total) in majority.items() if total >= min_count}
        taken = {i for e in ents for i in range(e.start, e.end)}
        for start, end, label in _mentions(doc, frequent):
            if not taken.intersection(range(start, end)):
                ents.append(Span(doc, start, end, label=label))
                taken.update(range(start, end))
    doc.set_ents(sorted(ents, key=lambda e: e.start))
    return doc


def _with_label(ent: Span, label: str) -> Span:
    return ent if ent.label_ == label else Span(ent.doc, ent.start, ent.end, label=label)


def _mentions(doc: Doc, labels: Dict[Key, str]) -> List[Tuple[int, int, str]]:
    """Token-exact mentions of the keys of ``labels`` in ``doc``: longest first, then earliest."""
    if not labels:
        return []
    keys = list(labels)
    matcher = PhraseMatcher(doc.vocab)
    for i, key in enumerate(keys):
        matcher.add(str(i), [Doc(doc.vocab, words=list(key))])
    found = [(start, end, labels[keys[int(doc.vocab.strings[match_id])]]) for match_id, start, end in matcher(doc)]
    return sorted(found, key=lambda m: (m[0] - m[1], m[0]))


class DocConsistency:
    def __init__(self, name: str, *, relabel: bool, propagate: bool, min_count: int, min_share: float, scorer: Optional[Callable]) -> None:
        self.name = name
        self.relabel = relabel
        self.propagate = propagate
        self.min_count = min_count
        self.min_share = min_share
        self.scorer = scorer

    def __call__(self, doc: Doc) -> Doc:
        return harmonize(doc, relabel=self.relabel, propagate=self.propagate, min_count=self.min_count, min_share=self.min_share)

    def score(self, examples: Iterable[Example], **kwargs) -> Dict[str, object]:
        return self.scorer(examples, **kwargs) if self.scorer else {}


def make_doc_consistency(
    nlp: Language,
    name: str,
    relabel: bool,
    propagate: bool,
    min_count: int,
    min_share: float,
    scorer: Optional[Callable],
) -> DocConsistency:
    return DocConsistency(name, relabel=relabel, propagate=propagate, min_count=min_count, min_share=min_share, scorer=scorer)


Language.factory(
    "doc_consistency",
    default_config={
        "relabel": Rules.RELABEL,
        "propagate": Rules.PROPAGATE,
        "min_count": Rules.MIN_COUNT,
        "min_share": Rules.MIN_SHARE,
        "scorer": {"@scorers": "spacy.ner_scorer.v1"},
    },
    assigns=["doc.ents"],
    requires=["doc.ents"],
)(make_doc_consistency)
