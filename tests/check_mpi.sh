#!/usr/bin/env bash
# check_mpi.sh - lgd sample under MPI (docs/scale-out.md): `mpirun -n 3` on localhost
# writes the same bytes as one process, for the whole run and for a --rows part, with
# LGD-MC guidance on the image U-Net fixture (whose rows depend on the batch they are
# computed in) and batches smaller than the rows; 2 ranks too; a run that fails on every
# rank exits 1 and leaves no output.
#
# usage: check_mpi.sh LGD_TOOL MPI_BUILT(1|0) FIXTURE_DIR
# Exits 77 (skip) when the tool was built without MPI or Open MPI's mpirun is missing.
# As root, mpirun needs --allow-run-as-root (and Open MPI's two environment variables).
set -u

tool=${1:?usage: check_mpi.sh LGD_TOOL MPI_BUILT FIXTURE_DIR}
built=${2:?}
fixtures=${3:?}

if [ "$built" != 1 ]; then
    echo "SKIP: lgd was built without MPI (meson -Dmpi=enabled needs libopenmpi-dev)"
    exit 77
fi
if ! command -v mpirun >/dev/null 2>&1; then
    echo "SKIP: no mpirun (Debian: openmpi-bin)"
    exit 77
fi
if ! mpirun --version 2>&1 | grep -q "Open MPI"; then
    echo "SKIP: mpirun is not Open MPI's (this check uses its options)"
    exit 77
fi

fail() { echo "FAIL: $*"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lgd-mpi.XXXXXX") || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT

mpi=(mpirun --oversubscribe --bind-to none)
# shared-memory transfers without CMA (process_vm_readv), which containers without
# CAP_SYS_PTRACE refuse ("Read -1, expected ..., errno = 1")
export OMPI_MCA_btl_vader_single_copy_mechanism=none
if [ "$(id -u)" = 0 ]; then
    mpi+=(--allow-run-as-root)
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

# A .npy file of n float32 zeros, written without numpy: the 1.0 header padded to 64 bytes.
zeros_npy() {
    local path=$1 n=$2 dict pad
    dict="{'descr': '<f4', 'fortran_order': False, 'shape': ($n,), }"
    pad=$(( (64 - (10 + ${#dict} + 1) % 64) % 64 ))
    {
        printf '\x93NUMPY\x01\x00'
        local len=$(( ${#dict} + pad + 1 ))
        printf "\\x$(printf %02x $((len % 256)))\\x$(printf %02x $((len / 256)))"
        printf '%s%*s\n' "$dict" "$pad" ""
        head -c $((4 * n)) /dev/zero
    } > "$path"
}
zeros_npy "$tmp/target.npy" 192

common=(sample --model "$fixtures/unet.safetensors" --loss "sqerr:$tmp/target.npy"
        --guidance mc:3 --samples 10 --batch 3 --steps 4 --sigma-max 5 --threads 2
        --seed 5 --quiet)
# two threads per process: OpenBLAS and oneDNN then split a batch's work by its size, so
# a row's bytes depend on the batch it is computed in (with one thread they do not here)
export OMP_WAIT_POLICY=passive

# Runs the tool under mpirun with P ranks (a time limit, so that a hang is a failure).
run_mpi() {
    local p=$1
    shift
    timeout 240 "${mpi[@]}" -n "$p" "$tool" "$@"
}

"$tool" "${common[@]}" --out "$tmp/one.npy" --diagnostics "$tmp/one.csv" > "$tmp/log" 2>&1 ||
    fail "one process: $(cat "$tmp/log")"
run_mpi 3 "${common[@]}" --out "$tmp/three.npy" --diagnostics "$tmp/three.csv" > "$tmp/log" 2>&1 ||
    fail "mpirun -n 3: $(cat "$tmp/log")"
grep -q "3 MPI ranks" "$tmp/log" || fail "mpirun -n 3 did not run 3 ranks: $(cat "$tmp/log")"
cmp "$tmp/one.npy" "$tmp/three.npy" || fail "3 ranks wrote other bytes than one process"
[ ! -e "$tmp/three.npy.tmp" ] || fail "the MPI-IO temporary was left behind"
# the diagnostics: the same lines, values equal to 1e-6 (sums in another order)
paste -d, "$tmp/one.csv" "$tmp/three.csv" | awk -F, 'NR == 1 { next }
    { for (i = 1; i <= 10; i++) { a = $i; b = $(i + 10); d = a - b; if (d < 0) d = -d
          m = a < 0 ? -a : a; if (d > 1e-6 * m + 1e-12) { print "line " NR " column " i ": " a " vs " b; bad = 1 } } }
    END { exit bad }' || fail "the diagnostics differ"
[ "$(wc -l < "$tmp/one.csv")" = 5 ] && [ "$(wc -l < "$tmp/three.csv")" = 5 ] ||
    fail "diagnostics: $(wc -l < "$tmp/three.csv") lines, expected 5"
echo "ok: mpirun -n 3 = one process (10 rows, batch 3)"

run_mpi 2 "${common[@]}" --out "$tmp/two.npy" > "$tmp/log" 2>&1 || fail "mpirun -n 2: $(cat "$tmp/log")"
cmp "$tmp/one.npy" "$tmp/two.npy" || fail "2 ranks wrote other bytes than one process"
echo "ok: mpirun -n 2 = one process"

"$tool" "${common[@]}" --rows 2:9 --out "$tmp/one_part.npy" > "$tmp/log" 2>&1 ||
    fail "one process, --rows 2:9: $(cat "$tmp/log")"
run_mpi 3 "${common[@]}" --rows 2:9 --out "$tmp/three_part.npy" > "$tmp/log" 2>&1 ||
    fail "mpirun -n 3 --rows 2:9: $(cat "$tmp/log")"
cmp "$tmp/one_part.npy" "$tmp/three_part.npy" || fail "--rows 2:9: 3 ranks differ from one process"
echo "ok: --rows 2:9 under mpirun -n 3 = one process"

# a failure on every rank (a missing target): exit 1, a message, no output
bad=(sample --model "$fixtures/unet.safetensors" --loss "sqerr:$tmp/missing.npy" --guidance dps
     --samples 4 --steps 2 --quiet --out "$tmp/bad.npy")
run_mpi 3 "${bad[@]}" > "$tmp/log" 2>&1
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "a failing run under mpirun exited $rc: $(cat "$tmp/log")"
grep -q "missing.npy" "$tmp/log" || fail "no message naming the file: $(cat "$tmp/log")"
[ ! -e "$tmp/bad.npy" ] && [ ! -e "$tmp/bad.npy.tmp" ] || fail "a failed run left output behind"
echo "ok: a failing run under mpirun exits $rc and writes nothing"
exit 0
