#!/usr/bin/env bash
# run_python_bench.sh - the Python package's overhead (bench/bench_python.py): the
# `lgd mixture` LGD-MC n = 100 run driven from Python with the library's logistic loss and
# with a numpy loss, beside the C tool's own timing of the same run; interleaved
# repetitions, median / min / max, ratios to C. Prints a table.
#
# usage: bench/run_python_bench.sh [BUILD_DIR] [bench_python.py options]
#        (default build; e.g. --reps 7 --samples 10000 --threads 2)
# env:   PYTHON (default python3). Needs numpy; uses the package of this tree
#        (bindings/python/src) on the library of BUILD_DIR.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build}
[ $# -gt 0 ] && shift
python=${PYTHON:-python3}
[ -x "$build/examples/lgd/lgd" ] || { echo "run_python_bench.sh: $build/examples/lgd/lgd not built (ninja -C $build)"; exit 1; }
"$python" -c 'import numpy' 2>/dev/null || { echo "run_python_bench.sh: numpy is needed"; exit 1; }
export LGD_BUILD_DIR=$(cd "$build" && pwd)
unset LGD_LIBRARY
exec "$python" "$root/bench/bench_python.py" --tool "$LGD_BUILD_DIR/examples/lgd/lgd" "$@"
