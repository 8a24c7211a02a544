#!/bin/bash
# Detections of a fixed set of wafers with the code of a source tree, to check that a refactor changes
# no output (CONTRIBUTING.md, "No behaviour change"):
#
#   benchmarks/detections_snapshot.sh OUT [SRC]       # SRC: a checkout (default: this one)
#   git worktree add --detach /tmp/before main && benchmarks/detections_snapshot.sh work_data/before /tmp/before
#   benchmarks/detections_snapshot.sh work_data/after
#   diff -r --exclude=report.json --exclude=overlay.png --exclude='*.log' work_data/before work_data/after
#
# Wafers: four 5000 px benchmark wafers of benchmarks/bench_detect.py (simulated there first, into
# BENCH, default work_data/bench_detect; with and without fluorescence) and, when ../shared is there,
# the real picture (automatic scale with fluorescence, gray alone at its section size). Detection is
# deterministic: two runs of the same code give identical files (report.json holds timings). Put the
# two OUT folders at the same depth: labelme and COCO files record the image path relative to them.
set -euo pipefail
OUT=${1:?usage: detections_snapshot.sh OUT [SRC]}
REPO=$(cd "$(dirname "$0")/.." && pwd)
SRC=$(cd "${2:-$REPO}" && pwd)
PY=${PYTHON:-$REPO/.venv/bin/python}
BENCH=${BENCH:-$REPO/work_data/bench_detect}
PANEL=$REPO/../shared/real/panel_b
mkdir -p "$OUT"
run() {
    local name=$1; shift
    rm -rf "${OUT:?}/$name"
    if ! OMP_NUM_THREADS=1 PYTHONPATH="$SRC/src" "$PY" -m sectionseg detect "$@" --out "$OUT/$name" --no-progress \
        --workers 2 >"$OUT/$name.log" 2>&1; then
        echo "FAILED $name (see $OUT/$name.log)"
    fi
}
for wafer in crowded-1002-5000 realistic-1020-5000 held-debris-1031-5000 real-dark-magnet-1022-5000; do
    if [ ! -f "$BENCH/$wafer/gray.tif" ]; then
        echo "no $BENCH/$wafer: run benchmarks/bench_detect.py first (or set BENCH)" >&2
        exit 2
    fi
done
run crowded_fluo "$BENCH/crowded-1002-5000/gray.tif" --fluo "$BENCH/crowded-1002-5000/fluo.tif"
run realistic_gray "$BENCH/realistic-1020-5000/gray.tif"
run debris_gray "$BENCH/held-debris-1031-5000/gray.tif"
run darkmag_fluo "$BENCH/real-dark-magnet-1022-5000/gray.tif" --fluo "$BENCH/real-dark-magnet-1022-5000/fluo.tif"
if [ -d "$PANEL" ]; then
    run panelb_fluo "$PANEL/gray.png" --fluo "$PANEL/fluo.png"
    run panelb_gray185 "$PANEL/gray.png" --section-size 185
fi
echo "detections written to $OUT"
