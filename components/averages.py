"""Parameter averages for the transformer's torch weights.

thinc's optimizer keeps moving averages (``use_averages = true``) of every parameter it
updates, torch ones included, keyed ``(shim.id, name)``. spaCy evaluates and saves under
``nlp.use_params(optimizer.averages)``, but thinc's ``PyTorchShim.use_params`` looks for
keys ``"pytorch_{id}_{name}"`` that nothing writes (thinc 8.3), so the backbone is evaluated
and saved with its raw weights while the layers on top use their averages.
:class:`AveragedHFShim` reads the keys the optimizer writes.
"""

from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterator

from spacy_transformers.layers.hf_shim import HFShim
from thinc.api import Model
from thinc.shims.pytorch import xp2torch


class AveragedHFShim(HFShim):
    """spacy-transformers' ``HFShim`` whose ``use_params`` swaps in the optimizer's averages."""

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


def enable_parameter_averages(hf_layer: Model) -> None:
    """Let ``hf_layer`` (spacy-transformers' ``HFWrapper``) use the optimizer's averages.

    The shim object is kept (its id keys the averages; ``from_bytes`` loads into it), only
    its class changes."""
    for shim in hf_layer.shims:
        if type(shim) is HFShim:
            shim.__class__ = AveragedHFShim
