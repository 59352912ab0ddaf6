"""Subcommands of the ``landscape`` command line; each module has ``main(argv) -> int``."""
