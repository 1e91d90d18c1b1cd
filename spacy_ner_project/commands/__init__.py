"""CLI commands that are more than a wrapper around one core function (registered in cli.py)."""
