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

:class:`PackedEncoder` is the same computation as one traceable module (all windows in one
attention group, since an exported graph cannot loop over groups): the ONNX Runtime backbone
exports it (:mod:`spacy_ner_project.components.onnx_runtime`).
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
    """One attention call: windows padded to the group's widest.

    ``gather`` ``(rows, width)``: for each padded position, its row in the packed matrix (padding
    reads row 0, masked out as a key, dropped as a query); ``real``: the padded positions that
    are real (flat); ``target``: their rows in the packed matrix; ``mask``: the additive key mask."""

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


@dataclass(frozen=True)
class PackedLayout:
    """Where the real positions of a right-padded ``(rows, width)`` batch are: ``packed``, their
    indices in the row-major flattened batch, in order; ``lengths``, each row's count."""

    rows: int
    width: int
    lengths: torch.Tensor
    packed: torch.Tensor

    def select(self, padded: torch.Tensor) -> torch.Tensor:
        """A ``(rows, width)`` input's values at the real positions, packed."""
        return padded.flatten().index_select(0, self.packed)

    def positions(self) -> torch.Tensor:
        """Each real position's index within its row (BERT's absolute position ids)."""
        return self.packed % self.width

    def unpack(self, hidden: torch.Tensor) -> torch.Tensor:
        """Packed ``(positions, hidden)`` rows back in the padded ``(rows, width, hidden)`` batch,
        zeros at the padding."""
        out = hidden.new_zeros(self.rows * self.width, hidden.shape[-1])
        out.index_copy_(0, self.packed, hidden)
        return out.view(self.rows, self.width, -1)


def packed_layout(inputs: Mapping[str, Any]) -> Optional[PackedLayout]:
    """The layout of a backbone's keyword inputs, or None where they cannot be packed: inputs
    other than ``input_ids``/``attention_mask``/``token_type_ids``, no 2-d ids and mask of one
    shape, an empty batch or row, or a mask not padded on the right."""
    if set(inputs) - _INPUTS:
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
    return PackedLayout(rows, width, lengths, real.flatten().nonzero().squeeze(1))


def packed_forward(
    module: torch.nn.Module,
    inputs: Mapping[str, Any],
    *,
    attention_call_cost: int = DEFAULT_ATTENTION_CALL_COST,
) -> Optional[Any]:
    """``module(**inputs)`` in eval mode computed on the real positions only, or None where that
    does not apply (see the module docstring). Inference only (call it under ``torch.no_grad()``):
    it runs no dropout whatever the module's mode."""
    layout = packed_layout(inputs) if is_packable(module) else None
    if layout is None:
        return None
    hidden = _embed(module, *packed_ids(layout, inputs))
    groups = _groups(layout.lengths, attention_call_cost=attention_call_cost)
    for layer in module.encoder.layer:
        hidden = _layer(layer, hidden, groups)
    return with_pooler(module, layout.unpack(hidden))


def packed_ids(layout: PackedLayout, inputs: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The packed word-piece ids, position ids and token type ids (zeros where there are none)."""
    ids = layout.select(inputs["input_ids"])
    token_type_ids = inputs.get("token_type_ids")
    types = torch.zeros_like(ids) if token_type_ids is None else layout.select(token_type_ids)
    return ids, layout.positions(), types


def with_pooler(module: torch.nn.Module, last: torch.Tensor) -> Any:
    """The module's output record for the last hidden state ``last``: its pooler (if any) on it."""
    from transformers.modeling_outputs import BaseModelOutputWithPoolingAndCrossAttentions

    pooled = module.pooler(last) if module.pooler is not None else None
    return BaseModelOutputWithPoolingAndCrossAttentions(last_hidden_state=last, pooler_output=pooled)


class PackedEncoder(torch.nn.Module):
    """A ``BertModel``'s embeddings and encoder on packed positions with one attention group,
    every window padded to the widest: the graph the ONNX Runtime backbone exports
    (:mod:`spacy_ner_project.components.onnx_export`), where a call cannot loop over groups.

    Inputs carry a leading axis of 1 (so the exported products are ``MatMul``, which ONNX
    Runtime's dynamic quantisation turns int8): ``ids``, ``positions``, ``types`` ``(1, n)``;
    ``gather`` ``(rows, width)``, each padded position's packed index (padding: 0);
    ``mask`` ``(rows, 1, 1, width)``, additive; ``real`` ``(n,)``, the real positions among the
    ``rows * width`` padded ones. Output: the last hidden state ``(1, n, hidden)``."""

    INPUTS = ("ids", "positions", "types", "gather", "mask", "real")
    OUTPUT = "last_hidden_state"
    AXES = {"ids": {1: "n"}, "positions": {1: "n"}, "types": {1: "n"}, "gather": {0: "rows", 1: "width"},
            "mask": {0: "rows", 3: "width"}, "real": {0: "n"}, OUTPUT: {1: "n"}}

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    @classmethod
    def inputs(cls, layout: PackedLayout, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The encoder's inputs, by name, for a batch of backbone ``inputs`` laid out as ``layout``."""
        ids, positions, types = packed_ids(layout, inputs)
        gather, mask, real = one_group(layout)
        values = (ids[None], positions[None], types[None], gather, mask, real)
        return dict(zip(cls.INPUTS, values))

    def forward(self, ids: torch.Tensor, positions: torch.Tensor, types: torch.Tensor, gather: torch.Tensor,
                mask: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        hidden = _embed(self.module, ids, positions, types)
        for layer in self.module.encoder.layer:
            qkv = _qkv(layer.attention.self, hidden)
            context = _attend(layer.attention.self, qkv, gather, mask).index_select(-2, real)
            hidden = _feed_forward(layer, context, hidden)
        return hidden


def _embed(module: torch.nn.Module, ids: torch.Tensor, positions: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
    """BertEmbeddings on packed positions: word + absolute position + token type, layer norm."""
    embeddings = module.embeddings
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
        gather, kept, mask = _padded(lengths.index_select(0, index), starts.index_select(0, index))
        groups.append(_Group(gather, kept, gather.flatten().index_select(0, kept), mask))
    return groups


def one_group(layout: PackedLayout) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:class:`PackedEncoder`'s ``gather``, ``mask`` and ``real``: all windows in one attention
    group, padded as in the batch (so the real padded positions are the layout's own)."""
    gather, _, mask = _padded(layout.lengths, torch.cumsum(layout.lengths, 0) - layout.lengths)
    return gather, mask, layout.packed


def _padded(lengths: torch.Tensor, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Windows of ``lengths`` whose packed rows begin at ``starts``, padded to the longest:
    each padded position's packed row (padding: 0), the real padded positions (flat) and the
    additive key mask."""
    steps = torch.arange(int(lengths.max()), device=lengths.device)
    real = steps[None, :] < lengths[:, None]
    gather = torch.where(real, starts[:, None] + steps[None, :], 0)
    mask = torch.zeros(len(lengths), 1, 1, len(steps), device=lengths.device)
    mask.masked_fill_(~real[:, None, None, :], torch.finfo(torch.float32).min)
    return gather, real.flatten().nonzero().squeeze(1), mask


def _qkv(attention: torch.nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """Query, key and value side by side: one product where all three are plain ``nn.Linear``
    (an int8 copy's layers are called one by one)."""
    parts = (attention.query, attention.key, attention.value)
    if all(type(part) is torch.nn.Linear for part in parts):
        weight = torch.cat([part.weight for part in parts])
        bias = torch.cat([part.bias for part in parts]) if all(p.bias is not None for p in parts) else None
        return F.linear(hidden, weight, bias)
    return torch.cat([part(hidden) for part in parts], dim=-1)


def _attend(attention: torch.nn.Module, qkv: torch.Tensor, gather: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Self-attention of one group: ``gather`` ``(rows, width)`` picks each padded position's
    packed row of ``qkv`` (``(..., n, 3 x hidden)``); returns the context of every padded position,
    ``(..., rows x width, hidden)``."""
    heads, size = attention.num_attention_heads, attention.attention_head_size
    rows, width = gather.shape
    picked = qkv.index_select(-2, gather.flatten())
    q, k, v = picked.reshape(rows, width, 3, heads, size).permute(2, 0, 3, 1, 4)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.to(q.dtype))
    return out.transpose(1, 2).reshape(*qkv.shape[:-2], rows * width, heads * size)


def _feed_forward(layer: torch.nn.Module, context: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """The rest of a BertLayer after self-attention: output projection, residual and layer norm,
    the intermediate layer, residual and layer norm (eval mode: no dropout)."""
    projected = layer.attention.output
    hidden = projected.LayerNorm(projected.dense(context) + hidden)
    intermediate = layer.intermediate.intermediate_act_fn(layer.intermediate.dense(hidden))
    output = layer.output
    return output.LayerNorm(output.dense(intermediate) + hidden)


def _layer(layer: torch.nn.Module, hidden: torch.Tensor, groups: List[_Group]) -> torch.Tensor:
    """One BertLayer on packed positions, attention group by group (eval mode: no dropout)."""
    attention = layer.attention.self
    qkv = _qkv(attention, hidden)
    context = qkv.new_empty(hidden.shape[0], attention.num_attention_heads * attention.attention_head_size)
    for group in groups:
        out = _attend(attention, qkv, group.gather, group.mask)
        context.index_copy_(0, group.target, out.index_select(0, group.real).to(context.dtype))
    return _feed_forward(layer, context, hidden)
