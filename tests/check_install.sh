#!/usr/bin/env bash
# check_install.sh - install liblgd into a staging directory and build a user
# program against it with nothing but pkg-config, dynamically and statically.
#
# usage: check_install.sh BUILD_DIR EXPECTED_VERSION
# environment: CC (default cc), MESON (default meson), KEEP_STAGE=1 keeps the files.
#
# Steps:
#   1. meson install --destdir STAGE (the configured prefix, staged under STAGE);
#   2. the staged lgd.pc is relocated into STAGE (its absolute prefix, libdir,
#      includedir get the STAGE prefix) and PKG_CONFIG_PATH points at it;
#   3. cc prog.c $(pkg-config --cflags --libs lgd), run with LD_LIBRARY_PATH: it
#      creates a context and prints lgd_version_string();
#   4. cc prog.c $(pkg-config --static --cflags --libs lgd), with a copy of
#      lgd.pc whose libdir holds only liblgd.a: must link (Libs.private / Requires.private complete),
#      must not need liblgd.so, and must run without LD_LIBRARY_PATH;
#   5. the staged liblgd.so loads the same BLAS as the built one (run path kept), and
#      the staged headers give the project's version (lgd/version.h, generated);
#   6. the staged lgd tool runs without LD_LIBRARY_PATH (its install run path finds
#      liblgd: $ORIGIN/../lib... points into the stage): `lgd mixture --samples 1000
#      --seeds 1 --out DIR` exits 0 and writes DIR/kl.csv.
set -u

build=${1:?usage: check_install.sh BUILD_DIR EXPECTED_VERSION}
want_version=${2:?expected version missing}
CC=${CC:-cc}
MESON=${MESON:-meson}
PKG_CONFIG=${PKG_CONFIG:-pkg-config}

fail() { echo "FAIL: $*"; exit 1; }
command -v "$PKG_CONFIG" >/dev/null || fail "$PKG_CONFIG not found"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lgd-install.XXXXXX") || fail "mktemp"
if [ "${KEEP_STAGE:-0}" = 1 ]; then
    echo "staging kept in $tmp"
else
    trap 'rm -rf "$tmp"' EXIT
fi
stage=$tmp/stage

echo "== meson install --destdir $stage"
# Without --no-rebuild: meson test may have built only what the selected tests
# need, and everything that is installed must exist (normally a no-op).
if ! "$MESON" install -C "$build" --destdir "$stage" >"$tmp/install.log" 2>&1; then
    cat "$tmp/install.log"
    fail "meson install failed"
fi

pcfile=$(find "$stage" -name lgd.pc -path '*pkgconfig*' | head -n 1)
[ -n "$pcfile" ] || fail "lgd.pc was not installed"
echo "   lgd.pc: ${pcfile#"$stage"}"
sed 's/^/   | /' "$pcfile"
pcdir=$(dirname "$pcfile")

# DESTDIR relocation: the staged lgd.pc still names the configured prefix
# (e.g. /usr/local); point its absolute prefix/libdir/includedir at the stage.
# Only lgd.pc is touched, so the packages it requires (openblas) resolve as usual.
sed -i -E "s|^(prefix\|libdir\|includedir)=/|\1=$stage/|" "$pcfile" || fail "relocating lgd.pc"
export PKG_CONFIG_PATH=$pcdir
unset PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR
libdir=$("$PKG_CONFIG" --variable=libdir lgd) || fail "pkg-config --variable=libdir lgd"
includedir=$("$PKG_CONFIG" --variable=includedir lgd) || fail "pkg-config --variable=includedir lgd"
case "$libdir:$includedir" in
"$stage"/*:"$stage"/*) ;;
*) fail "lgd.pc does not point into the stage after relocation (libdir=$libdir)" ;;
esac

for f in "$libdir/liblgd.so" "$libdir/liblgd.a" "$includedir/lgd/lgd.h" "$includedir/lgd/version.h"; do
    [ -e "$f" ] || fail "${f#"$stage"} was not installed"
done
pc_version=$("$PKG_CONFIG" --modversion lgd)
[ "$pc_version" = "$want_version" ] || fail "lgd.pc version $pc_version, expected $want_version"
grep -Eq '^(Requires\.private:.*openblas|Libs\.private:.*(openblas|blas))' "$pcfile" ||
    fail "lgd.pc does not name the BLAS for static linking (Requires.private / Libs.private)"

cat >"$tmp/prog.c" <<'CEOF'
#include <lgd/lgd.h>
#include <stdio.h>

int main(void)
{
    if (lgd_version() != LGD_VERSION_NUMBER) {
        fprintf(stderr, "headers %d, library %u\n", LGD_VERSION_NUMBER, (unsigned)lgd_version());
        return 1;
    }
    lgd_context *ctx = NULL;
    const char *err = NULL;
    lgd_status st = lgd_context_create(NULL, &ctx, &err);
    if (st != LGD_OK) {
        fprintf(stderr, "lgd_context_create: %s: %s\n", lgd_status_string(st), err);
        return 1;
    }
    lgd_tensor *t = NULL;
    float host[6];
    if (lgd_tensor_create_2d(ctx, 2, 3, &t) != LGD_OK || lgd_tensor_fill(t, 2.0f) != LGD_OK ||
        lgd_tensor_download(t, host, 6) != LGD_OK || host[5] != 2.0f) {
        fprintf(stderr, "tensor round trip failed: %s\n", lgd_context_last_error(ctx));
        return 1;
    }
    lgd_tensor_destroy(t);
    printf("%s\n", lgd_version_string());
    lgd_context_destroy(ctx);
    return 0;
}
CEOF

cflags=$("$PKG_CONFIG" --cflags lgd) || fail "pkg-config --cflags lgd"
libs=$("$PKG_CONFIG" --libs lgd) || fail "pkg-config --libs lgd"
echo "== dynamic: $CC prog.c $cflags $libs"
# shellcheck disable=SC2086 # word splitting of the flags is intended
$CC -std=c11 -Wall -Wextra -Werror -pedantic -o "$tmp/prog" "$tmp/prog.c" $cflags $libs ||
    fail "compiling against the installed headers and liblgd.so"
out=$(LD_LIBRARY_PATH=$libdir "$tmp/prog") || fail "the dynamic program failed: $out"
[ "$out" = "$want_version" ] || fail "the dynamic program printed '$out', expected '$want_version'"
resolved=$(LD_LIBRARY_PATH=$libdir ldd "$tmp/prog" | awk '/liblgd\.so/ { print $3 }')
[ "$resolved" = "$libdir/liblgd.so.${want_version%%.*}" ] ||
    fail "the program loaded liblgd from '$resolved', not the staged $libdir"
echo "   ok: printed $out, liblgd from ${resolved#"$stage"}"

# Static: a copy of lgd.pc whose libdir holds only the archive, so that -llgd
# must take liblgd.a whatever the linker prefers.
sdir=$tmp/static
mkdir -p "$sdir/lib" "$sdir/pkgconfig" || fail "mkdir $sdir"
cp "$libdir/liblgd.a" "$sdir/lib/" || fail "copying liblgd.a"
sed -E "s|^libdir=.*|libdir=$sdir/lib|" "$pcfile" >"$sdir/pkgconfig/lgd.pc" || fail "writing lgd.pc"
scflags=$(PKG_CONFIG_PATH=$sdir/pkgconfig "$PKG_CONFIG" --static --cflags lgd) ||
    fail "pkg-config --static --cflags lgd"
slibs=$(PKG_CONFIG_PATH=$sdir/pkgconfig "$PKG_CONFIG" --static --libs lgd) ||
    fail "pkg-config --static --libs lgd"
echo "== static: $CC prog.c $scflags $slibs"
# shellcheck disable=SC2086
$CC -std=c11 -Wall -Wextra -Werror -pedantic -DLGD_STATIC -o "$tmp/prog-static" "$tmp/prog.c" \
    $scflags $slibs || fail "linking liblgd.a with the flags of pkg-config --static"
if readelf -d "$tmp/prog-static" | grep -q 'NEEDED.*liblgd'; then
    fail "the static program still needs liblgd.so"
fi
out=$(env -u LD_LIBRARY_PATH "$tmp/prog-static") || fail "the static program failed: $out"
[ "$out" = "$want_version" ] || fail "the static program printed '$out', expected '$want_version'"
echo "   ok: printed $out, no liblgd.so needed"

# C++ users include the same headers (extern "C"), when a C++ compiler is here.
if command -v c++ >/dev/null 2>&1; then
    # LGD_CXX_FLAGS: e.g. the -fsanitize flags of a sanitized build (tests/meson.build)
    # shellcheck disable=SC2086
    c++ -x c++ -std=c++11 -Wall -Wextra -Werror ${LGD_CXX_FLAGS:-} -o "$tmp/prog-cxx" "$tmp/prog.c" $cflags $libs ||
        fail "compiling the program as C++"
    out=$(LD_LIBRARY_PATH=$libdir "$tmp/prog-cxx") || fail "the C++ program failed"
    echo "   ok: C++ build printed $out"
fi

# The installed liblgd loads the same BLAS as the build tree's (e.g. the OpenMP build
# of OpenBLAS through its install run path, not the loader's default libopenblas.so.0).
blas_of() { env -u LD_LIBRARY_PATH ldd "$1" | awk '/lib(open)?blas/ { print $3; exit }'; }
built_blas=$(blas_of "$build/lib/liblgd.so")
staged_blas=$(blas_of "$libdir/liblgd.so")
[ "$built_blas" = "$staged_blas" ] ||
    fail "the installed liblgd.so loads BLAS '$staged_blas', the built one '$built_blas' (run path lost on install?)"
echo "   ok: installed liblgd.so loads ${staged_blas:-no separate BLAS}"

# The installed headers carry the project version (lgd/version.h, made by meson).
cat >"$tmp/ver.c" <<'CEOF'
#include <lgd/lgd.h>
#include <stdio.h>
int main(void)
{
    printf("%d.%d.%d\n", LGD_VERSION_MAJOR, LGD_VERSION_MINOR, LGD_VERSION_PATCH);
    return LGD_VERSION_NUMBER == LGD_VERSION_MAJOR * 10000 + LGD_VERSION_MINOR * 100 + LGD_VERSION_PATCH ? 0 : 1;
}
CEOF
# shellcheck disable=SC2086
$CC -std=c11 -Wall -Wextra -Werror -pedantic -o "$tmp/ver" "$tmp/ver.c" $cflags ||
    fail "compiling against the installed lgd/version.h"
out=$("$tmp/ver") || fail "the version macros are inconsistent"
[ "$out" = "$want_version" ] || fail "the installed headers say version '$out', expected '$want_version'"
echo "   ok: installed headers say $out"

# The installed lgd tool must start with nothing but its install run path: no
# LD_LIBRARY_PATH. With --destdir, a $ORIGIN-relative run path finds the staged liblgd.
tool=$(find "$stage" -path '*/bin/lgd' -type f | head -n 1)
[ -n "$tool" ] || fail "the lgd tool (bin/lgd) was not installed"
echo "== ${tool#"$stage"} mixture --samples 1000 --seeds 1 (no LD_LIBRARY_PATH)"
tool_out=$tmp/tool-out
if ! env -u LD_LIBRARY_PATH OMP_WAIT_POLICY=passive "$tool" mixture --samples 1000 --seeds 1 \
        --out "$tool_out" >"$tmp/tool.log" 2>&1; then
    tail -n 20 "$tmp/tool.log"
    echo "   readelf -d ${tool#"$stage"}:"
    readelf -d "$tool" | grep -E 'RPATH|RUNPATH|NEEDED' | sed 's/^/   | /'
    fail "the installed lgd tool failed without LD_LIBRARY_PATH (install run path?)"
fi
[ -s "$tool_out/kl.csv" ] || fail "the installed lgd tool wrote no kl.csv"
echo "   ok: the installed tool ran and wrote kl.csv"
echo "ok: install, pkg-config (dynamic and --static), headers' version, installed tool, run"
