"""Parameter averages reach the transformer's torch weights (components/averages.py).

thinc's stock ``PyTorchShim.use_params`` ignores the optimizer's averages (it looks for keys
nothing writes); spaCy evaluates and saves under ``use_params(optimizer.averages)``.
"""

from __future__ import annotations

import numpy
import torch
import spacy
from spacy.training import Example
from thinc.api import Adam, PyTorchWrapper

from spacy_ner_project.components.averages import AveragedHFShim
from test_quantize import TRAIN, tiny_pipeline


def test_stock_pytorch_shim_ignores_averages() -> None:
    """The thinc behaviour the shim works around; if thinc fixes it, this fails and the
    workaround can go."""
    model = PyTorchWrapper(torch.nn.Linear(3, 2))
    X = numpy.ones((4, 3), dtype="f")
    model.initialize(X=X)
    optimizer = Adam(0.1, use_averages=True)
    for _ in range(5):
        Y, backprop = model.begin_update(X)
        backprop(numpy.ones_like(Y))
        model.finish_update(optimizer)
    assert optimizer.averages
    raw = model.predict(X).copy()
    with model.use_params(optimizer.averages):
        assert numpy.allclose(model.predict(X), raw)


def test_transformer_uses_and_restores_averaged_weights(tmp_path) -> None:
    spacy.util.fix_random_seed(0)
    nlp = tiny_pipeline()
    examples = [Example.from_dict(nlp.make_doc(text), {"entities": ents}) for text, ents in TRAIN]
    nlp.initialize(lambda: examples)
    optimizer = Adam(1e-3, use_averages=True)
    for _ in range(4):
        nlp.update(examples, sgd=optimizer, drop=0.0)
    shim = nlp.get_pipe("transformer").model.layers[0].shims[0]
    assert isinstance(shim, AveragedHFShim)
    module = shim._model
    name, weight = next((n, p) for n, p in module.named_parameters() if (shim.id, n) in optimizer.averages)
    raw = weight.detach().clone()
    average = torch.from_numpy(numpy.asarray(optimizer.averages[(shim.id, name)]))
    assert not torch.allclose(raw, average)
    with nlp.use_params(optimizer.averages):
        assert torch.allclose(dict(module.named_parameters())[name], average)
        nlp.to_disk(tmp_path / "averaged")  # what spaCy's training loop saves
    assert torch.equal(dict(module.named_parameters())[name], raw)  # restored
    reloaded = spacy.load(tmp_path / "averaged")
    loaded = reloaded.get_pipe("transformer").model.layers[0].shims[0]._model
    assert torch.allclose(dict(loaded.named_parameters())[name], average)
