"""LLM output in the core: placing answer strings in a text (align) and a local server launcher (server)."""
