"""spaCy's languages by code: a blank pipeline of one, every problem one line.

Two problems have one :class:`LanguageError` each: a code spaCy does not know (``zz``), and a
language that spaCy knows but whose tokenizer needs a package that is not installed (``ja``:
SudachiPy, ``ko``: mecab-ko, ``th``: PyThaiNLP, ``vi``: pyvi), for which spaCy raises an
ImportError from deep inside ``spacy.blank``. spaCy is imported inside the functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Optional

from spacy_ner_project.errors import UserError, one_line
from spacy_ner_project.extras import missing_extra_error

if TYPE_CHECKING:
    from spacy.language import Language


class LanguageError(UserError):
    """Language ``lang`` cannot be used; ``reason`` says why and what to do (no command-line option)."""

    def __init__(self, lang: str, reason: str) -> None:
        super().__init__(reason)
        self.lang = lang
        self.reason = reason


def check_language(lang: str) -> str:
    """``lang`` when spaCy knows the code; a :class:`LanguageError` otherwise."""
    import spacy

    try:
        spacy.util.get_lang_class(lang)
    except ImportError:
        raise LanguageError(lang, f"unknown language code {lang!r}: use a spaCy language code such as en, de") from None
    return lang


def blank(lang: str, *, config: Optional[Mapping[str, Any]] = None) -> Language:
    """``spacy.blank(lang, config=config)``; an unknown code or a missing tokenizer package is
    a :class:`LanguageError` naming the code (and spaCy's install hint)."""
    import spacy

    check_language(lang)
    try:
        return spacy.blank(lang, config=dict(config or {}))
    except ImportError as err:  # the language's tokenizer imports a package that is not installed
        if missing_extra_error(err) is not None:
            raise  # a module of one of the plugin's extras (from the config): cli.py names the extra
        hint = one_line(str(err)) or type(err).__name__
        raise LanguageError(lang, f"language {lang!r} needs a package that is not installed: {hint}") from None
