"""spacy-ner-project: NER with spaCy, from CoNLL-2003 to trained and LLM pipelines.

The registered spaCy/spacy-llm functions live in :mod:`spacy_ner_project.components`
and are found by spaCy through entry points (see ``setup.cfg``); importing this
package does not import them.
"""

__version__ = "0.1.0"
