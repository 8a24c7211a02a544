"""Proofreading and labelling of a wafer's sections in napari (the optional ``gui`` extra).

Pure modules (numpy only, no Qt): :mod:`~sectionseg.gui.layers` (sections <-> napari Shapes data),
:mod:`~sectionseg.gui.doubt` (what needs a look), :mod:`~sectionseg.gui.edits` (the edit model with
undo, the single source of truth), :mod:`~sectionseg.gui.store` (a detection folder read and saved
as ``detect`` writes it). napari and Qt are imported only by :mod:`~sectionseg.gui.viewer`,
:mod:`~sectionseg.gui.widgets`, :mod:`~sectionseg.gui.reader`, :mod:`~sectionseg.gui.writer` and
:mod:`~sectionseg.gui.launch`; ``import sectionseg.gui`` imports neither. The npe2 manifest is
``napari.yaml`` beside this file (plugin name ``sectionseg``).
"""

from __future__ import annotations

GUI_EXTRA_HINT = "the GUI needs the optional extra: pip install 'sectionseg[gui]'"


def gui_available() -> bool:
    """Whether napari and a Qt binding can be imported (without importing them)."""
    import importlib.util

    if importlib.util.find_spec("napari") is None:
        return False
    return any(importlib.util.find_spec(m) is not None for m in ("PyQt5", "PyQt6", "PySide2", "PySide6"))
