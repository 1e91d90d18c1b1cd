"""BERT inference on the CPU without padding: the same outputs, fewer positions computed.

spacy-transformers pads every window of a batch to the batch's longest, and every linear layer
(~85% of the backbone's arithmetic) then computes the padding too; length buckets
(:mod:`spacy_ner_project.components.length_buckets`) pad less but still pad, and pay one
backbone call per bucket. Here the windows' real word pieces are packed into one
``(positions, hidden)`` matrix: embeddings, every linear layer, activation and layer norm run on
those alone, one call per layer for the whole batch. Only self-attention needs the windows
apart: it runs window group by window group (:func:`spacy_ner_project.buckets.length_buckets`),
each group padded to its own longest window and masked; small groups pay (attention's cost is
quadratic in the width, a call's overhead small), so windows are grouped at a low call cost.
The query, key and value projections run as one product on their concatenated weights.

Every operation follows the autocast policy of the module's own forward (products and attention
in bfloat16 under CPU bfloat16 autocast, layer norms in float32), so outputs equal
``model(**inputs).last_hidden_state`` on the real positions up to rounding; padding positions
come out as zeros (nothing is aligned to them). Float32 attention under bfloat16 autocast was
tried and was slower (PyTorch's CPU flash attention, MiniLM's 32-wide heads).

:func:`packed_forward` returns None where it does not apply (the caller then runs the module as
it is): a module that is not a Hugging Face ``BertModel`` encoder with absolute positions,
inputs other than ``input_ids``/``attention_mask``/``token_type_ids``, masks not padded on the
right or with an empty row, or outputs asked beyond the last hidden state and the pooler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Mapping, Optional

import torch
import torch.nn.functional as F

from spacy_ner_project.buckets import length_buckets

# Windows grouped for attention at least cost of sum(windows x longest) + this per group, in
# positions (see spacy_ner_project.buckets): a group is one attention call per layer. On the
# 6-layer default over 12,010 CoNLL words (2 AMD EPYC cores, bf16, 8 interleaved rounds) the
# backbone ran 1.20x spacy-transformers' padded calls in length buckets at 16, 1.17x at 0 and 4,
# 1.19x at 32, 1.14x at 64.
DEFAULT_ATTENTION_CALL_COST = 16
_INPUTS = frozenset({"input_ids", "attention_mask", "token_type_ids"})


@dataclass(frozen=True)
class _Group:
    """One attention call: ``rows`` windows padded to ``width``.

    ``gather``: for each padded position, its row in the packed matrix (padding reads row 0,
    masked out as a key, dropped as a query); ``real``: the padded positions that are real;
    ``target``: their rows in the packed matrix; ``mask``: the additive key mask."""

    rows: int
    width: int
    gather: torch.Tensor
    real: torch.Tensor
    target: torch.Tensor
    mask: torch.Tensor


def is_packable(module: torch.nn.Module) -> bool:
    """Whether :func:`packed_forward` can run ``module``: a ``BertModel`` encoder with absolute
    position embeddings that returns no hidden states or attentions."""
    from transformers.models.bert.modeling_bert import BertModel

    config = getattr(module, "config", None)
    return (
        isinstance(module, BertModel)
        and getattr(config, "position_embedding_type", "absolute") == "absolute"
        and not config.is_decoder
        and not config.add_cross_attention
        and not config.output_hidden_states
        and not config.output_attentions
    )


def packed_forward(
    module: torch.nn.Module,
    inputs: Mapping[str, Any],
    *,
    attention_call_cost: int = DEFAULT_ATTENTION_CALL_COST,
) -> Optional[Any]:
    """``module(**inputs)`` in eval mode computed on the real positions only, or None where that
    does not apply (see the module docstring). Inference only (call it under ``torch.no_grad()``):
    it runs no dropout whatever the module's mode."""
    if not is_packable(module) or set(inputs) - _INPUTS:
        return None
    input_ids, mask = inputs.get("input_ids"), inputs.get("attention_mask")
    if not isinstance(input_ids, torch.Tensor) or not isinstance(mask, torch.Tensor) or input_ids.dim() != 2:
        return None
    if mask.shape != input_ids.shape:
        return None
    rows, width = input_ids.shape
    lengths = mask.sum(dim=1).long()
    steps = torch.arange(width, device=mask.device)
    real = steps[None, :] < lengths[:, None]
    if rows == 0 or int(lengths.min()) == 0 or not torch.equal(mask.bool(), real):
        return None
    packed = real.flatten().nonzero().squeeze(1)
    hidden = _embed(module, input_ids, inputs.get("token_type_ids"), packed=packed, width=width)
    groups = _groups(lengths, attention_call_cost=attention_call_cost)
    for layer in module.encoder.layer:
        hidden = _layer(layer, hidden, groups)
    out = hidden.new_zeros(rows * width, hidden.shape[-1])
    out.index_copy_(0, packed, hidden)
    last = out.view(rows, width, -1)
    from transformers.modeling_outputs import BaseModelOutputWithPoolingAndCrossAttentions

    pooled = module.pooler(last) if module.pooler is not None else None
    return BaseModelOutputWithPoolingAndCrossAttentions(last_hidden_state=last, pooler_output=pooled)


def _embed(module: torch.nn.Module, input_ids: torch.Tensor, token_type_ids: Optional[torch.Tensor], *,
           packed: torch.Tensor, width: int) -> torch.Tensor:
    """BertEmbeddings on the packed positions: word + absolute position + token type, layer norm."""
    embeddings = module.embeddings
    ids = input_ids.flatten().index_select(0, packed)
    positions = packed % width
    if token_type_ids is None:
        types = torch.zeros_like(ids)
    else:
        types = token_type_ids.flatten().index_select(0, packed)
    summed = (
        embeddings.word_embeddings(ids)
        + embeddings.position_embeddings(positions)
        + embeddings.token_type_embeddings(types)
    )
    return embeddings.LayerNorm(summed)


def _groups(lengths: torch.Tensor, *, attention_call_cost: int) -> List[_Group]:
    """The attention calls for windows of ``lengths`` (packed one after another, in order)."""
    starts = torch.cumsum(lengths, 0) - lengths
    groups = []
    for bucket in length_buckets(lengths.tolist(), call_cost=attention_call_cost):
        index = torch.tensor(bucket, device=lengths.device)
        own = lengths.index_select(0, index)
        width = int(own.max())
        steps = torch.arange(width, device=lengths.device)
        real = steps[None, :] < own[:, None]
        gather = torch.where(real, starts.index_select(0, index)[:, None] + steps[None, :], 0).flatten()
        kept = real.flatten().nonzero().squeeze(1)
        mask = torch.zeros(len(bucket), 1, 1, width, device=lengths.device)
        mask.masked_fill_(~real[:, None, None, :], torch.finfo(torch.float32).min)
        groups.append(_Group(len(bucket), width, gather, kept, gather.index_select(0, kept), mask))
    return groups


def _qkv(attention: torch.nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """Query, key and value side by side: one product where all three are plain ``nn.Linear``
    (an int8 copy's layers are called one by one)."""
    parts = (attention.query, attention.key, attention.value)
    if all(type(part) is torch.nn.Linear for part in parts):
        weight = torch.cat([part.weight for part in parts])
        bias = torch.cat([part.bias for part in parts]) if all(p.bias is not None for p in parts) else None
        return F.linear(hidden, weight, bias)
    return torch.cat([part(hidden) for part in parts], dim=1)


def _layer(layer: torch.nn.Module, hidden: torch.Tensor, groups: List[_Group]) -> torch.Tensor:
    """One BertLayer on packed positions (eval mode: no dropout)."""
    attention = layer.attention.self
    heads, size = attention.num_attention_heads, attention.attention_head_size
    qkv = _qkv(attention, hidden)
    context = qkv.new_empty(hidden.shape[0], heads * size)
    for group in groups:
        q, k, v = qkv.index_select(0, group.gather).view(group.rows, group.width, 3, heads, size).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=group.mask.to(q.dtype))
        out = out.transpose(1, 2).reshape(group.rows * group.width, heads * size)
        context.index_copy_(0, group.target, out.index_select(0, group.real).to(context.dtype))
    projected = layer.attention.output
    hidden = projected.LayerNorm(projected.dense(context) + hidden)
    intermediate = layer.intermediate.intermediate_act_fn(layer.intermediate.dense(hidden))
    output = layer.output
    return output.LayerNorm(output.dense(intermediate) + hidden)
