#!/usr/bin/env bash
# demo.sh - install what is needed, build liblgd in build/, run the demo.
# Arguments are passed to lgd-demo (none are needed).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh
if [ ! -f build/meson-private/coredata.dat ]; then
    meson setup build
fi
ninja -C build
exec build/examples/lgd-demo "$@"
