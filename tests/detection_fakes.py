"""Fake predictors for the detection tests (torchvision-style outputs, no model)."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from sectionseg.detection.settings import RepairSettings
from sectionseg.detection.tiling import Tile
from sectionseg.geometry.raster import polygon_mask


def _output(masks: list[np.ndarray], labels: list[int], scores: list[float], shape) -> dict:
    h, w = shape
    boxes = []
    for m in masks:
        ys, xs = np.nonzero(m)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return {
        "boxes": torch.tensor(np.array(boxes, dtype=np.float32).reshape(-1, 4)),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "scores": torch.tensor(scores, dtype=torch.float32),
        "masks": torch.from_numpy(np.array(masks, dtype=np.float32).reshape(-1, 1, h, w)),
    }


#: settings for a :class:`GroundTruthPredictor`, scripted tile by tile in plan order: no polarity trial
#: on sample tiles before the plan (it would take the first tiles' answers)
SCRIPTED = RepairSettings().without("polarity")


class GroundTruthPredictor:
    """Returns, for each tile of ``tiles`` (called in plan order), the true masks of the parts visible
    in it, clipped to the tile. ``parts``: list of ``(label, polygon (N, 2) working px)``, or of
    ``(label, polygon, score)`` for a part scored otherwise than ``score``."""

    def __init__(self, parts, tiles: list[Tile], score: float = 0.99):
        self.parts, self.tiles, self.score = parts, list(tiles), score
        self.calls = 0

    def __call__(self, images):
        outputs = []
        for image in images:
            tile = self.tiles[self.calls]
            self.calls += 1
            assert tuple(image.shape[1:]) == (tile.height, tile.width)
            masks, labels, scores = [], [], []
            for label, poly, *score in self.parts:
                m = polygon_mask(poly, (tile.height, tile.width), offset=(tile.x0, tile.y0))
                if m.sum() >= 4:
                    masks.append(m)
                    labels.append(label)
                    scores.append(score[0] if score else self.score)
            outputs.append(_output(masks, labels, scores, (tile.height, tile.width)))
        return outputs


def detect_scripted(parts, gray: np.ndarray, fluo: np.ndarray | None = None, settings: RepairSettings | None = None):
    """``detect_wafer`` at scale 1 on 512 px tiles (160 px overlap) with the model scripted to find
    ``parts`` (:class:`GroundTruthPredictor`); the polarity trial always off (``settings`` default: all
    other steps)."""
    from sectionseg.detection import detect_wafer
    from sectionseg.detection.tiling import plan_tiles

    tiles = plan_tiles(gray.shape[1], gray.shape[0], tile_size=512, overlap=160)
    return detect_wafer(
        gray,
        fluo,
        predictor=GroundTruthPredictor(parts, tiles),
        scale=1.0,
        tile_size=512,
        overlap=160,
        progress=False,
        skip_empty=False,
        settings=(settings or RepairSettings()).without("polarity"),
    )


class ContentPredictor:
    """Finds dark blobs of the gray channel (tissue) and bright blobs of the fluo channel (magnet),
    like a model trained at one scale: blobs whose long side is far from ``expected`` px get a low
    score."""

    def __init__(self, expected=(127.0, 114.0), tolerance: float = 1.6):
        self.expected, self.tolerance = expected, tolerance

    def __call__(self, images):
        outputs = []
        for image in images:
            rgb = image.numpy()
            h, w = rgb.shape[1:]
            masks, labels, scores = [], [], []
            for label, binary in ((1, rgb[0] < 0.4), (2, rgb[2] > 0.6)):
                n, comp = cv2.connectedComponents(binary.astype(np.uint8))
                for k in range(1, n):
                    m = comp == k
                    if m.sum() < 20:
                        continue
                    ys, xs = np.nonzero(m)
                    _, (a, b), _ = cv2.minAreaRect(np.column_stack([xs, ys]).astype(np.float32))
                    ratio = (max(a, b) + 1) / self.expected[label - 1]
                    ok = 1 / self.tolerance <= ratio <= self.tolerance
                    masks.append(m)
                    labels.append(label)
                    scores.append(0.99 if ok else 0.3)
            outputs.append(_output(masks, labels, scores, (h, w)))
        return outputs


def rectangle(cx: float, cy: float, length: float, width: float, angle_deg: float) -> np.ndarray:
    """Corners (4, 2) of a rectangle centred at (cx, cy), long side at ``angle_deg`` (ccw on screen)."""
    a = np.radians(angle_deg)
    u = np.array([np.cos(a), -np.sin(a)])
    v = np.array([np.sin(a), np.cos(a)])
    c = np.array([cx, cy])
    return np.array(
        [
            c - u * length / 2 - v * width / 2,
            c + u * length / 2 - v * width / 2,
            c + u * length / 2 + v * width / 2,
            c - u * length / 2 + v * width / 2,
        ]
    )


def draw_sections(width: int, height: int, sections, background: int = 200):
    """Gray and fluo uint8 images of sections ``[(tissue_quad, magnet_quad), ...]``: dark tissue,
    mid-gray magnet on a bright wafer; the magnet is bright in fluo."""
    gray = np.full((height, width), background, np.uint8)
    fluo = np.full((height, width), 20, np.uint8)
    for tissue, magnet in sections:
        from sectionseg.geometry.raster import fill_polygon

        fill_polygon(gray, tissue, 40)
        fill_polygon(gray, magnet, 120)
        fill_polygon(fluo, magnet, 230)
    return gray, fluo
