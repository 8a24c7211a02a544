"""Checks of the written-section convention, stated from the definition (not from the implementation):
tissue clockwise on screen, first edge short, magnet on the tissue's edge p3 -> p0; magnet clockwise
with magnet p1 ~ tissue p0 and magnet p2 ~ tissue p3; direction = first edge = magnet-to-tissue."""

from __future__ import annotations

import math

import numpy as np


def cw(points) -> bool:
    """Clockwise on screen (image frame, y down): positive shoelace sum."""
    p = np.asarray(points, dtype=float)
    return float(np.dot(p[:, 0], np.roll(p[:, 1], -1)) - np.dot(p[:, 1], np.roll(p[:, 0], -1))) > 0


def screen_angle(vector) -> float:
    """Degrees counter-clockwise on screen from +x of an image-frame vector."""
    return math.degrees(math.atan2(-vector[1], vector[0]))


def angle_gap(a: float, b: float) -> float:
    """Smallest absolute difference of two directions (degrees, period 360)."""
    return abs((a - b + 180.0) % 360.0 - 180.0)


def magnet_to_tissue(tissue, magnet) -> float:
    """Direction (screen degrees) from the magnet's centre to the tissue's (vertex means)."""
    return screen_angle(np.mean(tissue, axis=0) - np.mean(magnet, axis=0))


def assert_convention(tissue, magnet, max_gap: float = 6.0, max_angle: float = 20.0) -> None:
    """Assert the convention for one paired section given as ``(4, 2)`` corner arrays (image px).

    ``max_gap``: how far (px) magnet p1/p2 may lie from tissue p0/p3 (a gap between the parts);
    ``max_angle``: how far (degrees) the first edge may turn from the magnet-to-tissue direction.
    """
    t, m = np.asarray(tissue, dtype=float), np.asarray(magnet, dtype=float)
    assert cw(t) and cw(m)
    lengths = np.hypot(*(np.roll(t, -1, axis=0) - t).T)
    assert lengths[0] + lengths[2] < lengths[1] + lengths[3]  # edges 0 and 2 are the short ones
    # the magnet is beside edge p3 -> p0: that edge's midpoint is the nearest to the magnet centre
    mids = (t + np.roll(t, -1, axis=0)) / 2
    assert int(np.argmin(np.hypot(*(mids - m.mean(axis=0)).T))) == 3
    assert np.hypot(*(m[1] - t[0])) < max_gap and np.hypot(*(m[2] - t[3])) < max_gap
    d = magnet_to_tissue(t, m)
    assert angle_gap(screen_angle(t[1] - t[0]), d) < max_angle
    assert angle_gap(screen_angle(m[1] - m[0]), d) < max_angle
