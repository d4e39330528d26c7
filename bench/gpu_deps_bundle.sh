#!/usr/bin/env bash
# gpu_deps_bundle.sh - bundle the build dependencies that an offline GPU machine may
# lack (Check, subunit, OpenBLAS with its Fortran runtime, pkg-config) from this
# Debian/Ubuntu x86-64 machine into one relocatable folder, for bench/gpu_check.sh:
#
#   bench/gpu_deps_bundle.sh .gpu-deps            # here (installs the packages if needed)
#   LGD_DEPS_PREFIX=$PWD/.gpu-deps bench/gpu_check.sh OUT   # there
#
# The .pc files are rewritten relative to their own folder (${pcfiledir}).
set -euo pipefail
dest=${1:-.gpu-deps}
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
lib=/usr/lib/$arch
# the OpenMP build of OpenBLAS shares liblgd's OpenMP threads (see meson.build)
blas=openblas-openmp
[ -e "$lib/$blas/libopenblas.so.0" ] || blas=openblas-pthread
blas_lib=$lib/$blas
blas_inc=/usr/include/$arch/$blas
for f in "$lib/libcheck_pic.a" "$lib/libsubunit.so.0" "$blas_lib/libopenblas.so.0" \
    /usr/include/check.h "$blas_inc/cblas.h"; do
    [ -e "$f" ] || { echo "missing $f: run scripts/setup.sh first" >&2; exit 1; }
done
rm -rf "$dest"
mkdir -p "$dest/include" "$dest/lib/pkgconfig" "$dest/bin"
cp /usr/include/check.h /usr/include/check_stdint.h "$dest/include/"
cp "$blas_inc"/*.h "$dest/include/"
cp "$lib/libcheck_pic.a" "$dest/lib/"
cp -L "$lib/libsubunit.so.0" "$dest/lib/libsubunit.so.0"
ln -s libsubunit.so.0 "$dest/lib/libsubunit.so"
cp -L "$blas_lib/libopenblas.so.0" "$dest/lib/libopenblas.so.0"
ln -s libopenblas.so.0 "$dest/lib/libopenblas.so"
for so in libgfortran.so.5 libquadmath.so.0; do
    cp -L "$lib/$so" "$dest/lib/$so"
done
ln -s libgfortran.so.5 "$dest/lib/libgfortran.so"
if command -v pkgconf >/dev/null 2>&1; then
    cp -L "$(command -v pkgconf)" "$dest/bin/pkg-config"
    cp -L "$lib/libpkgconf.so.3" "$dest/lib/" 2>/dev/null || true
fi
pc() { # name version libs cflags [requires]
    cat >"$dest/lib/pkgconfig/$1.pc" <<PC
prefix=\${pcfiledir}/../..
libdir=\${prefix}/lib
includedir=\${prefix}/include
Name: $1
Description: bundled by gpu_deps_bundle.sh
Version: $2
Requires: $5
Libs: -L\${libdir} $3
Cflags: -I\${includedir} $4
PC
}
pc check 0.15.2 "-lcheck_pic -lrt -lm" "-pthread" "libsubunit"
pc libsubunit 1.4.0 "-lsubunit" "" ""
pc openblas 0.3.21 "-lopenblas" "" ""
du -sh "$dest"
