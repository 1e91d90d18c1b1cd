"""Writing output files safely: refuse a folder or the input as the output, write atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from spacy_ner_project.errors import UserError, os_error_message


def check_output_file(output: Path) -> None:
    """Refuse an output file path that names an existing directory (cheap; call it before long work)."""
    if output.is_dir():
        raise UserError(f"{output} is a directory; give the path of a file to write, not of a folder")


def check_not_same_file(input_path: Path, output_path: Path) -> None:
    """Refuse an output that is the input, also through a symbolic or hard link."""
    # st_dev + st_ino, so links count; an output that does not exist yet cannot be the input
    if input_path.exists() and output_path.exists() and os.path.samefile(input_path, output_path):
        raise UserError(
            f"{output_path} is the input file {input_path}; give another output path (e.g. ending in .spacy)"
        )


def _current_umask() -> int:
    """The process's umask (read by setting it and restoring it at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(data: bytes, output: Path) -> None:
    """Write ``data`` to ``output`` via a temporary file in the same folder and a rename.

    The file gets the mode a plain ``open(output, "wb")`` would give (0666 less the user's
    umask), not the 0600 of the temporary file. A directory in the way, a read-only or full file system, missing permissions: a
    :class:`UserError` naming ``output``; nothing is left behind."""
    output = Path(output)
    check_output_file(output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    except OSError as err:
        raise UserError(os_error_message(err, path=output, action="write")) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~_current_umask())
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, output)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise UserError(os_error_message(err, path=output, action="write")) from None
        raise
