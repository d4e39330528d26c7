#!/usr/bin/env bash
# demo.sh - install what is needed, build liblgd in build/, and reproduce the paper's
# 1-D Gaussian-mixture experiment with the lgd tool: `lgd mixture` prints the tables
# (guidance-term errors at sigma = 1 and 80, KL of each sampler over 5 seeds, the
# paper's 100-sample protocol) and writes CSV files and SVG figures (Fig. 4, 6, 8)
# to lgd-mixture-out/. Arguments are passed to `lgd mixture` (none are needed;
# `build/examples/lgd/lgd help mixture` lists them).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh
if [ ! -f build/meson-private/coredata.dat ]; then
    meson setup build
fi
ninja -C build
# the tool's place in the build tree: examples/lgd/lgd, or examples/lgd in older trees
tool=build/examples/lgd/lgd
[ -f "$tool" ] || tool=build/examples/lgd
exec "$tool" mixture "$@"
