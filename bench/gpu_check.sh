#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions run from the EXIT trap and through bash -c
# gpu_check.sh - build liblgd with the CUDA backend on a GPU machine, run the 'cuda'
# test suite and the GPU benchmark, and write a report.
#
# usage: bench/gpu_check.sh [OUTPUT_DIR]      (default: $OUT, else ./gpu-out)
#
# Writes into OUTPUT_DIR:
#   report.md          what ran, pass/fail, the test summary and the benchmark table
#   nvidia-smi.txt     the device as the driver sees it
#   deps.log           dependency checks (and apt-get output when something was missing)
#   setup.log build.log test.log testlog.txt   meson configure / ninja / meson test
#   sanitizer_memcheck.log sanitizer_racecheck.log  compute-sanitizer over tests/test_cuda
#   bench_gpu.md bench_gpu.log                 the benchmark table and its stderr
#   bench_latency.md bench_latency.log         whole 100-step guided trajectory runs, batch 1 and 64
#   bench_mixture.txt bench_mixture_exact.txt  the mixture experiment (LGD-MC, exact) on the GPU
#   network_test.log                           the network suite (issue 6) on this machine's CPU
#   bench_network_NAME.md                      one guided step on bench/networks/NAME.safetensors
#                                              (made beforehand with tools/lgd_convert.py) on CUDA
#
# Needs: the CUDA toolkit (nvcc; /usr/local/cuda/bin is added to PATH), meson, ninja,
# pkg-config, a C compiler, Check and OpenBLAS. Missing Debian packages are installed
# with apt-get when it is available and we are root (or have password-less sudo); a
# machine without network then fails at that step, clearly.
#
# Extra meson options: $LGD_GPU_MESON_ARGS (e.g. -Dwerror=false for a newer compiler).
# Dependencies carried in a folder made by bench/gpu_deps_bundle.sh: $LGD_DEPS_PREFIX.
# The build goes to $LGD_GPU_BUILD_DIR (default: <repo>/build-gpu-check, always
# configured afresh), outside OUTPUT_DIR. Every step has a time limit and the whole
# run a budget ($LGD_GPU_CHECK_BUDGET seconds, default 450), so it finishes in under
# 8 minutes. The report is written whatever fails. Exit status: 0 when everything
# passed, 1 when a step failed or the tests were skipped (no usable device).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-${OUT:-./gpu-out}}
mkdir -p "$out"
out=$(cd "$out" && pwd)
build=${LGD_GPU_BUILD_DIR:-$repo/build-gpu-check}
budget=${LGD_GPU_CHECK_BUDGET:-450}
start=$(date +%s)
deadline=$((start + budget))

step_names=()
step_status=()
step_secs=()
step_logs=()
overall=0
test_state="not run"

log() { printf '[gpu_check %3ds] %s\n' "$(($(date +%s) - start))" "$*"; }

record() { # name status seconds log
    step_names+=("$1")
    step_status+=("$2")
    step_secs+=("$3")
    step_logs+=("$4")
    case $2 in
    ok) ;;
    *) overall=1 ;;
    esac
}

# run_step NAME LOG MAX_SECONDS CMD...: runs CMD with a time limit (capped by the
# budget), output to OUTPUT_DIR/LOG; records the result; returns CMD's status.
run_step() {
    local name=$1 logf=$2 max=$3
    shift 3
    local now left limit t0 rc
    now=$(date +%s)
    left=$((deadline - now))
    if [ "$left" -lt 15 ]; then
        log "$name: skipped, the time budget is spent"
        record "$name" "skipped (time budget)" 0 "$logf"
        return 1
    fi
    limit=$((max < left ? max : left))
    log "$name (limit ${limit}s)"
    printf '$ %.300s\n' "$*" >"$out/$logf"
    t0=$(date +%s)
    if timeout --kill-after=10 "$limit" "$@" >>"$out/$logf" 2>&1; then
        rc=0
    else
        rc=$?
    fi
    local secs=$(($(date +%s) - t0))
    if [ "$rc" -eq 0 ]; then
        record "$name" ok "$secs" "$logf"
    elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        record "$name" "TIMEOUT after ${limit}s" "$secs" "$logf"
    else
        record "$name" "FAILED (exit $rc)" "$secs" "$logf"
    fi
    log "$name: ${step_status[${#step_status[@]}-1]} (${secs}s)"
    return "$rc"
}

write_report() {
    local r=$out/report.md
    {
        echo "# liblgd GPU check"
        echo
        echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), host: $(hostname 2>/dev/null || echo '?')"
        if command -v git >/dev/null 2>&1 && git -C "$repo" rev-parse HEAD >/dev/null 2>&1; then
            echo "- source: $(git -C "$repo" rev-parse --short HEAD)" \
                "($(git -C "$repo" status --porcelain 2>/dev/null | wc -l | tr -d ' ') files changed or untracked)"
        else
            echo "- source: $repo (not a git checkout)"
        fi
        if [ -s "$out/nvidia-smi.txt" ] && ! grep -q '^nvidia-smi: not found' "$out/nvidia-smi.txt"; then
            echo "- GPU: $(grep -m1 -E '^GPU ' "$out/nvidia-smi.txt" 2>/dev/null || echo 'see nvidia-smi.txt')"
            local q
            q=$(grep -m1 -E '^query:' "$out/nvidia-smi.txt" 2>/dev/null | sed 's/^query: //' || true)
            [ -n "$q" ] && echo "- GPU details (name, driver, memory, compute capability): $q"
        else
            echo "- GPU: nvidia-smi not available"
        fi
        echo "- nvcc: $(command -v nvcc >/dev/null 2>&1 && nvcc --version | tail -n 2 | head -n 1 || echo 'not found')"
        echo "- meson $(meson --version 2>/dev/null || echo '?'), ninja $(ninja --version 2>/dev/null || echo '?'), $(cc --version 2>/dev/null | head -n 1 || echo 'no cc')"
        echo "- elapsed: $(($(date +%s) - start)) s (budget ${budget} s)"
        echo "- CUDA test suite: **${test_state}**"
        echo "- overall: **$([ "$overall" -eq 0 ] && echo PASS || echo FAIL)**"
        echo
        echo "## Steps"
        echo
        echo "| step | status | seconds | log |"
        echo "|---|---|---:|---|"
        local i
        for i in "${!step_names[@]}"; do
            echo "| ${step_names[$i]} | ${step_status[$i]} | ${step_secs[$i]} | ${step_logs[$i]} |"
        done
        echo
        if [ -s "$out/testlog.txt" ] || [ -s "$out/test.log" ]; then
            echo "## CUDA test suite"
            echo
            echo '```'
            if [ -s "$out/testlog.txt" ]; then
                # the program's own lines (backend name, end-to-end errors, Check summary, failures)
                grep -E '^(SKIP|CUDA backend|end-to-end|note:|[0-9]+%: Checks)|:[FE]:' \
                    "$out/testlog.txt" | head -n 80 || true
            fi
            grep -E '^ *[0-9]+/[0-9]+ .*(OK|FAIL|SKIP|TIMEOUT|ERROR)' "$out/test.log" 2>/dev/null || true
            echo '```'
            echo
        fi
        for f in "$out"/bench_network_*.md; do
            [ -s "$f" ] || continue
            echo "## Network benchmark ($(basename "$f"))"
            echo
            sed 's/^## /### /' "$f"
            echo
        done
        if [ -s "$out/bench_gpu.md" ]; then
            echo "## Benchmark"
            echo
            sed 's/^## GPU sampling benchmark/### GPU sampling benchmark/' "$out/bench_gpu.md"
            echo
        fi
        if [ -s "$out/bench_latency.md" ]; then
            sed 's/^## /### /' "$out/bench_latency.md"
            echo
        fi
        for f in "$out"/bench_mixture*.txt; do
            [ -s "$f" ] || continue
            echo "### The mixture experiment on the GPU ($(basename "$f"))"
            echo
            echo '```'
            cat "$f"
            echo '```'
            echo
        done
        for i in "${!step_names[@]}"; do
            if [ "${step_status[$i]}" != ok ] && [ -s "$out/${step_logs[$i]}" ]; then
                echo "## Last lines of ${step_logs[$i]} (${step_names[$i]}: ${step_status[$i]})"
                echo
                echo '```'
                tail -n 40 "$out/${step_logs[$i]}"
                echo '```'
                echo
            fi
        done
    } >"$r" 2>/dev/null || true
    cat "$r" 2>/dev/null || true
    log "report: $r ($([ "$overall" -eq 0 ] && echo PASS || echo FAIL))"
}

finish() {
    local rc=$?
    trap - EXIT
    if [ "$rc" -ne 0 ] && [ "$overall" -eq 0 ]; then
        record "script" "aborted (exit $rc)" 0 "-"
    fi
    write_report
    exit "$overall"
}
trap finish EXIT

log "output: $out; build: $build; repository: $repo"

# ---- dependencies carried in a folder (bench/gpu_deps_bundle.sh), for machines without network ----
if [ -n "${LGD_DEPS_PREFIX:-}" ]; then
    deps=$(cd "$LGD_DEPS_PREFIX" && pwd)
    export PATH="$PATH:$deps/bin"  # the bundled pkg-config only when none is installed
    export PKG_CONFIG_PATH="$deps/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    export LIBRARY_PATH="$deps/lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
    export LD_LIBRARY_PATH="$deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export CPATH="$deps/include${CPATH:+:$CPATH}"
    log "dependencies from $deps"
fi

# ---- the device ----
if [ -d /usr/local/cuda/bin ] && ! command -v nvcc >/dev/null 2>&1; then
    export PATH="/usr/local/cuda/bin:$PATH"
fi
{
    if command -v nvidia-smi >/dev/null 2>&1; then
        nvidia-smi -L 2>&1 | head -n 8 || true
        printf 'query: %s\n' "$(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap \
            --format=csv,noheader 2>/dev/null | head -n 1 || echo '?')"
        echo
        nvidia-smi 2>&1 || true
    else
        echo "nvidia-smi: not found"
    fi
} >"$out/nvidia-smi.txt" 2>&1
cat "$out/nvidia-smi.txt"

# ---- dependencies ----
missing=()
have_blas() {
    pkg-config --exists openblas 2>/dev/null || pkg-config --exists cblas 2>/dev/null ||
        { command -v ldconfig >/dev/null 2>&1 && ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so '; }
}
check_deps() {
    missing=()
    command -v meson >/dev/null 2>&1 || missing+=(meson)
    command -v ninja >/dev/null 2>&1 || missing+=(ninja-build)
    command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
    command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
    command -v pkg-config >/dev/null 2>&1 && pkg-config --exists check 2>/dev/null ||
        missing+=(check libsubunit-dev)
    have_blas || missing+=(libopenblas-dev)
    return 0
}
deps_step() {
    check_deps
    echo "PATH=$PATH"
    echo "nvcc: $(command -v nvcc || echo 'NOT FOUND')"
    if ! command -v nvcc >/dev/null 2>&1; then
        echo "error: nvcc not found (install the CUDA toolkit, or put its bin/ on PATH)"
        return 1
    fi
    if [ "${#missing[@]}" -eq 0 ]; then
        echo "all build dependencies present"
        return 0
    fi
    echo "missing: ${missing[*]}"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            echo "error: missing packages and not root (no password-less sudo): install ${missing[*]}"
            return 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: missing ${missing[*]} and apt-get is not available: install them by hand"
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! timeout 150 ${sudo[@]+"${sudo[@]}"} apt-get update; then
        echo "error: apt-get update failed (no network on this machine?); cannot install ${missing[*]}"
        return 1
    fi
    if ! timeout 240 ${sudo[@]+"${sudo[@]}"} apt-get install -y --no-install-recommends "${missing[@]}"; then
        echo "error: apt-get install ${missing[*]} failed (no network on this machine?)"
        return 1
    fi
    check_deps
    if [ "${#missing[@]}" -ne 0 ]; then
        echo "error: still missing after apt-get: ${missing[*]}"
        return 1
    fi
    echo "installed the missing packages"
}
if ! run_step "dependencies" deps.log 420 bash -c "$(declare -f have_blas check_deps deps_step); deps_step"; then
    cat "$out/deps.log"
    exit 1
fi

# ---- configure, build ----
rm -rf "$build"
# shellcheck disable=SC2086 # LGD_GPU_MESON_ARGS is a list of words
run_step "configure (meson setup -Dcuda=enabled)" setup.log 120 \
    meson setup "$build" "$repo" -Dcuda=enabled -Dbuildtype=release \
    ${LGD_GPU_MESON_ARGS:-} || exit 1
run_step "build (ninja)" build.log 300 ninja -C "$build" || exit 1
module=""
for f in "$build"/cuda/liblgd-cuda.so.[0-9]*; do
    [ -f "$f" ] && module=$f && break
done
log "module: ${module:-not found}"

# ---- tests ----
test_rc=0
run_step "meson test --suite cuda" test.log 300 \
    meson test -C "$build" --suite cuda --print-errorlogs --num-processes 1 || test_rc=$?
cp "$build/meson-logs/testlog.txt" "$out/testlog.txt" 2>/dev/null || true
last_status=${step_status[${#step_status[@]}-1]}
if [[ $last_status == skipped* ]]; then
    test_state="not run ($last_status)"
elif grep -qE '^ *[0-9]+/[0-9]+ .*cuda +SKIP' "$out/test.log" 2>/dev/null; then
    test_state="SKIPPED (no usable CUDA device: see testlog.txt)"
    overall=1
elif [ "$test_rc" -eq 0 ]; then
    test_state="PASS"
else
    test_state="FAIL ($last_status)"
fi
log "CUDA tests: $test_state"

# ---- compute-sanitizer over the CUDA suite (hardening issue) ----
# memcheck (out-of-bounds and misaligned device accesses, leaks of device memory) and
# racecheck (shared-memory hazards) over tests/test_cuda, one process; each finding
# fails the step (--error-exitcode). Skipped when the toolkit has no compute-sanitizer.
sanitizer=$(command -v compute-sanitizer || true)
[ -z "$sanitizer" ] && [ -x /usr/local/cuda/bin/compute-sanitizer ] &&
    sanitizer=/usr/local/cuda/bin/compute-sanitizer
if [ "$test_state" = PASS ] && [ -n "$sanitizer" ] && [ -x "$build/tests/test_cuda" ]; then
    for tool in memcheck racecheck; do
        extra=()
        [ "$tool" = memcheck ] && extra=(--leak-check full)
        # shellcheck disable=SC2016 # $1.. expand in the inner shell
        run_step "compute-sanitizer $tool (test_cuda)" "sanitizer_$tool.log" 300 \
            env CK_FORK=no LGD_CUDA_MODULE="$module" LGD_TEST_QUICK=1 \
            "$sanitizer" --tool "$tool" ${extra[@]+"${extra[@]}"} --error-exitcode 3 \
            "$build/tests/test_cuda" || overall=1
    done
else
    record "compute-sanitizer" "skipped (${sanitizer:-not found}; CUDA tests: $test_state)" 0 "-"
fi

# ---- benchmark ----
if [ -x "$build/bench/bench-gpu" ]; then
    # shellcheck disable=SC2016 # $1.. expand in the inner shell
    run_step "bench-gpu" bench_gpu.log 240 \
        bash -c '"$1" --module "$2" > "$3"' _ "$build/bench/bench-gpu" "$module" \
        "$out/bench_gpu.md" || true
    [ -s "$out/bench_gpu.md" ] && cat "$out/bench_gpu.md"
else
    record "bench-gpu" "FAILED (not built)" 0 build.log
fi
# ---- latency (issue 16): whole 100-step guided trajectory runs at batch 1 and 64, and
# the paper's mixture experiment (LGD-MC n = 100, 10,000 samples x 20 steps) on the GPU
if [ -x "$build/bench/bench-latency" ]; then
    # shellcheck disable=SC2016 # $1.. expand in the inner shell
    run_step "bench-latency (cuda)" bench_latency.log 120 \
        bash -c '"$1" --backend cuda --module "$2" > "$3"' _ "$build/bench/bench-latency" \
        "$module" "$out/bench_latency.md" || true
    [ -s "$out/bench_latency.md" ] && cat "$out/bench_latency.md"
fi
if [ -x "$build/bench/bench-mixture" ]; then
    for est in "" "--exact"; do
        # shellcheck disable=SC2016 # $1.. expand in the inner shell
        run_step "bench-mixture ${est:-LGD-MC} (cuda)" "bench_mixture${est:+_exact}.log" 60 \
            bash -c '"$1" --backend cuda --module "$2" --reps 5 $3 > "$4"' _ \
            "$build/bench/bench-mixture" "$module" "$est" \
            "$out/bench_mixture${est:+_exact}.txt" || true
        [ -s "$out/bench_mixture${est:+_exact}.txt" ] && cat "$out/bench_mixture${est:+_exact}.txt"
    done
fi
# ---- networks from files (issue 6) ----
# the network suite (CPU backend on this machine), then one guided step on networks
# made here by tools/lgd_convert.py (bench/networks/NAME.safetensors, not committed)
if [ -x "$build/tests/test_network" ]; then
    run_step "meson test network (CPU)" network_test.log 180 \
        meson test -C "$build" network --print-errorlogs --num-processes 1 || true
fi
for spec in "mlp 4096" "unet 64"; do
    set -- $spec
    f=$repo/bench/networks/$1.safetensors
    [ -f "$f" ] && [ -x "$build/bench/bench-network" ] || continue
    # shellcheck disable=SC2016 # $1.. expand in the inner shell
    run_step "bench-network $1 (cuda, batch $2)" "bench_network_$1.log" 150 \
        bash -c '"$1" --backend cuda --module "$2" --file "$3" --batch "$4" --reps 20 \
            --label "$5 (bench/networks/$5.json)" > "$6"' _ "$build/bench/bench-network" \
        "$module" "$f" "$2" "$1" "$out/bench_network_$1.md" || true
    [ -s "$out/bench_network_$1.md" ] && cat "$out/bench_network_$1.md"
done
exit "$overall"
