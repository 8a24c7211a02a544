"""Detection outputs for the microscope and for people: MagC files, CSV, overlay, report; stage order."""

from sectionseg.export.ordering import path_length, stage_order
from sectionseg.export.outputs import CSV_COLUMNS, write_detection_outputs

__all__ = ["stage_order", "path_length", "write_detection_outputs", "CSV_COLUMNS"]
