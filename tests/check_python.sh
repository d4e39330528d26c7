#!/usr/bin/env bash
# check_python.sh - the Python package (bindings/python): its pytest suite against the
# library of a meson build directory, then `pip install` of the package as a pure-Python
# wheel into a temporary target, imported from there with LGD_LIBRARY set.
#
# usage: check_python.sh BUILD_DIR
# environment: PYTHON (default python3).
# Exit status 77 (skip) only when numpy or pytest cannot be imported; otherwise 0 or 1.
# The pip step builds the wheel offline when setuptools and wheel are installed, else it
# lets pip fetch them (build isolation); it fails when neither works.
set -u

build=${1:?usage: check_python.sh BUILD_DIR}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
py=${PYTHON:-python3}

for mod in numpy pytest; do
    if ! "$py" -c "import $mod" >/dev/null 2>&1; then
        echo "SKIP: $py cannot import $mod (pip install numpy pytest, or apt-get install" \
             "python3-numpy python3-pytest)"
        exit 77
    fi
done

fail() { echo "FAIL: $*"; exit 1; }

build=$(cd "$build" && pwd) || fail "no build directory $1"
lib=$build/lib/liblgd.so
[ -e "$lib" ] || fail "$lib is not built (ninja -C $build)"
export LGD_BUILD_DIR=$build
unset LGD_LIBRARY LGD_TEST_INSTALLED
export PYTHONDONTWRITEBYTECODE=1   # no __pycache__ in the source tree
work=$(mktemp -d "${TMPDIR:-/tmp}/lgd-python.XXXXXX")
trap 'rm -rf "$work"' EXIT

# 1. the test suite (the package of this tree, bindings/python/src)
echo "== pytest bindings/python/tests (LGD_BUILD_DIR=$build)"
"$py" -m pytest -q -p no:cacheprovider -W error::pytest.PytestUnraisableExceptionWarning \
    -rs "$root/bindings/python/tests" || fail "the Python tests failed"

# 2. pip: a pure-Python wheel, installed into a target directory, used from there
echo "== pip wheel + pip install --target"
"$py" -m pip --version >/dev/null 2>&1 || fail "$py has no pip (python3-pip) for the install check"
mkdir -p "$work/src" "$work/wheel"
# a copy, so that setuptools' build/ and egg-info stay out of the source tree
(cd "$root/bindings/python" && tar cf - --exclude=build --exclude='*.egg-info' \
    --exclude=__pycache__ .) | (cd "$work/src" && tar xf -) || fail "copying the package"
if "$py" -m pip wheel --no-deps --no-build-isolation --no-index -w "$work/wheel" \
        "$work/src" >"$work/pip.log" 2>&1; then
    echo "built offline (the installed setuptools)"
else
    echo "offline build failed (setuptools or wheel missing?); with pip's build isolation"
    "$py" -m pip wheel --no-deps -w "$work/wheel" "$work/src" >>"$work/pip.log" 2>&1 ||
        { cat "$work/pip.log"; fail "pip wheel failed"; }
fi
whl=$(ls "$work"/wheel/lgd-*-py3-none-any.whl 2>/dev/null | head -n 1)
[ -n "$whl" ] || { ls "$work/wheel"; fail "no pure-Python wheel (lgd-*-py3-none-any.whl)"; }
echo "built $(basename "$whl")"
"$py" -m pip install --no-deps --no-index --target "$work/target" "$whl" \
    >>"$work/pip.log" 2>&1 || { cat "$work/pip.log"; fail "pip install --target failed"; }
[ -f "$work/target/lgd/py.typed" ] || fail "the wheel lacks lgd/py.typed"
ls "$work"/target/lgd/*.so >/dev/null 2>&1 && fail "the wheel holds a compiled module"
(cd "$work" && env -u LGD_BUILD_DIR LGD_LIBRARY="$lib" PYTHONPATH="$work/target" "$py" -c '
import sys, numpy as np, lgd
assert lgd.__file__.startswith(sys.argv[1]), lgd.__file__
assert lgd.library_path == sys.argv[2], lgd.library_path
with lgd.Context() as ctx:
    prior = lgd.Model.gmm(ctx, [0.5, 0.5], [[-1.0], [1.0]], [0.04, 0.04])
    def softplus(x):  # -log p(y = 0 | x) of the mixture, as lgd.Loss.logistic([-50], 0)
        t = 50.0 * x[..., 0].astype(np.float64)
        return np.logaddexp(0, t), (50 * np.exp(-np.logaddexp(0, -t)))[..., None]
    runs = [lgd.Sampler(lgd.Guidance.mc(prior, loss, 10), "ddim", steps=10).run(batch=500)
            for loss in (lgd.Loss.from_callable(ctx, 1, softplus),
                         lgd.Loss.logistic(ctx, [-50.0], 0.0))]
    assert np.abs(runs[0] - runs[1]).max() < 1e-3, np.abs(runs[0] - runs[1]).max()
print("installed package OK:", lgd.__file__, "on liblgd", lgd.version_string())
' "$work/target" "$lib") || fail "the installed package does not work"
# the reference tests against the installed copy
LGD_TEST_INSTALLED=1 PYTHONPATH="$work/target" "$py" -m pytest -q -p no:cacheprovider \
    "$root/bindings/python/tests/test_reference.py" "$root/bindings/python/tests/test_basics.py" \
    || fail "the tests fail against the installed package"
echo "PASS: Python package"
exit 0
