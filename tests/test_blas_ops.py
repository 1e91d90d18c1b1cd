"""BlasOps (components/blas_ops.py): thinc's gemm on torch's BLAS, same products, given to CasedTok2Vec."""

from __future__ import annotations

from typing import Any, Callable

import numpy
import pytest
from thinc.api import NumpyOps

from spacy_ner_project.components.blas_ops import BlasOps, use_blas_ops


@pytest.mark.parametrize("trans1,trans2", [(False, False), (True, False), (False, True), (True, True)])
def test_products_equal_blis(trans1: bool, trans2: bool) -> None:
    rng = numpy.random.default_rng(0)
    x = rng.random((7, 5), dtype=numpy.float32)
    x = x.T.copy() if trans1 else x
    y = rng.random((5, 3), dtype=numpy.float32)
    y = y.T.copy() if trans2 else y
    expected = NumpyOps().gemm(x, y, trans1=trans1, trans2=trans2)
    got = BlasOps().gemm(x, y, trans1=trans1, trans2=trans2)
    numpy.testing.assert_allclose(got, expected, rtol=1e-5)
    out = numpy.zeros_like(expected)
    assert BlasOps().gemm(x, y, out=out, trans1=trans1, trans2=trans2) is out
    numpy.testing.assert_allclose(out, expected, rtol=1e-5)


def test_other_dtypes_go_to_blis() -> None:
    x = numpy.ones((2, 2), dtype=numpy.float64)
    with pytest.raises(ValueError):  # what NumpyOps itself says of float64
        NumpyOps().gemm(x, x)
    with pytest.raises(ValueError):
        BlasOps().gemm(x, x)


def test_the_ner_tok2vec_gets_blas_ops_and_predicts_as_before() -> None:
    from spacy.util import registry
    from thinc.api import Maxout, chain

    model = chain(Maxout(nO=4, nI=6, nP=2), Maxout(nO=3, nI=4, nP=2))
    model.initialize()
    X = numpy.random.default_rng(1).random((9, 6), dtype=numpy.float32)
    before = model.predict(X)
    assert use_blas_ops(model) is model
    assert all(type(node.ops) is BlasOps for node in model.walk())
    numpy.testing.assert_allclose(model.predict(X), before, rtol=1e-5, atol=1e-6)  # sums in another order
    cased = registry.get("architectures", "spacy_ner_project.CasedTok2Vec.v1")
    tok2vec = cased(transformer=Maxout(nO=2, nI=2), embed=Maxout(nO=2, nI=2), width=4)
    assert {type(node.ops) for node in tok2vec.walk()} == {BlasOps}


def assert_predicts_on_torch_and_trains_with_thincs(model: Any, layer: Any, X: numpy.ndarray, *, ours: Callable,
                                                    thincs: Callable) -> None:
    """``use_blas_ops(model)`` gives ``layer`` the forward ``ours``: its predictions are thinc's
    (``thincs``) up to rounding, training runs thinc's own forward and gradient, and ours has none."""
    before = model.predict(X)
    use_blas_ops(model)
    assert layer._func is ours
    numpy.testing.assert_allclose(model.predict(X), before, rtol=1e-5, atol=1e-6)
    Y, backprop = layer.begin_update(X)
    expected, expected_backprop = thincs(layer, X, True)
    numpy.testing.assert_array_equal(Y, expected)
    numpy.testing.assert_array_equal(backprop(numpy.ones_like(Y)), expected_backprop(numpy.ones_like(Y)))
    with pytest.raises(ValueError, match="inference"):
        ours(layer, X, False)[1](Y)


def test_layer_norm_predicts_on_torch_and_trains_with_thincs() -> None:
    from thinc.api import LayerNorm
    from thinc.layers import layernorm

    from spacy_ner_project.components.blas_ops import layer_norm_forward

    model = LayerNorm(nI=6)
    model.initialize()
    rng = numpy.random.default_rng(3)
    model.set_param("G", rng.random(6, dtype=numpy.float32) + 0.5)
    model.set_param("b", rng.random(6, dtype=numpy.float32))
    X = rng.standard_normal((8, 6), dtype=numpy.float32) * 3 + 1
    assert_predicts_on_torch_and_trains_with_thincs(model, model, X, ours=layer_norm_forward, thincs=layernorm.forward)


def test_maxout_predicts_on_torch_and_trains_with_thincs() -> None:
    from thinc.api import Maxout
    from thinc.layers import maxout

    from spacy_ner_project.components.blas_ops import maxout_forward

    model = Maxout(nO=5, nI=7, nP=3, normalize=True)
    model.initialize()
    layer = model.layers[0]
    rng = numpy.random.default_rng(4)
    layer.set_param("b", rng.standard_normal(layer.get_param("b").shape, dtype=numpy.float32))
    X = rng.standard_normal((11, 7), dtype=numpy.float32)
    assert_predicts_on_torch_and_trains_with_thincs(model, layer, X, ours=maxout_forward, thincs=maxout.forward)


def test_int8_maxout_predicts_near_float32_repacks_new_weights_and_trains_with_thincs() -> None:
    from thinc.api import Maxout, chain
    from thinc.layers import maxout

    from spacy_ner_project.components.blas_ops import Int8MaxoutForward, use_int8_maxout

    model = chain(Maxout(nO=16, nI=24, nP=3, normalize=True), Maxout(nO=8, nI=16, nP=2))
    model.initialize()
    rng = numpy.random.default_rng(5)
    X = rng.standard_normal((40, 24), dtype=numpy.float32)
    use_blas_ops(model)
    before = model.predict(X)
    assert use_int8_maxout(model) == 2
    layers = sorted((node for node in model.walk() if isinstance(node._func, Int8MaxoutForward)),
                    key=lambda node: -node.get_dim("nI"))  # the first layer (24 inputs), then the second
    assert len(layers) == 2
    forwards = [node._func for node in layers]
    found = model.predict(X)
    relative = numpy.linalg.norm(found - before) / numpy.linalg.norm(before)
    assert 0 < relative < 0.05  # int8 weights and activations: close, not equal
    assert use_int8_maxout(model) == 2 and [node._func for node in layers] == forwards  # kept
    packed = forwards[0].linear(layers[0])
    numpy.testing.assert_array_equal(model.predict(X), found)
    assert forwards[0].linear(layers[0]) is packed  # packed once
    layers[0].set_param("W", layers[0].get_param("W") * 2)  # new weights: packed again
    assert forwards[0].linear(layers[0]) is not packed
    Y, backprop = layers[0].begin_update(X)  # training: thinc's own forward and gradient
    expected, expected_backprop = maxout.forward(layers[0], X, True)
    numpy.testing.assert_array_equal(Y, expected)
    numpy.testing.assert_array_equal(backprop(numpy.ones_like(Y)), expected_backprop(numpy.ones_like(Y)))
    with pytest.raises(ValueError, match="inference"):
        forwards[0](layers[0], X, False)[1](Y)
