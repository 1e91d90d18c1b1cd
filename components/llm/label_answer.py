"""Parse an LLM's answer to "what is this candidate span?": one label word, or none.

Accepted, in this order: JSON ``{"label": "person"}`` (or any key of parser._LABEL_KEYS), a JSON
string ``"person"``, or plain text whose first word is an answer word ("Person.", "person - a
cricketer"). A word is the task's word for a label (``label_words``, case-insensitive), the
none word, or a label or label-map key (``PER``, ``PERSON``, ``GPE`` ...). Anything else is an
unknown label, kept with the candidate's text on the doc, never dropped silently.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from spacy_ner_project.llm.record import LLMStatus

from .parser import _LABEL_KEYS, LabelNormalizer

_FIRST_WORD = re.compile(r"[^\W_]+(?:[-_][^\W_]+)*")


@dataclass(frozen=True)
class LabelAnswer:
    """One candidate's answer: ``label`` a task label, or None for the none word; ``unknown``
    the answer's word when it is neither; ``error`` why nothing could be read (status
    UNPARSEABLE), else None."""

    label: Optional[str] = None
    unknown: Optional[str] = None
    error: Optional[str] = None

    @property
    def status(self) -> LLMStatus:
        return LLMStatus.UNPARSEABLE if self.error else LLMStatus.OK


class LabelReader:
    """Reads label answers for one task; build once, call often."""

    def __init__(
        self,
        *,
        labels: Sequence[str],
        label_words: Mapping[str, str],
        none_word: str,
        label_map: Mapping[str, str],
    ) -> None:
        self._by_word = {word.casefold(): label for label, word in label_words.items() if label in labels}
        self._none = none_word.casefold()
        self._normalize = LabelNormalizer(labels=labels, label_map=label_map)

    def __call__(self, response: str) -> LabelAnswer:
        word = _answer_word(response)
        if word is None:
            snippet = " ".join(response.split())[:120]
            return LabelAnswer(error=f"no label in the answer: {snippet!r}")
        folded = word.casefold()
        if folded == self._none:
            return LabelAnswer()
        label = self._by_word.get(folded) or self._normalize(word)
        return LabelAnswer(label=label) if label is not None else LabelAnswer(unknown=word)


def _answer_word(response: str) -> Optional[str]:
    """The answer's word: a JSON object's label value, a JSON string, else the first word."""
    text = response.strip()
    if not text:
        return None
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, dict):
        keys = {str(key).lower(): item for key, item in value.items()}
        value = next((keys[key] for key in _LABEL_KEYS if key in keys), None)
    if isinstance(value, str) and value.strip():
        return value.strip()
    match = _FIRST_WORD.search(text)
    return match.group(0) if match else None
