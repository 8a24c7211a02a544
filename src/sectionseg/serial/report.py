"""Write the results of section order retrieval into a folder, every file atomically.

- ``serial_order.txt``: the section ids in serial order, one a line;
- ``order_report.json``: settings, counts, timings, the order, every link (``from``, ``to``,
  ``cost``, ``doubts``, the alignment: ``mirrored``, ``angle`` deg, ``matched`` beads, ``rms`` px,
  ``overlap``...), the doubtful links, every section's strong beads, aligned partners and doubts,
  the doubtful sections, and the pairs that were compared;
- ``distances.csv``: the pairwise cost matrix (first row and column: section ids; empty: the pair was
  no candidate and was not compared), ``distances.png``: the same, rows and columns in the found order
  (consecutive sections sit next to the diagonal);
- ``link_costs.png``: each link's cost along the order, doubtful links in red;
- ``links/NNNN_AAAA_BBBB.png``: for each link (doubtful ones only by default): section ``A``'s bead
  image, section ``B``'s turned into ``A``'s frame, and both in one picture (``A`` magenta, ``B``
  green: shared beads are white).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from sectionseg.io.atomic import atomic_path, write_text
from sectionseg.serial.match import invert
from sectionseg.serial.order import OrderResult
from sectionseg.serial.settings import OrderSettings

PICTURES = ("doubtful", "all", "none")


def _to_uint8(image: np.ndarray) -> np.ndarray:
    f = np.asarray(image, np.float32)
    lo, hi = np.percentile(f[::2, ::2], (1, 99.8))
    return np.clip((f - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)


def _save_png(path: Path, picture: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), picture):
            raise OSError(f"could not write {path}")


def link_picture(
    image_a: np.ndarray,
    image_b: np.ndarray,
    matrix_a_to_b: np.ndarray | None,
    title: str,
    beads_a: np.ndarray | None = None,
) -> np.ndarray:
    """BGR picture of one link: ``A`` | ``B`` in ``A``'s frame | both (see the module doc).

    ``image_a``, ``image_b``: 2-D; ``matrix_a_to_b``: 2x3 affine from ``A`` px to ``B`` px (None: ``B``
    shown as it is); ``beads_a``: ``(N, 2)`` px circled on the first panel."""
    a = _to_uint8(image_a)
    h, w = a.shape
    b = _to_uint8(image_b)
    if matrix_a_to_b is not None:
        b = cv2.warpAffine(b, invert(matrix_a_to_b), (w, h), flags=cv2.INTER_LINEAR)
    else:
        b = cv2.resize(b, (w, h))
    left = cv2.cvtColor(a, cv2.COLOR_GRAY2BGR)
    if beads_a is not None:
        for x, y in np.asarray(beads_a).reshape(-1, 2):
            cv2.circle(left, (int(x), int(y)), 4, (0, 200, 255), 1)
    both = np.dstack([a, b, a])  # B G R: A magenta, B green
    gap = np.full((h, 4, 3), 255, np.uint8)
    picture = np.hstack([left, gap, cv2.cvtColor(b, cv2.COLOR_GRAY2BGR), gap, both])
    bar = np.zeros((22, picture.shape[1], 3), np.uint8)
    cv2.putText(bar, title, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([bar, picture])


def _distances_csv(result: OrderResult) -> str:
    rows = ["id," + ",".join(str(s) for s in result.ids)]
    for s, row in zip(result.ids, result.cost):
        rows.append(str(s) + "," + ",".join("" if not np.isfinite(v) else f"{v:.4f}" for v in row))
    return "\n".join(rows) + "\n"


def _distances_png(path: Path, result: OrderResult) -> None:
    idx = [result.ids.index(s) for s in result.order]
    c = result.cost[np.ix_(idx, idx)]
    img = np.where(np.isfinite(c), np.clip(c, 0, 1), 1.0)
    pic = cv2.applyColorMap((255 * (1 - img)).astype(np.uint8), cv2.COLORMAP_VIRIDIS)
    pic[~np.isfinite(c)] = 0
    scale = max(1, 600 // max(len(idx), 1))
    _save_png(path, cv2.resize(pic, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST))


def _link_costs_png(path: Path, result: OrderResult) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cost = np.array([np.nan if link["cost"] is None else link["cost"] for link in result.links])
    bad = np.array([bool(link["doubts"]) for link in result.links])
    fig, ax = plt.subplots(figsize=(10, 3))
    x = np.arange(len(cost))
    ax.plot(x, cost, lw=0.8, color="0.4")
    ax.scatter(x[bad], np.nan_to_num(cost[bad], nan=1.0), color="red", s=12, label="doubtful", zorder=3)
    ax.set_xlabel("link (position in the serial order)")
    ax.set_ylabel("cost")
    ax.legend(loc="upper right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def write_order_outputs(
    out_dir: str | os.PathLike,
    result: OrderResult,
    *,
    settings: OrderSettings = OrderSettings(),
    load_images: Callable[[int], list[np.ndarray]] | None = None,
    pictures: str = "doubtful",
    extra: dict | None = None,
) -> dict[str, Path]:
    """Write the outputs of the module doc into ``out_dir`` (created if needed); return their paths.

    ``load_images(section_id)``: the section's channel images, for the link pictures (skipped when
    None); ``pictures``: which links get one (:data:`PICTURES`); ``extra``: merged into the report.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "order": out / "serial_order.txt",
        "report": out / "order_report.json",
        "distances": out / "distances.csv",
        "distances_png": out / "distances.png",
        "link_costs": out / "link_costs.png",
    }
    write_text(paths["order"], "".join(f"{s}\n" for s in result.order))
    write_text(paths["distances"], _distances_csv(result))
    _distances_png(paths["distances_png"], result)
    _link_costs_png(paths["link_costs"], result)
    drawn = []
    if load_images is not None and pictures != "none":
        (out / "links").mkdir(exist_ok=True)
        for k, link in enumerate(result.links):
            if pictures == "doubtful" and not link["doubts"]:
                continue
            a, b = link["from"], link["to"]
            m = result.match(a, b)
            title = (
                f"{k}: {a} -> {b}  cost {link['cost'] if link['cost'] is None else round(link['cost'], 3)}"
                f"  {', '.join(link['doubts'])}"
            )
            img_a, img_b = load_images(a), load_images(b)
            picture = link_picture(
                np.max(img_a, axis=0),
                np.max(img_b, axis=0),
                None if m is None or not m.ok else m.matrix,
                title,
                result.beads[a].xy if a in result.beads else None,
            )
            name = f"links/{k:04d}_{a:04d}_{b:04d}.png"
            _save_png(out / name, picture)
            drawn.append(name)
    compared = [
        {"a": result.ids[i], "b": result.ids[j], **{k: v for k, v in m.summary().items() if k not in ("i", "j")}}
        for (i, j), m in sorted(result.matches.items())
    ]
    report = {
        "settings": settings.as_dict(),
        **(extra or {}),
        "counts": {
            "sections": len(result.ids),
            "compared_pairs": len(result.matches),
            "all_pairs": len(result.ids) * (len(result.ids) - 1) // 2,
            "aligned_pairs": sum(m.ok for m in result.matches.values()),
            "doubtful_links": len(result.doubtful),
            "doubtful_sections": len(result.doubtful_sections),
            "beads_median": float(np.median([len(b) for b in result.beads.values()])) if result.beads else None,
        },
        "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
        "serial_order": result.order,
        "direction": "arbitrary (beads do not tell which end was cut first): the order starts "
        "at the end given by --first, else at the end with the smaller id",
        "doubtful_links": [{"position": k, **link} for k, link in enumerate(result.links) if link["doubts"]],
        "doubtful_sections": [
            {"id": s, "position": result.order.index(s), **result.sections[s]} for s in result.doubtful_sections
        ],
        "sections": {str(s): v for s, v in result.sections.items()},
        "links": result.links,
        "link_pictures": drawn,
        "compared_pairs": compared,
    }
    write_text(paths["report"], json.dumps(report, indent=1, default=_plain) + "\n")
    return paths


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
