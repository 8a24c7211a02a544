"""Huge mosaics: time and memory of ``sectionseg detect`` on 16-bit wafers of 5000, 10000, 20000 px.

Usage::

    python benchmarks/bench_huge.py [--work DIR] [--sizes 5000 10000 20000] [--style default]
        [--seed 1000] [--sections 500] [--input tiff|zarr|tiled ...] [--workers N] [--section-size PX]

A 5000 px wafer is simulated once (``--style``, ``--seed``, ``--sections``); a wafer of side
``k x 5000`` is that wafer tiled ``k x k`` times, mirrored at every seam (so the mosaic has no
seams and its sections stay whole), written tile by tile into a memory-mapped uint16 TIFF (the big
image is never in memory, here either), with its ground truth mirrored alike. ``--input zarr`` also
writes it as a chunked Zarr array (1024 px chunks, zstd) and ``tiled`` as a tiled zlib TIFF, both
read lazily by sectionseg.

Each (size, input) runs ``python -m sectionseg detect`` in its own process (so every figure is its
own), the process tree sampled every 0.25 s:

- ``peak anon MB``: the largest sum over the process and its forked workers of the anonymous
  memory each uses (``Pss_Anon`` of ``/proc/PID/smaps_rollup``: shared pages split between their
  users), the memory detection itself allocates;
- ``peak RSS MB``: the largest ``VmHWM`` (peak resident set) of the main process, which also
  counts the pages of the memory-mapped image it has read: those are the file's page cache, clean
  and dropped by the kernel whenever memory is needed, so they do not bound the image size;
- time: wall time of the command (model loading and output writing included), the detection
  time of ``report.json``, and the CPU time (user + system) of the command and its workers, which
  does not depend on what else the machine runs (the load average during the run is recorded too).

Results go to ``WORK/results/*.json`` (reused: delete one to rerun it); a markdown table is printed.
Sections found are compared with the mirrored ground truth (section recall, IoU >= 0.5).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _procs import process_tree, smaps_rollup_mb

REPO = Path(__file__).resolve().parents[1]
BASE = 5000


def simulate_base(folder: Path, style: str, seed: int, sections: int) -> None:
    from sectionseg.simulation import simulate_wafer

    if not (folder / "simulation.json").is_file():
        simulate_wafer(folder, seed=seed, style=style, width=BASE, height=BASE, n_sections=sections)


def _mirrored(sections, k: int, size: int):
    """The base wafer's sections in every cell of a ``k x k`` mirrored tiling."""
    out = []
    for i in range(k):
        for j in range(k):

            def move(points, i=i, j=j):
                p = np.array(points, dtype=np.float64)
                x = size - p[:, 0] if j % 2 else p[:, 0]
                y = size - p[:, 1] if i % 2 else p[:, 1]
                return np.column_stack([x + j * size, y + i * size])

            for s in sections:
                out.append(
                    type(s).from_arrays(
                        *(None if part is None else move(part.polygon) for part in (s.tissue, s.magnet, s.dummy))
                    )
                )
    return out


def make_mosaic(base: Path, folder: Path, k: int, inputs: list[str]) -> None:
    """``gray.tif`` / ``fluo.tif`` (uint16, k x k mirrored copies of the base wafer), ground truth,
    and the lazily read variants asked for."""
    import tifffile

    from sectionseg.formats import read_sections, write_sections
    from sectionseg.io.images import read_image

    folder.mkdir(parents=True, exist_ok=True)
    size = BASE * k
    for name in ("gray", "fluo"):
        path = folder / f"{name}.tif"
        if not path.is_file():
            src = read_image(base / f"{name}.tif")
            factor = 257 if src.dtype == np.uint8 else 1  # the big wafer is 16-bit in any case
            tmp = folder / f".{name}.tmp.tif"
            out = tifffile.memmap(tmp, shape=(size, size), dtype=np.uint16, photometric="minisblack")
            for i in range(k):
                for j in range(k):
                    block = np.asarray(src, dtype=np.uint16) * np.uint16(factor)
                    block = block[::-1] if i % 2 else block
                    block = block[:, ::-1] if j % 2 else block
                    out[i * BASE : (i + 1) * BASE, j * BASE : (j + 1) * BASE] = block
            out.flush()
            del out
            os.replace(tmp, path)
        image = None
        if "zarr" in inputs and not (folder / f"{name}.zarr" / "zarr.json").is_file():
            import zarr

            image = read_image(path)
            z = zarr.create_array(
                str(folder / f"{name}.zarr"), shape=image.shape, dtype=image.dtype, chunks=(1024, 1024), overwrite=True
            )
            for r in range(0, size, 1024):
                z[r : r + 1024] = image[r : r + 1024]
        if "tiled" in inputs and not (folder / f"{name}_tiled.tif").is_file():
            image = read_image(path) if image is None else image
            tmp = folder / f".{name}_tiled.tmp.tif"
            with tifffile.TiffWriter(tmp, bigtiff=True) as tw:
                tw.write(
                    _tiles(image, 512),
                    shape=image.shape,
                    dtype=image.dtype,
                    tile=(512, 512),
                    compression="zlib",
                    photometric="minisblack",
                )
            os.replace(tmp, folder / f"{name}_tiled.tif")
    truth = folder / "sections.labelme.json"
    if not truth.is_file():
        write_sections(
            truth, _mirrored(read_sections(base / "sections.labelme.json"), k, BASE), "labelme", image_size=(size, size)
        )


def _tiles(image, tile: int):
    """Tiles of a 2-D image in TIFF order (row by row), for a tiled TiffWriter."""
    h, w = image.shape
    for r in range(0, h, tile):
        for c in range(0, w, tile):
            block = np.zeros((tile, tile), image.dtype)
            part = np.asarray(image[r : r + tile, c : c + tile])
            block[: part.shape[0], : part.shape[1]] = part
            yield block


def _sample(pid: int) -> tuple[float, float, float]:
    """(anonymous PSS of the tree, file PSS of the tree, VmHWM of ``pid``), MB."""
    anon = files = hwm = 0.0
    for p in process_tree(pid):
        fields = smaps_rollup_mb(p)
        anon += fields.get("Pss_Anon", 0.0)
        files += fields.get("Pss_File", 0.0)
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return anon, files, hwm


def run_detect(folder: Path, k: int, kind: str, work: Path, workers: int | None, section_size: float | None) -> dict:
    cache = work / "results" / f"{BASE * k}-{kind}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    suffix = {"tiff": ".tif", "zarr": ".zarr", "tiled": "_tiled.tif"}[kind]
    out = work / "detect" / f"{BASE * k}-{kind}"
    cmd = [
        sys.executable,
        "-m",
        "sectionseg",
        "detect",
        str(folder / f"gray{suffix}"),
        "--fluo",
        str(folder / f"fluo{suffix}"),
        "--out",
        str(out),
        "--no-progress",
    ]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    if section_size is not None:
        cmd += ["--section-size", str(section_size)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peak_anon = peak_files = peak_hwm = 0.0
    loads = []
    while proc.poll() is None:
        anon, files, hwm = _sample(proc.pid)
        peak_anon, peak_files, peak_hwm = max(peak_anon, anon), max(peak_files, files), max(peak_hwm, hwm)
        loads.append(os.getloadavg()[0])
        time.sleep(0.25)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}")
    report = json.loads((out / "report.json").read_text())
    from sectionseg.evaluation import compare_sections
    from sectionseg.formats import read_sections

    metrics = compare_sections(
        read_sections(folder / "sections.labelme.json"), read_sections(out / "sections.labelme.json")
    )
    result = {
        "size": BASE * k,
        "input": kind,
        "wall_s": wall,
        "detect_s": report["total_seconds"],
        "timings_s": report["timings_s"],
        "peak_anon_mb": peak_anon,
        "peak_file_mb": peak_files,
        "peak_rss_mb": max(peak_hwm, report["peak_memory_mb"]),
        "worker_peak_rss_mb": report["worker_peak_memory_mb"],
        "tiles": report["counts"]["tiles"],
        "sections": report["counts"]["sections"],
        "truth": metrics["n_truth"],
        "section_recall": metrics["section_recall"],
        "section_f1": metrics.get("section_f1"),
        "workers": report["params"]["workers"],
        "cpu_s": cpu,
        "load_mean": float(np.mean(loads)) if loads else None,
        "cores": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(cmd[1:]),
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(result, indent=1))
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default=str(REPO / "work_data" / "bench_huge"))
    p.add_argument(
        "--sizes", type=int, nargs="+", default=[5000, 10000, 20000], help="wafer sides, multiples of 5000 px"
    )
    p.add_argument("--style", default="default")
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--sections", type=int, default=500, help="sections of the 5000 px base wafer")
    p.add_argument(
        "--input",
        nargs="+",
        default=["tiff"],
        choices=("tiff", "zarr", "tiled"),
        help="how the big image is stored: plain TIFF (memory-mapped), Zarr, tiled zlib TIFF",
    )
    p.add_argument("--workers", type=int, help="detect --workers (default: its own)")
    p.add_argument("--section-size", type=float, help="detect --section-size (default: estimated)")
    args = p.parse_args(argv)
    work = Path(args.work)
    base = work / f"base-{args.style}-{args.seed}"
    simulate_base(base, args.style, args.seed, args.sections)
    rows = []
    for size in args.sizes:
        if size % BASE:
            p.error(f"--sizes must be multiples of {BASE}")
        k = size // BASE
        folder = work / f"mosaic-{args.style}-{args.seed}-{size}"
        make_mosaic(base, folder, k, args.input)
        for kind in args.input:
            r = run_detect(folder, k, kind, work, args.workers, args.section_size)
            rows.append(r)
            print(
                f"{size} {kind}: {r['wall_s']:.0f} s, anon {r['peak_anon_mb']:.0f} MB, rss {r['peak_rss_mb']:.0f} MB",
                flush=True,
            )
    print(
        "\n| wafer px | input | Mpx | tiles | sections (truth) | section recall | detect s | wall s | CPU s "
        "| CPU s per Mpx | load | peak anon MB | peak RSS MB (incl. mapped image) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        mpx = r["size"] ** 2 / 1e6
        cpu = r.get("cpu_s")
        print(
            f"| {r['size']} | {r['input']} | {mpx:.0f} | {r['tiles']} | {r['sections']} ({r['truth']}) | "
            f"{r['section_recall']:.3f} | {r['detect_s']:.0f} | {r['wall_s']:.0f} | "
            f"{'-' if cpu is None else f'{cpu:.0f}'} | {'-' if cpu is None else f'{cpu / mpx:.2f}'} | "
            f"{'-' if r.get('load_mean') is None else format(r['load_mean'], '.1f')} | "
            f"{r['peak_anon_mb']:.0f} | {r['peak_rss_mb']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
