"""Whole-wafer detection with the Mask R-CNN model: tiling, inference, merging, scale, pipeline."""
from sectionseg.detection.inference import Detection, model_predictor, predict_tiles
from sectionseg.detection.merge import merge_detections
from sectionseg.detection.pipeline import DetectionResult, detect_wafer
from sectionseg.detection.scale import estimate_scale, scale_from_section_size
from sectionseg.detection.tiling import Tile, WaferSource, plan_tiles

__all__ = ["Detection", "DetectionResult", "Tile", "WaferSource", "detect_wafer", "estimate_scale",
           "merge_detections", "model_predictor", "plan_tiles", "predict_tiles", "scale_from_section_size"]
