"""Screenshot of the proofreading plugin on a simulated wafer: docs/proofread.png.

Simulates a small wafer, detects its sections with the bundled model (``detect``), opens it as
``sectionseg proofread`` does, centres the view on the most doubtful section and saves the napari
window (canvas and dock widgets). Needs the ``gui`` extra and a display with OpenGL; on a machine
without one, run it under xvfb:

    xvfb-run -s "-screen 0 1600x1000x24" .venv/bin/python scripts/gui_screenshot.py [--out docs/proofread.png]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "proofread.png"))
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--work", help="work folder (default: a temporary one)")
    args = parser.parse_args()

    import warnings

    warnings.filterwarnings("ignore", message=".*PyQt5 backend is deprecated.*")
    import napari
    from qtpy.QtWidgets import QApplication

    from sectionseg.batch.wafer import detect_files
    from sectionseg.gui.launch import open_viewer
    from sectionseg.simulation import simulate_wafer

    work = Path(args.work or tempfile.mkdtemp(prefix="sectionseg-screenshot-"))
    simulate_wafer(work / "wafer", seed=args.seed, width=1400, height=1000, n_sections=16, style="realistic")
    gray, fluo = work / "wafer" / "gray.tif", work / "wafer" / "fluo.tif"
    detect_files(gray, fluo, work / "det", progress=False, workers=1)
    viewer = napari.Viewer(title="sectionseg proofread", show=True)
    viewer.window.resize(1600, 950)
    viewer, session, (proofread, _) = open_viewer(gray, work / "det", fluo=fluo, viewer=viewer)
    viewer.layers["fluo"].opacity = 0.3
    for _ in range(5):
        QApplication.processEvents()
    if proofread.table.rowCount():
        proofread.table.selectRow(0)
        uid = proofread._uids[0]
        centre = viewer.camera.center
        viewer.reset_view()
        zoom = viewer.camera.zoom
        session.centre_on(uid)
        viewer.camera.center = tuple(0.6 * np.asarray(centre) + 0.4 * np.asarray(viewer.camera.center))
        viewer.camera.zoom = 1.8 * zoom  # the doubtful section among its neighbours
    for _ in range(5):
        QApplication.processEvents()
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):  # start-up notices
        toast.hide()
    QApplication.processEvents()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(out), canvas_only=False)
    print(f"wrote {out} ({len(session.model.entries)} sections, work folder {work})")
    viewer.close()


if __name__ == "__main__":
    main()
