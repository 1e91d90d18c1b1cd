"""What an annotate run reads and how it runs: the defaults live here and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from spacy_ner_project.errors import OptionError, OptionName, UserError, keyword  # noqa: F401 (re-exported)

ENGINES = ("local", "ray")
OUTPUT_FORMATS = ("parquet", "jsonl")
EXISTING = ("refuse", "overwrite", "resume")
ENCODING_ERRORS = ("strict", "replace")
# the smallest object store Ray starts with (ray_constants.OBJECT_STORE_MINIMUM_MEMORY_BYTES)
MIN_OBJECT_STORE_MB = 75

# Names an option by its field of InputSpec or AnnotateOptions, with the value that fixes the
# problem if there is one: ("existing", "resume") -> existing='resume' (or --resume on the command line)
# the option error and its names live in spacy_ner_project.errors (re-exported here)


class InputFormat(str, Enum):
    """What INPUT holds (``--input-format``); AUTO: tell it from the path (``records.input_format``)."""

    AUTO = "auto"
    JSONL = "jsonl"
    PARQUET = "parquet"
    TXT = "txt"


@dataclass(frozen=True)
class InputSpec:
    """INPUT: a JSONL file (one JSON object a line), a Parquet file or folder, or a folder of
    ``.txt`` files (id = the file's path relative to the folder). ``format`` may be given as
    its value ("jsonl"); anything but an :class:`InputFormat` value is a UserError."""

    path: Path
    format: InputFormat = InputFormat.AUTO
    id_field: str = "id"
    text_field: str = "text"
    # longer texts get an `error` value instead of being annotated (a 1 MB text would hold an
    # actor for minutes and, for an LLM pipeline, be sent as dozens of shards); the pipeline's
    # nlp.max_length is raised to it for the run when lower
    max_chars: int = 100_000
    # bytes that are not UTF-8 (JSONL lines, .txt files): "strict" refuses INPUT before any work,
    # naming the file and line; "replace" reads them as U+FFFD
    encoding_errors: str = "strict"

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "format", InputFormat(self.format))
        except ValueError:
            choices = ", ".join(f.value for f in InputFormat)
            raise UserError(f"input format must be one of {choices}, not {self.format!r}") from None
        if self.encoding_errors not in ENCODING_ERRORS:
            raise UserError(f"encoding errors must be one of {ENCODING_ERRORS}, not {self.encoding_errors!r}")
        if self.max_chars < 1:
            raise UserError(f"max chars must be at least 1, not {self.max_chars}")


@dataclass(frozen=True)
class AnnotateOptions:
    """How to run: the engine and its resources, the output, what to do with an existing OUTPUT."""

    engine: str = "local"
    output_format: str = "parquet"
    batch_size: int = 64
    # local engine: processes for nlp.pipe
    n_process: int = 1
    # ray engine: None starts a local Ray (and shuts it down); "auto" or "HOST:PORT" joins a cluster
    address: Optional[str] = None
    actors: int = 2
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    # Ray restarts a dead actor and retries its batch this many times before the run fails
    max_retries: int = 3
    # ray engine, a local Ray (no address): the object store's size in MB (None: Ray's default,
    # 30% of the memory); the engine streams, so a small store spills, it does not fail
    object_store_mb: Optional[int] = None
    # LLM pipelines: requests in flight across all workers (None: the pipeline's concurrency)
    llm_capacity: Optional[int] = None
    # LLM pipelines: SQLite response cache file on each node (None: the pipeline's own path)
    llm_cache: Optional[Path] = None
    # also write DocBin shards (user_data kept) under OUTPUT/docbin/
    docbin: bool = False
    existing: str = "refuse"
    # a Python file to import before loading the pipeline (custom components), as spaCy's --code
    code: Optional[Path] = None
    # spaCy config overrides applied when loading the pipeline ({"llm.model": "x"}), before the
    # run's own LLM overrides (concurrency share, cache path)
    config_overrides: Mapping[str, Any] = field(default_factory=dict)
    progress: bool = True
    # rows per part file (both engines; the most rows the writer holds at once)
    rows_per_file: int = 10_000

    def __post_init__(self) -> None:
        problems = []
        if self.engine not in ENGINES:
            problems.append(f"engine must be one of {ENGINES}, not {self.engine!r}")
        if self.output_format not in OUTPUT_FORMATS:
            problems.append(f"output format must be one of {OUTPUT_FORMATS}, not {self.output_format!r}")
        if self.existing not in EXISTING:
            problems.append(f"existing must be one of {EXISTING}, not {self.existing!r}")
        if self.batch_size < 1 or self.n_process < 1 or self.actors < 1 or self.rows_per_file < 1:
            problems.append("batch size, n_process, actors and rows per file must be at least 1")
        if self.cpus_per_actor <= 0 or self.gpus_per_actor < 0 or self.max_retries < 0:
            problems.append("need cpus per actor > 0, gpus per actor >= 0 and max retries >= 0")
        if self.object_store_mb is not None and self.object_store_mb < MIN_OBJECT_STORE_MB:
            problems.append(f"object store MB must be at least {MIN_OBJECT_STORE_MB} (Ray's minimum), not {self.object_store_mb}")
        if self.object_store_mb is not None and self.address is not None:
            problems.append("object store MB sizes the local Ray that annotate starts; a cluster's object store is set where it starts (ray start --object-store-memory)")
        if self.llm_capacity is not None and self.llm_capacity < 1:
            problems.append(f"llm capacity must be at least 1, not {self.llm_capacity}")
        if problems:
            raise UserError("; ".join(problems))

    @property
    def workers(self) -> int:
        """Pipeline copies that run at once: actors (ray) or processes (local)."""
        return self.actors if self.engine == "ray" else self.n_process
