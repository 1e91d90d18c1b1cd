"""Load-time switches of a pipeline's transformer components: apply one to each component once its weights are read.

The opt-in inference variants (int8 in :mod:`spacy_ner_project.components.quantize`, ONNX
Runtime in :mod:`spacy_ner_project.components.onnx_runtime`) are ``[nlp.after_pipeline_creation]``
callbacks. That callback runs when the pipeline is created, before ``spacy.load`` reads the
weights; :func:`apply_once_loaded` applies the switch to a component that has weights already,
and otherwise right after the component's ``from_disk``/``from_bytes``. ``spacy train`` with such
a callback in its config reads no weights from disk, so it trains and evaluates unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from spacy.language import Language
from spacy_transformers import Transformer
from thinc.api import Model


def transformer_components(nlp: Language, *, purpose: str = "int8 quantisation") -> list[Transformer]:
    """The spacy-transformers ``transformer`` components of ``nlp`` (disabled ones too).

    Raises ValueError naming ``purpose`` when there is none."""
    found = [proc for _, proc in nlp.components if isinstance(proc, Transformer)]
    if not found:
        raise ValueError(
            f"{purpose} needs a spacy-transformers 'transformer' component; the "
            f"pipeline has {nlp.component_names}."
        )
    return found


def apply_after_loading(component: Transformer, switch: Callable[[Model], Any]) -> None:
    """Make ``component`` call ``switch(component.model)`` right after its weights are read."""
    read_disk, read_bytes = component.from_disk, component.from_bytes

    def from_disk(path: str | Path, *, exclude: Iterable[str] = ()) -> Transformer:
        read_disk(path, exclude=exclude)
        switch(component.model)
        return component

    def from_bytes(bytes_data: bytes, *, exclude: Iterable[str] = ()) -> Transformer:
        read_bytes(bytes_data, exclude=exclude)
        switch(component.model)
        return component

    component.from_disk = from_disk  # type: ignore[method-assign]
    component.from_bytes = from_bytes  # type: ignore[method-assign]


def apply_once_loaded(nlp: Language, switch: Callable[[Model], Any], *, purpose: str) -> Language:
    """``switch(model)`` for each transformer component's model: now where it has weights, else
    right after they are read."""
    for component in transformer_components(nlp, purpose=purpose):
        if component.model.attrs.get("has_transformer"):
            switch(component.model)
        else:
            apply_after_loading(component, switch)
    return nlp
