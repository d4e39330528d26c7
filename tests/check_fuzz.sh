#!/usr/bin/env bash
# check_fuzz.sh - the bounded fuzz run: builds the libFuzzer targets of fuzz/ and runs
# every regression input, then each target for LGD_FUZZ_SECONDS (default 60).
#
# usage: check_fuzz.sh SOURCE_ROOT
#
# 1. Probes clang: it must build and run a -fsanitize=fuzzer,address,undefined program
#    (Debian: clang and libclang-rt-XX-dev); otherwise exits 77 (skip).
# 2. Configures SOURCE_ROOT with CC=clang -Dfuzzing=true (fuzz/meson.build: the library
#    sources compiled with -fsanitize=fuzzer-no-link,address,undefined, no OpenMP,
#    oneDNN or CUDA, no target_clones) in its own build directory and builds the three
#    targets and the seed writer.
# 3. Seeds: fuzz_make_seeds (valid descriptions of each architecture and layer, of each
#    fixture, and API op sequences) and the files of tests/fixtures/nn.
# 4. Runs every file of fuzz/regressions/<target>/ once (each is an input that crashed
#    or broke a contract once; all must pass now), then fuzzes each target for
#    LGD_FUZZ_SECONDS with LeakSanitizer on and every UBSan report fatal. A crash is
#    saved as <artifacts>/<target>-crash-<sha1> and fails the check: add the file to
#    fuzz/regressions/<target>/ with the fix.
# Prints per target: executions, coverage (cov = edges, ft = features), corpus size,
# crashes; the last line is "ok: ..." or "FAIL: ...".
#
# Environment: CLANG (default clang), MESON (default meson), NINJA (default ninja),
# LGD_FUZZ_SECONDS (per target, default 60; 0 runs the regressions only),
# LGD_FUZZ_TARGETS (default "fuzz_weights_structured fuzz_weights_bytes fuzz_api"),
# LGD_FUZZ_JOBS (compile jobs, default 2), LGD_FUZZ_BUILD_DIR (default: a temporary
# directory; an existing one is reused), LGD_FUZZ_CORPUS_DIR (where the corpora grow and
# stay; default temporary), LGD_FUZZ_ARTIFACTS (crash inputs; default
# $LGD_FUZZ_CORPUS_DIR/artifacts), LGD_FUZZ_RSS_MB (libFuzzer's -rss_limit_mb, default
# 2048), LGD_FUZZ_KEEP=1 keeps the temporary directory.
set -u

# The three deviations fuzz/README.md lists were fixed (0.4.0): every contract is checked.
export LGD_FUZZ_STRICT=1

src=${1:?usage: check_fuzz.sh SOURCE_ROOT}
src=$(cd "$src" && pwd) || exit 1
CLANG=${CLANG:-clang}
MESON=${MESON:-meson}
NINJA=${NINJA:-ninja}
seconds=${LGD_FUZZ_SECONDS:-60}
targets=${LGD_FUZZ_TARGETS:-fuzz_weights_structured fuzz_weights_bytes fuzz_api}
jobs=${LGD_FUZZ_JOBS:-2}
rss=${LGD_FUZZ_RSS_MB:-2048}
start=$(date +%s)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lgd-fuzz.XXXXXX") || exit 1
if [ "${LGD_FUZZ_KEEP:-0}" = 1 ]; then
    echo "keeping $tmp"
else
    trap 'rm -rf "$tmp"' EXIT
fi
build=${LGD_FUZZ_BUILD_DIR:-$tmp/build}
corpus=${LGD_FUZZ_CORPUS_DIR:-$tmp/corpus}
artifacts=${LGD_FUZZ_ARTIFACTS:-$corpus/artifacts}

# 1. clang with libFuzzer, ASan and UBSan
cat >"$tmp/probe.c" <<'EOF'
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return size > 0 && data[0] == 0x7F ? 0 : 0;
}
EOF
if ! command -v "$CLANG" >/dev/null 2>&1; then
    echo "SKIP: $CLANG not found (Debian: apt-get install clang libclang-rt-dev)"
    exit 77
fi
if ! "$CLANG" -g -fsanitize=fuzzer,address,undefined "$tmp/probe.c" -o "$tmp/probe" \
        >"$tmp/probe.log" 2>&1; then
    echo "SKIP: $CLANG cannot build a libFuzzer target (no libclang_rt.fuzzer? Debian: libclang-rt-XX-dev):"
    head -5 "$tmp/probe.log"
    exit 77
fi
if ! "$tmp/probe" -runs=10 >"$tmp/probe.log" 2>&1; then
    echo "SKIP: a libFuzzer target does not run here:"
    tail -5 "$tmp/probe.log"
    exit 77
fi

# 2. the build
if [ ! -f "$build/build.ninja" ]; then
    if ! CC="$CLANG" "$MESON" setup "$build" "$src" -Dfuzzing=true -Dopenmp=disabled \
            -Donednn=disabled -Dcuda=disabled -Dcpu_dispatch=false -Dtests=false \
            -Dbuildtype=debugoptimized -Dwerror=true >"$tmp/setup.log" 2>&1; then
        tail -30 "$tmp/setup.log"
        echo "FAIL: meson setup of the fuzz build failed"
        exit 1
    fi
fi
ninja_targets=()
for t in $targets; do ninja_targets+=("fuzz/$t"); done
if ! "$NINJA" -C "$build" -j "$jobs" "${ninja_targets[@]}" fuzz/fuzz_make_seeds \
        >"$tmp/build.log" 2>&1; then
    tail -40 "$tmp/build.log"
    echo "FAIL: building the fuzz targets failed"
    exit 1
fi
built=$(date +%s)
echo "built the fuzz targets in $((built - start)) s ($build)"

# 3. seeds
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
seeds=$tmp/seeds
mkdir -p "$seeds/fuzz_weights_structured" "$seeds/fuzz_weights_bytes" "$seeds/fuzz_api" \
    "$artifacts" || exit 1
if ! "$build/fuzz/fuzz_make_seeds" weights "$seeds/fuzz_weights_structured" \
        "$src/tests/fixtures/nn" >"$tmp/seeds.log" 2>&1 ||
   ! "$build/fuzz/fuzz_make_seeds" api "$seeds/fuzz_api" >>"$tmp/seeds.log" 2>&1; then
    cat "$tmp/seeds.log"
    echo "FAIL: fuzz_make_seeds failed"
    exit 1
fi
for f in "$src"/tests/fixtures/nn/*.safetensors; do
    case $f in *.ref.safetensors) ;; *) cp "$f" "$seeds/fuzz_weights_bytes/" ;; esac
done

# 4. regressions, then fuzzing
failed=0
summary=()
for t in $targets; do
    exe=$build/fuzz/$t
    regs=()
    if [ -d "$src/fuzz/regressions/$t" ]; then
        while IFS= read -r -d '' f; do regs+=("$f"); done < <(find "$src/fuzz/regressions/$t" \
            -type f ! -name '*.md' -print0 | sort -z)
    fi
    if [ ${#regs[@]} -gt 0 ]; then
        if "$exe" -rss_limit_mb="$rss" -timeout=60 "${regs[@]}" >"$tmp/$t.regress.log" 2>&1; then
            echo "$t: ${#regs[@]} regression inputs pass"
        else
            tail -40 "$tmp/$t.regress.log"
            echo "FAIL: $t: a regression input of fuzz/regressions/$t fails again (above)"
            failed=1
        fi
    fi
    [ "$seconds" -gt 0 ] || continue
    mkdir -p "$corpus/$t" || exit 1
    args=(-max_total_time="$seconds" -rss_limit_mb="$rss" -timeout=25 -print_final_stats=1
          -artifact_prefix="$artifacts/$t-")
    case $t in
    fuzz_weights_structured) args+=(-max_len=4096 -dict="$src/fuzz/dict/structured.dict") ;;
    fuzz_weights_bytes) args+=(-max_len=65536 -dict="$src/fuzz/dict/safetensors.dict") ;;
    fuzz_api) args+=(-max_len=1024) ;;
    esac
    t0=$(date +%s)
    "$exe" "${args[@]}" "$corpus/$t" "$seeds/$t" >"$tmp/$t.log" 2>&1
    rc=$?
    t1=$(date +%s)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/$t.log" | tail -n 1)
    last=$(grep -E '^#[0-9]+' "$tmp/$t.log" | tail -n 1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
    crashes=$(find "$artifacts" -type f \( -name "$t-crash-*" -o -name "$t-leak-*" -o \
              -name "$t-timeout-*" -o -name "$t-oom-*" \) | wc -l)
    # slow units (over 10 s, libFuzzer's -report_slow_units) are listed, not failures
    slow=$(find "$artifacts" -type f -name "$t-slow-unit-*" | wc -l)
    line="$t: $((t1 - t0)) s, ${execs:-?} execs, cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}, crashes $crashes, slow inputs $slow"
    summary+=("$line")
    echo "$line"
    if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
        grep -E 'ERROR|SUMMARY|contract violated|runtime error' "$tmp/$t.log" | head -20
        tail -60 "$tmp/$t.log"
        echo "FAIL: $t found a problem (exit $rc); inputs in $artifacts (add them to fuzz/regressions/$t/ with the fix)"
        failed=1
    fi
done
end=$(date +%s)
if [ "$failed" -ne 0 ]; then
    case $artifacts in "$tmp"/*) trap - EXIT; echo "kept $tmp (the crash inputs)" ;; esac
    echo "FAIL: fuzzing (build $((built - start)) s, total $((end - start)) s)"
    exit 1
fi
echo "ok: fuzzing (${seconds} s per target; build $((built - start)) s, total $((end - start)) s)"
exit 0
