"""The LLM task's per-doc record: where it lives on a Doc and how to read it.

The JsonNER task (``spacy_ner_project.components.llm.task``) leaves on each doc, under
``doc.user_data[LLM_RECORD_KEY]``, what could not become an entity (errors, unplaced strings,
unknown labels, dropped spans, fuzzy placements). The core reads it here, so evaluation and
annotation never import the components.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict

if TYPE_CHECKING:
    from spacy.tokens import Doc

LLM_RECORD_KEY = "spacy_ner_project.llm"


def llm_record(doc: Doc) -> Dict[str, Any]:
    """The doc's LLM task record, or {} when the doc has none."""
    return doc.user_data.get(LLM_RECORD_KEY) or {}
