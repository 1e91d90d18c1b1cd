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

The layer norm after the Maxout runs on torch too, at inference only (:func:`use_blas_ops` gives
every ``LayerNorm.v1`` layer :func:`layer_norm_forward`, which trains with thinc's own forward):
thinc's NumPy mean and variance took 0.036 s of the NER's 0.25 s on the same run (cProfile),
torch 0.005 s; outputs equal up to float32 rounding.

Each ``Maxout.v1`` layer predicts on torch too (:func:`maxout_forward`: one ``F.linear`` with its
bias, then the max over the pieces by ``amax``, where thinc runs the product, adds the bias in
NumPy and finds the max and its argmax in Cython): the tok2vec's projection (13,021 tokens, 448
features to 256 x 3 pieces) took 0.091 s of the tok2vec's 0.16 s that way; whole pipeline, 7
interleaved rounds over the 12,010 words (bf16 default, 2 AMD EPYC cores), 1.085x the words/s
(median of the rounds' ratios), the same entities on every text. (An older note here found
torch's reductions over a last axis of 3 slower; that was ``max`` with its indices, which
inference does not need.)

:func:`use_int8_maxout` gives each Maxout an :class:`Int8MaxoutForward` instead: the same at
inference with int8 weights (one scale per output channel, torch's dynamic quantisation:
activations quantised per call), packed once per weights (they are checked by a CRC at each
call, so new weights are packed again). The ONNX Runtime backbone's ``int8`` option uses it for
the NER's tok2vec (components/onnx_runtime.py). On that projection, one thread: 0.048 s against
0.110 s in float32 (0.078 s in bfloat16); dev F1 of the default pipeline with the int8 backbone,
all 216 dev documents: 92.95 either way (5 documents' entities differ), and 92.90 either way in 2
worker threads.
"""

from __future__ import annotations

import warnings
import zlib
from typing import Any, Callable, Optional, Tuple

import numpy
import torch
from thinc.api import Model, NumpyOps
from thinc.layers import layernorm, maxout

from spacy_ner_project.components.quantize import dynamic_int8


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


def layer_norm_forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    """Thinc's ``LayerNorm.v1`` forward with its inference on ``torch.nn.functional.layer_norm``
    (the same epsilon, 1e-8); training (and anything but a float32 NumPy matrix) runs thinc's own."""
    if is_train or not _float32_matrix(X):
        return layernorm.forward(model, X, is_train)
    scale, shift = model.get_param("G"), model.get_param("b")
    Y = torch.nn.functional.layer_norm(
        torch.from_numpy(X), (X.shape[1],), torch.from_numpy(scale), torch.from_numpy(shift), eps=1e-8
    ).numpy()

    def backprop(dY: Any) -> Any:
        raise ValueError("layer_norm_forward was run for inference (is_train=False): it has no gradient.")

    return Y, backprop


def maxout_forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    """Thinc's ``Maxout.v1`` forward with its inference on torch (``F.linear``, then ``amax`` over
    the pieces); training (and anything but a float32 NumPy matrix) runs thinc's own."""
    return _maxout_inference(model, X, is_train, product=lambda x: torch.nn.functional.linear(x, *_maxout_weights(model)),
                             name="maxout_forward")


def _maxout_weights(model: Model) -> Tuple[torch.Tensor, torch.Tensor]:
    """A Maxout layer's weights ``(width x pieces, inputs)`` and bias, as torch tensors sharing its arrays."""
    pieces, width = model.get_dim("nP"), model.get_dim("nO")
    weights = torch.from_numpy(model.get_param("W").reshape(width * pieces, model.get_dim("nI")))
    return weights, torch.from_numpy(model.get_param("b").reshape(width * pieces))


def _maxout_inference(model: Model, X: Any, is_train: bool, *, product: Callable[[torch.Tensor], torch.Tensor],
                      name: str) -> Tuple[Any, Callable]:
    """A Maxout layer's prediction with ``product`` (the inputs times the weights, plus the
    bias), then the max over its pieces; training (and anything but a float32 NumPy matrix) runs
    thinc's own forward."""
    if is_train or not _float32_matrix(X):
        return maxout.forward(model, X, is_train)
    pieces, width = model.get_dim("nP"), model.get_dim("nO")
    with torch.no_grad():
        Y = product(torch.from_numpy(X)).view(-1, width, pieces).amax(-1).numpy()

    def backprop(dY: Any) -> Any:
        raise ValueError(f"{name} was run for inference (is_train=False): it has no gradient.")

    return Y, backprop


class Int8MaxoutForward:
    """A Maxout layer's forward with int8 weights at inference (see the module docstring), one
    per layer: it keeps the layer's product as torch's dynamic int8 ``Linear`` (per-channel
    weight scales) with the CRC of the weights and bias it was packed from, and packs again when
    they change. Training (and anything but a float32 NumPy matrix) runs thinc's own forward."""

    def __init__(self) -> None:
        self._packed: Optional[Tuple[int, torch.nn.Module]] = None

    def __call__(self, model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
        return _maxout_inference(model, X, is_train, product=lambda x: self.linear(model)(x), name="Int8MaxoutForward")

    def linear(self, model: Model) -> torch.nn.Module:
        """``model``'s product in int8, packed again when its weights or bias changed."""
        W, b = model.get_param("W"), model.get_param("b")
        digest = zlib.crc32(numpy.ascontiguousarray(b), zlib.crc32(numpy.ascontiguousarray(W)))
        packed = self._packed  # one read: worker threads may pack at once (either result is right)
        if packed is not None and packed[0] == digest:
            return packed[1]
        weights, bias = _maxout_weights(model)
        linear = torch.nn.Linear(weights.shape[1], weights.shape[0])
        with torch.no_grad():
            linear.weight.copy_(weights)
            linear.bias.copy_(bias)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
            quantized = dynamic_int8(torch.nn.Sequential(linear))[0]
        self._packed = (digest, quantized)
        return quantized


def use_int8_maxout(model: Model) -> int:
    """Give every ``Maxout.v1`` layer of ``model`` its own :class:`Int8MaxoutForward` (those that
    have one keep it); returns how many layers have one."""
    count = 0
    for node in model.walk():
        if node._func in (maxout.forward, maxout_forward):
            node._func = Int8MaxoutForward()
        count += isinstance(node._func, Int8MaxoutForward)
    return count


_INFERENCE_FORWARDS: dict[Callable, Callable] = {layernorm.forward: layer_norm_forward, maxout.forward: maxout_forward}


def _float32_matrix(array: Any) -> bool:
    return isinstance(array, numpy.ndarray) and array.ndim == 2 and array.dtype == numpy.float32


def use_blas_ops(model: Model) -> Model:
    """Give :class:`BlasOps` to every layer of ``model`` whose ops are exactly ``NumpyOps``, and
    :func:`layer_norm_forward` / :func:`maxout_forward` to each of those that is thinc's
    ``LayerNorm.v1`` / ``Maxout.v1``; returns ``model``."""
    ops: Optional[BlasOps] = None
    for node in model.walk():
        if type(node.ops) is NumpyOps:
            ops = ops or BlasOps()
            node.ops = ops
            node._func = _INFERENCE_FORWARDS.get(node._func, node._func)
    return model
