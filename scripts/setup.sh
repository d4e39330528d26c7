#!/usr/bin/env bash
# setup.sh - install what liblgd needs to build, test and run its demo.
#
# Debian/Ubuntu: installs the missing packages with apt-get (non-interactive,
# `apt-get update` first); does nothing when everything is already installed.
# Elsewhere: checks that the tools are on PATH and says what is missing.
# Used by scripts/test.sh, scripts/demo.sh and .ci/run.
set -euo pipefail

# libopenblas-openmp-dev: the OpenMP build of OpenBLAS, which shares our OpenMP threads
# (meson.build prefers it). gfortran: openblas.pc lists -lgfortran in Libs.private, which the static link
# of the install test (pkg-config --static lgd) needs. libdnnl-dev: oneDNN (OpenMP
# build) for the CPU backend's GEMMs and convolutions (meson option onednn).
# g++: the C++ header test (tests/test_cxx_api.cpp). abigail-tools: the ABI check
# against lib/lgd.abi (tests/check_abi.sh). libpng-dev: lgd sample --png.
# libopenmpi-dev, openmpi-bin: lgd sample under mpirun (meson option mpi; tests/check_mpi.sh).
# clang, libclang-rt-dev (libFuzzer): the bounded fuzz run (tests/check_fuzz.sh).
packages=(gcc g++ libc6-dev binutils pkg-config meson ninja-build check libsubunit-dev
          libopenblas-dev libopenblas-openmp-dev gfortran valgrind libdnnl-dev abigail-tools
          libpng-dev libopenmpi-dev openmpi-bin clang libclang-rt-dev)

# Python packages for the Python bindings' tests (tests/check_python.sh): numpy, pytest
# and wheel with pip, when python3 is there and they are missing. A failure here is not
# fatal: those tests then skip (77) and say why.
# Only when asked (scripts/test.sh sets LGD_SETUP_PYTHON=1; demo.sh does not need them).
python_packages() {
    [ "${LGD_SETUP_PYTHON:-0}" = 1 ] || return 0
    command -v python3 >/dev/null 2>&1 || return 0
    python3 -c 'import numpy, pytest, wheel' >/dev/null 2>&1 && return 0
    echo "setup: pip install numpy pytest wheel (for the Python bindings' tests)"
    python3 -m pip install --quiet numpy pytest wheel ||
        python3 -m pip install --quiet --user --break-system-packages numpy pytest wheel ||
        echo "setup: could not install numpy/pytest/wheel with pip; the Python tests will skip" >&2
}

if command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    missing=()
    for p in "${packages[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "setup: all packages are installed"
        python_packages
        exit 0
    fi
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo -E)
        else
            echo "setup: missing packages (${missing[*]}) and not root; install them as root" >&2
            exit 1
        fi
    fi
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
    python_packages
    exit 0
fi

# Not a Debian-like system: check only.
status=0
for tool in cc meson ninja pkg-config valgrind nm readelf; do
    command -v "$tool" >/dev/null 2>&1 || { echo "setup: $tool not found" >&2; status=1; }
done
for pc in check openblas; do
    pkg-config --exists "$pc" 2>/dev/null || { echo "setup: pkg-config cannot find $pc" >&2; status=1; }
done
[ $status -eq 0 ] && echo "setup: not a Debian system; the tools are present"
exit $status
