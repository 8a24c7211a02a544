"""Pairing tissue and magnetic parts by their shared long edge (sectionseg.geometry.pairing)."""

import numpy as np
import pytest
import shapely

from sectionseg.geometry import Part, pair_parts
from sectionseg.geometry.pairing import pair_cost
from sectionseg.simulation import random_layout


def _shuffled(seed, n_sections=60, **layout):
    rng = np.random.default_rng(seed)
    sections = random_layout(rng, 1500, 1500, n_sections=n_sections, **layout)
    t_order, m_order = rng.permutation(len(sections)), rng.permutation(len(sections))
    tissues = [sections[i].tissue for i in t_order]
    magnets = [sections[i].magnet for i in m_order]
    return rng, t_order, m_order, tissues, magnets


def _detected(rng, part, grow=2.0, sigma=0.7):
    """A detection-like quad: the part grown by ``grow`` px, corners jittered."""
    poly = shapely.Polygon(part.polygon).buffer(grow, join_style="mitre")
    pts = np.asarray(poly.exterior.coords)[:-1]
    return Part(pts + rng.normal(0.0, sigma, pts.shape))


def test_recovers_every_pair_of_a_shuffled_layout():
    _, t_order, m_order, tissues, magnets = _shuffled(0)
    pairs, lone_t, lone_m = pair_parts(tissues, magnets)
    assert len(pairs) == len(tissues) and not lone_t and not lone_m
    assert all(t_order[i] == m_order[j] for i, j in pairs)


def test_missing_magnets_leave_their_tissues_unpaired():
    _, t_order, m_order, tissues, magnets = _shuffled(1)
    removed = set(m_order[:5].tolist())
    kept = m_order[5:]
    pairs, lone_t, lone_m = pair_parts(tissues, magnets[5:])
    assert all(t_order[i] == kept[j] for i, j in pairs)  # no wrong pair
    assert sorted(t_order[lone_t].tolist()) == sorted(removed)
    assert lone_m == []


def test_crowded_touching_neighbours_do_not_swap():
    """Sections slid against each other in parallel ribbons, with detection-like noisy quads."""
    for seed in (2, 3):
        rng, t_order, m_order, tissues, magnets = _shuffled(
            seed, n_sections=80, touching_fraction=0.9, align_probability=0.95, align_sigma=2.0
        )
        tissues = [_detected(rng, t) for t in tissues]
        magnets = [_detected(rng, m) for m in magnets]
        pairs, lone_t, lone_m = pair_parts(tissues, magnets)
        assert all(t_order[i] == m_order[j] for i, j in pairs)
        assert len(pairs) == len(tissues)


def test_cost_prefers_the_shared_edge_and_refuses_far_parts():
    tissue = Part([[0, 0], [120, 0], [120, 50], [0, 50]])
    own = Part([[0, 50], [120, 50], [120, 95], [0, 95]])
    shifted = Part([[60, 52], [180, 52], [180, 97], [60, 97]])  # a neighbour's, half along
    far = Part([[0, 80], [120, 80], [120, 125], [0, 125]])  # 30 px away
    inside = Part([[0, 10], [120, 10], [120, 40], [0, 40]])  # on the tissue's side of its edge
    assert pair_cost(tissue, own, max_gap=10) < 0.1
    assert pair_cost(tissue, own, max_gap=10) < pair_cost(tissue, shifted, max_gap=10) < np.inf
    assert pair_cost(tissue, far, max_gap=10) == np.inf
    assert pair_cost(tissue, inside, max_gap=10) == np.inf
    pairs, lone_t, lone_m = pair_parts([tissue], [far, shifted, own])
    assert pairs == [(0, 2)] and lone_t == [] and lone_m == [0, 1]


def test_empty_inputs():
    t = Part([[0, 0], [10, 0], [10, 4], [0, 4]])
    assert pair_parts([], []) == ([], [], [])
    assert pair_parts([t], []) == ([], [0], [])
    assert pair_parts([], [t, t]) == ([], [], [0, 1])


def test_snap_shared_edge_closes_gaps_and_keeps_far_parts():
    from sectionseg.geometry import snap_shared_edge

    tissue = Part([[0, 0], [120, 0], [120, 50], [0, 50]])
    magnet = Part([[1, 52.0], [121, 51.0], [120, 96], [0, 96]])  # 1.5 px gap, slightly tilted
    t2, m2 = snap_shared_edge(tissue, magnet)
    shared = [c for c in t2.polygon if np.min(np.hypot(*(m2.polygon - c).T)) < 1e-6]
    assert len(shared) == 2  # the two parts now share the two corners of one edge
    assert shapely.Polygon(t2.polygon).intersection(shapely.Polygon(m2.polygon)).area < 1e-6
    assert abs(t2.area + m2.area - tissue.area - magnet.area) < 0.02 * (tissue.area + magnet.area)
    far = Part([[0, 80], [120, 80], [120, 125], [0, 125]])
    t3, f3 = snap_shared_edge(tissue, far)
    assert t3 == tissue and f3 == far


def test_the_px_floors_follow_the_size_of_an_image_px():
    # 10 px long parts 2.5 px apart: 10 % of their length (1 px) is below the 3 px floor of the gap
    tissue = Part(np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 4.0], [0.0, 4.0]]))
    magnet = Part(np.array([[0.0, 6.5], [10.0, 6.5], [10.0, 9.5], [0.0, 9.5]]))
    assert pair_parts([tissue], [magnet])[0] == [(0, 0)]
    assert pair_parts([tissue], [magnet], pixel=0.5)[0] == []  # the floor: 1.5 px
    # the same parts drawn 4 times larger, with an image px 4 units long: the same cost
    big_t, big_m = Part(4 * tissue.polygon), Part(4 * magnet.polygon)
    assert pair_parts([big_t], [big_m], pixel=4.0)[0] == [(0, 0)]
    cost = pair_cost(tissue, magnet, max_gap=3.0)
    assert pair_cost(big_t, big_m, max_gap=12.0, pixel=4.0) == pytest.approx(cost)
    # an image px 2 units long: the cost's length unit is 2 units, not 10 % of the edge (1)
    assert pair_cost(tissue, magnet, max_gap=3.0, pixel=2.0) == pytest.approx(cost / 2)


def test_with_the_wafer_s_depths_a_section_s_own_magnet_beats_a_dummy_strip_across_its_tissue():
    """The magnet's mask stops short of the shared edge (a gap of 5 % of the edge); a dummy strip
    detected as a magnet lies flush along the tissue's other long side, half a magnet deep."""
    tissue = Part([[0, 0], [100, 0], [100, 40], [0, 40]])
    magnet = Part([[0, 45], [100, 45], [100, 88], [0, 88]])
    dummy = Part([[0, -22], [100, -22], [100, 0], [0, 0]])
    assert pair_parts([tissue], [magnet, dummy]) == ([(0, 1)], [], [0])  # edges alone: the dummy
    assert pair_parts([tissue], [magnet, dummy], depths=(40.0, 43.0)) == ([(0, 0)], [], [1])
    cost = pair_cost(tissue, dummy, max_gap=10.0, depths=(40.0, 43.0), depth_unit=0.2)
    assert cost == pytest.approx(pair_cost(tissue, dummy, max_gap=10.0) + abs(22 / 43 - 1) / 0.2)
    # a part that cannot pair stays impossible
    far = Part([[0, 300], [100, 300], [100, 343], [0, 343]])
    assert pair_cost(tissue, far, max_gap=10.0, depths=(40.0, 43.0)) == float("inf")
