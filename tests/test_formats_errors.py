"""Bad annotation files raise InputError naming the file and the 1-based line (or the shape)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sectionseg.errors import InputError
from sectionseg.formats import guess_format, read_magc, read_sections, write_sections
from sectionseg.geometry import Section

SQ = "0,0\t10,0\t10,5\t0,5\t"
SQ2 = "0,5\t10,5\t10,9\t0,9\t"


def pair(folder: Path, tissue: str, mag: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "source_sections_tissue.txt").write_text(tissue, newline="")
    (folder / "source_sections_mag.txt").write_text(mag, newline="")
    return folder


def raises(path, line=None, match=None, fmt=None) -> InputError:
    with pytest.raises(InputError, match=match) as info:
        read_sections(path, fmt)
    return check(info.value, path, line)


def check(err: InputError, path, line) -> InputError:
    assert err.path == str(path)
    assert err.line == line
    assert str(err).startswith(f"{path}:{line}: " if line else f"{path}: ")
    return err


# ---- MagC pair ----


def test_pair_tolerates_crlf_trailing_tab_blank_end_and_bom(tmp_path):
    folder = pair(tmp_path / "p", "\ufeff" + SQ + "\r\n" + SQ + "\r\n\r\n\n", SQ2 + "\n" + SQ2)
    sections = read_sections(folder)
    assert len(sections) == 2
    np.testing.assert_allclose(sections[1].magnet.polygon, [[0, 5], [10, 5], [10, 9], [0, 9]])


def test_pair_too_few_corners(tmp_path):
    folder = pair(tmp_path / "p", f"{SQ}\n{SQ}\n0,0\t10,0\t\n", f"{SQ2}\n{SQ2}\n{SQ2}\n")
    with pytest.raises(InputError, match="expected 4 corners") as info:
        read_sections(folder)
    check(info.value, folder / "source_sections_tissue.txt", 3)


def test_pair_non_numeric(tmp_path):
    folder = pair(tmp_path / "p", f"{SQ}\n{SQ}\n", f"{SQ2}\n0,5\t10,abc\t10,9\t0,9\n")
    with pytest.raises(InputError, match="'abc' is not a number") as info:
        read_sections(folder / "source_sections_tissue.txt")  # named by the other file
    check(info.value, folder / "source_sections_mag.txt", 2)


def test_pair_bad_corner_token(tmp_path):
    folder = pair(tmp_path / "p", f"{SQ}\n", "0,5\t10;5\t10,9\t0,9\n")
    with pytest.raises(InputError, match="not of the form x,y") as info:
        read_sections(folder)
    check(info.value, folder / "source_sections_mag.txt", 1)


def test_pair_unequal_line_counts(tmp_path):
    folder = pair(tmp_path / "p", f"{SQ}\n{SQ}\n{SQ}\n", f"{SQ2}\n{SQ2}\n")
    with pytest.raises(InputError, match="3 tissue lines but 2 magnet lines") as info:
        read_sections(folder)
    check(info.value, folder / "source_sections_tissue.txt", 3)


def test_pair_blank_line_inside(tmp_path):
    folder = pair(tmp_path / "p", f"{SQ}\n\n{SQ}\n", f"{SQ2}\n{SQ2}\n{SQ2}\n")
    with pytest.raises(InputError, match="empty line") as info:
        read_sections(folder)
    check(info.value, folder / "source_sections_tissue.txt", 2)


def test_pair_missing_file(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "source_sections_tissue.txt").write_text(SQ + "\n")
    with pytest.raises(InputError, match="no such file") as info:
        read_sections(folder)
    check(info.value, folder / "source_sections_mag.txt", None)


def test_pair_write_needs_both_parts(tmp_path):
    s = Section.from_arrays([[0, 0], [10, 0], [10, 5]], None)
    with pytest.raises(InputError, match="section 0 has no magnet part"):
        write_sections(tmp_path / "out", [s])
    assert not (tmp_path / "out" / "source_sections_tissue.txt").exists()


# ---- .magc ----

MAGC = """[sections]
number = 2

[section.0000]
polygon = 0,0,10,0,10,5,0,5
center = 5,2.5
area = 50
angle = 90

[section.0001]
polygon = 20,0,30,0,30,5,20,5
center = 25,2.5
area = 50
angle = 90

[end_sections]
"""


def magc(tmp_path, text) -> Path:
    path = tmp_path / "s.magc"
    path.write_text(text)
    return path


def test_magc_minimal_reads(tmp_path):
    m = read_magc(magc(tmp_path, MAGC))
    assert m.dialect == "magfinder" and len(m.sections) == 2
    assert all(s.magnet is None for s in m.sections)


def test_magc_missing_polygon_names_header_line(tmp_path):
    path = magc(tmp_path, MAGC.replace("polygon = 20,0,30,0,30,5,20,5\n", ""))
    err = raises(path, 10, match=r"\[section.0001\]: missing key 'polygon'")
    assert "section.0001" in str(err)


def test_magc_non_numeric_names_key_line(tmp_path):
    raises(
        magc(
            tmp_path,
            MAGC.replace("area = 50\nangle = 90\n\n[section.0001]", "area = big\nangle = 90\n\n[section.0001]"),
        ),
        7,
        match="'big' is not a number",
    )


def test_magc_odd_polygon(tmp_path):
    raises(magc(tmp_path, MAGC.replace("20,0,30,0,30,5,20,5", "20,0,30,0,30,5,20")), 11, match="at least 3 points")


def test_magc_missing_entry(tmp_path):
    raises(
        magc(tmp_path, MAGC.replace("number = 2", "number = 3")),
        2,
        match=r"number = 3 but the entry \[section.0002\] is missing",
    )


def test_magc_bad_number(tmp_path):
    raises(magc(tmp_path, MAGC.replace("number = 2", "number = two")), 2, match="not an integer")


def test_magc_missing_sections(tmp_path):
    raises(magc(tmp_path, "[magnets]\nnumber = 0\n"), None, match=r"no \[sections\]")


def test_magc_duplicate_section_is_invalid_ini(tmp_path):
    raises(magc(tmp_path, MAGC + "\n[section.0001]\npolygon = 1,1,2,2,3,1\n"), 18, match="not a valid INI file")


def test_magc_magnet_without_location(tmp_path):
    text = MAGC + "\n[magnets]\nnumber = 1\n\n[magnet.0001]\npolygon = 20,5,30,5,30,9\n"
    raises(magc(tmp_path, text), 21, match=r"\[magnet.0001\]: missing key 'location'")


def test_magc_magnet_count_mismatch(tmp_path):
    text = MAGC + "\n[magnets]\nnumber = 2\n\n[magnet.0001]\nlocation = 25,7\n"
    raises(magc(tmp_path, text), 19, match="number = 2 but 1 magnet entries")


def test_magc_bad_order(tmp_path):
    text = MAGC + "\n[serial_order]\nserial_order = 1,x\n"
    raises(magc(tmp_path, text), 19, match="not an integer")


def test_magc_write_needs_tissue(tmp_path):
    s = Section.from_arrays(None, [[0, 0], [10, 0], [10, 5]])
    with pytest.raises(InputError, match="no tissue part"):
        write_sections(tmp_path / "s.magc", [s])


# ---- labelme / COCO / JSON ----


def shape(label, pts, gid):
    return {"label": label, "points": pts, "group_id": gid, "shape_type": "polygon", "flags": {}}


TRI = [[0, 0], [10, 0], [10, 5]]


def labelme(tmp_path, shapes) -> Path:
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps({"version": "5.5.0", "shapes": shapes, "imagePath": "x.tif", "imageHeight": 10, "imageWidth": 10})
    )
    return path


def test_invalid_json_names_line(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('{\n "shapes": [\n  {"label": "tissue",}\n ]\n}\n')
    raises(path, 3, match="invalid JSON")
    raises(path, 3, match="invalid JSON", fmt="coco")


def test_json_neither_labelme_nor_coco(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('{"foo": 1}')
    raises(path, None, match="neither labelme")


def test_labelme_unknown_label(tmp_path):
    raises(
        labelme(tmp_path, [shape("tissue", TRI, 0), shape("cat", TRI, 0)]),
        None,
        match=r"shapes\[1\]: unknown label 'cat'",
    )


def test_labelme_two_tissues_in_a_group(tmp_path):
    raises(
        labelme(tmp_path, [shape("tissue", TRI, 0), shape("magnet", TRI, 0), shape("tissue", TRI, 0)]),
        None,
        match=r"shapes\[2\]: group_id 0 already has a tissue part",
    )


def test_labelme_too_few_points(tmp_path):
    raises(
        labelme(tmp_path, [shape("tissue", TRI[:2], 0)]), None, match=r"shapes\[0\]: a polygon needs at least 3 points"
    )


def test_labelme_dummy_alone(tmp_path):
    raises(labelme(tmp_path, [shape("dummy", TRI, None)]), None, match=r"shapes\[0\]: a dummy needs")
    raises(labelme(tmp_path, [shape("dummy", TRI, 4)]), None, match="dummy but no tissue")


def test_labelme_ungrouped_and_rectangles(tmp_path):
    rect = {"label": "Magnet", "points": [[0, 5], [10, 9]], "group_id": 3, "shape_type": "rectangle"}
    path = labelme(tmp_path, [shape("tissue", TRI, None), rect, shape("tissue", TRI, 3)])
    sections = read_sections(path)
    assert len(sections) == 2  # group 3 first, then the ungrouped tissue
    np.testing.assert_allclose(sections[0].magnet.polygon, [[0, 5], [10, 5], [10, 9], [0, 9]])
    assert sections[1].magnet is None and sections[1].tissue is not None


def coco(tmp_path, anns, images=1) -> Path:
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps(
            {
                "images": [{"id": i + 1, "file_name": "x", "width": 10, "height": 10} for i in range(images)],
                "categories": [{"id": 7, "name": "Tissue"}, {"id": 8, "name": "magnet"}],
                "annotations": anns,
            }
        )
    )
    return path


def ann(cat, seg, section=0):
    return {
        "id": 1,
        "image_id": 1,
        "category_id": cat,
        "segmentation": seg,
        "iscrowd": 0,
        "attributes": {"section": section},
    }


def test_coco_other_category_ids_read_by_name(tmp_path):
    path = coco(tmp_path, [ann(8, [[0, 5, 10, 5, 10, 9]]), ann(7, [[0, 0, 10, 0, 10, 5]])])
    sections = read_sections(path)
    assert len(sections) == 1 and sections[0].tissue.polygon[2].tolist() == [10, 5]


def test_coco_errors(tmp_path):
    raises(coco(tmp_path, [], images=2), None, match="2 images")
    raises(
        coco(tmp_path, [ann(7, [0, 0, 1, 0, 1, 1]), ann(9, [[0, 0, 1, 0, 1, 1]])]),
        None,
        match=r"annotations\[0\]: segmentation must be",
    )
    raises(coco(tmp_path, [ann(9, [[0, 0, 1, 0, 1, 1]])]), None, match=r"annotations\[0\]: category_id 9")
    raises(coco(tmp_path, [ann(7, {"counts": "abc", "size": [10, 10]})]), None, match="RLE")
    raises(coco(tmp_path, [ann(7, [[0, 0, 1, 0, 1]])]), None, match="x, y pairs")
    raises(
        coco(tmp_path, [ann(7, [[0, 0, 1, 0, 1, 1]]), ann(7, [[0, 0, 1, 0, 1, 1]])]),
        None,
        match=r"annotations\[1\]: section 0 already has a tissue part",
    )


# ---- general ----


def test_missing_input_file(tmp_path):
    for name in ("none.magc", "none.json"):
        raises(tmp_path / name, None, match="no such file")


def test_unknown_extension_and_bad_scale(tmp_path):
    with pytest.raises(InputError, match="cannot tell the annotation format"):
        guess_format(tmp_path / "x.csv", for_write=True)
    with pytest.raises(InputError, match="scale"):
        read_sections(tmp_path, scale=0)
    with pytest.raises(InputError, match="unknown format"):
        read_sections(tmp_path, fmt="csv")


def test_coco_several_polygons_keep_largest(tmp_path):
    small, large = [0, 0, 2, 0, 2, 2], [10, 10, 30, 10, 30, 20, 10, 20]
    sections = read_sections(coco(tmp_path, [ann(7, [small, large])]))
    assert sections[0].tissue.area == pytest.approx(200)


# ---- landmark files, labelme shapes of labelme 7 ----


def test_landmark_file_forms_and_errors(tmp_path):
    from sectionseg.formats import read_landmarks

    path = tmp_path / "lm.txt"
    path.write_text("x,y\n# wafer 3\n1.5, 2\n\n30\t40\n 5 6 \n")
    assert read_landmarks(path) == [(1.5, 2.0), (30.0, 40.0), (5.0, 6.0)]
    assert read_landmarks(path, scale=2)[0] == (3.0, 4.0)
    path.write_text("1,2\n3,4,5\n6,7\n")
    with pytest.raises(InputError, match="2 numbers") as info:
        read_landmarks(path)
    check(info.value, path, 2)
    path.write_text("1,2\n3,y\n6,7\n")
    with pytest.raises(InputError, match="'y' is not a number") as info:
        read_landmarks(path)
    check(info.value, path, 2)
    path.write_text("1,2\n3,4\n")
    with pytest.raises(InputError, match="at least 3"):
        read_landmarks(path)


def test_labelme_oriented_rectangle_and_point_magnet(tmp_path):
    quad = [[0, 0], [10, 1], [9, 6], [-1, 5]]
    path = labelme(
        tmp_path,
        [
            {"label": "tissue", "points": quad, "group_id": 0, "shape_type": "oriented_rectangle"},
            {"label": "magnet", "points": [[4, 9]], "group_id": 0, "shape_type": "point"},
        ],
    )
    s = read_sections(path)[0]
    np.testing.assert_allclose(s.tissue.polygon, quad)
    assert s.magnet is None and s.extra["magnet_location"] == (4.0, 9.0)
    bad = labelme(
        tmp_path, [{"label": "tissue", "points": quad[:3], "group_id": 0, "shape_type": "oriented_rectangle"}]
    )
    raises(bad, None, match=r"shapes\[0\]: an oriented_rectangle needs 4 points")
    bad = labelme(tmp_path, [{"label": "tissue", "points": [[1, 2]], "group_id": 0, "shape_type": "point"}])
    raises(bad, None, match=r"shapes\[0\]: a point shape can only be a magnet")
    bad = labelme(tmp_path, [{"label": "magnet", "points": [[1, 2]], "group_id": 0, "shape_type": "point"}])
    raises(bad, None, match="needs the tissue")
