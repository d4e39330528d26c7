#!/usr/bin/env bash
# test.sh - the whole test run, on a fresh build directory:
#   1. scripts/setup.sh (installs missing packages);
#   2. meson setup of a new build dir (default build-test; LGD_TEST_BUILD_DIR),
#      extra arguments go to meson setup (e.g. -Dopenmp=disabled; .ci/run passes
#      -Dwerror=true);
#   3. ninja, then meson test --print-errorlogs (every suite);
#   4. the 'unit' suite again under valgrind (leaks and memory errors fail),
#      with CK_FORK=no and LGD_TEST_QUICK=1, leaving out the shell checks
#      (exports, install: suite 'shell').
# The last line of output is "N passed, N failed" (both meson test passes
# added up); the exit status is non-zero on any failure.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
builddir=${LGD_TEST_BUILD_DIR:-build-test}
passed=0
failed=0
skipped=0

finish() {
    [ "$skipped" -gt 0 ] && echo "($skipped skipped)"
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

# Adds meson test's summary (from a log of its output) to the totals.
count() {
    local log=$1 rc=$2 ok xfail fail xpass timeout skip
    ok=$(sed -n 's/^Ok:[[:space:]]*\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    xfail=$(sed -n 's/^Expected Fail:[[:space:]]*\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    fail=$(sed -n 's/^Fail:[[:space:]]*\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    xpass=$(sed -n 's/^Unexpected Pass:[[:space:]]*\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    timeout=$(sed -n 's/^Timeout:[[:space:]]*\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    skip=$(sed -n 's/^Skipped:[[:space:]]*\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    if [ -z "$ok" ] || [ -z "$fail" ]; then
        echo "test.sh: meson test gave no summary (exit $rc)"
        failed=$((failed + 1))
        return
    fi
    passed=$((passed + ok + ${xfail:-0}))
    failed=$((failed + fail + ${xpass:-0} + ${timeout:-0}))
    skipped=$((skipped + ${skip:-0}))
    if [ "$rc" -ne 0 ] && [ $((fail + ${xpass:-0} + ${timeout:-0})) -eq 0 ]; then
        echo "test.sh: meson test exited $rc without a failing test"
        failed=$((failed + 1))
    fi
}

if ! LGD_SETUP_PYTHON=1 "$root/scripts/setup.sh"; then
    echo "test.sh: scripts/setup.sh failed"
    failed=1
    finish
fi

# A fresh build directory every time (only ever removes a meson build dir).
if [ -e "$builddir" ]; then
    if [ -d "$builddir/meson-private" ] || [ -z "$(ls -A "$builddir")" ]; then
        rm -rf "$builddir"
    else
        echo "test.sh: $builddir exists and is not a meson build directory; not removing it"
        failed=1
        finish
    fi
fi
if ! meson setup "$builddir" "$@"; then
    echo "test.sh: meson setup failed"
    failed=1
    finish
fi
if ! ninja -C "$builddir"; then
    echo "test.sh: the build failed"
    failed=1
    finish
fi

log=$(mktemp "${TMPDIR:-/tmp}/lgd-test.XXXXXX")
trap 'rm -f "$log"' EXIT

echo "== meson test (all suites)"
meson test -C "$builddir" --print-errorlogs 2>&1 | tee "$log"
count "$log" "${PIPESTATUS[0]}"

if command -v valgrind >/dev/null 2>&1; then
    echo "== meson test --suite unit under valgrind"
    # tests/valgrind.supp: libgomp's pool threads, alive at exit (see the file)
    wrap="valgrind --leak-check=full --error-exitcode=1 --errors-for-leak-kinds=definite,indirect"
    wrap+=" --suppressions=$(printf '%q' "$root/tests/valgrind.supp")"
    # test_faults defines malloc & co. (its allocation interposer): valgrind must not
    # replace them in the executable (no other test defines them)
    wrap+=" --soname-synonyms=somalloc=nouserintercepts"
    CK_FORK=no LGD_TEST_QUICK=1 meson test -C "$builddir" --no-rebuild --print-errorlogs \
        --suite unit --no-suite shell --timeout-multiplier 10 --wrap="$wrap" \
        2>&1 | tee "$log"
    count "$log" "${PIPESTATUS[0]}"
else
    echo "test.sh: valgrind not found; the valgrind pass counts as a failure"
    failed=$((failed + 1))
fi

finish
