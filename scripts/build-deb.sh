#!/bin/bash
# Builds the Debian package (debian/) with dpkg-buildpackage -us -uc -b and
# checks it with lintian. `make deb` runs it.
#
#   scripts/build-deb.sh [OUTDIR]     -> OUTDIR/vmsup_VERSION_ARCH.deb (default build/deb)
#
# dpkg-buildpackage writes its results into the parent of the tree it builds,
# and debhelper leaves its staging directories in debian/: so the package is
# built from a copy of the tree (without build outputs, .cache and .git) under
# OUTDIR/work, and only the results are moved to OUTDIR. lintian must report
# no error and no warning (justified exceptions: debian/vmsup.lintian-overrides).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/build/deb}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$out/work
start=$(date +%s.%N)

for t in dpkg-buildpackage dh lintian fakeroot; do
        command -v "$t" >/dev/null || { echo "build-deb: $t not found: run 'make deps' as root" >&2; exit 1; }
done

rm -rf "$work"
mkdir -p "$work/src"
tar -C "$root" --exclude=./build --exclude='./build-*' --exclude=./.cache --exclude=./.git \
        -cf - . | tar -C "$work/src" -xf -
if ! (cd "$work/src" &&
      DEB_BUILD_OPTIONS="parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" dpkg-buildpackage -us -uc -b) \
        >"$work/build.log" 2>&1; then
        tail -40 "$work/build.log" >&2
        echo "build-deb: dpkg-buildpackage failed (log: $work/build.log)" >&2
        exit 1
fi
rm -f "$out"/vmsup*_*.deb "$out"/vmsup_*.changes "$out"/vmsup_*.buildinfo
mv "$work"/vmsup*_*.deb "$work"/vmsup_*.changes "$work"/vmsup_*.buildinfo "$out"/
changes=$(ls "$out"/vmsup_*.changes)

# Warnings fail as errors do; informational tags are printed, not fatal.
if ! lintian --fail-on error,warning --info --display-info "$changes" >"$work/lintian.log" 2>&1; then
        cat "$work/lintian.log" >&2
        echo "build-deb: lintian found errors or warnings" >&2
        exit 1
fi
sed 's/^/build-deb: lintian: /' "$work/lintian.log"
rm -rf "$work/src"

secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "build-deb: $(cd "$out" && ls vmsup_*.deb) in $out, lintian clean, ${secs} s"
