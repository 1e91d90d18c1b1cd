"""Thinc's CPU ops with matrix products on torch's BLAS (all of torch's threads) instead of blis (one thread).

Thinc's ``NumpyOps.gemm`` calls blis, single-threaded. In the NER's tok2vec of
``configs/ner_trf.cfg`` (``CasedTok2Vec.v1``: a Maxout from the 384 transformer and 256 hash
embedding features to 256 x 3 pieces) that one product took 0.34 s of a 2.2 s run over 12,010
CoNLL test words on 2 AMD EPYC cores (cProfile). :class:`BlasOps` is ``NumpyOps`` with ``gemm``
on ``torch.matmul`` for float32 2-d arrays (the arrays are shared, not copied; anything else goes
to blis as before); :func:`use_blas_ops` gives it to every layer of a model that runs on plain
``NumpyOps`` (a model on the GPU, or on other ops, is left as it is). Torch rather than NumPy's
OpenBLAS: both computed the product in ~0.07 s, but OpenBLAS's own threads, still spinning after
a product, slowed the backbone's next call by ~6% (benchmarks/inference_profile.md's stage
table, run both ways); torch's threads are the backbone's. The products equal blis's up to
float32 rounding (the summation order differs).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy
import torch
from thinc.api import Model, NumpyOps


class BlasOps(NumpyOps):
    """``NumpyOps`` whose ``gemm`` runs on torch's BLAS for float32 matrices."""

    name = "numpy"  # thinc compares ops by name (e.g. when it moves arrays): these are NumPy arrays

    def gemm(self, x: Any, y: Any, out: Optional[Any] = None, trans1: bool = False,
             trans2: bool = False) -> Any:
        if not (_float32_matrix(x) and _float32_matrix(y) and (out is None or _float32_matrix(out))):
            return super().gemm(x, y, out=out, trans1=trans1, trans2=trans2)
        left = torch.from_numpy(x.T if trans1 else x)
        right = torch.from_numpy(y.T if trans2 else y)
        if out is None:
            return torch.matmul(left, right).numpy()
        torch.matmul(left, right, out=torch.from_numpy(out))
        return out


def _float32_matrix(array: Any) -> bool:
    return isinstance(array, numpy.ndarray) and array.ndim == 2 and array.dtype == numpy.float32


def use_blas_ops(model: Model) -> Model:
    """Give :class:`BlasOps` to every layer of ``model`` whose ops are exactly ``NumpyOps``; returns ``model``."""
    ops: Optional[BlasOps] = None
    for node in model.walk():
        if type(node.ops) is NumpyOps:
            ops = ops or BlasOps()
            node.ops = ops
    return model
