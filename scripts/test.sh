#!/usr/bin/env bash
# test.sh - the whole test run, on a fresh build directory:
#   1. scripts/setup.sh (installs missing packages);
#   2. meson setup of a new build dir (default build-test; LGD_TEST_BUILD_DIR),
#      extra arguments go to meson setup (e.g. -Dopenmp=disabled; .ci/run passes
#      -Dwerror=true);
#   3. ninja, then meson test --print-errorlogs (every suite);
#   4. the 'unit' suite again under valgrind (leaks and memory errors fail),
#      with CK_FORK=no and LGD_TEST_QUICK=1, leaving out the shell checks
#      (exports, install: suite 'shell');
#   5. the suite built and run with ASan + UBSan (tests/check_sanitizers.sh, its own
#      build dir BUILDDIR-asan), counted as one test;
#   6. the bounded fuzz run (tests/check_fuzz.sh: regression inputs, then 60 s per
#      libFuzzer target; skipped without clang's libFuzzer), counted as one test.
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

# One more check counted as one test: passed (0), skipped (77) or failed (else).
extra_check() {
    local name=$1 rc
    shift
    echo "== $name"
    "$@"
    rc=$?
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
    elif [ "$rc" -eq 77 ]; then
        echo "test.sh: $name skipped"
        skipped=$((skipped + 1))
    else
        echo "test.sh: $name FAILED (exit $rc)"
        failed=$((failed + 1))
    fi
}

# 5. the whole 'unit' suite built and run again with AddressSanitizer +
#    UndefinedBehaviorSanitizer (tests/check_sanitizers.sh says which tests cannot run so)
extra_check "ASan + UBSan build and tests (tests/check_sanitizers.sh)" \
    "$root/tests/check_sanitizers.sh" "$root" "$builddir-asan"
# 6. the bounded fuzz run: every regression input, then each libFuzzer target for
#    LGD_FUZZ_SECONDS (default 60) when clang with libFuzzer is here (tests/check_fuzz.sh)
extra_check "fuzzing, bounded (tests/check_fuzz.sh)" "$root/tests/check_fuzz.sh" "$root"

finish
