"""Annotate a corpus with a spaCy pipeline, on this machine (``nlp.pipe``) or on Ray Data.

    from spacy_ner_project.annotate import AnnotateOptions, InputSpec, annotate, read_output

    summary = annotate("training/ner_cnn/model-best", InputSpec(Path("docs.jsonl")), Path("out"),
                       options=AnnotateOptions(engine="ray", actors=2))
    rows = read_output(Path("out"))   # id, text, entities, llm, error

Modules: ``records`` (INPUT → validated records), ``predict`` (doc → output row),
``pipeline`` (loading in each worker; LLM concurrency and cache overrides), ``local`` and
``ray_engine`` (the engines), ``output`` (OUTPUT folder, refuse/overwrite/resume), ``runner``.
spaCy is imported only where a pipeline is loaded or a DocBin written, so importing this
package (``annotate --help``) does not load it.
"""

from .output import read_output
from .runner import AnnotateSummary, annotate
from .settings import AnnotateOptions, InputSpec

__all__ = ["AnnotateOptions", "AnnotateSummary", "InputSpec", "annotate", "read_output"]
