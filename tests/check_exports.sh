#!/usr/bin/env bash
# check_exports.sh - the shared library exports exactly the public API.
#
# usage: check_exports.sh LIBLGD_SO EXPECTED_SONAME [PUBLIC_HEADER_DIR]
#
# Checks, on the built shared library:
#   - every defined dynamic symbol starts with lgd_ (the version node of
#     lib/lgd.map, an absolute symbol such as LGD_0, is allowed);
#   - the SONAME is EXPECTED_SONAME (liblgd.so.<major>);
#   - with PUBLIC_HEADER_DIR: every exported symbol is declared LGD_API in the
#     public headers (no private lgd_* helper leaks), and every LGD_API
#     function declared there is exported (no promise without a definition).
set -u

lib=${1:?usage: check_exports.sh LIBLGD_SO EXPECTED_SONAME [PUBLIC_HEADER_DIR]}
want_soname=${2:?expected SONAME missing}
hdr_dir=${3:-}
NM=${NM:-nm}
READELF=${READELF:-readelf}
fail=0

[ -f "$lib" ] || { echo "FAIL: $lib does not exist"; exit 1; }

# "ADDRESS TYPE NAME[@@VERSION]" -> "TYPE NAME"
if ! syms=$("$NM" -D --defined-only "$lib" | awk 'NF >= 2 { n = $NF; sub(/@.*/, "", n); print $(NF-1), n }'); then
    echo "FAIL: $NM -D --defined-only $lib failed"
    exit 1
fi
nsyms=0
exported=()
while read -r type name; do
    [ -n "$name" ] || continue
    if [ "$type" = A ] && [[ $name =~ ^LGD_[0-9A-Za-z_.]*$ ]]; then
        continue # version node from the version script
    fi
    nsyms=$((nsyms + 1))
    exported+=("$name")
    if [[ $name != lgd_* ]]; then
        echo "FAIL: exported symbol without the lgd_ prefix: $name ($type)"
        fail=1
    fi
done <<< "$syms"
if [ "$nsyms" -eq 0 ]; then
    echo "FAIL: no exported symbols found in $lib"
    fail=1
fi

soname=$("$READELF" -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
if [ "$soname" != "$want_soname" ]; then
    echo "FAIL: SONAME is '${soname:-<none>}', expected '$want_soname'"
    fail=1
fi

if [ -n "$hdr_dir" ]; then
    # names of the functions declared LGD_API in the public headers
    # (comments, then preprocessor lines with their continuations, are dropped first)
    declared=$(cat "$hdr_dir"/*.h | perl -0pe 's{/\*.*?\*/}{ }gs; s{//[^\n]*}{}g' |
               awk '/^[[:space:]]*#/ || cont { cont = /\\$/; next } { print }' |
               tr '\n' ' ' | grep -oE 'LGD_API[^;(]*\(' |
               sed -E 's/^.*[^A-Za-z0-9_]([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*\($/\1/' | sort -u)
    if [ -z "$declared" ]; then
        echo "FAIL: no LGD_API declarations found under $hdr_dir"
        fail=1
    fi
    exported_sorted=$(printf '%s\n' "${exported[@]}" | sort -u)
    extra=$(comm -23 <(echo "$exported_sorted") <(echo "$declared"))
    missing=$(comm -13 <(echo "$exported_sorted") <(echo "$declared"))
    for s in $extra; do
        echo "FAIL: $s is exported but not declared LGD_API in $hdr_dir"
        fail=1
    done
    for s in $missing; do
        echo "FAIL: $s is declared LGD_API in $hdr_dir but not exported (no definition?)"
        fail=1
    done
fi

if [ "$fail" -eq 0 ]; then
    echo "ok: $nsyms exported symbols, all lgd_*; SONAME $soname"
fi
exit "$fail"
