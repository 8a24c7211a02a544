"""Realistic synthetic MagC wafers: the stand-in for the microscope.

- :mod:`.layout`: where the sections lie (random, or from an annotation file) and layout statistics;
- :mod:`.styles`: appearance and layout parameter ranges (domain randomisation), named styles;
- :mod:`.render`: the gray (brightfield) and fluorescence images of a layout;
- :mod:`.wafer`: :func:`simulate_wafer`, one wafer folder with images and ground truth.
"""

from sectionseg.simulation.layout import add_dummies, layout_from_file, layout_stats, random_layout
from sectionseg.simulation.render import render_wafer
from sectionseg.simulation.styles import STYLES, Style, get_style, style_names
from sectionseg.simulation.wafer import simulate_wafer

__all__ = [
    "random_layout",
    "layout_from_file",
    "add_dummies",
    "layout_stats",
    "render_wafer",
    "Style",
    "STYLES",
    "get_style",
    "style_names",
    "simulate_wafer",
]
