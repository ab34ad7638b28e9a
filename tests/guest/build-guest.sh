#!/bin/bash
# Builds the tiny test guest: a Debian cloud kernel and an initramfs whose
# /init (tests/guest/init) brings up virtio-serial and runs qemu-ga and a root
# shell on ttyS0 (the serial console), nothing else.  Under TCG it answers the
# agent a few seconds after QEMU starts, and it powers off on guest-shutdown
# and on the ACPI power button.
#
#   tests/guest/build-guest.sh        -> $VMSUP_GUEST_DIR/{vmlinuz,initrd.img}
#
# VMSUP_GUEST_DIR defaults to <repo>/.cache/guest.  The script does nothing
# when the outputs are newer than it and its inputs; rebuild from scratch with
# `rm -rf .cache/guest` (that also drops the cached kernel package).
# Everything comes from Debian packages: the kernel .deb is fetched with
# `apt-get download` (never installed), busybox-static, qemu-guest-agent and a
# C compiler must be installed on the host.
#
# Boot it with (device ids as the supervisor uses them):
#   qemu-system-x86_64 -machine q35 -accel tcg -m 256 -nodefaults -nographic \
#     -kernel vmlinuz -initrd initrd.img -append "console=ttyS0 quiet" \
#     -serial stdio -device virtio-serial-pci,id=vserial0 \
#     -chardev socket,id=vmsup-qga,path=qga.sock,server=on,wait=off \
#     -device virtserialport,bus=vserial0.0,chardev=vmsup-qga,name=org.qemu.guest_agent.0,id=vmsup-qga-port
#
# Kernel command-line switches:
#   vmsup.hostile=MODE   run tests/guest/hostile-agent.c instead of qemu-ga;
#                        MODE is flood, silent, hugeline, stale,
#                        recover[:SECONDS] or liar[:DELAY] (see that file)
# Without an org.qemu.guest_agent.0 port the guest just idles.  With a pvpanic
# device (-device pvpanic or pvpanic-pci) a kernel panic, e.g. `echo c >
# /proc/sysrq-trigger` through guest-exec, reaches QEMU as GUEST_PANICKED.  /tmp is a
# tmpfs of 90% of RAM (a 200 MiB file needs about 768 MiB of guest RAM;
# 48 MiB guest-file-read chunks work from 256 MiB up).  ACPI power-button
# presses (QMP system_powerdown) in the first ~2 s, before acpid runs, are
# lost; after that they power the guest off, as guest-shutdown does.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${VMSUP_GUEST_DIR:-$repo/.cache/guest}

qemu_ga=/usr/sbin/qemu-ga
busybox=/bin/busybox
inputs=("$here/build-guest.sh" "$here/init" "$here/shutdown" "$here/hostile-agent.c"
        "$qemu_ga" "$busybox")
# The guest has no modprobe: init loads these by name (see tests/guest/init).
# pvpanic-mmio binds the ISA pvpanic device (-device pvpanic, ACPI QEMU0001) and
# pvpanic-pci the PCI one; both need the pvpanic core module.
modules=(button evdev virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
         virtio_console pvpanic pvpanic-mmio pvpanic-pci)

up_to_date() {
	local f
	[[ -s $out/vmlinuz && -s $out/initrd.img ]] || return 1
	for f in "${inputs[@]}"; do
		[[ $out/vmlinuz -nt $f && $out/initrd.img -nt $f ]] || return 1
	done
}

die() { echo "build-guest: $*" >&2; exit 1; }

up_to_date && exit 0

mkdir -p "$out"
# Parallel test runs may all ask for the guest at once: one builds.
exec 9>"$out/.lock"
flock 9
up_to_date && exit 0

start=$(date +%s.%N)

for t in apt-get apt-cache dpkg-deb cpio gzip cc ldd; do
	command -v "$t" >/dev/null || die "$t not found"
done
[[ -x $qemu_ga ]] || die "$qemu_ga missing: apt-get install qemu-guest-agent"
[[ -x $busybox ]] || die "$busybox missing: apt-get install busybox-static"
if ldd "$busybox" >/dev/null 2>&1; then
	die "$busybox is dynamically linked: apt-get install busybox-static"
fi

tmp=$(mktemp -d "$out/.build.XXXXXX")
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT

# --- kernel -----------------------------------------------------------------
# The package is kept in the cache so later rebuilds need no network.
debs=$out/debs
kdeb=$(ls "$debs"/linux-image-6.1.0-*-cloud-amd64_*.deb 2>/dev/null | sort -V | tail -n1 || true)
if [[ -z $kdeb ]]; then
	kpkg() {
		apt-cache depends linux-image-cloud-amd64 2>/dev/null |
			awk '$1 == "Depends:" && $2 ~ /^linux-image-.*-cloud-amd64$/ { print $2; exit }'
	}
	pkg=$(kpkg)
	if [[ -z $pkg ]]; then
		apt-get update -qq || die "apt-get update failed"
		pkg=$(kpkg)
	fi
	[[ -n $pkg ]] || die "no linux-image-*-cloud-amd64 known to apt"
	mkdir -p "$debs" "$tmp/dl"
	# Lets apt drop privileges for the download instead of warning about it.
	chown _apt "$tmp/dl" 2>/dev/null || true
	(cd "$tmp/dl" && apt-get download -q "$pkg") || die "apt-get download $pkg failed"
	mv "$tmp"/dl/*.deb "$debs/"
	kdeb=$(ls "$debs"/"$pkg"_*.deb | sort -V | tail -n1)
fi
dpkg-deb -x "$kdeb" "$tmp/kernel"
vmlinuz=$(ls "$tmp"/kernel/boot/vmlinuz-* | head -n1)
kmods=$(ls -d "$tmp"/kernel/lib/modules/* "$tmp"/kernel/usr/lib/modules/* 2>/dev/null | head -n1 || true)
[[ -f $vmlinuz && -d $kmods ]] || die "unexpected layout in $kdeb"

# --- initramfs tree -----------------------------------------------------------
root=$tmp/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,dev,proc,sys,run,tmp,root,var/log,lib/modules}
mkdir -p "$root"/etc/acpi/PWRF
ln -s ../run "$root/var/run"
ln -s ../tmp "$root/var/tmp"
# The kernel needs a console before /init mounts devtmpfs.
mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true

for m in "${modules[@]}"; do
	f=$(find "$kmods/kernel" \( -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" \) | head -n1)
	[[ -n $f ]] || die "module $m not found in $kdeb"
	# busybox insmod cannot decompress.
	case $f in
	*.xz) xz -dc "$f" >"$root/lib/modules/$m.ko" ;;
	*.zst) zstd -qdc "$f" >"$root/lib/modules/$m.ko" ;;
	*) cp "$f" "$root/lib/modules/$m.ko" ;;
	esac
done

cp "$busybox" "$root/bin/busybox"
"$busybox" --list-full | while read -r applet; do
	[[ -e $root/$applet || -L $root/$applet ]] || ln -s /bin/busybox "$root/$applet"
done

# Copies a dynamic executable's libraries and loader to the same paths.
copy_libs() {
	local lib
	for lib in $(ldd "$1" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }'); do
		mkdir -p "$root$(dirname "$lib")"
		[[ -e $root$lib ]] || cp -L "$lib" "$root$lib"
	done
}

cp "$qemu_ga" "$root/usr/sbin/qemu-ga"
copy_libs "$qemu_ga"

libc_a=$(cc -print-file-name=libc.a)
if [[ $libc_a == /* && -e $libc_a ]]; then
	cc -O2 -static -Wall -o "$root/bin/hostile-agent" "$here/hostile-agent.c"
else
	cc -O2 -Wall -o "$root/bin/hostile-agent" "$here/hostile-agent.c"
	copy_libs "$root/bin/hostile-agent"
fi
strip "$root/bin/hostile-agent" 2>/dev/null || true

install -m 755 "$here/init" "$root/init"
rm -f "$root/sbin/shutdown"
install -m 755 "$here/shutdown" "$root/sbin/shutdown"

# busybox acpid maps the power button (KEY_POWER on the ACPI button's evdev)
# to "PWRF/00000080" and runs <confdir>/PWRF/00000080.
cat >"$root/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
echo "vmsup-guest: power button, powering off" > /dev/console
sync
exec /bin/busybox poweroff -f
EOF
chmod 755 "$root/etc/acpi/PWRF/00000080"

# guest-get-osinfo reads os-release.
cp -L /etc/os-release "$root/etc/os-release"
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
EOF
cat >"$root/etc/shadow" <<'EOF'
root:*:19000:0:99999:7:::
EOF
chmod 600 "$root/etc/shadow"
cat >"$root/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
shadow: files
hosts: files
EOF
cat >"$root/etc/hosts" <<'EOF'
127.0.0.1 localhost vmsup-guest
EOF

# --- pack ---------------------------------------------------------------------
(cd "$root" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
	cpio --null -o -H newc -R 0:0 --quiet) | gzip -6 >"$tmp/initrd.img"
cp "$vmlinuz" "$tmp/vmlinuz"
mv -f "$tmp/vmlinuz" "$out/vmlinuz"
mv -f "$tmp/initrd.img" "$out/initrd.img"

secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "build-guest: $(basename "$vmlinuz") ($(basename "$kdeb")) and initrd.img" \
	"($(( $(stat -c %s "$out/initrd.img") / 1024 )) KiB) in $out, ${secs} s"
