"""Evaluation: COCO metrics (pycocotools) and microscope geometry errors, JSON/PNG reports."""

from sectionseg.evaluation.coco_metrics import coco_metrics, masks_to_rles
from sectionseg.evaluation.geometry_metrics import geometry_metrics, match_parts
from sectionseg.evaluation.report import (
    evaluate_model,
    evaluate_predictions,
    format_table,
    predict_dataset,
    write_report,
)
from sectionseg.evaluation.wafer_metrics import compare_sections, format_comparison, held_out, match_polygons

__all__ = [
    "coco_metrics",
    "compare_sections",
    "evaluate_model",
    "evaluate_predictions",
    "format_comparison",
    "format_table",
    "geometry_metrics",
    "held_out",
    "masks_to_rles",
    "match_parts",
    "match_polygons",
    "predict_dataset",
    "write_report",
]
