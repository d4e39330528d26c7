#!/usr/bin/env bash
# check_sanitizers.sh - the test suite built and run with AddressSanitizer and
# UndefinedBehaviorSanitizer (the hardening issue; docs/reliability.md).
#
# usage: check_sanitizers.sh SOURCE_ROOT [BUILD_DIR]
#
# Configures SOURCE_ROOT in BUILD_DIR (default: a temporary directory) with
# -Db_sanitize=address,undefined -Db_lundef=false (CUDA off: its runtime is not
# instrumented), -fno-sanitize-recover=all (any undefined behaviour fails the test that
# ran into it) and -fno-omit-frame-pointer, builds everything, and runs every test of
# the 'unit' suite except those that cannot run sanitized:
#   tsan      builds its own ThreadSanitizer copy (TSan and ASan do not mix);
#   python    ctypes loads liblgd into an uninstrumented python3 (ASan must be first);
#   rust      cargo's test binaries are not instrumented (same reason);
#   mpi       Open MPI's own start-up leaks and reads uninitialised memory;
#   converter and converter_diffusers need PyTorch (skipped anyway without it);
#   abi       abidiff compares debug info, which the instrumentation does not change.
# ASAN_OPTIONS: leaks are errors (detect_leaks=1); allocator_may_return_null=1 because
# test_core asks for a 2^52-byte tensor on purpose and expects LGD_ERR_OUT_OF_MEMORY
# (ASan would otherwise abort on the impossible allocation). The faults test runs too:
# its interposer forwards to ASan's allocator.
# Exit status: 0 when every test passed, 1 otherwise; 77 when the compiler cannot
# build and run a sanitized program. Environment: CC, MESON, NINJA, LGD_SAN_JOBS (2).
set -u

src=${1:?usage: check_sanitizers.sh SOURCE_ROOT [BUILD_DIR]}
CC=${CC:-cc}
MESON=${MESON:-meson}
NINJA=${NINJA:-ninja}
jobs=${LGD_SAN_JOBS:-2}
start=$(date +%s)
if [ -n "${2:-}" ]; then
    build=$2
    # only ever removes a meson build directory (or an empty one)
    if [ -e "$build" ]; then
        if [ -d "$build/meson-private" ] || [ -z "$(ls -A "$build")" ]; then
            rm -rf "$build"
        else
            echo "FAIL: $build exists and is not a meson build directory; not removing it"
            exit 1
        fi
    fi
else
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/lgd-asan.XXXXXX") || exit 1
    trap 'rm -rf "$tmp"' EXIT
    build=$tmp/build
fi

# Can this compiler build and run an ASan + UBSan program?
probe=$(mktemp -d "${TMPDIR:-/tmp}/lgd-asan-probe.XXXXXX") || exit 1
printf 'int main(void) { return 0; }\n' >"$probe/p.c"
# shellcheck disable=SC2086 # CC may hold a command with arguments
if ! $CC -fsanitize=address,undefined "$probe/p.c" -o "$probe/p" >/dev/null 2>&1 ||
   ! "$probe/p"; then
    rm -rf "$probe"
    echo "SKIP: $CC cannot build or run with -fsanitize=address,undefined"
    exit 77
fi
rm -rf "$probe"

san_flags="-fno-sanitize-recover=all -fno-omit-frame-pointer"
if ! CC="$CC" "$MESON" setup "$build" "$src" -Db_sanitize=address,undefined -Db_lundef=false \
        -Dcuda=disabled -Dbuildtype=debugoptimized -Dwerror=false \
        -Dc_args="$san_flags" -Dcpp_args="$san_flags" >"$build.setup.log" 2>&1; then
    tail -30 "$build.setup.log"
    echo "FAIL: meson setup of the sanitized build failed"
    exit 1
fi
if ! "$NINJA" -C "$build" -j "$jobs" >"$build.build.log" 2>&1; then
    tail -40 "$build.build.log"
    echo "FAIL: the sanitized build failed"
    exit 1
fi
built=$(date +%s)

export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
# the leak checker must see libgomp's pool threads end: one OpenMP thread pool only
export OMP_WAIT_POLICY=passive
tests=$("$MESON" test -C "$build" --list 2>/dev/null | sed -n 's/^lgd:\([^ ]*\) \/ \(.*\)$/\1 \2/p' |
        awk '{ split($1, s, "+"); u = 0; for (i in s) if (s[i] == "unit") u = 1; if (u) print $2 }' |
        grep -vxE 'tsan|python|rust|mpi|converter|converter_diffusers|abi' | sort -u)
# shellcheck disable=SC2086 # one word per test name
"$MESON" test -C "$build" --no-rebuild --print-errorlogs --timeout-multiplier 4 $tests
rc=$?
end=$(date +%s)
echo "sanitized build: $((built - start)) s; tests: $((end - built)) s; tests run: $(echo $tests | wc -w)"
[ "$rc" -eq 0 ] || { echo "FAIL: a test failed under ASan + UBSan"; exit 1; }
echo "ok: every test above passed under AddressSanitizer + UndefinedBehaviorSanitizer"
