"""Evaluation: score pipelines on gold DocBins (evaluate), LLM run counters (llm), reports (report, templates) and displaCy pages (visualize)."""
