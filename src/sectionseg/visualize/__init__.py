"""Pictures for people: annotation overlays."""

from sectionseg.visualize.overlay import PART_COLOURS, draw_overlay, to_display_rgb

__all__ = ["PART_COLOURS", "draw_overlay", "to_display_rgb"]
