"""``sectionseg proofread``: a napari viewer with the wafer, its fluorescence, the sections of a
detection folder and the proofreading and labelling widgets."""

from __future__ import annotations

import os
from pathlib import Path


def open_viewer(gray, folder, *, fluo=None, viewer=None, show: bool = True):
    """Open (or fill ``viewer``) and return ``(viewer, session, widgets)``; nothing runs the event
    loop (see :func:`launch`)."""
    import napari

    from sectionseg.gui.images import wafer_layer_data
    from sectionseg.gui.viewer import session_for
    from sectionseg.gui.widgets import LabelWidget, ProofreadWidget

    if viewer is None:
        viewer = napari.Viewer(title=f"sectionseg proofread {Path(folder).name}", show=show)
    data, kwargs, _ = wafer_layer_data(gray, "gray")
    viewer.add_image(data, **kwargs)
    if fluo is not None:
        data, kwargs, _ = wafer_layer_data(fluo, "fluo", colormap="green", blending="additive")
        kwargs["metadata"]["sectionseg"]["role"] = "fluo"
        viewer.add_image(data, **kwargs)
    session = session_for(viewer)
    session.load(folder, gray_path=os.fspath(gray), fluo_path=None if fluo is None else os.fspath(fluo))
    # the sections above the images
    for layer in [session.layers[k] for k in ("rejected", "dummies", "links", "magnet", "tissue")]:
        viewer.layers.move(viewer.layers.index(layer), len(viewer.layers))
    proofread = ProofreadWidget(viewer)
    label = LabelWidget(viewer)
    viewer.window.add_dock_widget(proofread, name="Proofread sections", area="right")
    viewer.window.add_dock_widget(label, name="Label sections for finetune", area="right")
    viewer.layers.selection.active = session.layers["tissue"]
    viewer.reset_view()
    return viewer, session, (proofread, label)


def launch(gray, folder, *, fluo=None) -> int:
    import napari

    open_viewer(gray, folder, fluo=fluo)
    napari.run()
    return 0
