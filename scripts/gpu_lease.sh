#!/usr/bin/env bash
# One lease of the GPU machine, in one command of at most ~9 minutes (the device tool's limit is 10):
#  1. the GPU detection benchmark (benchmarks/bench_gpu.sh, fewer configurations, 2 repeats);
#  2. a fresh real-look dataset (the `make default-model` recipe, twice the wafers, seed 23);
#  3. a speed probe (25 iterations), then training on from the bundled model for as many epochs as the
#     time left allows (scripts/realistic_gpu.yaml), exported to float16.
# usage (device machine, repo root): OUT=/results scripts/gpu_lease.sh
# Environment: PYTHON (python3), BUDGET_S (total seconds, default 540), WORK (work_data/lease), DEVICE (cuda),
#   small-run knobs for a CPU dry run: SIZE, SECTIONS, WAFERS, WAFER_SIZE, SPLIT, CONFIGS, REPEAT, PROBE_ITERS.
# Every stage runs even if an earlier one failed; the logs, results and the model (in 15 MB pieces:
# `cat model.pt.part* > model.pt`) go to OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
PYTHON=${PYTHON:-python3}
BUDGET_S=${BUDGET_S:-540}
WORK=${WORK:-work_data/lease}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-$WORK/out}
export PYTHONPATH=${PYTHONPATH:-src}
mkdir -p "$WORK" "$OUT"
left() { echo $((t0 + BUDGET_S - $(date +%s))); }
ss() { "$PYTHON" -m sectionseg "$@"; }

echo "== 1. benchmark ($(left) s left)"
PYTHON=$PYTHON WORK=$WORK/bench DEVICE=$DEVICE REPEAT=${REPEAT:-2} \
  CONFIGS=${CONFIGS:-"auto:16:8 auto:32:8 fp32:16:8 auto:16:1"} OUT= \
  benchmarks/bench_gpu.sh 2>&1 | grep -v "it/s\]" | tee "$OUT/bench.log"

echo "== 2. dataset ($(left) s left)"
ds=$WORK/ds
ss dataset --out "$ds" --wafers "${WAFERS:-20}" --wafer-size "${WAFER_SIZE:-4096}" \
  --styles real-wide,realistic,real-wide,real-square,real-wide,real-dark-magnet,real-wide,default,real-wide,crowded \
  --split ${SPLIT:-2400 120 0} --seed 23 --scale 0.5 --jobs "$(nproc)" --sections-per-image 12 32 --overwrite \
  > "$WORK/dataset.log" 2>&1; tail -c 300 "$WORK/dataset.log"; echo

base=src/sectionseg/data/default_model.pt
cfg=scripts/realistic_gpu.yaml
probe_iters=${PROBE_ITERS:-25}
echo "== 3. probe ($(left) s left)"
rm -rf "$WORK/probe" "$WORK/run"
p0=$(date +%s)
ss train --config "$cfg" --data "$ds" --out "$WORK/probe" --epochs 1 --max-iters-per-epoch "$probe_iters" \
  --device "$DEVICE" --init-weights "$base" --no-progress 2>&1 | tail -3
wall=$(( $(date +%s) - p0 ))
"$PYTHON" - "$base" "$ds" "$DEVICE" <<'PY' | tee "$OUT/base_val.txt"
import sys
from sectionseg.model.checkpoint import load_model
from sectionseg.training.loop import mean_losses, open_datasets
model = load_model(sys.argv[1], sys.argv[3])[0]
_, val = open_datasets(sys.argv[2], 384)
print("bundled model val loss:", mean_losses(model, val, batch_size=8, device=sys.argv[3], num_workers=8))
PY
read -r epochs iters < <("$PYTHON" - "$WORK/probe/log.csv" "$ds/manifest.json" "$probe_iters" "$wall" "$(left)" <<'PY'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))
probe, wall, left = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
t_iter = float(rows[-1]["time_s"]) / probe
n_train = len(json.load(open(sys.argv[2]))["splits"]["train"])
iters = -(-n_train // 8)
overhead = max(5.0, wall - float(rows[-1]["time_s"]))   # start, val, checkpoints
epochs = int((left - 30 - overhead) // (iters * t_iter + overhead))
print(max(1, min(epochs, 20)), iters)
print(f"probe: {t_iter:.3f} s/iter, overhead {overhead:.0f} s, val {rows[-1]['val_total']}", file=sys.stderr)
PY
)
echo "training $epochs epochs of $iters iterations ($(left) s left)"
timeout $(( $(left) - 25 )) "$PYTHON" -m sectionseg train --config "$cfg" --data "$ds" --out "$WORK/run" \
  --epochs "$epochs" --device "$DEVICE" --init-weights "$base" --seed 0 --no-progress 2>&1 | tail -5
cp "$WORK/run/log.csv" "$OUT/train_log.csv" 2>/dev/null; cat "$WORK/run/log.csv" 2>/dev/null

echo "== 4. export ($(left) s left)"
ckpt=$WORK/run/best.pt
if [ -f "$ckpt" ]; then
  ss export-model "$ckpt" "$WORK/model.pt" --half --name default-real-wide-gpu \
    && split -b 15000000 -d "$WORK/model.pt" "$OUT/model.pt.part" && ls -la "$OUT"
fi
echo "done ($(left) s left)"
