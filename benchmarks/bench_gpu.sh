#!/usr/bin/env bash
# GPU detection benchmark: per-wafer time of `sectionseg detect --device cuda` on the 5000 x 5000 px
# benchmark wafer (style default, seed 1000, 500 sections: the first row of bench_detect.py).
#
#   benchmarks/bench_gpu.sh                 # PYTHON=.venv/bin/python WORK=work_data/bench_gpu by default
#   PYTHON=/path/python OUT=/results benchmarks/bench_gpu.sh
#
# Runs, after one warm-up detection (CUDA context, cuDNN autotuning), each configuration
# PRECISION:BATCH[:WORKERS] (precision, tiles per model call, CPU processes fitting the quads; the
# model itself always runs in the main process) REPEAT times (default 3) and prints one line per run plus a
# markdown table of the median: wall time of the command, detection time (report.json
# total_seconds: model loading, scale estimate, inference, fitting, repairs) and its stages; then
# the warm per-wafer time (model loaded once in one process, as in a detect-batch worker). The
# outputs and a results.csv go to WORK (and OUT when set, e.g. the device machine's $OUT).
# The goal: <= 2 s per 5000 x 5000 px wafer on one H200.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
WORK=${WORK:-work_data/bench_gpu}
REPEAT=${REPEAT:-3}
CONFIGS=${CONFIGS:-"auto:16:1 auto:16:8 auto:32:8 auto:8:8 fp32:16:8"}
SECTION_SIZE=${SECTION_SIZE:-}   # e.g. 130 to skip the scale estimate
DEVICE=${DEVICE:-cuda}           # DEVICE=cpu SIZE=800 SECTIONS=10 CONFIGS=fp32:2 REPEAT=1: a dry run of the script
SIZE=${SIZE:-5000}
SECTIONS=${SECTIONS:-500}
export PYTHONPATH=${PYTHONPATH:-src}

mkdir -p "$WORK"
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi") | tee "$WORK/gpu.txt"
"$PYTHON" -c 'import torch; c = torch.cuda.is_available(); print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0) if c else "no GPU", "bf16", c and torch.cuda.is_bf16_supported())' | tee -a "$WORK/gpu.txt"

WAFER=$WORK/wafer-$SIZE
if [ ! -f "$WAFER/simulation.json" ]; then
  "$PYTHON" -m sectionseg simulate --out "$WAFER" --seed 1000 --width "$SIZE" --height "$SIZE" --sections "$SECTIONS"
fi

run() {  # run NAME PRECISION BATCH WORKERS
  local out=$WORK/det-$1
  local extra=(--workers "${4:-1}")
  [ -n "$SECTION_SIZE" ] && extra+=(--section-size "$SECTION_SIZE")
  local t0 t1
  t0=$(date +%s.%N)
  "$PYTHON" -m sectionseg detect "$WAFER/gray.tif" --fluo "$WAFER/fluo.tif" --out "$out" --device "$DEVICE" \
    --precision "$2" --batch-size "$3" --no-progress "${extra[@]}" > /dev/null
  t1=$(date +%s.%N)
  "$PYTHON" - "$out/report.json" "$1" "$2" "$3" "$t0" "$t1" "${4:-1}" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["timings_s"]
print(",".join([sys.argv[2], sys.argv[3], r["model"]["precision"], sys.argv[4], sys.argv[7],
                f"{float(sys.argv[6]) - float(sys.argv[5]):.2f}",
                f"{r['total_seconds']:.2f}"] + [f"{t.get(k, 0):.2f}" for k in
                ("setup", "scale", "inference", "merge", "fit", "pairing")] + [str(r["counts"]["sections"])]))
EOF
}

echo "run,precision,resolved,batch,workers,wall_s,detect_s,setup_s,scale_s,inference_s,merge_s,fit_s,pairing_s,sections" > "$WORK/results.csv"
first=${CONFIGS%% *}
IFS=: read -r p b w <<< "$first"
run warmup "$p" "$b" "$w" > /dev/null   # CUDA context, cuDNN autotuning, page cache
for cfg in $CONFIGS; do
  IFS=: read -r p b w <<< "$cfg"
  for k in $(seq 1 "$REPEAT"); do run "$p-$b-${w:-1}-$k" "$p" "$b" "$w" | tee -a "$WORK/results.csv"; done
done

"$PYTHON" - "$WORK/results.csv" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
groups = {}
for r in rows:
    groups.setdefault((r["precision"], r["resolved"], r["batch"], r["workers"]), []).append(r)
print("\n| precision | batch | workers | wall s | detect s | inference s | fit s | pairing s | sections |")
print("|---|---|---|---|---|---|---|---|---|")
for (p, resolved, b, w), rs in groups.items():
    med = lambda k: statistics.median(float(r[k]) for r in rs)
    print(f"| {p} ({resolved}) | {b} | {w} | {med('wall_s'):.2f} | {med('detect_s'):.2f} | {med('inference_s'):.2f} | "
          f"{med('fit_s'):.2f} | {med('pairing_s'):.2f} | {rs[0]['sections']} |")
EOF
# Warm: one process, the model loaded once (as a detect-batch worker does), the wafer detected
# REPEAT + 1 times: the per-wafer time of a batch, without process start, imports and model loading.
WARM_WORKERS=${WARM_WORKERS:-8}
"$PYTHON" - "$WAFER" "$DEVICE" "$REPEAT" "$WARM_WORKERS" "$SECTION_SIZE" <<'EOF' | tee "$WORK/warm.txt"
import statistics, sys, time
from sectionseg.detection import detect_wafer
from sectionseg.io.images import read_image
wafer, device, repeat, workers, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
gray, fluo = read_image(f"{wafer}/gray.tif"), read_image(f"{wafer}/fluo.tif")
times = []
for k in range(repeat + 1):
    t = time.perf_counter()
    r = detect_wafer(gray, fluo, device=device, workers=workers, progress=False, reuse_model=True,
                     section_size=float(size) if size else None)
    times.append(time.perf_counter() - t)
    print(f"warm run {k}: {times[-1]:.2f} s", {k: round(v, 2) for k, v in r.timings.items()},
          r.counts["sections"], "sections", flush=True)
print(f"warm per-wafer time (median of runs 1..{repeat}, {workers} fitting workers): "
      f"{statistics.median(times[1:]):.2f} s")
EOF
if [ -n "${OUT:-}" ]; then cp "$WORK/results.csv" "$WORK/gpu.txt" "$WORK/warm.txt" "$OUT/"; fi
