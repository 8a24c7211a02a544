#!/usr/bin/env bash
# Train the compact model (preset gpu) on one GPU from freshly simulated data brought to SCALE
# (0.5: the model works on sections half the simulator's size, so detection reads 4x fewer tiles),
# then export it (float16) to WORK/model.pt. Reproduces the bundled model:
#   scripts/train_gpu.sh 0.5 work_data/gpu_half
# usage: scripts/train_gpu.sh SCALE WORK [EPOCHS] [TIME_LIMIT_S]
#   TIME_LIMIT_S > 0 stops training after that many seconds and exports the best checkpoint so far.
# Environment: PYTHON (default python3), DEVICE (default cuda), JOBS (data processes, default 8),
#   WAFERS (default 12), SPLIT (default "1200 90 0").
set -euo pipefail
scale=$1; work=$2; epochs=${3:-12}; limit=${4:-0}
py=${PYTHON:-python3}
read -r size lo hi < <($py -c "s=$scale; print(round(2048 / s), max(3, round(3 / s**2)), max(8, round(8 / s**2)))")
mkdir -p "$work"
$py -m sectionseg dataset --out "$work/ds" --wafers "${WAFERS:-12}" --wafer-size "$size" \
  --styles default,crowded,large-sections,sparse,default,crowded --split ${SPLIT:-1200 90 0} --seed 1 \
  --scale "$scale" --jobs "${JOBS:-8}" --sections-per-image "$lo" "$hi" --overwrite
train=($py -m sectionseg train --config gpu --data "$work/ds" --out "$work/run" --epochs "$epochs"
       --device "${DEVICE:-cuda}" --seed 0 --no-progress)
if [ "$limit" -gt 0 ]; then
  timeout "$limit" "${train[@]}" || echo "training stopped (time limit $limit s or error $?)"
else
  "${train[@]}"
fi
ckpt="$work/run/best.pt"; [ -f "$ckpt" ] || ckpt="$work/run/last.pt"
$py -m sectionseg export-model "$ckpt" "$work/model.pt" --half --name "gpu-scale$scale"
echo "model: $work/model.pt from $ckpt"
