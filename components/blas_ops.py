"""Thinc's CPU ops with matrix products on NumPy's BLAS (multi-threaded) instead of blis (one thread).

Thinc's ``NumpyOps.gemm`` calls blis, single-threaded. In the NER's tok2vec of
``configs/ner_trf.cfg`` (``CasedTok2Vec.v1``: a Maxout from the 384 transformer and 256 hash
embedding features to 256 x 3 pieces) that one product took 0.34 s of a 2.2 s run over 12,010
CoNLL test words on 2 AMD EPYC cores (benchmarks/inference_profile.md); NumPy's ``matmul``
(OpenBLAS, both cores) computes the same product in 0.07 s. :class:`BlasOps` is ``NumpyOps``
with ``gemm`` on ``numpy.matmul`` for float32 2-d arrays (anything else goes to blis as before);
:func:`use_blas_ops` gives it to every layer of a model that runs on plain ``NumpyOps`` (a model
on the GPU, or on other ops, is left as it is). The products equal blis's up to float32
rounding (the summation order differs).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy
from thinc.api import Model, NumpyOps


class BlasOps(NumpyOps):
    """``NumpyOps`` whose ``gemm`` runs on NumPy's BLAS for float32 matrices."""

    name = "numpy"  # thinc compares ops by name (e.g. when it moves arrays): these are NumPy arrays

    def gemm(self, x: Any, y: Any, out: Optional[Any] = None, trans1: bool = False,
             trans2: bool = False) -> Any:
        if not (_float32_matrix(x) and _float32_matrix(y) and (out is None or _float32_matrix(out))):
            return super().gemm(x, y, out=out, trans1=trans1, trans2=trans2)
        left = x.T if trans1 else x
        right = y.T if trans2 else y
        if out is None:
            return numpy.matmul(left, right)
        numpy.matmul(left, right, out=out)
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
