#!/usr/bin/env bash
# Check that a binary is statically linked (what `make static` promises), then print
# its path and size.
#
# Usage: scripts/static-check.sh PATH-TO-BINARY
set -euo pipefail

die() { echo "static-check: error: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || die "usage: scripts/static-check.sh PATH-TO-BINARY"
bin=$1
[[ -f $bin ]] || die "no binary at $bin"
command -v file >/dev/null 2>&1 || die "'file' missing: run scripts/install-deps.sh"

desc=$(file -b "$bin")
case $desc in
    *"statically linked"* | *"static-pie linked"*) ;;
    *) die "$bin is not statically linked: $desc" ;;
esac
# Belt and braces: a static binary has no PT_INTERP / dynamic loader.
if command -v readelf >/dev/null 2>&1 && readelf -l "$bin" 2>/dev/null | grep -q 'Requesting program interpreter'; then
    die "$bin requests a program interpreter: $desc"
fi
size=$(stat -c %s "$bin")
echo "static: $bin ($size bytes, $(numfmt --to=iec-i --suffix=B "$size")): $desc"
