#!/usr/bin/env bash
# check_abi.sh - liblgd's exported ABI against the committed baseline (issue 11).
#
# usage: check_abi.sh LIBLGD_SO HEADERS_DIR BASELINE
#
# abidw describes the built library (functions, variables and the types they use, as
# far as the public headers in HEADERS_DIR declare them; the library is built with
# DWARF, lib/meson.build) and abidiff compares that with BASELINE (lib/lgd.abi):
#   - no change: passes;
#   - compatible changes only (added functions): passes and lists them, so the
#     change is seen in the log;
#   - an incompatible change (a removed or changed function, a changed type layout):
#     fails with abidiff's report.
# abidiff's exit status is a bit mask: 1 error, 2 usage error, 4 ABI change, 8
# incompatible ABI change. An intended change of the ABI (a new release) re-records
# the baseline: LGD_ABI_UPDATE=1 check_abi.sh ... (and say so in the commit and in
# docs/api.md). Exits 77 (skip) when abidw/abidiff are missing (Debian: abigail-tools).
set -u

lib=${1:?usage: check_abi.sh LIBLGD_SO HEADERS_DIR BASELINE}
headers=${2:?headers dir missing}
baseline=${3:?baseline missing}

if ! command -v abidw >/dev/null 2>&1 || ! command -v abidiff >/dev/null 2>&1; then
    echo "SKIP: abidw / abidiff not found (Debian: abigail-tools)"
    exit 77
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lgd-abi.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# --no-corpus-path / --no-comp-dir-path: no build paths in the baseline
if ! abidw --no-corpus-path --no-comp-dir-path --no-show-locs --drop-private-types \
        --headers-dir "$headers" --out-file "$tmp/current.abi" "$lib" 2>"$tmp/abidw.err"; then
    cat "$tmp/abidw.err"
    echo "FAIL: abidw could not describe $lib"
    exit 1
fi
if ! grep -q "<function-decl" "$tmp/current.abi"; then
    echo "FAIL: abidw found no functions in $lib (built without debug info?)"
    exit 1
fi

if [ "${LGD_ABI_UPDATE:-0}" = 1 ]; then
    cp "$tmp/current.abi" "$baseline"
    echo "baseline re-recorded: $baseline ($(grep -c '<elf-symbol' "$baseline") symbols)"
    exit 0
fi
[ -f "$baseline" ] || { echo "FAIL: no baseline $baseline (LGD_ABI_UPDATE=1 records one)"; exit 1; }

abidiff "$baseline" "$tmp/current.abi" >"$tmp/report.txt" 2>&1
rc=$?
if [ $((rc & 3)) -ne 0 ]; then
    cat "$tmp/report.txt"
    echo "FAIL: abidiff failed (exit $rc)"
    exit 1
fi
if [ $((rc & 8)) -ne 0 ]; then
    cat "$tmp/report.txt"
    echo "FAIL: incompatible ABI change against $baseline (see above)"
    exit 1
fi
if [ $((rc & 4)) -ne 0 ]; then
    cat "$tmp/report.txt"
    echo "ok: compatible ABI changes (listed above) against $baseline"
    exit 0
fi
echo "ok: the ABI is unchanged against $baseline ($(grep -c '<elf-symbol' "$baseline") symbols)"
exit 0
