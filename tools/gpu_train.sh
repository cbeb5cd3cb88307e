#!/usr/bin/env bash
# Production training run on one GPU (the device machine: Python 3.12 + torch, no astropy,
# no network). Trains the CPU-fast 'default' size and the 'large' size side by side on one
# GPU for a fixed wall-time budget, then benchmarks the network there. Usage (repo root):
#
#   bash tools/gpu_train.sh DATASET.h5 OUTDIR [MINUTES] [BENCH]
#
# BENCH=0 skips the benchmark.
# Needs the astropy wheels in .whl/ (see docs: training your own model) when astropy is
# missing. Selected results are copied flat into OUTDIR (few files, as the device tool
# brings back at most 8).
set -uo pipefail
dataset=${1:?dataset file}; out=${2:?output folder}; minutes=${3:-6.5}; bench=${4:-1}
if ! python3 -c "import astropy" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD PYTHONUNBUFFERED=1
mkdir -p "$out" /tmp/runs
nvidia-smi -L || true
train_config='{"patience": 0, "batch_size": 1024}'
for size in default large; do
    python3 -m giantfm.train.trainer --dataset "$dataset" --out /tmp/runs/$size \
        --config $size --epochs 100000 --max-minutes "$minutes" --no-progress \
        --train-config "$train_config" > /tmp/runs/$size.log 2>&1 &
done
wait
for size in default large; do
    tail -n 3 /tmp/runs/$size.log
    cp /tmp/runs/$size/best/weights.pt "$out/${size}_weights.pt"
    cp /tmp/runs/$size/best/config.json "$out/${size}_config.json"
    cp /tmp/runs/$size/metrics.csv "$out/${size}_metrics.csv"
done
cat /tmp/runs/default.log /tmp/runs/large.log > "$out/train.log"
[ "$bench" = 0 ] && exit 0
timeout 90 python3 benchmarks/bench_model.py --device cuda --configs default,large,generic \
    --repeats 5 2>&1 | tee "$out/bench_model_gpu.txt"
