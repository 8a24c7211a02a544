"""Round trips between all annotation formats, on hand-made and real section layouts."""

from __future__ import annotations

import configparser
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from sectionseg.formats import (
    FORMATS,
    MagcFile,
    direction_from_magc_angle,
    guess_format,
    magfinder_angle,
    read_magc,
    read_sections,
    write_sections,
)
from sectionseg.geometry import Section, canonical_sections, part_direction, section_direction

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_layouts"

# (name, fmt, dialect, file name, keeps dummies, keeps scores)
VARIANTS = [
    ("magc-pair", "magc-pair", None, "pair", False, False),
    ("magc-magfinder", "magc", "magfinder", "s.magc", True, False),
    ("magc-sbemimage", "magc", "sbemimage", "s.magc", True, False),
    ("labelme", "labelme", None, "s.json", True, True),
    ("coco", "coco", None, "s.coco.json", True, True),
]


def rect(cx, cy, length, width, angle_deg):
    """Corners of a rectangle centred at (cx, cy) whose long side is at ``angle_deg`` CCW on screen."""
    a = math.radians(angle_deg)
    u = np.array([math.cos(a), -math.sin(a)])  # y points down
    v = np.array([math.sin(a), math.cos(a)])
    c = np.array([cx, cy])
    return np.array(
        [
            c - u * length / 2 - v * width / 2,
            c + u * length / 2 - v * width / 2,
            c + u * length / 2 + v * width / 2,
            c - u * length / 2 + v * width / 2,
        ]
    )


def section_at(cx, cy, angle, dummy=False, score=None):
    """Tissue and magnet sharing a long edge (magnet 'below' the tissue), optional dummy strip."""
    a = math.radians(angle)
    v = np.array([math.sin(a), math.cos(a)])
    tissue = rect(cx, cy, 130.25, 50.5, angle)
    mx, my = np.array([cx, cy]) + v * 50.5
    magnet = rect(mx, my, 130.25, 50.5, angle)
    d = rect(*(np.array([cx, cy]) - v * 35.5), 130.25, 20.125, angle) if dummy else None
    return Section.from_arrays(tissue, magnet, d, score=score)


@pytest.fixture
def layout():
    """Sections in the canonical corner order (writers keep it, so round trips are exact)."""
    sections = [
        section_at(100.3, 120.7, 12.5, dummy=True, score=0.875),
        section_at(400, 150, 100, score=0.5),
        section_at(250.123, 420.456, 171.2, dummy=True),
        section_at(600, 500, 0),
    ]
    # A 5-vertex tissue part: formats must keep whatever vertices exist.
    pent = np.array([[700, 100], [780.5, 110], [800, 160.25], [760, 190], [705.75, 170]])
    sections.append(Section.from_arrays(pent, pent + [0, 95]))
    return canonical_sections(sections)


def assert_same(a: list[Section], b: list[Section], dummies: bool, tol: float = 1e-3):
    assert len(a) == len(b)
    for i, (sa, sb) in enumerate(zip(a, b)):
        names = ("tissue", "magnet", "dummy") if dummies else ("tissue", "magnet")
        for name in names:
            pa, pb = getattr(sa, name), getattr(sb, name)
            assert (pa is None) == (pb is None), (i, name)
            if pa is not None:
                assert pa.polygon.shape == pb.polygon.shape, (i, name)
                np.testing.assert_allclose(pa.polygon, pb.polygon, atol=tol, err_msg=f"{i} {name}")


def write_read(tmp: Path, sections, variant, **kw):
    name, fmt, dialect, fname, _, _ = variant
    path = tmp / fname
    write_sections(path, sections, fmt, magc_dialect=dialect or "magfinder", **kw)
    # Read with the format guessed from the path (and sniffed content for JSON).
    assert guess_format(path, for_write=False) == fmt
    return read_sections(path)


@pytest.mark.parametrize("va,vb", list(itertools.product(VARIANTS, VARIANTS)), ids=lambda v: v[0])
def test_round_trip_every_pair(tmp_path, layout, va, vb):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    once = write_read(tmp_path / "a", layout, va)
    twice = write_read(tmp_path / "b", once, vb)
    keeps_dummy = va[4] and vb[4]
    assert_same(layout, twice, dummies=keeps_dummy)
    if not keeps_dummy:
        assert all(s.dummy is None for s in twice)
    if va[5] and vb[5]:
        assert [s.score for s in twice] == pytest.approx([s.score for s in layout])
    else:
        assert all(s.score is None for s in twice)


def test_magc_keeps_dummies_and_orders(tmp_path, layout):
    for dialect in ("magfinder", "sbemimage"):
        path = tmp_path / f"{dialect}.magc"
        serial, stage = [4, 2, 0, 1, 3], [1, 0, 3, 2, 4]
        write_sections(path, layout, magc_dialect=dialect, serial_order=serial, stage_order=stage)
        magc = read_magc(path)
        assert isinstance(magc, MagcFile)
        assert magc.dialect == dialect
        assert magc.serial_order == serial and magc.stage_order == stage
        assert_same(layout, magc.sections, dummies=True)


def test_magc_default_orders_are_identity(tmp_path, layout):
    path = tmp_path / "s.magc"
    write_sections(path, layout)
    magc = read_magc(path)
    assert magc.serial_order == magc.stage_order == list(range(len(layout)))


def test_magfinder_file_layout_and_angle(tmp_path):
    # Long axis at 30 deg, magnet 'below' it: the magnet-to-tissue direction is 120 deg, stored as
    # ((120 - 90) % 360) - 180 = -150; long axis at 150 deg: direction 240 = -120, stored -30.
    sections = [section_at(200, 200, 30), section_at(500, 500, 150)]
    path = tmp_path / "s.magc"
    write_sections(path, sections)
    text = path.read_text()
    cp = configparser.ConfigParser(interpolation=None)
    cp.read_string(text)
    assert cp.sections()[:2] == ["sections", "section.0000"]
    assert "end_sections" in cp and "end_magnets" in cp
    assert cp.get("sections", "number") == "2" and cp.get("magnets", "number") == "2"
    assert float(cp.get("section.0000", "angle")) == pytest.approx(-150, abs=1e-3)
    assert float(cp.get("section.0001", "angle")) == pytest.approx(-30, abs=1e-3)
    assert float(cp.get("magnet.0001", "angle")) == pytest.approx(-30, abs=1e-3)
    assert direction_from_magc_angle(-150) == pytest.approx(120)
    assert direction_from_magc_angle(-30) == pytest.approx(-120)
    written = read_magc(path).sections
    for i, s in enumerate(written):
        assert section_direction(s) == pytest.approx((120, -120)[i], abs=1e-3)
        for entry, part in ((f"section.{i:04d}", s.tissue), (f"magnet.{i:04d}", s.magnet)):
            assert float(cp.get(entry, "angle")) == pytest.approx(magfinder_angle(part_direction(part)), abs=1e-3)
            assert float(cp.get(entry, "area")) == pytest.approx(part.area, rel=1e-4)
        loc = [float(v) for v in cp.get(f"magnet.{i:04d}", "location").split(",")]
        np.testing.assert_allclose(loc, s.magnet.centre, atol=1e-3)
        centre = [float(v) for v in cp.get(f"section.{i:04d}", "center").split(",")]
        np.testing.assert_allclose(centre, s.tissue.centre, atol=1e-3)
        assert list(cp[f"magnet.{i:04d}"])[-1] == "location"  # SBEMimage and MagFinder keep the last key
    assert cp.get("serial_order", "serial_order") == "0,1"
    assert cp.get("stage_order", "stage_order") == "0,1"


def test_sbemimage_file_layout(tmp_path, layout):
    path = tmp_path / "s.magc"
    write_sections(path, layout, magc_dialect="sbemimage")
    cp = configparser.ConfigParser(interpolation=None)
    cp.read_string(path.read_text())
    assert "sections.0000" in cp and "magnets.0004" in cp and "section.0000" not in cp
    assert cp.get("serialorder", "serialorder") == "0,1,2,3,4"
    assert cp.get("tsporder", "tsporder") == "0,1,2,3,4"


def test_sbemimage_file_without_magnet_polygons(tmp_path):
    # As SBEMimage writes them: magnets carry only a location -> magnet part unknown.
    path = tmp_path / "old.magc"
    path.write_text(
        "[sections]\nnumber = 1\n\n[sections.0]\npolygon = 0,0,10,0,10,5,0,5\n"
        "center = 5,2.5\narea = 50\nangle = 90\n\n[magnets]\nnumber = 1\n\n"
        "[magnets.0]\nlocation = 5,8\n\n[serialorder]\nserialorder = 0\n\n"
        "[tsporder]\ntsporder = 0\n"
    )
    magc = read_magc(path)
    assert magc.dialect == "sbemimage"
    s = magc.sections[0]
    assert s.magnet is None and s.extra["magnet_location"] == (5.0, 8.0)
    np.testing.assert_allclose(s.tissue.polygon, [[0, 0], [10, 0], [10, 5], [0, 5]])
    # Writing it back keeps the location; the MagC pair refuses the half section.
    out = tmp_path / "new.magc"
    write_sections(out, magc.sections)
    assert read_magc(out).sections[0].extra["magnet_location"] == (5.0, 8.0)


def test_pair_text_is_compact(tmp_path):
    s = Section.from_arrays([[1, 2], [3.5, 2], [3.5, 4.25], [1, 4.1234]], [[1, 4], [3, 4], [3, 6], [1, 6]])
    write_sections(tmp_path, [s])
    # Canonical order: clockwise on screen, the magnet (below) on the tissue's edge p3 -> p0 and on
    # its own edge p1 -> p2.
    assert (tmp_path / "source_sections_tissue.txt").read_text() == "1,4.123\t1,2\t3.5,2\t3.5,4.25\t\n"
    assert (tmp_path / "source_sections_mag.txt").read_text() == "1,6\t1,4\t3,4\t3,6\t\n"
    # Named by either file too.
    assert_same(canonical_sections([s]), read_sections(tmp_path / "source_sections_mag.txt"), False)


def test_scale_on_read(tmp_path, layout):
    write_sections(tmp_path / "s.json", layout)
    half = read_sections(tmp_path / "s.json", scale=0.5)
    np.testing.assert_allclose(half[2].dummy.polygon, layout[2].dummy.polygon * 0.5, atol=1e-3)


def test_labelme_document(tmp_path, layout):
    path = tmp_path / "s.json"
    write_sections(path, layout, image_path="wafer.tif")
    doc = json.loads(path.read_text())
    assert doc["imagePath"] == "wafer.tif" and doc["imageData"] is None
    xmax = max(p.polygon[:, 0].max() for s in layout for p in s.parts().values())
    ymax = max(p.polygon[:, 1].max() for s in layout for p in s.parts().values())
    assert (doc["imageWidth"], doc["imageHeight"]) == (math.ceil(xmax), math.ceil(ymax))
    shapes = doc["shapes"]
    assert [(sh["label"], sh["group_id"]) for sh in shapes[:4]] == [
        ("tissue", 0),
        ("magnet", 0),
        ("dummy", 0),
        ("tissue", 1),
    ]
    assert all(sh["shape_type"] == "polygon" for sh in shapes)
    write_sections(path, layout, image_size=(1000, 800))
    doc = json.loads(path.read_text())
    assert (doc["imageWidth"], doc["imageHeight"]) == (1000, 800)


def test_coco_document_loads_in_pycocotools(tmp_path, layout):
    from pycocotools.coco import COCO

    path = tmp_path / "s.coco.json"
    write_sections(path, layout, image_path="wafer.tif", image_size=(900, 700))
    coco = COCO(str(path))
    assert coco.imgs[1]["width"] == 900 and coco.imgs[1]["height"] == 700
    assert {c["name"]: c["id"] for c in coco.loadCats(coco.getCatIds())} == {"tissue": 1, "magnet": 2, "dummy": 3}
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[1]))
    assert len(anns) == sum(len(s.parts()) for s in layout)
    for ann in anns:
        name = ("tissue", "magnet", "dummy")[ann["category_id"] - 1]
        part = getattr(layout[ann["attributes"]["section"]], name)
        assert ann["area"] == pytest.approx(part.area, abs=1e-3)
        x, y, w, h = ann["bbox"]
        assert (x, y) == pytest.approx(tuple(part.polygon.min(axis=0)), abs=1e-3)
        # The rasterised mask covers about the polygon's area.
        assert coco.annToMask(ann).sum() == pytest.approx(part.area, rel=0.1)


def test_guess_format(tmp_path):
    assert guess_format(tmp_path, for_write=False) == "magc-pair"
    assert guess_format(tmp_path / "new_folder", for_write=True) == "magc-pair"
    assert guess_format(tmp_path / "source_sections_tissue.txt", for_write=False) == "magc-pair"
    assert guess_format(tmp_path / "x.magc", for_write=True) == "magc"
    assert guess_format(tmp_path / "x.json", for_write=True) == "labelme"
    assert guess_format(tmp_path / "x.coco.json", for_write=True) == "coco"
    (tmp_path / "c.json").write_text('{"images": [], "annotations": []}')
    assert guess_format(tmp_path / "c.json", for_write=False) == "coco"
    (tmp_path / "l.json").write_text('{"shapes": []}')
    assert guess_format(tmp_path / "l.json", for_write=False) == "labelme"
    assert set(FORMATS) == {"magc-pair", "magc", "labelme", "coco"}


def _real(wafer):
    folder = REAL / wafer
    if not (folder / "source_sections_tissue.txt").is_file():
        pytest.skip(f"real layouts absent ({folder})")
    return folder


@pytest.mark.parametrize("wafer,count", [("wafer1", 514), ("wafer2", 503)])
def test_real_layouts_round_trip(tmp_path, wafer, count):
    sections = read_sections(_real(wafer), scale=1 / 3)
    assert len(sections) == count
    # Full resolution / 3: parts are about 130 x 50 px.
    areas = np.array([s.tissue.area for s in sections])
    assert 2000 < np.median(areas) < 12000
    sections = sections[::5]  # every pair of formats on 1/5 of the wafer keeps the test fast
    for va, vb in itertools.product(VARIANTS, VARIANTS):
        a, b = tmp_path / f"{va[0]}-{vb[0]}-a", tmp_path / f"{va[0]}-{vb[0]}-b"
        a.mkdir()
        b.mkdir()
        assert_same(sections, write_read(b, write_read(a, sections, va), vb), dummies=False)


@pytest.mark.parametrize("wafer", ["wafer1", "wafer2"])
def test_real_files_round_trip_byte_identical(tmp_path, real_layouts, wafer):
    """The original MagC files come back byte for byte, directly and through every other format."""
    src = real_layouts / wafer
    originals = {name: (src / name).read_bytes() for name in ("source_sections_tissue.txt", "source_sections_mag.txt")}
    sections = read_sections(src)
    write_sections(tmp_path / "direct", sections, "magc-pair")
    write_sections(tmp_path / "integers", sections, "magc-pair", pair_integers=True)
    for name, data in originals.items():
        assert (tmp_path / "direct" / name).read_bytes() == data
        assert (tmp_path / "integers" / name).read_bytes() == data
    for va in VARIANTS[1:]:
        middle = tmp_path / va[0]
        middle.mkdir()
        once = write_read(middle, sections, va)
        write_sections(middle / "pair", once, "magc-pair")
        for name, data in originals.items():
            assert (middle / "pair" / name).read_bytes() == data, (va[0], name)
