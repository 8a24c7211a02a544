"""Build the API reference with pdoc (``make docs``); the arguments are pdoc's.

Some packages export names lazily (a module ``__getattr__``, so that importing them stays light:
``sectionseg.Part`` / ``Section``, the names of ``sectionseg.detection``, which load torch). pdoc
looks for the names of ``__all__`` among a module's attributes only, so they are loaded here first,
and documented where ``__all__`` lists them.
"""

from __future__ import annotations

import importlib

import pdoc.__main__

LAZY_PACKAGES = ("sectionseg", "sectionseg.detection")


def load_lazy_names() -> None:
    for name in LAZY_PACKAGES:
        module = importlib.import_module(name)
        for attr in module.__all__:
            if attr not in vars(module):
                setattr(module, attr, getattr(module, attr))


if __name__ == "__main__":
    load_lazy_names()
    pdoc.__main__.cli()
