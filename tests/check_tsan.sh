#!/usr/bin/env bash
# check_tsan.sh - the thread contract under ThreadSanitizer (issue 11).
#
# usage: check_tsan.sh SOURCE_ROOT
#
# Configures a separate build of SOURCE_ROOT in a temporary directory with
# -Db_sanitize=thread (no OpenMP, CUDA or oneDNN: their runtimes are not instrumented
# and would only add noise), builds only the static library and tests/test_threads
# (several threads releasing handles while the owner uses the same context), runs it,
# and fails on any ThreadSanitizer report or a failed check. Exits 77 (skip) when the
# compiler cannot build or run a program with -fsanitize=thread.
#
# Environment: CC (the compiler; default cc), MESON (default meson), NINJA (default
# ninja), LGD_TSAN_JOBS (parallel compile jobs, default 2), LGD_TSAN_KEEP=1 keeps the
# temporary build.
set -u

src=${1:?usage: check_tsan.sh SOURCE_ROOT}
CC=${CC:-cc}
MESON=${MESON:-meson}
NINJA=${NINJA:-ninja}
jobs=${LGD_TSAN_JOBS:-2}
start=$(date +%s)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lgd-tsan.XXXXXX") || exit 1
if [ "${LGD_TSAN_KEEP:-0}" = 1 ]; then
    echo "keeping $tmp"
else
    trap 'rm -rf "$tmp"' EXIT
fi

# 1. Can this compiler build and run a TSan program? Some kernels' address-space
#    layouts (vm.mmap_rnd_bits above 28) need ASLR off for TSan: setarch -R.
cat > "$tmp/probe.c" <<'EOF'
#include <pthread.h>
static int x;
static void *run(void *p) { (void)p; __atomic_fetch_add(&x, 1, __ATOMIC_SEQ_CST); return 0; }
int main(void)
{
    pthread_t t;
    pthread_create(&t, 0, run, 0);
    pthread_join(t, 0);
    return __atomic_load_n(&x, __ATOMIC_SEQ_CST) == 1 ? 0 : 1;
}
EOF
# shellcheck disable=SC2086 # CC may hold a command with arguments (ccache gcc)
if ! $CC -fsanitize=thread -g -O1 -pthread "$tmp/probe.c" -o "$tmp/probe" >"$tmp/probe.log" 2>&1; then
    echo "SKIP: $CC cannot build with -fsanitize=thread (no TSan runtime?):"
    head -5 "$tmp/probe.log"
    exit 77
fi
runner=()
if ! "$tmp/probe" >"$tmp/probe.log" 2>&1; then
    if command -v setarch >/dev/null 2>&1 &&
       setarch "$(uname -m)" -R "$tmp/probe" >/dev/null 2>&1; then
        runner=(setarch "$(uname -m)" -R)
        echo "note: TSan needs ASLR off on this kernel; running under setarch -R"
    else
        echo "SKIP: a -fsanitize=thread program does not run here:"
        head -5 "$tmp/probe.log"
        exit 77
    fi
fi

# 2. The sanitized build: only what the test needs, without the CPU's load-time dispatch
#    (-Dcpu_dispatch=false: the compiler instruments the target_clones resolvers, which
#    run before TSan has set up its thread state; cpu_layers.c also drops them when it
#    sees a TSan build, this says it explicitly).
c_args=()
if ! CC="$CC" "$MESON" setup "$tmp/build" "$src" -Db_sanitize=thread -Dopenmp=disabled \
        -Dcuda=disabled -Donednn=disabled -Dcpu_dispatch=false -Dtests=true \
        -Dbuildtype=debugoptimized \
        ${c_args[@]+"${c_args[@]}"} >"$tmp/setup.log" 2>&1; then
    tail -30 "$tmp/setup.log"
    echo "FAIL: meson setup of the TSan build failed"
    exit 1
fi
if ! "$NINJA" -C "$tmp/build" -j "$jobs" tests/test_threads >"$tmp/build.log" 2>&1; then
    tail -40 "$tmp/build.log"
    echo "FAIL: building tests/test_threads with -fsanitize=thread failed"
    exit 1
fi
built=$(date +%s)

# 3. Run it: any report fails (exitcode 66), and so does a failed check.
export TSAN_OPTIONS="halt_on_error=0 exitcode=66 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
${runner[@]+"${runner[@]}"} "$tmp/build/tests/test_threads" >"$tmp/run.log" 2>&1
rc=$?
cat "$tmp/run.log"
end=$(date +%s)
if grep -q "ThreadSanitizer" "$tmp/run.log"; then
    echo "FAIL: ThreadSanitizer reported a problem (above)"
    exit 1
fi
if [ "$rc" -ne 0 ]; then
    echo "FAIL: test_threads exited with $rc under ThreadSanitizer"
    exit 1
fi
echo "ok: no ThreadSanitizer report (build $((built - start)) s, run $((end - built)) s)"
exit 0
