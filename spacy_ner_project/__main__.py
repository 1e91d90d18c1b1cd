from spacy_ner_project.cli import main

main()
