"""Inference on a padded batch of windows in length buckets (less padding, same outputs).

spacy-transformers pads every window of a batch to the batch's longest; the last window of
each document is usually short, so 16-32% of the positions the backbone computed were padding
(benchmarks/inference_profile.md). :func:`predict_in_buckets` runs the backbone once per
bucket of :func:`spacy_ner_project.buckets.length_buckets`, each bucket trimmed to its own
longest row, and puts the outputs back in the batch's rows and padded width (zeros past each
bucket's width: padding, which no token is aligned to). Attention is masked, so each row's vectors
are those of the unsplit call up to floating-point rounding. Training is untouched: only
``predict`` calls come here.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Sequence

import torch
from thinc.types import ArgsKwargs

from spacy_ner_project.buckets import length_buckets

# what one more backbone call costs beyond its positions, in positions: small calls use the
# CPU's matrix units poorly. In ad-hoc runs on the Intel/AMX host 64 split too often (slower than
# one call per batch), 1024 too rarely, 256 with max_batch_items 4096 was the fastest;
# benchmarks/inference_profile.md measures 256 against one call per batch, and
# benchmarks/inference_speed.py has rows for 64 and 1024 (not rerun since)
DEFAULT_BUCKET_CALL_COST = 256
# the outputs that can be put back together; anything else (e.g. attentions) runs unsplit
_MERGEABLE = {"last_hidden_state", "pooler_output", "hidden_states"}


def predict_in_buckets(predict: Callable[[ArgsKwargs], Any], inputs: ArgsKwargs, *, call_cost: int) -> Any:
    """``predict(inputs)``, run bucket by bucket when that computes fewer positions.

    Falls back to one call when the inputs are not keyword tensors with an ``attention_mask``
    padded on the right, when one bucket is best, or when the output has fields other than
    hidden states and the pooler output."""
    mask = inputs.kwargs.get("attention_mask")
    if inputs.args or not isinstance(mask, torch.Tensor) or mask.dim() != 2 or mask.shape[0] < 2:
        return predict(inputs)
    rows, width = mask.shape
    lengths = mask.sum(dim=1)
    if not torch.equal(mask.bool(), torch.arange(width, device=mask.device)[None, :] < lengths[:, None]):
        return predict(inputs)  # not right-padded: trimming would cut real positions
    buckets = length_buckets(lengths.tolist(), call_cost=call_cost)
    if len(buckets) == 1:
        return predict(inputs)
    parts = []
    for bucket in buckets:
        index = torch.tensor(bucket, device=mask.device)
        longest = int(lengths[index].max())
        parts.append(predict(ArgsKwargs(args=(), kwargs=_select(inputs.kwargs, index, rows=rows, width=longest))))
    if any(set(part.keys()) - _MERGEABLE for part in parts):
        return predict(inputs)
    return _merge(parts, buckets, rows=rows, width=width)


def _select(kwargs: Dict[str, Any], index: torch.Tensor, *, rows: int, width: int) -> Dict[str, Any]:
    """The bucket's rows of every (rows, width) tensor, trimmed to ``width``; others as they are."""
    selected = {}
    for name, value in kwargs.items():
        if isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape[0] == rows:
            value = value.index_select(0, index)[:, :width]
        selected[name] = value
    return selected


def _merge(parts: Sequence[Any], buckets: Sequence[List[int]], *, rows: int, width: int) -> Any:
    """One output of the first part's type with every bucket's rows back in place."""
    first = parts[0]
    merged: Dict[str, Any] = {}
    for name in first.keys():
        if name == "hidden_states":
            merged[name] = tuple(
                _place([part[name][layer] for part in parts], buckets, rows=rows, width=width)
                for layer in range(len(first[name]))
            )
        else:
            merged[name] = _place([part[name] for part in parts], buckets, rows=rows, width=width)
    return type(first)(**merged)


def _place(tensors: Sequence[torch.Tensor], buckets: Sequence[List[int]], *, rows: int, width: int) -> torch.Tensor:
    """(rows, width, ...) zeros (or (rows, ...) for pooled outputs) with each bucket's rows put in."""
    sample = tensors[0]
    shape = (rows, width, *sample.shape[2:]) if sample.dim() >= 3 else (rows, *sample.shape[1:])
    out = sample.new_zeros(shape)
    for tensor, bucket in zip(tensors, buckets):
        index = torch.tensor(bucket, device=tensor.device)
        if sample.dim() >= 3:
            out[index, : tensor.shape[1]] = tensor
        else:
            out[index] = tensor
    return out
