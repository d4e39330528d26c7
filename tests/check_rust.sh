#!/usr/bin/env bash
# check_rust.sh - the Rust bindings (bindings/rust: lgd-sys and lgd) against a meson
# build's liblgd.
#
# usage: check_rust.sh BUILD_DIR [SOURCE_ROOT]
# environment: CARGO (default: cargo on PATH, else ~/.cargo/bin/cargo), CC (the C
#   compiler the tests use for their probes), LGD_RUST_WERROR=1 (warnings are errors:
#   RUSTFLAGS=-Dwarnings, as meson's -Dwerror=true), LGD_RUST_TARGET_DIR (cargo's target
#   dir, default BUILD_DIR/rust-target: warm on the next run of the same build dir).
# Exit status 77 (meson's skip) only when cargo is not installed.
#
# Steps (all `cargo --offline --locked`: no registry, no dependency, the committed
# Cargo.lock):
#   1. cargo test --workspace against BUILD_DIR/lib/liblgd.so (LGD_LIB_DIR; headers from
#      SOURCE_ROOT/include and BUILD_DIR/include, where version.h is generated): the
#      declarations against the headers, every wrapper, errors, closures, lifetimes,
#      threads, the same samples as the C API and as BUILD_DIR's `lgd` tool;
#   2. cargo build --examples, then the mixture example (its loss a Rust closure) against
#      `lgd mixture` with the same options: the KL tables must be equal to the printed
#      digits (all but the timing column);
#   3. pkg-config: lgd-sys's tests with liblgd found through BUILD_DIR's
#      meson-uninstalled/lgd-uninstalled.pc instead of LGD_LIB_DIR;
#   4. LGD_STATIC=1: test binaries linked with liblgd.a (no liblgd.so in ldd), run; a
#      plugin must then be refused (it would bind a second copy of liblgd).
# The plugin test uses BUILD_DIR/plugins/cxx_example (built with a C++ compiler) and is
# required when that file exists.
# Steps 3 and 4 build into target dirs of their own, so that no step rebuilds another's.
set -u

build=$(cd "${1:?usage: check_rust.sh BUILD_DIR [SOURCE_ROOT]}" && pwd) || exit 1
src=$(cd "${2:-$(dirname "${BASH_SOURCE[0]}")/..}" && pwd) || exit 1

cargo=${CARGO:-}
if [ -z "$cargo" ]; then
    if command -v cargo >/dev/null 2>&1; then
        cargo=$(command -v cargo)
    elif [ -x "$HOME/.cargo/bin/cargo" ]; then
        cargo=$HOME/.cargo/bin/cargo
    else
        echo "SKIP: cargo not found (install Rust, or set CARGO)"
        exit 77
    fi
fi
# rustc beside cargo when it is not on PATH
PATH=$(dirname "$cargo"):$PATH
export PATH

fail() { echo "FAIL: $*"; exit 1; }

ws=$src/bindings/rust
[ -f "$ws/Cargo.toml" ] || fail "no cargo workspace at $ws"
libdir=$build/lib
[ -e "$libdir/liblgd.so" ] || fail "$libdir/liblgd.so not found (build the library first)"
tool=$build/examples/lgd/lgd
[ -x "$tool" ] || fail "$tool not found (build the examples first)"

target=${LGD_RUST_TARGET_DIR:-$build/rust-target}
export CARGO_TARGET_DIR=$target
export LGD_LIB_DIR=$libdir
export LGD_INCLUDE_DIR=$src/include:$build/include
export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LGD_TOOL=$tool LGD_REQUIRE_TOOL=1
# the C++ example plugin (plugins/cxx_example) when this build has it (a C++ compiler)
if [ -e "$build/plugins/cxx_example/cxx_example.so" ]; then
    export LGD_PLUGIN_DIR=$build/plugins LGD_REQUIRE_PLUGINS=1
else
    echo "note: no $build/plugins/cxx_example/cxx_example.so: the plugin test is skipped"
    unset LGD_PLUGIN_DIR LGD_REQUIRE_PLUGINS
fi
export OMP_WAIT_POLICY=passive
unset LGD_STATIC LGD_NO_RPATH LGD_STATIC_LIBS
if [ "${LGD_RUST_WERROR:-0}" = 1 ]; then
    export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-Dwarnings"
    export RUSTDOCFLAGS="${RUSTDOCFLAGS:+$RUSTDOCFLAGS }-Dwarnings"
fi
cd "$ws" || exit 1
"$cargo" --version
rustc --version

t0=$SECONDS
echo "== 1. cargo test (LGD_LIB_DIR=$libdir, target $target)"
"$cargo" test --offline --locked --workspace || fail "cargo test"

echo "== 2. the mixture example against lgd mixture"
"$cargo" build --offline --locked --examples || fail "cargo build --examples"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lgd-rust.XXXXXX") || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT
opts=(--samples 2000 --seeds 2 --n 10,100)
"$tool" mixture "${opts[@]}" --points 11 --quiet --out "$tmp/c" >"$tmp/c.txt" || fail "lgd mixture"
"$target/debug/examples/mixture" "${opts[@]}" >"$tmp/rust.txt" || fail "the mixture example"
# the KL tables: from the first "KL(" line to the line before "speed:", without the
# timing column (s/run, the last field of the large table's method rows)
tables() {
    sed -n '/^KL(N(-1/,/^speed:/p' "$1" | grep -v '^speed:' |
        awk '/ \+- / { $NF = "" } { print }'
}
tables "$tmp/c.txt" >"$tmp/c.tab"
tables "$tmp/rust.txt" >"$tmp/rust.tab"
[ "$(wc -l <"$tmp/c.tab")" -ge 15 ] || { cat "$tmp/c.txt"; fail "no KL table in lgd mixture's output"; }
if ! diff "$tmp/c.tab" "$tmp/rust.tab"; then
    echo "--- lgd mixture"; cat "$tmp/c.txt"
    echo "--- the Rust example"; cat "$tmp/rust.txt"
    fail "the Rust example's KL table differs from lgd mixture's"
fi
echo "   the KL tables are equal ($(wc -l <"$tmp/c.tab") lines, ${opts[*]})"

echo "== 3. pkg-config (meson-uninstalled/lgd-uninstalled.pc)"
(
    unset LGD_LIB_DIR LGD_INCLUDE_DIR
    export PKG_CONFIG_PATH=$build/meson-uninstalled${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
    export CARGO_TARGET_DIR=$target/pkg-config
    "$cargo" test --offline --locked -p lgd-sys
) || fail "lgd-sys through pkg-config"

echo "== 4. LGD_STATIC=1 (liblgd.a)"
if [ -e "$libdir/liblgd.a" ]; then
    (
        export LGD_STATIC=1 CARGO_TARGET_DIR=$target/static
        unset LD_LIBRARY_PATH
        tests=(--test lifetimes_threads --test plugins)
        "$cargo" test --offline --locked -p lgd "${tests[@]}" --no-run || exit 1
        exe=$(ls -t "$CARGO_TARGET_DIR"/debug/deps/lifetimes_threads-* | grep -v '\.d$' | head -n 1)
        if ldd "$exe" | grep -q 'liblgd\.so'; then
            echo "$exe links liblgd.so:"; ldd "$exe"; exit 1
        fi
        # (the plugin test expects the loader to refuse the plugin's second liblgd)
        "$cargo" test --offline --locked -p lgd "${tests[@]}"
    ) || fail "static linking"
else
    echo "   no $libdir/liblgd.a (default_library=shared): skipped"
fi

echo "PASS: Rust bindings ($((SECONDS - t0)) s)"
