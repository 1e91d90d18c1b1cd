"""``package``: a trained pipeline's wheel with the plugin's wheel beside it
(:func:`spacy_ner_project.packaging.build_packages`), installable offline with one pip line."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from wasabi import msg

from spacy_ner_project.packaging import build_packages


def package_cli(
    pipeline: Path = typer.Argument(..., help="Trained pipeline folder (e.g. training/ner_trf/model-best)"),
    output_dir: Path = typer.Argument(..., help="Folder for the package (spacy package's output folder)"),
    name: Optional[str] = typer.Option(None, "--name", help="Package name (spaCy prefixes the language)"),
    version: Optional[str] = typer.Option(None, "--version", help="Package version"),
    plugin_source: Optional[Path] = typer.Option(
        Path("."), "--plugin-source", help="spacy-ner-project's source folder, whose wheel goes beside the pipeline's"
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing package folder"),
) -> None:
    """Package a trained pipeline as a wheel, with the plugin's wheel beside it for an offline install."""
    packages = build_packages(pipeline, output_dir, name=name, version=version, plugin_source=plugin_source, force=force)
    msg.good(f"Pipeline wheel: {packages.pipeline_wheel}")
    if packages.plugin_wheel is not None:
        msg.good(f"Plugin wheel: {packages.plugin_wheel}")
    msg.info("Install both (torch==2.13.0 first on a CPU-only machine) with the next line:")
    print(packages.install_line)  # unwrapped: a line to copy
