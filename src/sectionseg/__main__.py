"""``python -m sectionseg``: the same as the ``sectionseg`` command."""
import sys

from sectionseg.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
