#!/usr/bin/env bash
# train_all.sh [BUILD_DIR] - rebuild data/digits/ and every model of models/ in order
# (tools/train/README.md), then check each file in liblgd against PyTorch.
# BUILD_DIR: a meson build of liblgd (default: $LGD_BUILD_DIR, else build).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export LGD_BUILD_DIR=${1:-${LGD_BUILD_DIR:-build}}
python3 "$here/make_digits_split.py"
python3 "$here/train_digits_classifier.py"
python3 "$here/train_digits_classifier.py" --name digits_judge --seed 11 --hidden 128
python3 "$here/train_digits_noisy_classifier.py"
python3 "$here/train_digits_unet.py"
python3 "$here/train_trajectory_denoiser.py"
python3 "$here/check_models.py"
