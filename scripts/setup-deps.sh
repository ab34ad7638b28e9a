#!/bin/bash
# Installs the Debian packages that building, testing and the demo need, and
# does nothing when they are all present. Run as root on Debian 12; as another
# user it only names what is missing. `make deps` runs it (make demo, check and
# bench run that first); nothing else installs packages.
set -euo pipefail

packages=(
        gcc make pkg-config
        libsystemd-dev libjansson-dev libseccomp-dev libcap-ng-dev libcmocka-dev
        qemu-system-x86 qemu-guest-agent qemu-utils
        dbus dbus-daemon dbus-bin systemd util-linux passwd procps iproute2
        busybox-static cpio kmod
        libxml2-utils python3-dbus python3-gi socat systemd-container clang tmux
        jq groff-base man-db libglib2.0-dev libglib2.0-dev-bin
        libclang-rt-14-dev
        prometheus python3-prometheus-client
)
# Building the Debian package (make deb, and tests/system/test-deb.sh in make
# check, which builds it, runs lintian and installs it in a container):
# dpkg-buildpackage, debhelper 13 with dh_installsysusers
# (dh-sequence-installsysusers), lintian.
packages+=(dpkg-dev debhelper fakeroot lintian)

missing=()
for p in "${packages[@]}"; do
        status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        [[ $status == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
        echo "vmsup: missing Debian packages: ${missing[*]}" >&2
        echo "vmsup: run 'make deps' as root (or apt-get install them) first." >&2
        exit 1
fi

echo "vmsup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
