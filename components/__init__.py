"""Functions registered with spaCy and spacy-llm (shipped as ``spacy_ner_project.components``).

Every registered function is declared as an entry point in ``setup.cfg``, so
``spacy.load`` and ``spacy train`` find them without importing this package.
"""
