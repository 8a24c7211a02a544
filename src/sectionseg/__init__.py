"""sectionseg: find ultrathin serial sections (tissue + magnetic part) on MagC wafer images.

Coordinate convention, everywhere in the package: ``x, y`` in pixels of the image, origin at the
top-left corner of the top-left pixel (so the centre of pixel ``(col, row)`` is ``(col + 0.5, row + 0.5)``),
x to the right, y downwards. This is the convention of MagFinder.

Pipeline stages, one sub-package each, imports flowing downwards only::

    errors, geometry        basic types: Section, Part, polygon helpers
    io, formats             images and annotation files
    simulation              realistic synthetic wafers
    datasets                tiles, synthetic pastes, torch Dataset + augmentation
    visualize               overlays for people
    workflows               what each command does, as functions (e.g. adapt_to_wafer)
    cli                     thin command line over all of the above
"""

from sectionseg.errors import InputError

__all__ = ["InputError", "Part", "Section"]


def __getattr__(name: str):
    if name == "__version__":
        # the one version number is pyproject.toml's, read from the installed package's metadata
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("sectionseg")
        except PackageNotFoundError:  # run from a source tree that was never installed
            return "0+unknown"
    # Part and Section load their modules (numpy, scipy, shapely) on first use: ``python -m
    # sectionseg`` imports this package before it can catch a Ctrl-C, so it must load quickly.
    if name in ("Part", "Section"):
        from sectionseg.geometry import section

        return getattr(section, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
