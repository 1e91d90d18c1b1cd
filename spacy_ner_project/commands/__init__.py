"""The command line's commands, one module each: typer functions that parse options, call the
core library and print. ``cli.COMMANDS`` registers them by name; a module is imported only when
its command runs (or its ``--help`` is asked for)."""
