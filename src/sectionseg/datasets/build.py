"""Build a whole training dataset from simulated wafers: tiles + synthetic pastes, split by wafer.

Steps: simulate N wafers (``sectionseg.simulation.simulate_wafer``, styles cycled) into
``OUT/wafers/wafer_NNN/``; give every wafer to one split (test and val get held-out wafers when there
are at least 3, so overlapping tiles of one wafer never straddle splits); per split, take tiles of its
wafers and synthetic images made from its wafers' sections; write ``OUT/images``, ``OUT/annotations``,
``OUT/masks`` and ``OUT/manifest.json`` (see :mod:`sectionseg.datasets.samples`), as one set
(:mod:`sectionseg.io.outset`): OUT holds the whole dataset or what it held before.

Split sizes: by count (``split=(900, 90, 50)``, the default of ``sectionseg dataset``: a split's tiles
are shuffled and cut to its count, synthetic images fill the rest unless ``n_synthetic`` is given) or by ``fractions``
(every tile is used; wafers and ``n_synthetic`` images are shared by the fractions).
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sectionseg.datasets.samples import SPLITS, load_wafer_rgb, write_manifest
from sectionseg.datasets.synth import write_synthetic
from sectionseg.datasets.tiles import cut_tiles, iter_tiles
from sectionseg.errors import InputError
from sectionseg.geometry.scale import REFERENCE_SECTION_SIZE
from sectionseg.io.interrupts import STOP_SIGNALS, blocked_signals
from sectionseg.io.outset import output_set
from sectionseg.io.resample import scaled_size

log = logging.getLogger(__name__)


def assign_wafers(n_wafers: int, weights: tuple[float, float, float], rng: np.random.Generator) -> dict[str, list[int]]:
    """Wafer indices per split (``train``, ``val``, ``test``), ``weights`` in that order.

    With 3+ wafers every split of positive weight gets its own wafers (at least one; train keeps at
    least one). With 2 wafers val and test share the second one; with 1 all splits share it (the
    items are then disjoint but come from the same wafer).
    """
    order = [int(i) for i in rng.permutation(n_wafers)]
    want = {s: w > 0 for s, w in zip(SPLITS, weights)}
    if n_wafers >= 3:
        total = float(sum(weights))
        n_test = max(1, round(n_wafers * weights[2] / total)) if want["test"] else 0
        n_val = max(1, round(n_wafers * weights[1] / total)) if want["val"] else 0
        while n_test + n_val > n_wafers - 1:  # keep one wafer for training
            if n_test >= n_val and n_test > 1 or n_val == 0:
                n_test -= 1
            else:
                n_val -= 1
        return {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
    if n_wafers == 2:
        return {"train": order[:1], "val": order[1:] if want["val"] else [], "test": order[1:] if want["test"] else []}
    return {s: list(order) if want[s] else [] for s in SPLITS}


def _share(total: int, weights) -> list[int]:
    """Split the integer ``total`` in proportion to ``weights`` (largest remainders)."""
    w = np.asarray(weights, dtype=float)
    if total <= 0 or w.sum() <= 0:
        return [0] * len(w)
    raw = total * w / w.sum()
    out = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - out), kind="stable")[: total - out.sum()]:
        out[i] += 1
    return [int(v) for v in out]


def _parallel_map(fn: Callable, args: list, jobs: int, desc: str) -> list:
    """``[fn(*a) for a in args]`` in order, over ``jobs`` spawned processes when ``jobs`` > 1 (``fn``
    must then be picklable: a module-level function)."""
    if jobs <= 1 or len(args) <= 1:
        with tqdm(args, desc=desc) as bar:  # closed before an exception is reported
            return [fn(*a) for a in bar]
    # spawn, not fork: OpenCV's and torch's thread pools do not survive a fork. Workers ignore Ctrl-C
    # (they start with it held back); on any exception here, Ctrl-C included, they are stopped, not
    # waited for.
    with ProcessPoolExecutor(
        min(jobs, len(args)), mp_context=multiprocessing.get_context("spawn"), initializer=_worker_signals
    ) as pool:
        try:
            with blocked_signals():
                futures = [pool.submit(fn, *a) for a in args]
            with tqdm(futures, desc=desc) as bar:
                return [f.result() for f in bar]
        except BaseException:
            with blocked_signals():
                _stop_workers(pool)
            raise


def _worker_signals() -> None:
    """In a worker: Ctrl-C is the parent's business, SIGTERM (the parent stopping it) ends it at once.
    Its progress bars take a thread lock, not tqdm's default process-shared one: a worker ended by a
    signal would leave that semaphore behind (a warning of multiprocessing's resource tracker)."""
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    tqdm.set_lock(threading.RLock())


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Stop the pool's workers at once (SIGTERM, then SIGKILL after 3 s) and shut the pool down."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(3.0)
        if process.is_alive():
            process.kill()
            process.join(1.0)
    pool.shutdown(wait=True, cancel_futures=True)  # the workers are gone: returns at once


def _simulate_one(simulate: Callable, out: Path, i: int, seed: int, wafer_size: int, style: str) -> dict:
    wseed = int(np.random.default_rng([seed, i]).integers(2**31 - 1))
    simulate(out / "wafers" / f"wafer_{i:03d}", seed=wseed, width=wafer_size, height=wafer_size, style=style)
    return {"folder": f"wafers/wafer_{i:03d}", "seed": wseed, "style": style, "width": wafer_size, "height": wafer_size}


def _simulate_all(
    out: Path, n_wafers: int, wafer_size: int, styles: list[str], seed: int, simulate: Callable, jobs: int = 1
) -> list[dict]:
    args = [(simulate, out, i, seed, wafer_size, styles[i % len(styles)]) for i in range(n_wafers)]
    return _parallel_map(_simulate_one, args, jobs, "simulating wafers")


def build_dataset(
    out_dir: str | os.PathLike,
    *,
    n_wafers: int = 4,
    wafer_size: int = 2048,
    styles: list[str] | tuple[str, ...] = ("default",),
    n_synthetic: int | None = None,
    split: tuple[int, int, int] | None = (900, 90, 50),
    fractions: tuple[float, float, float] | None = None,
    patch_size: int = 512,
    overlap: int = 64,
    seed: int = 0,
    sections_per_image: tuple[int, int] = (3, 8),
    overwrite: bool = False,
    simulate: Callable | None = None,
    scale: float = 1.0,
    jobs: int = 1,
) -> dict:
    """Simulate wafers and write a split dataset under ``out_dir``; return the manifest.

    ``split``: image counts (train, val, test); or ``fractions`` (then ``split`` is ignored).
    ``n_synthetic``: total synthetic images (default: with counts, whatever the tiles do not fill;
    with fractions, none). ``simulate``: the wafer simulator, ``simulate(folder, seed=, width=,
    height=, style=)`` writing ``rgb.tif`` and ``sections.labelme.json`` (default
    :func:`sectionseg.simulation.simulate_wafer`). Same arguments, same files, whatever ``jobs``.

    ``scale``: the images are cut from the wafers brought to this scale (working px per simulated px,
    resampled as detection resamples), for a model that works on sections ``scale`` times the
    simulator's size; ``wafer_size`` is the simulated size. The manifest records ``scale`` and the
    resulting ``image_section_size`` (:data:`REFERENCE_SECTION_SIZE` times ``scale``, px in the
    images), which training copies into the model's config. ``jobs``: processes for simulating and writing (one
    per wafer).
    """
    out = Path(out_dir)
    _check_args(
        out,
        n_wafers,
        wafer_size,
        styles,
        n_synthetic,
        split,
        fractions,
        patch_size,
        overlap,
        overwrite,
        sections_per_image,
    )
    if not (0 < scale <= 4 and math.isfinite(scale)):
        raise InputError(f"the scale must be in (0, 4], got {scale}")
    if jobs < 1:
        raise InputError(f"the number of jobs must be >= 1, got {jobs}")
    if simulate is None:
        from sectionseg.simulation import simulate_wafer as simulate
        from sectionseg.simulation.styles import get_style

        for style in styles:
            get_style(style)  # unknown names: InputError before anything is deleted
    with output_set(out, "dataset") as stage:  # the whole dataset, or what OUT held before
        return _build(
            stage,
            n_wafers,
            wafer_size,
            styles,
            n_synthetic,
            split,
            fractions,
            patch_size,
            overlap,
            seed,
            sections_per_image,
            simulate,
            scale,
            jobs,
        )


def _build(
    out: Path,
    n_wafers,
    wafer_size,
    styles,
    n_synthetic,
    split,
    fractions,
    patch_size,
    overlap,
    seed,
    sections_per_image,
    simulate,
    scale,
    jobs,
) -> dict:
    """The steps of :func:`build_dataset`, writing into the (staging) folder ``out``."""
    rng = np.random.default_rng(seed)
    weights = tuple(fractions) if fractions is not None else tuple(float(c) for c in split)
    wafers = _simulate_all(out, n_wafers, wafer_size, list(styles), seed, simulate, jobs)
    by_split = assign_wafers(n_wafers, weights, rng)
    tiles = {w: iter_tiles(*scaled_size(wafer_size, wafer_size, scale), patch_size, overlap) for w in range(n_wafers)}
    plan = _plan(by_split, tiles, weights, split if fractions is None else None, n_synthetic, rng)
    items = _write(out, wafers, plan, patch_size, overlap, seed, sections_per_image, scale, jobs)
    for name in SPLITS:  # deterministic shuffle, so tiles and synthetic images are mixed
        items[name] = [items[name][i] for i in rng.permutation(len(items[name]))]
    params = {
        "kind": "dataset",
        "seed": seed,
        "n_wafers": n_wafers,
        "wafer_size": wafer_size,
        "styles": list(styles),
        "scale": scale,
        "image_section_size": REFERENCE_SECTION_SIZE * scale,
        "patch_size": patch_size,
        "overlap": overlap,
        "requested_split": None if split is None else list(split),
        "fractions": None if fractions is None else list(fractions),
        "n_synthetic": n_synthetic,
        "sections_per_image": list(sections_per_image),
        "wafers": wafers,
        "split_wafers": {s: [wafers[w]["folder"] for w in ws] for s, ws in by_split.items()},
        "held_out_wafers": n_wafers >= 3,
        "counts": {
            s: {
                "tiles": sum(it["kind"] == "tile" for it in items[s]),
                "synthetic": sum(it["kind"] == "synthetic" for it in items[s]),
            }
            for s in SPLITS
        },
    }
    if fractions is None:
        for s, want in zip(SPLITS, split):
            if len(items[s]) < want:
                log.warning(
                    "split %s has %d images, fewer than the %d asked for (not enough tiles; give more "
                    "--synthetic or wafers)",
                    s,
                    len(items[s]),
                    want,
                )
    return write_manifest(out, items, params)


def _check_args(
    out,
    n_wafers,
    wafer_size,
    styles,
    n_synthetic,
    split,
    fractions,
    patch_size,
    overlap,
    overwrite,
    sections_per_image=(3, 8),
):
    if (out / "manifest.json").exists() and not overwrite:
        raise InputError("already holds a dataset (manifest.json); choose another folder or overwrite", out)
    if n_wafers < 1 or wafer_size < 16 or not styles:
        raise InputError(
            f"need at least 1 wafer of at least 16 px and a style (got {n_wafers}, {wafer_size}, {styles})"
        )
    if patch_size <= 0 or not 0 <= overlap < patch_size:
        raise InputError(f"need patch size > 0 and 0 <= overlap < patch size (got {patch_size}, {overlap})")
    if n_synthetic is not None and n_synthetic < 0:
        raise InputError(f"the number of synthetic images must be >= 0 (got {n_synthetic})")
    if fractions is not None:
        if (
            len(fractions) != 3
            or not all(math.isfinite(f) and 0 <= f <= 1 for f in fractions)
            or abs(sum(fractions) - 1.0) > 1e-6
        ):
            raise InputError(
                f"fractions must be 3 shares in [0, 1] that add up to 1 (got {' '.join(f'{f:g}' for f in fractions)})"
            )
    elif split is None or len(split) != 3 or min(split) < 0 or sum(split) <= 0:
        raise InputError(f"split must be 3 counts >= 0 with a positive sum (got {split})")
    lo, hi = sections_per_image
    if not 0 <= lo <= hi:
        raise InputError(f"sections per image must be MIN MAX with 0 <= MIN <= MAX (got {lo} {hi})")


def _plan(by_split, tiles, weights, counts, n_synthetic, rng) -> dict[str, dict]:
    """Per split: the chosen tiles ``[(wafer, origin)]`` and synthetic counts per wafer ``{wafer: n}``."""
    syn_shares = _share(n_synthetic or 0, weights)
    taken: set = set()
    plan = {}
    for name in ("test", "val", "train"):  # held-out splits pick first when wafers are shared
        k = SPLITS.index(name)
        wafers = by_split[name]
        pool = [(w, o) for w in wafers for o in tiles[w] if (w, o) not in taken]
        pool = [pool[i] for i in rng.permutation(len(pool))]
        if counts is None:  # fractions: split the pool of shared wafers by weight, all tiles used
            sharing = [s for s in SPLITS if set(by_split[s]) & set(wafers) and s not in plan]
            n_tiles = _share(len(pool), [weights[SPLITS.index(s)] for s in sharing])[sharing.index(name)] if pool else 0
            n_syn = syn_shares[k]
        else:
            n_syn = min(counts[k], syn_shares[k]) if n_synthetic is not None else 0
            n_tiles = min(len(pool), counts[k] - n_syn)
            if n_synthetic is None:
                n_syn = counts[k] - n_tiles
        chosen = pool[:n_tiles]
        taken.update(chosen)
        per_wafer = dict(zip(wafers, _share(n_syn, [1.0] * len(wafers)))) if wafers else {}
        plan[name] = {"tiles": chosen, "synthetic": per_wafer}
    return plan


def _write(
    out, wafers, plan, patch_size, overlap, seed, sections_per_image, scale=1.0, jobs=1
) -> dict[str, list[dict]]:
    args = [
        (out, w, info, plan, patch_size, overlap, seed, sections_per_image, scale)
        for w, info in enumerate(wafers)
        if any(w in p["synthetic"] or any(t[0] == w for t in p["tiles"]) for p in plan.values())
    ]
    items: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for found in _parallel_map(_write_wafer, args, jobs, "cutting patches"):
        for name in SPLITS:
            items[name] += found[name]
    return items


def _write_wafer(out, w, info, plan, patch_size, overlap, seed, sections_per_image, scale) -> dict[str, list[dict]]:
    """Tiles and synthetic images of wafer ``w`` (at ``scale``), per split."""
    from sectionseg.datasets.adapt import rescale_wafer
    from sectionseg.formats import read_sections

    items: dict[str, list[dict]] = {s: [] for s in SPLITS}
    folder = out / info["folder"]
    rgb, _ = load_wafer_rgb(folder / "rgb.tif")
    if rgb.shape[:2] != (info["height"], info["width"]):
        raise RuntimeError(
            f"{folder / 'rgb.tif'} is {rgb.shape[1]}x{rgb.shape[0]} px, simulated as {info['width']}x{info['height']}"
        )
    sections = read_sections(folder / "sections.labelme.json", fmt="labelme")
    rgb, sections, _ = rescale_wafer(rgb, sections, scale)
    for k, name in enumerate(SPLITS):
        origins = sorted(o for ww, o in plan[name]["tiles"] if ww == w)
        stem = f"wafer_{w:03d}_{name}"
        if origins:
            items[name] += cut_tiles(
                rgb, sections, out, patch_size, overlap, prefix=f"{stem}_tile", source=info["folder"], origins=origins
            )
        n_syn = plan[name]["synthetic"].get(w, 0)
        if n_syn:
            rng = np.random.default_rng([seed, w, k, 1])
            try:
                items[name] += write_synthetic(
                    out,
                    rgb,
                    sections,
                    n_syn,
                    patch_size,
                    rng,
                    sections_per_image,
                    prefix=f"{stem}_synth",
                    source=info["folder"],
                )
            except ValueError as exc:  # e.g. no section fully inside this wafer
                log.warning("%s: no synthetic images: %s", info["folder"], exc)
    return items
