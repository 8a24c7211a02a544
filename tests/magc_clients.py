"""Faithful ports of the microscope clients' readers, to run them on sectionseg's outputs in tests.

Only the reading logic is ported (no GUI, no microscope); behaviour that matters for the files is
kept as in the source, including its quirks (last key wins, ``[]`` orders, ``int('')``). Sources:

- SBEMimage: ``SBEMimage/SBEMimage`` ``src/ArrayData.py``, ``ArrayData.read_data_magc``.
- MagFinder: ``templiert/MagFinder`` ``MagFinder_.py``, ``Wafer.file_to_wafer``, ``type_id`` and
  ``Annotation.compute_angle`` (ImageJ ``Roi.getFloatAngle``: ``atan2(y0 - y1, x1 - x0)``, degrees);
  and ``magc_reader.py``, ``read_magc``.
- napari-mass: ``FrancisCrickInstitute/napari-mass`` 0.6.7 ``napari_mass/file/MagcFile.py``
  (``MagcFile.load``, ``get_values``, ``get_config_subitems``, ``auto_convert``) and ``util.py``
  (``add_dict_tree``). The package itself cannot be imported without napari and Qt
  (``napari_mass/__init__.py`` imports its widget), hence this port.
- MagC: ``templiert/MagC`` ``EM_Imaging.py``, ``readSectionCoordinates`` and the scan angle of
  ``addLandmark`` (from tissue points [2] -> [3]).
"""

from __future__ import annotations

import configparser
import math

import numpy as np

# ---- SBEMimage: ArrayData.read_data_magc ----


def sbemimage_read_data_magc(path) -> dict:
    """``{"sections", "landmarks", "serial_order", "stage_order"}`` as SBEMimage's ArrayData holds them."""
    sections, landmarks, data = {}, {}, {}
    config = configparser.ConfigParser()
    with open(path) as configfile:
        config.read_file(configfile)
    for header in config.sections():
        headers = header.split(".")
        header0 = headers[0]
        ids = [int(index) for index in headers[1:]] if "." in header else []
        id = ids[0] if len(ids) > 0 else None
        contents = config.items(header)
        if header.startswith("section.") or header.startswith("sections."):
            sections.setdefault(id, {})
            sample = sections[id]["sample"] = {}
            for key, val in contents:
                if key == "polygon":
                    sample["polygon"] = np.reshape([float(x) for x in val.split(",")], (-1, 2)).tolist()
                elif key == "center":
                    sample["center"] = [float(x) for x in val.split(",")]
                elif key == "area":
                    sample["area"] = float(val)
                elif key == "angle":
                    sample["angle"] = ((float(val) + 90) % 360) - 180
        elif header.startswith("magnet.") or header.startswith("magnets."):
            sections.setdefault(id, {})
            magnet = sections[id]["magnet"] = {}
            for key, val in contents:
                value = [float(x) for x in val.split(",")]
                if key == "location":
                    value = [value]
                magnet["polygon"] = value  # every key overwrites: the last one wins
        elif header.startswith("roi.") or header.startswith("rois."):
            roi_id = ids[1] if len(ids) > 1 else 0
            rois = sections[id].setdefault("rois", {})
            roi = rois[roi_id] = {}
            for key, val in contents:
                if key == "polygon":
                    roi["polygon"] = np.reshape([float(x) for x in val.split(",")], (-1, 2)).tolist()
                elif key == "angle":
                    roi["angle"] = ((float(val) + 90) % 360) - 180
        elif header.startswith("focus."):
            focus = sections[id]["focus"] = {}
            for key, val in contents:
                if key == "polygon":
                    points = np.reshape([float(x) for x in val.split(",")], (-1, 2)).tolist()
                    for point_index, point in enumerate(points):
                        focus[point_index] = {"location": point}
        elif header.startswith("landmarks.") or header.startswith("landmark."):
            landmarks[id] = {"source": {"location": [float(x) for x in config.get(header, "location").split(",")]}}
        elif header in ["serial_order", "serialorder"]:
            value = config.get(header0, header0)
            if value != "[]":
                data["serial_order"] = [int(x) for x in value.split(",")]
        elif header in ["stage_order", "tsporder"]:
            value = config.get(header0, header0)
            if value != "[]":
                data["stage_order"] = [int(x) for x in value.split(",")]
    return {"sections": sections, "landmarks": landmarks, **data}


# ---- MagFinder: Wafer.file_to_wafer (+ type_id, Annotation.compute_angle) ----

_MAGFINDER_TYPES = ("section", "roi", "focus", "magnet", "landmark")  # AnnotationType.all() order


def _magfinder_type_id(name, delimiter_0=".", delimiter_1="."):
    parts = name.split(delimiter_0)
    ids = [int(x) for x in delimiter_0.join(parts[1:]).split(delimiter_1)]
    annotation_type = [t for t in _MAGFINDER_TYPES if t in parts[0]][0]
    if annotation_type == "roi":
        return annotation_type, ids[0], ids[1]
    return annotation_type, ids[0], ids[0]


def imagej_float_angle(x1, y1, x2, y2) -> float:
    """ImageJ ``Roi.getFloatAngle`` (uncalibrated): degrees, counter-clockwise on screen."""
    return math.degrees(math.atan2(y1 - y2, x2 - x1))


def magfinder_file_to_wafer(path) -> dict:
    """MagFinder's wafer after reading a .magc: ``{"sections"|"magnets"|"landmarks"|...: {id: points}},
    "angles": {section id: Annotation.angle}, "serial_order", "stage_order"``."""
    wafer = {
        "sections": {},
        "rois": {},
        "focus": {},
        "magnets": {},
        "landmarks": {},
        "serial_order": [],
        "stage_order": [],
    }
    plural = {"section": "sections", "roi": "rois", "focus": "focus", "magnet": "magnets", "landmark": "landmarks"}
    config = configparser.ConfigParser()
    with open(path) as configfile:
        config.read_file(configfile)
    for header in config.sections():
        if "." in header:
            annotation_type, section_id, annotation_id = _magfinder_type_id(header, delimiter_0=".")
            for key, val in config.items(header):
                if key in ["polygon", "location"]:
                    vals = [float(x) for x in val.split(",")]
                    points = [[x, y] for x, y in zip(vals[::2], vals[1::2])]
                    key_id = (section_id, annotation_id) if annotation_type == "roi" else section_id
                    wafer[plural[annotation_type]][key_id] = points  # Wafer.add: the last key wins
                    if annotation_type == "section" and section_id not in wafer["serial_order"]:
                        wafer["serial_order"].append(section_id)
                        wafer["stage_order"].append(section_id)
        elif header in ["serial_order", "stage_order"]:
            if config.get(header, header) != "[]":
                wafer[header] = [int(x) for x in config.get(header, header).split(",")]
    wafer["angles"] = {k: imagej_float_angle(*p[0], *p[1]) for k, p in wafer["sections"].items() if len(p) >= 2}
    return wafer


# ---- MagFinder: magc_reader.read_magc ----


def magfinder_magc_reader(path) -> dict:
    """``magc_reader.read_magc``: sections (``sections.`` headers), magnets, landmarksEM and the
    ``serialorder``/``tsporder`` orders."""
    magc = {"sections": {}, "magnets": {}, "landmarksEM": {"source": {}}}
    config = configparser.ConfigParser()
    with open(path) as configfile:
        config.read_file(configfile)
    for header in config.sections():
        if header.startswith("sections."):
            section_id = int(header.split(".")[1])
            magc["sections"][section_id] = {}
            for key, val in config.items(header):
                if key == "polygon":
                    vals = [float(x) for x in val.split(",")]
                    magc["sections"][section_id]["polygon"] = [[x, y] for x, y in zip(vals[::2], vals[1::2])]
                elif key == "center":
                    magc["sections"][section_id]["center"] = [float(x) for x in val.split(",")]
                elif key in ["area", "compression"]:
                    magc["sections"][section_id][str(key)] = float(val)
                elif key == "angle":
                    magc["sections"][section_id][str(key)] = ((float(val) + 90) % 360) - 180
        elif header.startswith("magnets."):
            magnet_id = int(header.split(".")[1])
            magc["magnets"][magnet_id] = {}
            for key, val in config.items(header):
                if key == "template":
                    magc["magnets"][magnet_id]["template"] = int(val)
                elif key == "location":
                    magc["magnets"][magnet_id]["location"] = [float(x) for x in val.split(",")]
        elif header.startswith("landmarksEM."):
            landmark_id = int(header.split(".")[1])
            magc["landmarksEM"]["source"][landmark_id] = [float(x) for x in config.get(header, "location").split(",")]
        elif header == "serialorder":
            value = config.get("serialorder", "serialorder")
            if value != "[]":
                magc["serialorder"] = [int(x) for x in value.split(",")]
        elif header == "tsporder":
            value = config.get("tsporder", "tsporder")
            if value != "[]":
                magc["tsporder"] = [int(x) for x in value.split(",")]
    return magc


# ---- napari-mass: MagcFile.load / get_values ----


def _auto_convert_value(value0, to_int=None):
    value = value0
    try:
        if to_int is None and isinstance(value0, str):
            to_int = "." not in value0
        value = float(value0)
        if to_int:
            value = int(value)
    except ValueError:
        pass
    return value


def _auto_convert(value, to_int=None):
    if isinstance(value, (list, np.ndarray)):
        to_int = True
        for val in value:
            if isinstance(val, str):
                if "." in val:
                    to_int = False
            elif val != int(val):
                to_int = False
        return [_auto_convert_value(val, to_int=to_int) for val in value]
    return _auto_convert_value(value, to_int=to_int)


def _add_dict_tree(metadata, keys, value):
    key = keys[0]
    if len(keys) > 1:
        if key not in metadata:
            metadata[key] = {}
        _add_dict_tree(metadata[key], keys[1:], value)
    else:
        metadata[key] = value


class NapariMassMagcFile(dict):
    """napari-mass's ``MagcFile`` (load and get_values)."""

    def __init__(self, filename):
        super().__init__()
        self.filename = filename

    def load(self):
        config = configparser.ConfigParser()
        with open(self.filename) as f:
            config.read_file(f)
        for key in config.sections():
            if not key.startswith("end_"):
                contents = {}
                for k in config[key]:  # get_config_subitems
                    value = config[key][k]
                    if "," in value:
                        value = np.array([float(v) for v in value.split(",")])  # np.fromstring(sep=",")
                    contents[k] = _auto_convert(value)
                key_parts = key.split(".")
                key0 = key_parts[0]
                if key0 not in self and key0 + "s" in self:
                    key_parts[0] = key0 + "s"
                _add_dict_tree(self, key_parts, contents)
        return True

    def get_values(self, key):
        values = []
        dims = (1, 1)
        if key in self:
            section = self[key]
            n = section["number"]
            dims = section.get("dims", (1, 1))
            for i in range(n):
                topsection = section[f"{i:04}"]  # KeyError on [sections.0]-style ids
                if next(iter(topsection)).isnumeric():
                    subsections = list(iter(topsection.values()))
                else:
                    subsections = [topsection]
                values.extend(subsections)
        return values, dims


# ---- MagC: EM_Imaging.readSectionCoordinates and the scan angle ----


def magc_read_section_coordinates(path) -> list[list[list[int]]]:
    """``readSectionCoordinates``: one section a line, ``x,y`` tab-separated, as ints."""
    sections = []
    with open(path) as f:
        for line in f.readlines():
            points = line.replace("\n", "").split("\t")
            if points[-1] == "":
                points.pop()
            sections.append([[int(float(p.split(",")[0])), int(float(p.split(",")[1]))] for p in points])
    return sections


def magc_scan_angle(tissue_points) -> float:
    """The scan angle EM_Imaging gives a section (``addLandmark``, without the landmark transform):
    the angle of the line from tissue point [2] to [3], as ``((-theta) * 180 / pi + 90) % 360``."""
    line = np.array([tissue_points[2][0], tissue_points[2][1], tissue_points[3][0], tissue_points[3][1]], float)
    diff = line[0:2] - line[2:4]
    theta = np.arctan2(diff[1], diff[0])
    return float(((-theta) * 180 / math.pi + 90) % 360)
