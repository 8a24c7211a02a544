"""``python -m sectionseg``: the same as the ``sectionseg`` command."""

import sys

if __name__ == "__main__":
    try:  # a Ctrl-C while the modules load is an interruption too, not a traceback
        from sectionseg.cli.main import console
    except KeyboardInterrupt:
        print("sectionseg: interrupted", file=sys.stderr)
        sys.exit(130)
    console()
