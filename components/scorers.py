"""Registered scorers (``spacy_scorers`` entry points).

Use as a component's scorer, e.g. to replace the ner default while keeping spaCy's keys::

    [components.ner.scorer]
    @scorers = "spacy_ner_project.fuzzy_ner_scorer.v1"
    modes = ["strict", "overlap", "boundary", "text"]
    include_spacy = true

The thresholds (``min_overlap``, ``text_threshold``, ``text_scorer``) default to
:class:`~spacy_ner_project.scoring.matching.MatchSettings`' fields; set them only to change them.

Modes, matching and keys: see :mod:`spacy_ner_project.scoring.matching` and
:mod:`spacy_ner_project.scoring.spans`.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Dict, Iterable, List

from spacy.training import Example

from spacy_ner_project.scoring.matching import MODES, MatchSettings, check_modes
from spacy_ner_project.scoring.spans import score_fuzzy_ents


def _score(
    examples: Iterable[Example],
    *,
    modes: List[str],
    settings: MatchSettings,
    include_spacy: bool,
    **_: Any,  # spaCy's Scorer passes its cfg (e.g. nlp settings); not needed here
) -> Dict[str, Any]:
    return score_fuzzy_ents(examples, modes=modes, settings=settings, include_spacy=include_spacy)


# the matching defaults are MatchSettings' own (one place): the registered function reads them here
DEFAULT_SETTINGS = MatchSettings()


def make_fuzzy_ner_scorer(
    *,
    modes: List[str] = list(MODES),
    min_overlap: float = DEFAULT_SETTINGS.min_overlap,
    text_threshold: float = DEFAULT_SETTINGS.text_threshold,
    text_scorer: str = DEFAULT_SETTINGS.text_scorer,
    include_spacy: bool = True,
) -> Callable[..., Dict[str, Any]]:
    """``spacy_ner_project.fuzzy_ner_scorer.v1``: score ``doc.ents`` strictly and fuzzily.

    modes: any of strict, overlap, boundary, text.
    min_overlap: overlap mode, least share (0..1) of the gold entity's tokens to be covered.
    text_threshold: text mode, least rapidfuzz similarity (0..100).
    text_scorer: text mode, the rapidfuzz.fuzz function (ratio, partial_ratio, token_set_ratio...).
    include_spacy: also return spaCy's ents_p, ents_r, ents_f and ents_per_type.
    """
    settings = MatchSettings(min_overlap=min_overlap, text_threshold=text_threshold, text_scorer=text_scorer)
    return partial(_score, modes=list(check_modes(modes)), settings=settings, include_spacy=include_spacy)
