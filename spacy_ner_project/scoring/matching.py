"""One-to-one matching of gold and predicted entities, and the counts and scores built on it.

Pure logic with no spaCy objects, so it also serves output without offsets (LLM strings).

Modes (what makes a gold entity ``g`` and a predicted entity ``p`` a candidate pair):

- ``strict``: same start, same end, same label (spaCy's ``ents_p/r/f``).
- ``overlap``: same label, at least one shared token, and the shared tokens are at least
  ``min_overlap`` of the gold entity's tokens (as nervaluate's ``min_overlap_percentage / 100``).
- ``boundary``: same start and end, any label.
- ``text``: same label and ``rapidfuzz.fuzz.<text_scorer>(g.text, p.text) >= text_threshold``;
  offsets are not used.

Matching is one-to-one and greedy: every candidate pair gets a score (strict 1; boundary 1 for
the same label, else 0; overlap the share of gold tokens covered, then the intersection over
union; text the similarity), pairs are taken best score first, ties broken by the earlier gold
entity, then the earlier predicted entity; a pair is skipped when either side is already matched.

A matched pair is *correct* when it has the same label and the same boundaries (``text``: the
same text), *wrong type* when its labels differ (only ``boundary`` allows that), else *partial*.
Unmatched gold entities are *missed*, unmatched predictions *spurious*. Precision is matched
predictions over predictions, recall matched gold over gold, per type by the predicted label and
the gold label respectively; the formulas are spaCy's ``PRFScore`` ones, so strict mode
reproduces spaCy's floats exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from rapidfuzz import fuzz

MODES: Tuple[str, ...] = ("strict", "overlap", "boundary", "text")
TEXT_SCORERS: Tuple[str, ...] = (
    "ratio",
    "partial_ratio",
    "token_sort_ratio",
    "token_set_ratio",
    "partial_token_sort_ratio",
    "partial_token_set_ratio",
    "WRatio",
    "QRatio",
)
COUNT_NAMES: Tuple[str, ...] = ("correct", "partial", "wrong_type", "missed", "spurious")


@dataclass(frozen=True)
class Entity:
    """An entity: token offsets (end exclusive) in the gold document, label and text."""

    label: str
    start: int = 0
    end: int = 0
    text: str = ""


@dataclass(frozen=True)
class MatchSettings:
    """Thresholds of the fuzzy modes; validated on creation."""

    min_overlap: float = 0.0
    text_threshold: float = 80.0
    text_scorer: str = "ratio"

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_overlap <= 1.0:
            raise ValueError(
                f"min_overlap must be a share of the gold entity's tokens between 0 and 1, "
                f"got {self.min_overlap}"
            )
        if not 0.0 <= self.text_threshold <= 100.0:
            raise ValueError(
                f"text_threshold is a rapidfuzz similarity between 0 and 100, got {self.text_threshold}"
            )
        if self.text_scorer not in TEXT_SCORERS:
            raise ValueError(
                f"unknown text_scorer {self.text_scorer!r}; use one of rapidfuzz.fuzz's: "
                f"{', '.join(TEXT_SCORERS)}"
            )

    def similarity(self) -> Callable[[str, str], float]:
        return getattr(fuzz, self.text_scorer)


def check_modes(modes: Sequence[str]) -> Tuple[str, ...]:
    """Return ``modes`` as a tuple, or raise naming the modes that exist."""
    unknown = [mode for mode in modes if mode not in MODES]
    if unknown or not modes:
        raise ValueError(f"unknown or no matching modes {list(unknown)}; choose from {', '.join(MODES)}")
    return tuple(dict.fromkeys(modes))


def pair_score(
    gold: Entity, pred: Entity, *, mode: str, settings: MatchSettings
) -> Optional[Tuple[float, ...]]:
    """The ranking score of a candidate pair under ``mode``, or None when it is no candidate."""
    if mode == "strict":
        same = gold.label == pred.label and gold.start == pred.start and gold.end == pred.end
        return (1.0,) if same else None
    if mode == "boundary":
        if gold.start == pred.start and gold.end == pred.end:
            return (1.0 if gold.label == pred.label else 0.0,)
        return None
    if mode == "overlap":
        if gold.label != pred.label:
            return None
        overlap = overlap_score(gold, pred)
        return overlap if overlap is not None and overlap[0] >= settings.min_overlap else None
    if mode == "text":
        if gold.label != pred.label:
            return None
        similarity = settings.similarity()(gold.text, pred.text)
        return (similarity,) if similarity >= settings.text_threshold else None
    raise ValueError(f"unknown matching mode {mode!r}; choose from {', '.join(MODES)}")


def match_entities(
    gold: Sequence[Entity], pred: Sequence[Entity], *, mode: str, settings: MatchSettings
) -> List[Tuple[int, int]]:
    """One-to-one greedy matching; returns (gold index, pred index) pairs in the order taken."""
    return greedy_pairs(gold, pred, lambda g, p: pair_score(g, p, mode=mode, settings=settings))


def overlap_score(gold: Entity, pred: Entity) -> Optional[Tuple[float, float]]:
    """(share of the gold entity's units covered, intersection over union) of two entities that
    share at least one unit (token, or character when both use character offsets), whatever
    their labels; None when they share none."""
    shared = min(gold.end, pred.end) - max(gold.start, pred.start)
    gold_len = gold.end - gold.start
    if shared <= 0 or gold_len <= 0:
        return None
    union = max(gold.end, pred.end) - min(gold.start, pred.start)
    return (shared / gold_len, shared / union)


def greedy_pairs(
    gold: Sequence[Entity], pred: Sequence[Entity], score: Callable[[Entity, Entity], Optional[Tuple[float, ...]]]
) -> List[Tuple[int, int]]:
    """The one-to-one greedy matching of the module docstring under any pair ``score`` (None:
    no candidate): best score first, ties by the earlier gold entity, then the earlier
    prediction (their indices); returns (gold index, pred index) pairs in the order taken."""
    candidates = []
    for g_index, g in enumerate(gold):
        for p_index, p in enumerate(pred):
            found = score(g, p)
            if found is not None:
                candidates.append((tuple(-s for s in found), g_index, p_index))
    candidates.sort()
    used_gold: set = set()
    used_pred: set = set()
    pairs = []
    for _, g_index, p_index in candidates:
        if g_index in used_gold or p_index in used_pred:
            continue
        used_gold.add(g_index)
        used_pred.add(p_index)
        pairs.append((g_index, p_index))
    return pairs


def classify_pair(gold: Entity, pred: Entity, *, mode: str) -> str:
    """``correct``, ``partial`` or ``wrong_type`` for a matched pair."""
    if gold.label != pred.label:
        return "wrong_type"
    if mode == "text":
        return "correct" if gold.text == pred.text else "partial"
    return "correct" if (gold.start, gold.end) == (pred.start, pred.end) else "partial"


def _prf(matched_pred: int, n_pred: int, matched_gold: int, n_gold: int) -> Tuple[float, float, float]:
    # Same expressions as spacy.scorer.PRFScore, so strict mode gives identical floats.
    precision = matched_pred / (n_pred + 1e-100)
    recall = matched_gold / (n_gold + 1e-100)
    fscore = 2 * ((precision * recall) / (precision + recall + 1e-100))
    return precision, recall, fscore


@dataclass
class Tally:
    """Counts of one type (or all types). Gold-side counts go by gold label, the rest by pred."""

    gold: int = 0
    pred: int = 0
    matched_gold: int = 0
    matched_pred: int = 0
    correct: int = 0
    partial: int = 0
    wrong_type: int = 0
    missed: int = 0
    spurious: int = 0

    def add(self, other: "Tally") -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def prf(self) -> Tuple[float, float, float]:
        return _prf(self.matched_pred, self.pred, self.matched_gold, self.gold)

    def to_dict(self) -> Dict[str, float]:
        precision, recall, fscore = self.prf()
        counts = {name: getattr(self, name) for name in ("gold", "pred", *COUNT_NAMES)}
        return {"p": precision, "r": recall, "f": fscore, **counts}


@dataclass
class ModeTally:
    """Overall and per-type tallies of one mode, accumulated over documents."""

    mode: str
    per_type: Dict[str, Tally] = field(default_factory=dict)

    def _type(self, label: str) -> Tally:
        return self.per_type.setdefault(label, Tally())

    def touch(self, label: str) -> None:
        """List ``label`` among the types even with no counts (as spaCy does for ignored spans)."""
        self._type(label)

    def add_document(
        self, gold: Sequence[Entity], pred: Sequence[Entity], *, settings: MatchSettings
    ) -> List[Tuple[int, int]]:
        """Match one document's entities, add its counts, and return the matched pairs."""
        pairs = match_entities(gold, pred, mode=self.mode, settings=settings)
        for g in gold:
            self._type(g.label).gold += 1
        for p in pred:
            self._type(p.label).pred += 1
        for g_index, p_index in pairs:
            g, p = gold[g_index], pred[p_index]
            kind = classify_pair(g, p, mode=self.mode)
            gold_tally = self._type(g.label)
            gold_tally.matched_gold += 1
            setattr(gold_tally, kind, getattr(gold_tally, kind) + 1)
            self._type(p.label).matched_pred += 1
        matched_gold = {g_index for g_index, _ in pairs}
        matched_pred = {p_index for _, p_index in pairs}
        for g_index, g in enumerate(gold):
            if g_index not in matched_gold:
                self._type(g.label).missed += 1
        for p_index, p in enumerate(pred):
            if p_index not in matched_pred:
                self._type(p.label).spurious += 1
        return pairs

    def totals(self) -> Tally:
        total = Tally()
        for tally in self.per_type.values():
            total.add(tally)
        return total

