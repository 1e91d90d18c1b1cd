"""Pieces of the JSON NER task: few-shot example type, scorer, sharding that keeps doc.text."""

from __future__ import annotations

import hashlib
import math
import random
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Sequence

from spacy.scorer import get_ner_prf
from spacy.tokens import Doc
from spacy.training import Example
from spacy_llm.ty import FewshotExample, ShardMapper

if TYPE_CHECKING:  # pragma: no cover
    from .task import JsonNERTask

TEMPLATE_DIR = Path(__file__).parent / "templates"
# Where the task leaves what it could not turn into entities (see JsonNERTask.parse_responses).
from spacy_ner_project.llm.record import LLM_RECORD_KEY as USER_DATA_KEY  # noqa: F401  (one home: the core)
# Private mark on shard docs: the doc they were cut from and their first token in it.
SHARD_ORIGIN_KEY = "spacy_ner_project.llm.shard_origin"

# json_ner.v2 puts each text between <document-ID> and </document-ID>, ID chosen by document_tags.
DOCUMENT_TAG_PREFIX = "document-"
_ID_HEX_DIGITS = 8
# An opening or closing tag of json_ner.v2 (group 1: "/" for a closing one): text up to the
# last one in a response is an echoed prompt.
DOCUMENT_TAG_RE = re.compile(rf"<(/?){DOCUMENT_TAG_PREFIX}[0-9a-f]{{{_ID_HEX_DIGITS}}}>")
_LAST_DOCUMENT_RE = re.compile(
    rf"<({DOCUMENT_TAG_PREFIX}[0-9a-f]{{{_ID_HEX_DIGITS}}})>\n(.*)\n</\1>\s*Answer:\s*$", re.DOTALL
)

# Short CoNLL-2003 definitions, as in the seed notebook's prompt (used for labels that have one).
DEFAULT_LABEL_DEFINITIONS: Dict[str, str] = {
    "PER": "person",
    "ORG": "organization",
    "LOC": "location",
    "MISC": "miscellaneous, e.g. nationalities, events, works",
}


def read_template(name: str) -> str:
    """A prompt template shipped with this package, e.g. ``read_template("json_ner.v1")``."""
    path = TEMPLATE_DIR / f"{name}.jinja"
    if not path.exists():
        known = sorted(p.stem for p in TEMPLATE_DIR.glob("*.jinja"))
        raise ValueError(f"no template {name!r}; shipped templates: {known}")
    return path.read_text(encoding="utf8")


def document_tags(texts: Sequence[str]) -> List[str]:
    """One tag name per text (``document-`` + 8 hex digits) that occurs in none of ``texts``.

    The ID is derived from the text (SHA-256 of a counter and the text; the counter goes up
    from 0 until the name occurs in no text, case-insensitively, and no earlier text has it), so
    a text cannot close its own block or another's, and the same texts always give the same
    prompt (cached answers are found again).
    """
    haystacks = [text.casefold() for text in texts]
    tags: List[str] = []
    for text in texts:
        salt = 0
        while True:
            digest = hashlib.sha256(f"{salt}\n{text}".encode("utf8")).hexdigest()[:_ID_HEX_DIGITS]
            tag = DOCUMENT_TAG_PREFIX + digest
            if tag not in tags and not any(tag in haystack for haystack in haystacks):
                break
            salt += 1
        tags.append(tag)
    return tags


def prompt_document(prompt: str) -> Optional[str]:
    """The document of a json_ner.v2 prompt (the text of its last <document-ID> block), or None."""
    match = _LAST_DOCUMENT_RE.search(prompt)
    return match.group(2) if match else None


def order_labels(labels: Iterable[str]) -> List[str]:
    """Unique labels: the CoNLL ones first in their usual order (PER ORG LOC MISC), then sorted."""
    unique = set(labels)
    known = [label for label in DEFAULT_LABEL_DEFINITIONS if label in unique]
    return known + sorted(unique - set(known))


class JsonNERExample(FewshotExample):
    """A few-shot example: a text and its entity strings per label, e.g.
    ``{"text": "Sam met Ann.", "entities": {"PER": ["Sam", "Ann"]}}`` (the format of example files).
    """

    text: str
    entities: Dict[str, List[str]]

    @classmethod
    def generate(cls, example: Example, task: "JsonNERTask") -> Optional["JsonNERExample"]:
        """From an annotated example; None if the reference has no entities (nothing to show)."""
        entities: Dict[str, List[str]] = {}
        for ent in example.reference.ents:
            strings = entities.setdefault(ent.label_, [])
            if ent.text not in strings:
                strings.append(ent.text)
        if not entities:
            return None
        return cls(text=example.reference.text, entities=entities)


def sentence_examples(example: Example, *, min_tokens: int, max_tokens: int) -> List[JsonNERExample]:
    """Few-shot candidates from one annotated example: each sentence of its reference (the whole
    doc when it has no sentence boundaries) with ``min_tokens`` to ``max_tokens`` tokens and at
    least one entity inside it (an entity crossing a sentence boundary counts for neither)."""
    reference = example.reference
    units = list(reference.sents) if reference.has_annotation("SENT_START") else [reference[:]]
    out = []
    for unit in units:
        if not min_tokens <= len(unit) <= max_tokens:
            continue
        entities: Dict[str, List[str]] = {}
        for ent in reference.ents:
            if unit.start <= ent.start and ent.end <= unit.end:
                strings = entities.setdefault(ent.label_, [])
                if ent.text not in strings:
                    strings.append(ent.text)
        if entities:
            out.append(JsonNERExample(text=unit.text, entities=entities))
    return out


def choose_prompt_examples(candidates: Sequence[JsonNERExample], *, n: int, seed: int) -> List[JsonNERExample]:
    """Up to ``n`` of ``candidates`` (all when n < 0), deterministic given ``seed``.

    Candidates with the same text count once (the first). They are shuffled with
    ``random.Random(seed)``; then, while labels are missing, the candidate showing the most labels
    that no chosen one shows yet is taken (the first in shuffled order among equals: greedy set
    cover, so every label appears when ``n`` allows); the rest is filled up in shuffled order.
    The chosen ones are returned in the order of ``candidates``.
    """
    unique: Dict[str, int] = {}
    for i, candidate in enumerate(candidates):
        unique.setdefault(candidate.text, i)
    order = list(unique.values())
    if n < 0:
        return [candidates[i] for i in order]
    random.Random(seed).shuffle(order)
    chosen: List[int] = []
    shown: set = set()
    while len(chosen) < n:
        best = max(order, key=lambda i: len(set(candidates[i].entities) - shown), default=None)
        if best is None or not set(candidates[best].entities) - shown:
            break
        chosen.append(best)
        shown.update(candidates[best].entities)
    for i in order:
        if len(chosen) >= n:
            break
        if i not in chosen:
            chosen.append(i)
    return [candidates[i] for i in sorted(chosen)]


def ner_score(examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
    """spaCy's entity scores (ents_p, ents_r, ents_f, ents_per_type)."""
    return get_ner_prf(examples, **kwargs)


def overlapping_shard_mapper(mapper: ShardMapper, *, overlap: int) -> ShardMapper:
    """Wrap a spacy-llm shard mapper: shards overlap by ``overlap`` tokens and know their origin.

    The wrapped mapper decides the cut points (it is given a context length reduced by a
    margin for the overlap); each shard after the first then starts ``overlap`` tokens
    earlier, so an entity of up to ``overlap`` tokens cut by a boundary is whole in the next
    shard. Every shard records the original doc and its first token (``SHARD_ORIGIN_KEY``),
    so the task maps answers onto the untouched original doc.
    """
    if overlap < 0:
        raise ValueError(f"shard overlap must be >= 0 tokens, got {overlap}")

    def map_doc_to_shards(
        doc: Doc, i_doc: int, context_length: int, render_template: Callable[[Doc, int, int, int], str]
    ) -> List[Doc]:
        margin = math.ceil(overlap * 1.5)
        reduced = context_length - margin if context_length > 2 * margin else context_length
        shards = list(mapper(doc, i_doc, reduced, render_template))
        if len(shards) <= 1:
            return [doc]
        starts = [0]
        for shard in shards:
            starts.append(starts[-1] + len(shard))
        if starts[-1] != len(doc):
            raise ValueError(
                f"the shard mapper returned shards with {starts[-1]} tokens for a doc of {len(doc)}: "
                "a shard mapper must cut a doc into consecutive token ranges"
            )
        out = []
        for i in range(len(shards)):
            start = max(0, starts[i] - overlap) if i else 0
            shard = doc[start : starts[i + 1]].as_doc()
            shard.user_data[SHARD_ORIGIN_KEY] = (doc, start)
            out.append(shard)
        return out

    return map_doc_to_shards


def original_doc(shards: Sequence[Doc]) -> Doc:
    """The doc that ``shards`` were cut from (one unsharded doc is its own origin)."""
    origins = {id(s.user_data[SHARD_ORIGIN_KEY][0]) for s in shards if SHARD_ORIGIN_KEY in s.user_data}
    if not origins and len(shards) == 1:
        return shards[0]
    if len(origins) != 1 or not all(SHARD_ORIGIN_KEY in s.user_data for s in shards):
        raise ValueError(
            "shards do not come from one doc cut by overlapping_shard_mapper: "
            "let the task wrap your shard mapper (JsonNERTask does this itself)"
        )
    return shards[0].user_data[SHARD_ORIGIN_KEY][0]


def reduce_shards_to_original(task: Any, shards: Iterable[Doc]) -> Doc:
    """ShardReducer: the original doc, untouched (unlike spacy-llm's, which re-joins shard texts)."""
    return original_doc(list(shards))
