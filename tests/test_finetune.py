"""Adaptation to a new wafer: label checks, the adaptation dataset, fine-tuning end to end, CLI errors."""

import json

import numpy as np
import pytest
import shapely
from detection_fakes import draw_sections, rectangle

from sectionseg.cli.main import main
from sectionseg.datasets.adapt import (
    build_adaptation_set,
    check_labels,
    context_tile,
    crowded_synthetic,
    rescale_wafer,
    unlabelled,
)
from sectionseg.datasets.synth import Background, footprint
from sectionseg.errors import InputError
from sectionseg.evaluation import held_out
from sectionseg.formats import read_sections, write_sections
from sectionseg.geometry import Section
from sectionseg.geometry.scale import median_section_size, working_scale
from sectionseg.simulation.styles import get_style


def grid_sections(n_rows=2, n_cols=3, long=60.0, step=110.0, angle=10.0):
    """Sections on a grid: tissue ``long`` x 0.4 ``long``, magnet beside it along the long edge."""
    out = []
    normal = np.array([np.sin(np.radians(angle)), np.cos(np.radians(angle))]) * 0.4 * long
    for r in range(n_rows):
        for c in range(n_cols):
            cx, cy = 70 + step * c, 70 + step * r
            out.append(
                Section.from_arrays(
                    rectangle(cx, cy, long, 0.4 * long, angle),
                    rectangle(cx + normal[0], cy + normal[1], long, 0.4 * long, angle),
                )
            )
    return out


def test_section_size_and_working_scale():
    sections = grid_sections(long=60.0)
    assert median_section_size(sections) == pytest.approx(60.0, abs=0.5)
    assert working_scale(60.0, 130.0) == pytest.approx(130 / 60)
    assert working_scale(125.0, 130.0) == 1.0  # close enough: no resampling
    rgb = np.zeros((300, 400, 3), np.uint8)
    small, secs, extra = rescale_wafer(rgb, sections, 0.5, sections[:1])
    assert small.shape == (150, 200, 3)
    assert secs[0].tissue.centre == pytest.approx(tuple(np.array(sections[0].tissue.centre) * 0.5))
    assert len(extra) == 1


def test_check_labels_accepts_good_labels_and_names_the_problem():
    sections = grid_sections()
    check_labels(sections, 400, 300, "labels.json")
    with pytest.raises(InputError, match="no labelled section"):
        check_labels([], 400, 300, "labels.json")
    with pytest.raises(InputError, match="section 2 has no magnet") as err:
        check_labels([sections[0], Section(sections[1].tissue, None)], 400, 300, "labels.json")
    assert "labels.json" in str(err.value)
    with pytest.raises(InputError, match="section 1 spans .* outside the 100x100 px image"):
        check_labels(sections, 100, 100, "labels.json")
    shifted = sections[0].transformed(1.0, (5.0, 3.0))
    with pytest.raises(InputError, match="sections 1 and 2 overlap by"):
        check_labels([sections[0], shifted], 400, 300, "labels.json")
    inside = Section(sections[0].tissue, sections[0].tissue.transformed(1.0, (1.0, 0.0)))
    with pytest.raises(InputError, match="the tissue and magnet of section 1 overlap"):
        check_labels([inside], 400, 300, "labels.json")


def test_held_out_removes_the_labelled_sections():
    truth = grid_sections()
    found = [s.transformed(1.0, (1.0, 0.0)) for s in truth[1:]]  # all but the first, slightly off
    t_rest, f_rest = held_out(truth, found, truth[:2])
    assert len(t_rest) == len(truth) - 2 and len(f_rest) == len(found) - 1


@pytest.fixture
def drawn_wafer():
    sections = grid_sections(2, 3)
    gray, fluo = draw_sections(400, 260, [(s.tissue.polygon, s.magnet.polygon) for s in sections])
    rgb = np.dstack([gray, gray, fluo]).astype(np.uint8)
    return rgb, sections


def test_context_tiles_paint_over_unlabelled_sections(drawn_wafer, rng):
    rgb, sections = drawn_wafer
    labelled, others = sections[:1], unlabelled(sections, sections[:1])
    assert len(others) == len(sections) - 1  # the labelled one is recognised among the occupied
    background = Background(rgb, sections)
    shape = footprint(others[0], 8).union(footprint(others[2], 8))
    image, secs, (x0, y0), ignore = context_tile(rgb, labelled, 0, shape, background, 256, rng, crowd="paint")
    assert ignore is None
    assert len(secs) == 1 and secs[0].tissue.area == pytest.approx(labelled[0].tissue.area, rel=0.01)
    cx, cy = labelled[0].tissue.centre
    assert np.array_equal(image[int(cy) - y0, int(cx) - x0], rgb[int(cy), int(cx)])  # labelled: untouched
    bare = np.median(rgb[250:, :, 0])
    for other in (others[0], others[2]):
        ox, oy = other.tissue.centre
        if 0 <= ox - x0 < 256 and 0 <= oy - y0 < 256:
            # the unlabelled tissue (dark) is now background
            assert abs(int(image[int(oy) - y0, int(ox) - x0, 0]) - bare) < 25
            assert abs(int(rgb[int(oy), int(ox), 0]) - bare) > 40


def test_context_tiles_keep_unlabelled_sections_under_an_ignore_mask(drawn_wafer, rng):
    rgb, sections = drawn_wafer
    labelled, others = sections[:1], unlabelled(sections, sections[:1])
    background = Background(rgb, sections)
    shape = shapely.unary_union([footprint(o, 8) for o in others])
    image, secs, (x0, y0), ignore = context_tile(rgb, labelled, 0, shape, background, 256, rng, crowd="ignore")
    h, w = min(256, rgb.shape[0] - y0), min(256, rgb.shape[1] - x0)
    assert np.array_equal(image[:h, :w], rgb[y0 : y0 + h, x0 : x0 + w])  # nothing painted
    assert ignore.shape == (256, 256) and ignore.dtype == bool
    checked = 0
    for other in others:
        ox, oy = other.tissue.centre
        if 0 <= ox - x0 < w and 0 <= oy - y0 < h:
            checked += 1
            assert ignore[int(oy) - y0, int(ox) - x0]  # an unlabelled section: unknown
    assert checked > 0
    cx, cy = labelled[0].tissue.centre
    assert not ignore[int(cy) - y0, int(cx) - x0]  # the labelled one trains


def test_context_tiles_cut_by_the_wafer_border_reflect_image_and_mask_alike(drawn_wafer, rng):
    rgb, sections = drawn_wafer  # 260 px tall: a 300 px tile is reflected below the wafer
    labelled, others = sections[:1], unlabelled(sections, sections[:1])
    shape = shapely.unary_union([footprint(o, 8) for o in others])
    image, _, (x0, y0), ignore = context_tile(
        rgb, labelled, 0, shape, Background(rgb, sections), 300, rng, crowd="ignore"
    )
    h = rgb.shape[0] - y0
    assert h < 300 and ignore[:h].any()
    for k in range(1, 300 - h):  # BORDER_REFLECT_101: row h - 1 + k shows row h - 1 - k
        assert np.array_equal(image[h - 1 + k], image[h - 1 - k])
        assert np.array_equal(ignore[h - 1 + k], ignore[h - 1 - k])  # a reflected section stays unknown


@pytest.mark.parametrize("crowd", ["paint", "ignore"])
def test_adaptation_set_has_synthetic_and_context_images(drawn_wafer, tmp_path, crowd):
    rgb, sections = drawn_wafer
    manifest = build_adaptation_set(
        tmp_path / "data",
        rgb,
        sections[:5],
        occupied=sections,
        n_synthetic=4,
        n_val=2,
        size=128,
        sections_per_image=(1, 2),
        crowd=crowd,
        progress=False,
    )
    assert manifest["params"]["crowd"] == crowd
    items = manifest["splits"]["train"] + manifest["splits"]["val"]
    assert all(("ignore" in item) == (crowd == "ignore") for item in items)  # a mask per sample, or none
    kinds = [(split, item["kind"]) for split in ("train", "val") for item in manifest["splits"][split]]
    assert kinds.count(("train", "synthetic")) == 4 and kinds.count(("val", "synthetic")) == 2
    assert kinds.count(("val", "tile")) == 1 and kinds.count(("train", "tile")) == 4
    assert manifest["params"]["occupied_unlabelled"] == 1
    for item in manifest["splits"]["train"]:
        assert (tmp_path / "data" / item["image"]).is_file()
        assert read_sections(tmp_path / "data" / item["annotations"])


def test_crowded_synthetic_images_keep_the_wafer_and_ignore_its_known_sections(drawn_wafer):
    rgb, sections = drawn_wafer
    labelled = sections[:2]
    background = Background(rgb, sections)
    out = list(crowded_synthetic(rgb, labelled, 3, 128, 5, (1, 2), margin=6, background=background))
    assert len(out) == 3
    for image, secs, ignore in out:
        assert image.shape == (128, 128, 3) and ignore.shape == (128, 128) and 1 <= len(secs) <= 2
        for s in secs:  # a pasted section is what trains: never under the mask
            cx, cy = s.tissue.centre
            assert not ignore[int(cy), int(cx)]
    assert any(ignore.any() for _, _, ignore in out)  # the wafer's own sections are kept, as unknown


# ------------------------------------------------------------------------------ end to end
SMALL = get_style("default").replace(
    section_size=(46.0, 50.0),
    density=(40.0, 50.0),
    dummy_probability=(0.0, 0.0),
    touching_fraction=(0.0, 0.1),
    name="small",
)
FAINT = get_style("low-contrast").replace(
    section_size=(46.0, 50.0),
    density=(40.0, 50.0),
    dummy_probability=(0.0, 0.0),
    touching_fraction=(0.0, 0.1),
    name="faint",
)


@pytest.fixture(scope="module")
def base_and_wafer(tmp_path_factory, one_torch_thread):
    """A tiny base model trained briefly on one wafer style, and a wafer of another style with labels."""
    from sectionseg.datasets.samples import write_manifest
    from sectionseg.datasets.tiles import cut_tiles
    from sectionseg.io.images import read_image
    from sectionseg.model.checkpoint import export_weights
    from sectionseg.model.config import load_config
    from sectionseg.simulation import simulate_wafer
    from sectionseg.training import train

    root = tmp_path_factory.mktemp("adapt")
    simulate_wafer(root / "source", seed=5, style=SMALL, width=512, height=512)
    rgb = read_image(root / "source" / "rgb.tif", expect_gray=False)
    items = cut_tiles(
        rgb, read_sections(root / "source" / "sections.labelme.json"), root / "source_ds", 128, 0, progress=False
    )
    write_manifest(root / "source_ds", {"train": items}, {})
    cfg = load_config("tiny")
    train(cfg, root / "source_ds", root / "base_run", epochs=2, max_iters_per_epoch=15, progress=False)
    export_weights(root / "base_run" / "last.pt", root / "base.pt")
    simulate_wafer(root / "target", seed=6, style=FAINT, width=512, height=512)
    truth = read_sections(root / "target" / "sections.labelme.json")
    labelled = [
        s for s in truth if s.tissue and s.magnet and s.tissue.polygon.min() > 10 and s.tissue.polygon.max() < 500
    ][:6]
    write_sections(root / "labels.json", labelled, fmt="labelme", image_path="gray.tif", image_size=(512, 512))
    return root, truth, labelled


def _held_out_loss(model_path, root, truth, labelled):
    """Mean loss of a model on 128 px tiles of the target wafer showing only held-out sections."""
    from sectionseg.datasets.samples import write_manifest
    from sectionseg.datasets.tiles import cut_tiles
    from sectionseg.datasets.torch_dataset import SectionDataset
    from sectionseg.io.images import compose_rgb, read_image
    from sectionseg.model.checkpoint import load_model
    from sectionseg.training import mean_losses

    test_dir = root / "heldout_ds"
    if not (test_dir / "manifest.json").is_file():
        rgb = compose_rgb(read_image(root / "target" / "gray.tif"), read_image(root / "target" / "fluo.tif")).rgb
        rest, _ = held_out(truth, [], labelled)
        items = cut_tiles(rgb, rest, test_dir, 128, 0, keep_empty=False, progress=False)
        write_manifest(test_dir, {"test": items}, {})
    model, _, _ = load_model(model_path)
    return mean_losses(model, SectionDataset(test_dir, "test"))["total"]


@pytest.mark.slow
def test_finetune_end_to_end_beats_the_base_model(base_and_wafer, tmp_path, capsys):
    root, truth, labelled = base_and_wafer
    out = tmp_path / "ft"
    args = [
        "finetune",
        str(root / "target" / "gray.tif"),
        "--fluo",
        str(root / "target" / "fluo.tif"),
        "--labels",
        str(root / "labels.json"),
        "--out",
        str(out),
        "--base-model",
        str(root / "base.pt"),
        "--epochs",
        "2",
        "--synthetic",
        "12",
        "--val",
        "2",
        "--image-size",
        "160",
        "--no-progress",
        "--lr",
        "0.002",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "adapted model" in printed and "validation mask AP50" in printed
    report = json.loads((out / "finetune_report.json").read_text())
    assert report["n_labelled"] == len(labelled) and report["working_scale"] == 1.0
    assert report["all_layers"] is True  # the default: every layer trains
    assert len(report["history"]) == 2 and set(report["timings_s"]) >= {"dataset", "training", "validation"}
    assert (out / "run" / "losses.png").is_file() and (out / "data" / "manifest.json").is_file()
    manifest = json.loads((out / "data" / "manifest.json").read_text())
    assert manifest["params"]["content_regions"] >= 0  # areas that are no bare wafer, painted out
    base_loss = _held_out_loss(root / "base.pt", root, truth, labelled)
    adapted_loss = _held_out_loss(out / "model.pt", root, truth, labelled)
    assert adapted_loss < 0.9 * base_loss, (base_loss, adapted_loss)

    # resumable: a third epoch continues the run without rebuilding the data, then detects
    stamp = (out / "data" / "manifest.json").stat().st_mtime_ns
    # (--all-layers, the default, is still accepted)
    assert main(args[:-2] + ["--lr", "0.002", "--all-layers", "--epochs", "3", "--resume", "--detect"]) == 0
    assert (out / "data" / "manifest.json").stat().st_mtime_ns == stamp
    report = json.loads((out / "finetune_report.json").read_text())
    assert len(report["history"]) == 3 and "detection" in report
    detected = json.loads((out / "detection" / "report.json").read_text())
    assert detected["scale_estimate"]["method"] == "model_file"  # the adapted model knows its section size
    # and which half is the tissue, from the user's labels: no prior turns its wafer round
    assert detected["model"]["adapted"] is True
    steps = detected["params"]["settings"]["steps"]
    assert not steps["turn_wafer"] and not steps["orient_by_split"] and not steps["consensus"]


def test_finetune_data_without_content_regions(base_and_wafer, tmp_path):
    """``--no-content-regions`` (a comparison knob) paints out only what the detectors find."""
    from sectionseg.io.images import read_image
    from sectionseg.workflows import prepare_adaptation_data

    root, truth, labelled = base_and_wafer
    gray, fluo = read_image(root / "target" / "gray.tif"), read_image(root / "target" / "fluo.tif")
    counts = {}
    for flag in (False, True):
        params = prepare_adaptation_data(
            gray,
            fluo,
            labelled,
            tmp_path / f"data_{flag}",
            base_model=root / "base.pt",
            reference=130.0,
            n_synthetic=2,
            n_val=1,
            image_size=160,
            use_content_regions=not flag,
            sources={"image": str(root / "target" / "gray.tif"), "labels": "l.json"},
        )
        counts[flag] = params["content_regions"]
    assert counts[True] == 0 and counts[False] > 0


def test_adapt_to_wafer_from_arrays_and_sections(base_and_wafer, tmp_path):
    """The fine-tuning workflow as a library call: images as arrays, labels as sections, a short run."""
    from sectionseg.io.images import read_image
    from sectionseg.model.checkpoint import load_model
    from sectionseg.workflows import adapt_to_wafer

    root, truth, labelled = base_and_wafer
    gray, fluo = read_image(root / "target" / "gray.tif"), read_image(root / "target" / "fluo.tif")
    out = tmp_path / "adapted"
    report = adapt_to_wafer(
        gray,
        labelled,
        out,
        fluo=fluo,
        base_model=root / "base.pt",
        epochs=1,
        n_synthetic=2,
        n_val=1,
        image_size=128,
        max_iters_per_epoch=2,
        crowd="ignore",  # the masked-loss recipe, end to end (the CLI tests run the default)
    )
    assert report == json.loads((out / "finetune_report.json").read_text())
    assert report["model"] == str(out / "model.pt") and report["n_labelled"] == len(labelled)
    assert report["labels"] == "(sections)" and len(report["history"]) == 1
    assert set(report["validation_mask"]) == {"base", "adapted"} and "detection" not in report
    _, _, meta = load_model(out / "model.pt")
    assert meta["extra"]["section_size"] == pytest.approx(report["section_size"])
    manifest = json.loads((out / "data" / "manifest.json").read_text())
    assert manifest["params"]["image"] == "(array)" and manifest["params"]["n_synthetic"] == 2
    assert manifest["params"]["crowd"] == "ignore" and manifest["params"]["unknown_share"] is not None
    with pytest.raises(InputError, match="already holds a fine-tuning run"):
        adapt_to_wafer(gray, labelled, out, base_model=root / "base.pt")
    with pytest.raises(ValueError, match="as files"):
        adapt_to_wafer(gray, labelled, tmp_path / "other", base_model=root / "base.pt", detect=True)


def _error_cases(tmp_path, root):
    gray, labels = str(root / "target" / "gray.tif"), str(root / "labels.json")
    sections = read_sections(labels)
    far = [s.transformed(1.0, (2000.0, 0.0)) for s in sections]
    write_sections(tmp_path / "far.json", far, fmt="labelme", image_size=(512, 512))
    write_sections(
        tmp_path / "overlap.json",
        [sections[0], sections[0].transformed(1.0, (2.0, 1.0))],
        fmt="labelme",
        image_size=(512, 512),
    )
    return {
        "outside": ([gray, "--labels", str(tmp_path / "far.json")], "outside the 512x512"),
        "overlap": ([gray, "--labels", str(tmp_path / "overlap.json")], "overlap"),
        "missing labels": ([gray, "--labels", str(tmp_path / "none.json")], "none.json"),
        "missing image": ([str(tmp_path / "none.tif"), "--labels", labels], "no such image"),
        "resume": ([gray, "--labels", labels, "--resume"], "nothing to resume"),
        "epochs": ([gray, "--labels", labels, "--epochs", "0"], "--epochs"),
    }


@pytest.mark.parametrize("case", ["outside", "overlap", "missing labels", "missing image", "resume", "epochs"])
def test_bad_inputs_exit_2_and_write_nothing(case, base_and_wafer, tmp_path, capsys):
    root = base_and_wafer[0]
    argv, message = _error_cases(tmp_path, root)[case]
    out = tmp_path / "out"
    assert main(["finetune", *argv, "--out", str(out), "--base-model", str(root / "base.pt"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_heads_only_is_passed_on_and_excludes_all_layers(monkeypatch, tmp_path, capsys):
    import sectionseg.workflows.finetune as workflow

    seen = {}

    def fake(*args, **kwargs):
        seen.update(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr(workflow, "adapt_to_wafer", fake)
    gray = tmp_path / "g.png"
    from sectionseg.io.images import write_image

    write_image(gray, np.zeros((64, 64), np.uint8))
    labels = tmp_path / "l.json"
    labels.write_text("{}")
    common = ["finetune", str(gray), "--labels", str(labels), "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit):
        main([*common, "--heads-only"])
    assert seen["all_layers"] is False
    with pytest.raises(SystemExit) as stop:
        main([*common, "--heads-only", "--all-layers"])
    assert stop.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
