"""Whole-wafer detection benchmark: model pipeline vs the classical baseline on held-out wafers.

Usage::

    python benchmarks/bench_detect.py [--model FILE] [--work DIR]
        [--wafers default:1000 low-contrast:1001 ...] [--size 5000] [--sections 500] [--real]
        [--scaling 1000 2000 3000] [--threads 2] [--no-classical]
        [--precision auto|fp32|bf16] [--proposals N] [--tile-size PX] [--overlap PX] [--workers N]
        [--gray-only] [--without STEP ...] [--ablation] [--scale-factor F]

Wafers are simulated with held-out seeds (>= 1000; training used lower seeds) into ``--work``
(default ``work_data/bench_detect``) and reused. Each (wafer, method) runs in a fresh process so
that its peak memory is its own (the larger of its max RSS and the PSS of it and its worker
processes, sampled every 0.2 s); its result is saved as JSON in ``WORK/results`` and not
recomputed (the benchmark is resumable: delete a result file to rerun it). ``--real`` adds the real
layouts (../shared/data/real_layouts/wafer*) rendered by the simulator at 1/3 scale, when present.

Prints a markdown table: precision/recall per part (IoU >= 0.5), median centre/angle error,
pairing accuracy, section F1 (both parts found, right way round, paired), the share of found
sections with tissue and magnet swapped, time and peak memory; then the model's time vs wafer area
(``--scaling``). ``--gray-only`` detects without the fluorescence image; ``--without`` switches
repair steps off (``sectionseg.detection.settings.STEPS``); ``--ablation`` prints, per wafer, the
section F1 / swapped share with every step switched off in turn (what each step buys);
``--scale-factor`` detects each wafer at that factor times the scale estimated for it (how far the
estimate is from the scale where the model finds most).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import queue as queue_module
import resource
import time
from pathlib import Path

from _procs import process_tree, smaps_rollup_mb

REPO = Path(__file__).resolve().parents[1]
REAL_LAYOUTS = REPO.parent / "shared" / "data" / "real_layouts"
DEFAULT_WAFERS = ["default:1000", "low-contrast:1001", "crowded:1002", "large-sections:1003"]


def _simulate(
    folder: Path, style: str, seed: int, size: int | None, sections: int | None, layout: Path | None = None
) -> None:
    from sectionseg.simulation import simulate_wafer

    if (folder / "simulation.json").is_file():
        return
    if layout is not None:
        simulate_wafer(folder, seed=seed, style=style, layout_path=layout, layout_scale=1 / 3)
    else:
        simulate_wafer(folder, seed=seed, style=style, width=size, height=size, n_sections=sections)


def _reset_peak_memory() -> None:
    """Reset this process's peak RSS (Linux >= 4.0); a spawned child otherwise inherits the parent's
    high-water mark through fork + exec."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _peak_memory_mb() -> float:
    """Peak resident memory of this process in MB (VmHWM, else ru_maxrss)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _run_one(folder: str, method: str, model: str | None, threads: int, options: dict, queue) -> None:
    """Child process: detect, compare with the ground truth, report metrics, time and peak memory."""
    _reset_peak_memory()
    import torch

    torch.set_num_threads(threads)
    from sectionseg.evaluation import compare_sections
    from sectionseg.formats import read_sections
    from sectionseg.io.images import read_image

    options = dict(options)
    gray = read_image(Path(folder) / "gray.tif")
    fluo = None if options.pop("gray_only", False) else read_image(Path(folder) / "fluo.tif")
    without = options.pop("without", ())
    t0 = time.perf_counter()
    if method == "model":
        from sectionseg.detection import detect_wafer
        from sectionseg.detection.settings import RepairSettings

        result = detect_wafer(
            gray, fluo, model=model, progress=False, settings=RepairSettings().without(*without), **options
        )
        found, extra = result.sections + result.unpaired, {"scale": result.scale, "timings": result.timings}
    else:
        from sectionseg.detection.classical import detect_classical

        found, extra = detect_classical(gray, fluo), {}
    seconds = time.perf_counter() - t0
    metrics = compare_sections(read_sections(Path(folder) / "sections.labelme.json"), found)
    queue.put(
        {
            "metrics": metrics,
            "seconds": seconds,
            "width": int(gray.shape[1]),
            "height": int(gray.shape[0]),
            "peak_memory_mb": _peak_memory_mb(),
            **extra,
        }
    )


def _tree_pss_mb(pid: int) -> float:
    """Proportional set size (shared pages split between their users) of process ``pid`` and all
    its descendants, MB: the machine memory the detection uses with its forked workers."""
    return sum(smaps_rollup_mb(p).get("Pss", 0.0) for p in process_tree(pid))


def run_isolated(
    folder: Path, method: str, model: str | None, threads: int, cache: Path, options: dict | None = None
) -> dict:
    """Result of one (wafer, method), from ``cache`` when present, else computed in a fresh process.
    Its peak memory is sampled every 0.2 s over the process and its workers (PSS)."""
    if cache.is_file():
        return json.loads(cache.read_text())
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_run_one, args=(str(folder), method, model, threads, options or {}, queue))
    proc.start()
    peak_tree = 0.0
    while True:
        try:
            result = queue.get(timeout=0.2)
            break
        except queue_module.Empty:
            if not proc.is_alive():
                raise RuntimeError(
                    f"the benchmark process for {folder} ({method}) died, exit code {proc.exitcode}"
                ) from None
            peak_tree = max(peak_tree, _tree_pss_mb(proc.pid))
    proc.join()
    result["peak_tree_pss_mb"] = peak_tree
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(result, indent=1))
    return result


def _peak(r: dict) -> float:
    """Peak MB of a run: sampled PSS of the process tree when recorded (and larger), else max RSS."""
    return max(r.get("peak_tree_pss_mb", 0.0), r["peak_memory_mb"])


def _fmt(v, fmt=".3f"):
    return "-" if v is None else format(v, fmt)


def table_row(name: str, method: str, r: dict) -> str:
    m = r["metrics"]
    t, g = m["tissue"], m["magnet"]
    return (
        f"| {name} | {method} | {m['n_truth']} | {_fmt(t['precision'])} / {_fmt(t['recall'])} | "
        f"{_fmt(g['precision'])} / {_fmt(g['recall'])} | {_fmt(t['centre_error_median'], '.2f')} / "
        f"{_fmt(g['centre_error_median'], '.2f')} | {_fmt(t['angle_error_median'], '.2f')} / "
        f"{_fmt(g['angle_error_median'], '.2f')} | {_fmt(m['pairing_accuracy'])} | "
        f"{_fmt(m['section_recall'])} | {_fmt(m.get('section_f1'))} | {_pct(m)} | {r['seconds']:.0f} | "
        f"{_peak(r):.0f} |"
    )


def _pct(m: dict) -> str:
    return "-" if "swapped_fraction" not in m else f"{100 * m['swapped_fraction']:.1f} %"


def main(argv=None) -> int:
    from sectionseg.detection.inference import PRECISIONS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="model file (default: the bundled model)")
    p.add_argument("--work", default=str(REPO / "work_data" / "bench_detect"))
    p.add_argument("--wafers", nargs="*", default=DEFAULT_WAFERS, help="STYLE:SEED of simulated wafers")
    p.add_argument("--size", type=int, default=5000, help="simulated wafer side, px")
    p.add_argument("--sections", type=int, default=500, help="sections per simulated wafer")
    p.add_argument("--real", action="store_true", help="add the real layouts (rendered), when present")
    p.add_argument("--real-style", default="default", help="simulation style the real layouts are rendered in")
    p.add_argument(
        "--scaling",
        type=int,
        nargs="*",
        default=[1000, 2000, 3000],
        help="wafer sides for the time-vs-area rows (model only)",
    )
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--no-classical", action="store_true", help="skip the classical baseline")
    p.add_argument("--precision", choices=PRECISIONS, help="detection precision (default: auto)")
    p.add_argument("--proposals", type=int, help="region proposals per tile (default: the pipeline's)")
    p.add_argument("--tile-size", type=int, help="tile side, working px (default: the pipeline's)")
    p.add_argument("--overlap", type=int, help="tile overlap, working px (default: the pipeline's)")
    p.add_argument("--workers", type=int, help="detection worker processes (default: the pipeline's auto)")
    p.add_argument("--gray-only", action="store_true", help="detect without the fluorescence image")
    p.add_argument("--without", nargs="*", default=[], help="repair steps switched off")
    p.add_argument("--ablation", action="store_true", help="also every repair step off in turn (model only)")
    p.add_argument(
        "--scale-factor",
        type=float,
        help="model only: detect at this factor times the scale the pipeline estimates for each wafer "
        "(the estimate from the cached run with the same options, run first when missing)",
    )
    args = p.parse_args(argv)
    from sectionseg.detection.settings import STEPS

    bad = [s for s in args.without if s not in STEPS]
    if bad:
        p.error(f"unknown repair steps {bad}; known: {', '.join(STEPS)}")
    options = {
        k: v
        for k, v in (
            ("precision", args.precision),
            ("proposals", args.proposals),
            ("tile_size", args.tile_size),
            ("overlap", args.overlap),
            ("workers", args.workers),
            ("gray_only", args.gray_only or None),
            ("without", tuple(args.without) or None),
        )
        if v is not None
    }
    from sectionseg.model import default_model_path

    model = args.model or str(default_model_path())
    if not Path(model).is_file():
        p.error(f"model file not found: {model} (pass --model)")
    work = Path(args.work)
    jobs = []
    for spec in args.wafers:
        style, seed = spec.split(":")
        name = f"{style}-{seed}-{args.size}"
        _simulate(work / name, style, int(seed), args.size, args.sections)
        jobs.append((name, work / name))
    if args.real:
        for layout in sorted(REAL_LAYOUTS.glob("wafer*")) if REAL_LAYOUTS.is_dir() else []:
            name = f"real-{layout.name}" + ("" if args.real_style == "default" else f"-{args.real_style}")
            _simulate(work / name, args.real_style, 1100, None, None, layout=layout)
            jobs.append((name, work / name))
    from sectionseg.detection.predictor import model_identity

    # results of the model are cached per model file (its sha256 prefix), the classical ones per wafer
    # (plus the detection options given, so that variants are cached apart)
    def tag_of(opts: dict) -> str:
        return "".join(f"-{k}{'+'.join(v) if isinstance(v, tuple) else v}" for k, v in sorted(opts.items()))

    variant = tag_of(options)
    model_tag = "model-" + model_identity(model)["sha256"][:8]
    tags = {"model": model_tag + variant, "classical": "classical" + ("-grayonly" if args.gray_only else "")}
    methods = ["model"] + ([] if args.no_classical else ["classical"])
    print(
        "| wafer | method | sections | tissue P / R | magnet P / R | centre err px (t / m) | "
        "angle err deg (t / m) | pairing acc. | sections found | section F1 | swapped | time s | peak MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    classical_options = {"gray_only": True} if args.gray_only else None
    for name, folder in jobs:
        for method in methods:
            cache = work / "results" / f"{name}-{tags[method]}.json"
            r = run_isolated(
                folder, method, model, args.threads, cache, options if method == "model" else classical_options
            )
            if method == "model" and args.scale_factor:
                opts = {**options, "scale": r["scale"] * args.scale_factor}
                cache = work / "results" / f"{name}-{tags[method]}-scale_factor{args.scale_factor}.json"
                r = run_isolated(folder, method, model, args.threads, cache, opts)
            print(table_row(name, method, r), flush=True)
    if args.ablation:
        print("\n| wafer | all steps | " + " | ".join(f"without {s}" for s in STEPS) + " |")
        print("|---|---|" + "---|" * len(STEPS))
        for name, folder in jobs:
            cells = []
            for off in [()] + [(s,) for s in STEPS]:
                opts = {**options, **({"without": off} if off else {})}
                cache = work / "results" / f"{name}-{model_tag}{tag_of(opts)}.json"
                m = run_isolated(folder, "model", model, args.threads, cache, opts)["metrics"]
                cells.append(f"{_fmt(m['section_f1'])} ({_pct(m)})")
            print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    if args.scaling:
        print("\n| wafer side px | area Mpx | time s | s per Mpx | peak MB |\n|---|---|---|---|---|")
        for side in args.scaling:
            name = f"default-1010-{side}"
            _simulate(work / name, "default", 1010, side, None)
            cache = work / "results" / f"{name}-{tags['model']}.json"
            r = run_isolated(work / name, "model", model, args.threads, cache, options)
            area = r["width"] * r["height"] / 1e6
            print(
                f"| {side} | {area:.1f} | {r['seconds']:.1f} | {r['seconds'] / area:.2f} | {_peak(r):.0f} |", flush=True
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
