#!/usr/bin/env bash
# check_converter.sh - the PyTorch converter's tests (tools/test_convert.py): the
# safetensors writer, the reference modules against hand-written layers, VJPs against
# autograd and finite differences, and that tools/make_fixtures.py reproduces the
# committed fixtures byte for byte. Skipped (77) when PyTorch is not installed: the C
# tests use the committed fixtures and never need it.
root=${1:?usage: check_converter.sh REPO_ROOT}
py=${PYTHON:-python3}
if ! "$py" -c 'import torch' >/dev/null 2>&1; then
    echo "SKIP: PyTorch is not installed (pip install torch to test the converter)"
    exit 77
fi
exec "$py" "$root/tools/test_convert.py"
