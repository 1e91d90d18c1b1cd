"""Sharding that keeps doc.text: overlapping shards that remember the doc they were cut from."""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, List, Sequence

from spacy.tokens import Doc
from spacy_llm.ty import ShardMapper

# Private mark on shard docs: the doc they were cut from and their first token in it.
SHARD_ORIGIN_KEY = "spacy_ner_project.llm.shard_origin"


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
