"""How the optimizer meets the transformer's torch weights: parameter averages and
layer-wise learning-rate decay.

* Averages: thinc's optimizer keeps moving averages (``use_averages = true``) of every
  parameter it updates, torch ones included, keyed ``(shim.id, name)``. spaCy evaluates and
  saves under ``nlp.use_params(optimizer.averages)``, but thinc's ``PyTorchShim.use_params``
  looks for keys ``"pytorch_{id}_{name}"`` that nothing writes (thinc 8.3), so the backbone
  was evaluated and saved with its raw weights while the layers on top used their averages.
  :class:`BackboneShim` reads the keys the optimizer writes.
* Layer-wise decay (``layer_lr_decay`` < 1): encoder layer ``i`` of ``L`` learns at
  ``decay ** (L - i)`` times the optimizer's rate, the embeddings at ``decay ** (L + 1)``;
  parameters outside the layer stack (e.g. a pooler) at the full rate. The layers on top
  (NER, hash embeddings) are thinc's and keep the full rate.
* Inference on the CPU without padding (``packed_inference``): a BERT backbone computes the
  windows' real word pieces only (:mod:`spacy_ner_project.components.packed_bert`). Where that
  does not apply (another architecture, other inputs) or is off, in length buckets
  (``bucket_call_cost`` not None): a padded batch of windows runs in buckets that pad less
  (:mod:`spacy_ner_project.components.length_buckets`). On a GPU, where padding costs little,
  one call per batch as before.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, Dict, Iterator, Optional

import torch
from spacy_transformers.layers.hf_shim import HFShim
from thinc.api import Model, Optimizer
from thinc.shims.pytorch import torch2xp, xp2torch
from thinc.types import ArgsKwargs

from spacy_ner_project.components.length_buckets import DEFAULT_BUCKET_CALL_COST, predict_in_buckets
from spacy_ner_project.components.packed_bert import packed_forward

DEFAULT_LAYER_LR_DECAY = 1.0  # no decay: every backbone weight at the optimizer's rate
DEFAULT_PACKED_INFERENCE = True  # BERT backbones skip padding at inference on the CPU
_LAYER = re.compile(r"(?:^|\.)layers?\.(\d+)\.")
_EMBEDDINGS = re.compile(r"(?:^|\.)embeddings\.")


def layer_lr_scales(names: list[str], *, decay: float) -> Dict[str, float]:
    """``{parameter name: learning-rate scale}`` for a layer stack named ``...layer.<i>....``
    (BERT-style) or ``...layers.<i>....``; embeddings one step below layer 0; anything else 1."""
    layers = [int(m.group(1)) for name in names if (m := _LAYER.search(name))]
    if decay == 1.0 or not layers:
        return {name: 1.0 for name in names}
    top = max(layers) + 1
    scales = {}
    for name in names:
        if m := _LAYER.search(name):
            scales[name] = decay ** (top - int(m.group(1)))
        elif _EMBEDDINGS.search(name):
            scales[name] = decay ** (top + 1)
        else:
            scales[name] = 1.0
    return scales


class BackboneShim(HFShim):
    """spacy-transformers' ``HFShim`` that uses the optimizer's averages and, when
    ``layer_lr_decay`` < 1, per-layer learning-rate scales; at inference on the CPU, packed
    positions (``packed_inference``) or else length buckets (unless ``bucket_call_cost`` is None)."""

    layer_lr_decay: float = DEFAULT_LAYER_LR_DECAY
    bucket_call_cost: Optional[int] = DEFAULT_BUCKET_CALL_COST
    packed_inference: bool = DEFAULT_PACKED_INFERENCE
    _lr_scales: Optional[Dict[str, float]] = None

    def predict(self, inputs: ArgsKwargs) -> Any:
        if self.device.type != "cpu":  # on a GPU padding costs little
            return super().predict(inputs)
        if self.packed_inference and not inputs.args:
            # no gradients; the module's train/eval mode does not matter: packed_forward runs no dropout
            with torch.no_grad():
                output = packed_forward(self._model, inputs.kwargs)
            if output is not None:
                return output
        if self.bucket_call_cost is None:
            return super().predict(inputs)
        return predict_in_buckets(super().predict, inputs, call_cost=self.bucket_call_cost)

    @contextlib.contextmanager
    def use_params(self, params: Dict[Any, Any]) -> Iterator[None]:
        named = dict(self._model.named_parameters()) if self._model is not None else {}
        swapped = {
            name: xp2torch(params[(self.id, name)], device=self.device)
            for name in named
            if (self.id, name) in params
        }
        if not swapped:
            with super().use_params(params):
                yield
            return
        backup = {name: named[name].data.clone() for name in swapped}
        for name, value in swapped.items():
            named[name].data.copy_(value)
        try:
            yield
        finally:
            for name, value in backup.items():
                named[name].data.copy_(value)

    def finish_update(self, optimizer: Optimizer) -> None:
        if self.layer_lr_decay == 1.0:
            return super().finish_update(optimizer)
        if self._lr_scales is None:
            names = [name for name, _ in self._model.named_parameters()]
            self._lr_scales = layer_lr_scales(names, decay=self.layer_lr_decay)
        for name, torch_data in self._model.named_parameters():
            if torch_data.grad is None:
                continue
            if not self._grad_scaler.found_inf:  # as thinc: skip the step when a gradient overflowed
                param, _ = optimizer(
                    (self.id, name),
                    torch2xp(torch_data.data),
                    torch2xp(torch_data.grad),
                    lr_scale=self._lr_scales.get(name, 1.0),
                )
                torch_data.data = xp2torch(param, requires_grad=True, device=torch_data.device)
            torch_data.grad.zero_()
        self._grad_scaler.update()


def use_backbone_shim(
    hf_layer: Model,
    *,
    layer_lr_decay: float = DEFAULT_LAYER_LR_DECAY,
    bucket_call_cost: Optional[int] = DEFAULT_BUCKET_CALL_COST,
    packed_inference: bool = DEFAULT_PACKED_INFERENCE,
) -> None:
    """Give ``hf_layer`` (spacy-transformers' ``HFWrapper``) a :class:`BackboneShim`.

    The shim object is kept (its id keys the averages; ``from_bytes`` loads into it), only
    its class changes."""
    if not 0.0 < layer_lr_decay <= 1.0:
        raise ValueError(f"layer_lr_decay must be in (0, 1], got {layer_lr_decay}")
    if bucket_call_cost is not None and bucket_call_cost < 0:
        raise ValueError(f"bucket_call_cost must be >= 0 or None (off), got {bucket_call_cost}")
    for shim in hf_layer.shims:
        if isinstance(shim, HFShim):
            shim.__class__ = BackboneShim
            shim.layer_lr_decay = layer_lr_decay
            shim.bucket_call_cost = bucket_call_cost
            shim.packed_inference = packed_inference
            shim._lr_scales = None
