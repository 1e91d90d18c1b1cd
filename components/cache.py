"""Durable SQLite cache of LLM responses, keyed by model identity and the exact prompt.

One row per (model identity, prompt); a prompt with request fields of its own (a
RequestPrompt, components/model_responses.py) is keyed by its text and its fields. A response is committed the moment it is stored,
so after a crash a rerun repeats no request that had finished. The cache is shared by the
threads of a model's request pool through one SQLite connection guarded by a lock; the
database runs in WAL mode, so other processes reading the same file never block a writer.

Use it from a config::

    [components.llm.model.cache]
    @llm_misc = "spacy_ner_project.SQLiteCache.v1"
    path = "cache/llm_responses.sqlite"

``spacy_ner_project.OpenAICompatible.v1`` takes it as ``cache``; any other spacy-llm model
(``spacy.GPT-4.v3`` ...) can use it through ``spacy_ner_project.CachedModel.v1``.

Failed requests are never cached. The cache stores prompts as well as responses (for
inspection and replay; of a RequestPrompt its text, the fields being in the key only): keep
cache files out of version control when the prompts contain licensed text.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Union

from spacy_ner_project.errors import SettingPathError

from .model_responses import fields_json_of

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model_id TEXT NOT NULL,
    prompt TEXT NOT NULL,
    response TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def model_identity(**parts: Any) -> str:
    """Canonical JSON of what makes two models' answers interchangeable
    (model name, request parameters, the served model's identity ...), used as the cache's
    model id. JSON escapes control characters: a model id never holds a raw one."""
    return json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)


def cache_key(model_id: str, prompt: str) -> str:
    """SHA-256 of the model identity and the exact prompt text: ``model_id NUL prompt``; for a
    prompt with request fields (RequestPrompt) ``model_id SOH fields NUL prompt``, the fields as
    canonical JSON, so no plain prompt's key is ever one with fields (no model id or canonical
    JSON holds a raw NUL or SOH)."""
    digest = hashlib.sha256()
    digest.update(model_id.encode("utf-8"))
    fields = fields_json_of(prompt)
    if fields:
        digest.update(b"\x01")
        digest.update(fields.encode("utf-8"))
    digest.update(b"\x00")
    digest.update(str(prompt).encode("utf-8"))
    return digest.hexdigest()


# The config setting that names the cache file (configs/llm_ner.cfg).
_SETTING = "paths.llm_cache"


class ResponseCacheError(SettingPathError):
    """A path that cannot hold the response cache: the message names it and what to do (a
    UserError, shown as one line by the command line, in the words of the option that gave it)."""

    def __init__(self, path: Union[str, Path], problem: str, *, fix: str = "") -> None:
        super().__init__(path, problem=problem, setting=_SETTING, fix=fix)


_COLUMNS = {"key", "model_id", "prompt", "response", "created"}


class ResponseCache:
    """Thread-safe, crash-safe map from (model id, prompt) to the model's response."""

    def __init__(self, path: Union[str, Path]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db: Optional[sqlite3.Connection] = _open(self.path)

    def _execute(self, query: str, args: tuple = ()) -> List[tuple]:
        """The rows of ``query``; a file that turns out unusable (damaged where opening it did not
        look, made read-only since) raises ResponseCacheError."""
        with self._lock:
            if self._db is None:
                raise RuntimeError(f"{self!r} is closed; create a new ResponseCache to use it again")
            try:
                return self._db.execute(query, args).fetchall()
            except sqlite3.DatabaseError as err:
                unusable = _unusable(self.path, err)
                if unusable is None:
                    raise
                raise unusable from err

    def get(self, model_id: str, prompt: str) -> Optional[str]:
        """The cached response, or None."""
        rows = self._execute(
            "SELECT response FROM responses WHERE key = ?", (cache_key(model_id, prompt),)
        )
        return str(rows[0][0]) if rows else None

    def get_many(self, model_id: str, prompts: Iterable[str]) -> Dict[str, str]:
        """Cached responses of those prompts that have one, by prompt (RequestPrompts with the
        same text and other fields are other prompts)."""
        found: Dict[str, str] = {}
        for prompt in dict.fromkeys(prompts):
            response = self.get(model_id, prompt)
            if response is not None:
                found[prompt] = response
        return found

    def put(self, model_id: str, prompt: str, response: str) -> None:
        """Store and commit one response (replacing an older one for the same key)."""
        self._execute(
            "INSERT OR REPLACE INTO responses (key, model_id, prompt, response, created) "
            "VALUES (?, ?, ?, ?, ?)",
            (cache_key(model_id, prompt), model_id, str(prompt), str(response), time.time()),
        )

    def __len__(self) -> int:
        return int(self._execute("SELECT COUNT(*) FROM responses")[0][0])

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r})"


def _open(path: Path) -> sqlite3.Connection:
    """Open (creating if missing) the cache database at ``path``, or raise ResponseCacheError."""
    if path.is_dir():
        raise ResponseCacheError(path, f"{path} is a directory, not an SQLite response cache", fix="name a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        reason = err.strerror or err
        raise ResponseCacheError(path, f"cannot create the folder of the response cache {path} ({reason})") from err
    if not path.exists() and not os.access(path.parent, os.W_OK):
        raise ResponseCacheError(path, f"cannot create the response cache {path}: its folder is not writable")
    try:
        # isolation_level=None: autocommit, every INSERT is durable when it returns.
        db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as err:
        if not path.exists():
            problem = f"cannot create the response cache {path}: its folder is not writable ({err})"
            raise ResponseCacheError(path, problem) from err
        raise ResponseCacheError(path, f"cannot open the response cache {path} ({err})") from err
    try:
        _prepare(db)
    except sqlite3.DatabaseError as err:
        db.close()
        raise _unusable(path, err) or ResponseCacheError(
            path, f"{path} is not an SQLite response cache ({err})", fix="delete it"
        ) from err
    return db


def _prepare(db: sqlite3.Connection) -> None:
    """Check that ``db`` is this cache (or empty) and writable, and set it up."""
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    columns = {row[1] for row in db.execute("PRAGMA table_info(responses)")}
    if tables and not _COLUMNS <= columns:  # never add our table to another program's database
        raise sqlite3.DatabaseError("an SQLite database without this cache's responses table")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(_SCHEMA)
    # a read-only file opens (read-only) and its cache table may be there already: write
    # something that changes nothing, so it fails now, not at the first answer to store
    (version,) = db.execute("PRAGMA user_version").fetchone()
    db.execute(f"PRAGMA user_version = {int(version)}")


def _unusable(path: Path, err: sqlite3.DatabaseError) -> Optional[ResponseCacheError]:
    """The ResponseCacheError of a file SQLite cannot use as the cache (read-only, damaged, not
    a database ...), from the error's result code; None for other errors (a busy database)."""
    code = getattr(err, "sqlite_errorcode", 0) & 0xFF  # the primary result code
    if code == sqlite3.SQLITE_READONLY:
        problem = f"cannot write the response cache {path}: it is read-only"
        return ResponseCacheError(path, problem, fix="make it writable")
    if code == sqlite3.SQLITE_CANTOPEN:
        return ResponseCacheError(
            path,
            f"cannot write the response cache {path} ({err}): SQLite keeps its journal beside the file, so "
            "its folder must be writable too",
        )
    if code == sqlite3.SQLITE_CORRUPT:
        return ResponseCacheError(path, f"the response cache {path} is damaged ({err})", fix="delete it")
    if code == sqlite3.SQLITE_NOTADB:
        return ResponseCacheError(path, f"{path} is not an SQLite response cache ({err})", fix="delete it")
    return None


def sqlite_cache_v1(path: Union[str, Path]) -> ResponseCache:
    """Registered as ``spacy_ner_project.SQLiteCache.v1`` (llm_misc).

    path (str | Path): SQLite file; created with its folders if missing. A path that is a
        folder or not writable, a read-only or damaged file, or a file that is not this cache
        raises ResponseCacheError (a UserError, so a ValueError): one line naming the path and
        what to do.
    """
    return ResponseCache(path)
