"""Scoring entities: one-to-one matching of gold and predicted entities (matching) and scores over spaCy Examples (spans)."""
