#!/usr/bin/env bash
# run_network_bench.sh - the network benchmark of issue 6: one guided step (unguided,
# DPS, LGD-MC n = 10 and 100) on a time-conditioned MLP and a small ADM U-Net, liblgd's
# CPU backend beside PyTorch eager (float32) on the same weights, same batch, same thread
# count, in one run. Prints markdown tables (docs/results.md records them).
#
# usage: bench/run_network_bench.sh [BUILD_DIR]   (default: build)
# env:   THREADS (default: nproc), REPS (default 10), PYTHON (default python3)
# Needs PyTorch (pip install torch) to write the networks (tools/lgd_convert.py) and for
# the PyTorch column (bench/bench_nn_torch.py). Networks (bench/networks/*.json, random
# weights): a residual MLP (64-D, 2.5 M weights), a small ADM U-Net (3x32x32, 4.4 M) and
# a larger one (3x32x32, 36 M weights, 5 timed steps) where the network dominates.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build}
threads=${THREADS:-$(nproc)}
reps=${REPS:-10}
python=${PYTHON:-python3}
bench=$build/bench/bench-network
[ -x "$bench" ] || { echo "run_network_bench.sh: $bench not built (ninja -C $build)"; exit 1; }
"$python" -c 'import torch' 2>/dev/null || { echo "run_network_bench.sh: PyTorch is needed"; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/lgd-netbench.XXXXXX")
trap 'rm -rf "$work"' EXIT
for net in mlp unet unet_large; do
    "$python" "$root/tools/lgd_convert.py" export --arch "${net%_large}" \
        --config "$root/bench/networks/$net.json" --random-init --seed 1 \
        --out "$work/$net.safetensors" >/dev/null
done
# both sides get the same thread count: OpenMP / OpenBLAS here, torch.set_num_threads there
export OMP_NUM_THREADS=$threads
echo "# liblgd vs PyTorch: one guided step ($(date -u '+%Y-%m-%d'), $(nproc) cores," \
     "$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $threads threads)"
echo
for spec in "mlp 256" "unet 8" "unet_large 8"; do
    set -- $spec
    r=$reps
    [ "$1" = unet_large ] && r=$(( reps < 5 ? reps : 5 ))
    "$bench" --file "$work/$1.safetensors" --batch "$2" --threads "$threads" --reps "$r" \
        --sigma 1.0 --torch "$root/bench/bench_nn_torch.py" --python "$python" \
        --label "$1 (bench/networks/$1.json)"
done
