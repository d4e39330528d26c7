#!/usr/bin/env bash
# run_network_bench.sh - the network benchmark of issues 6 and 16: one guided step
# (unguided, DPS, LGD-MC n = 10 and 100) on a time-conditioned MLP, a small ADM U-Net and
# a larger one, liblgd's CPU backend beside PyTorch eager (float32) on the same weights,
# same batch, same thread count, in one run. Prints markdown tables (docs/results.md
# records them): per step the median wall time with its range, the process CPU time, and
# the PyTorch / liblgd ratios of both; the load average before and after each table.
#
# usage: bench/run_network_bench.sh [BUILD_DIR]   (default: build)
# env:   THREADS   thread counts to run, e.g. "1 2" (default: nproc)
#        REPS      timed steps per method and round (default 10; 5 on the large U-Net)
#        ROUNDS    rounds per network and thread count (default 3): liblgd and PyTorch
#                  alternate, so a burst of load hits both; the spread across rounds is
#                  the benchmark's noise
#        NETS      networks (default "mlp unet unet_large")
#        METHODS   bench-network --methods (default: all four)
#        PROFILE=1 also the per-layer-kind profile of DPS and LGD-MC n = 100 (liblgd)
#        FUSE      bench-network --fuse mask (default 7: every fusion; 0 = --no-fuse)
#        PYTHON    (default python3)
# Needs PyTorch (pip install torch) to write the networks (tools/lgd_convert.py) and for
# the PyTorch column (bench/bench_nn_torch.py). Networks (bench/networks/*.json, random
# weights): a residual MLP (64-D, 2.5 M weights), a small ADM U-Net (3x32x32, 4.4 M) and
# a larger one (3x32x32, 36 M weights) where the network dominates.
#
# On a machine shared with other busy processes the wall times say more about the
# scheduler than about the code; the CPU times and OMP_WAIT_POLICY=passive (set it in the
# environment: both sides' OpenMP runtimes read it) make the comparison steadier. The
# load average is printed with every table.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build}
threads_list=${THREADS:-$(nproc)}
reps=${REPS:-10}
rounds=${ROUNDS:-3}
nets=${NETS:-mlp unet unet_large}
python=${PYTHON:-python3}
bench=$build/bench/bench-network
[ -x "$bench" ] || { echo "run_network_bench.sh: $bench not built (ninja -C $build)"; exit 1; }
"$python" -c 'import torch' 2>/dev/null || { echo "run_network_bench.sh: PyTorch is needed"; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/lgd-netbench.XXXXXX")
trap 'rm -rf "$work"' EXIT
for net in $nets; do
    "$python" "$root/tools/lgd_convert.py" export --arch "${net%_large}" \
        --config "$root/bench/networks/$net.json" --random-init --seed 1 \
        --out "$work/$net.safetensors" >/dev/null
done
extra=()
[ "${PROFILE:-0}" = 1 ] && extra+=(--profile)
[ -n "${FUSE:-}" ] && extra+=(--fuse "$FUSE")
[ -n "${METHODS:-}" ] && extra+=(--methods "$METHODS")
echo "# liblgd vs PyTorch: one guided step ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores," \
     "$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), threads: $threads_list," \
     "$rounds rounds, OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset})"
echo
batch_of() { case "$1" in mlp) echo 256 ;; *) echo 8 ;; esac; }
for threads in $threads_list; do
    # both sides get the same thread count: OpenMP / OpenBLAS here, torch.set_num_threads there
    export OMP_NUM_THREADS=$threads
    for net in $nets; do
        r=$reps
        [ "$net" = unet_large ] && r=$(( reps < 5 ? reps : 5 ))
        for round in $(seq 1 "$rounds"); do
            "$bench" --file "$work/$net.safetensors" --batch "$(batch_of "$net")" \
                --threads "$threads" --reps "$r" --sigma 1.0 \
                --torch "$root/bench/bench_nn_torch.py" --python "$python" \
                --label "$net (bench/networks/$net.json), $threads thread(s), round $round/$rounds" \
                ${extra[@]+"${extra[@]}"}
        done
    done
done
