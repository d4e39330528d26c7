#!/usr/bin/env bash
# check_converter_diffusers.sh - the Hugging Face diffusers converter's tests
# (tools/test_convert_diffusers.py): randomly initialised diffusers UNet2DModels saved
# with save_pretrained, converted by tools/lgd_convert.py diffusers, loaded in this
# build's liblgd through the Python package and compared with PyTorch autograd; the
# schedules bit for bit; the refusals. Skipped (77) without PyTorch or numpy (nothing
# else needs them); without diffusers only the config-level tests run (the rest skip).
#
# usage: check_converter_diffusers.sh BUILD_DIR REPO_ROOT
set -u
build=${1:?usage: check_converter_diffusers.sh BUILD_DIR REPO_ROOT}
root=${2:?usage: check_converter_diffusers.sh BUILD_DIR REPO_ROOT}
py=${PYTHON:-python3}
for mod in torch numpy; do
    if ! "$py" -c "import $mod" >/dev/null 2>&1; then
        echo "SKIP: $py cannot import $mod (pip install torch numpy diffusers to test the" \
             "diffusers converter)"
        exit 77
    fi
done
build=$(cd "$build" && pwd) || { echo "FAIL: no build directory $1"; exit 1; }
[ -e "$build/lib/liblgd.so" ] || { echo "FAIL: $build/lib/liblgd.so is not built"; exit 1; }
export LGD_BUILD_DIR=$build
unset LGD_LIBRARY
export PYTHONDONTWRITEBYTECODE=1     # no __pycache__ in the source tree
export PYTHONWARNINGS=ignore         # diffusers' and numpy's deprecation chatter
exec "$py" "$root/tools/test_convert_diffusers.py"
