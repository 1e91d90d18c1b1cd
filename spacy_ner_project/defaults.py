"""Defaults that the library and the command line share, in one place.

Kept free of heavy imports: the commands read these for their options, and a command's
``--help`` must not load spaCy.
"""

CPU = -1  # the device id that means the CPU (spaCy's convention for --gpu-id / use_gpu)
DISPLACY_LIMIT = 10  # documents rendered per displaCy section of report.html
VISUALIZE_LIMIT = 20  # documents on the visualize command's page (one page of its own, so more than a report section)

# distil (spacy_ner_project.training.distil.DistilSettings): the student starts from these teacher
# layers (0-based; the default backbone has 6) and learns the teacher's hidden states
DISTIL_KEEP = (0, 2, 4, 5)
DISTIL_EPOCHS = 8
DISTIL_LEARN_RATE = 1e-4
DISTIL_BATCH_POSITIONS = 4096  # padded word pieces per batch
