"""Command line interface: ``sectionseg <command> ...``; one module per command, each a thin layer
over the Python API. Each module defines ``register(subparsers)`` which adds its parser and sets
``func`` (called with the parsed ``argparse.Namespace``, returns an exit code or None)."""
