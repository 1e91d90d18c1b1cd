"""displaCy renderings of a pipeline's predictions beside gold, in one self-contained HTML page
(the ``visualize`` command).

spaCy and the report's templates are imported inside :func:`visualize`, so that the command
reads its option defaults (``visualize.__kwdefaults__``) without loading them.
"""

from __future__ import annotations

import html
from pathlib import Path

from spacy_ner_project.defaults import VISUALIZE_LIMIT
from spacy_ner_project.files import check_output_file, write_atomic


def visualize(model: str, data: Path, output: Path, *, limit: int = VISUALIZE_LIMIT, batch_size: int = 32) -> Path:
    """Render the first ``limit`` documents of ``data``: gold beside the pipeline's entities."""
    from spacy_ner_project.evaluation.evaluate import Evaluation, PipelineResult, predict, read_gold
    from spacy_ner_project.evaluation.report import html_doc_grids, html_page, label_colors
    from spacy_ner_project.pipelines import load_pipeline

    check_output_file(output)
    gold = read_gold(data, n_docs=limit)
    predictions, _ = predict(load_pipeline(model), gold, batch_size=batch_size)
    name = Path(model).name or str(model)
    evaluation = Evaluation(data=str(data), gold=gold, results=[PipelineResult(name, str(model), {}, predictions, {})])
    body = (
        f"<h1>Predictions of {html.escape(str(model))}</h1>"
        f'<p class="muted">First {len(gold)} documents of <code>{html.escape(str(data))}</code>, gold on the left.</p>'
        + html_doc_grids(evaluation, range(len(gold)), label_colors(evaluation))
    )
    write_atomic(html_page(f"Predictions of {name}", body).encode("utf-8"), output)
    return output

