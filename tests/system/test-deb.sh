#!/bin/bash
# The Debian package: `make deb`'s script builds it (dpkg-buildpackage, lintian
# clean), dpkg installs it into a systemd-nspawn container booted on a
# throw-away overlay of this host's root (nothing reaches the host), and the
# demo runs against the installed files only: the package's postinst creates
# the vmsup-qemu user and /run/vmsup, systemctl starts vmsup@NAME with the tiny
# guest as that user, the installed vmsupctl drives it; dpkg --purge removes
# it all. Needs root and the packaging tools (make deps).
# shellcheck source=tests/system/lib.sh
source "$(dirname "$0")/lib.sh"

trap 'sys_teardown; [[ -n ${DEB_OUT:-} ]] && rm -rf "$DEB_OUT"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

SUITE_T0=$(now_ms)
VM=demo1
U_NONE=vmsupt-none
U_AUDIT=vmsupt-audit
PKG_DIR=/var/cache/vmsup-test-deb

bus_name() { echo "org.vmsup.VM.$1"; }
vmprop() {
        sys busctl --system get-property "$(bus_name "$1")" /org/vmsup/VM org.vmsup.VM1 "$2" |
                sed -E 's/^[a-z] //; s/^"(.*)"$/\1/'
}
agent_up() { [[ $(vmprop "$1" AgentConnected 2>/dev/null) == true ]]; }
journal() { sys journalctl --no-pager -o cat -u "vmsup@$1.service"; }
rc_of() { "$@" >/dev/null 2>&1; echo $?; }

if ! sys_can_run; then
        skip "the Debian package in a container" "$SKIP_ALL"
        finish
        exit
fi
for t in dpkg-buildpackage dh lintian fakeroot; do
        if ! command -v "$t" >/dev/null; then
                skip "the Debian package in a container" "$t is missing (make deps)"
                finish
                exit
        fi
done

# --- build (scripts/build-deb.sh is what make deb runs)
DEB_OUT=$(mktemp -d /tmp/vmsup-deb.XXXXXX)
t0=$(now_ms)
if out=$("$ROOT/scripts/build-deb.sh" "$DEB_OUT" 2>&1); then
        ok "make deb: dpkg-buildpackage -b and lintian without errors or warnings"
        diag "package built and lintian-checked in $(($(now_ms) - t0)) ms"
else
        not_ok "make deb: dpkg-buildpackage -b and lintian without errors or warnings"
        printf '%s\n' "$out" | tail -20 | sed 's/^/#   /'
        finish
        exit
fi
DEB=$(ls "$DEB_OUT"/vmsup_*_*.deb)
check_match "the package's dependencies: shlibs, qemu-system-x86, dbus, sysusers" \
        'libsystemd0.*systemd \| systemd-standalone-sysusers.*qemu-system-x86, dbus' \
        "$(dpkg-deb -f "$DEB" Depends)"
check_eq "the example definition is a conffile" /etc/vmsup/example.json \
        "$(dpkg-deb --ctrl-tarfile "$DEB" | tar -xOf - ./conffiles)"

# --- a container with nothing of vmsup in it but the package
SYS_INSTALL=none
if ! sys_prepare; then
        if [[ -n $SKIP_ALL ]]; then
                skip "the Debian package in a container" "$SKIP_ALL"
        else
                not_ok "the overlay of / for the container"
        fi
        finish
        exit
fi
# The host may have the project or its user from elsewhere: the container must not.
rm -f "$CROOT"/usr/sbin/vmsupd "$CROOT"/usr/bin/vmsupctl "$CROOT"/lib/systemd/system/vmsup@.service \
        "$CROOT"/usr/share/dbus-1/system.d/org.vmsup.VM.conf "$CROOT"/usr/lib/sysusers.d/vmsup.conf \
        "$CROOT"/usr/lib/tmpfiles.d/vmsup.conf
rm -rf "$CROOT"/etc/vmsup
mkdir -p "$CROOT$PKG_DIR"
cp "$DEB" "$CROOT$PKG_DIR/"
if ! sys_boot; then
        not_ok "systemd boots in a container"
        finish
        exit
fi
ok "systemd boots in a container ($SYS_BOOT_STATE)"
if sys getent passwd vmsup-qemu >/dev/null; then
        sys userdel vmsup-qemu >/dev/null 2>&1
        sys groupdel vmsup-qemu >/dev/null 2>&1
fi
check "before the package: no vmsup-qemu user, no vmsupd" \
        sys sh -c '! getent passwd vmsup-qemu && ! test -e /usr/sbin/vmsupd'

# --- install
check "dpkg -i vmsup_*.deb" sys dpkg -i "$PKG_DIR/${DEB##*/}"
check_eq "dpkg: vmsup is installed" "install ok installed" "$(sys dpkg-query -W -f='${Status}' vmsup)"
check "installed: vmsupd, vmsupctl, unit, bus policy, tmpfiles, sysusers, interfaces, man pages, completion" \
        sys test -x /usr/sbin/vmsupd -a -x /usr/bin/vmsupctl -a -f /lib/systemd/system/vmsup@.service \
                -a -f /usr/share/dbus-1/system.d/org.vmsup.VM.conf -a -f /usr/lib/tmpfiles.d/vmsup.conf \
                -a -f /usr/lib/sysusers.d/vmsup.conf -a -f /usr/share/dbus-1/interfaces/org.vmsup.VM1.xml \
                -a -f /usr/share/man/man8/vmsupd.8.gz -a -f /usr/share/man/man5/vmsup.json.5.gz \
                -a -f /usr/share/man/man1/vmsupctl.1.gz -a -f /usr/share/bash-completion/completions/vmsupctl \
                -a -f /etc/vmsup/example.json -a -d /etc/vmsup/vms
check_match "postinst (systemd-sysusers): the vmsup-qemu system user exists" '^vmsup-qemu:x:[0-9]{1,3}:' \
        "$(sys getent passwd vmsup-qemu)"
check_eq "postinst (systemd-tmpfiles): /run/vmsup" "755 root" "$(sys stat -c '%a %U' /run/vmsup)"
check_match "man vmsupd finds the installed page" '/usr/share/man/man8/vmsupd.8.gz' "$(sys man -w vmsupd 2>&1)"
check "the documentation the installed unit names is there" \
        sys sh -c 'n=0
        for d in $(systemctl show -P Documentation vmsup@x.service | tr -d "\""); do
                case $d in
                file://*) test -f "${d#file://}" || { echo "missing: $d"; exit 1; } ;;
                man:*) p=${d#man:}; man -w "${p%%(*}" >/dev/null || { echo "missing: $d"; exit 1; } ;;
                *) echo "unexpected: $d"; exit 1 ;;
                esac
                n=$((n + 1))
        done
        test $n -eq 3 || { echo "$n documentation entries, not 3"; exit 1; }'
check "the installed unit passes systemd-analyze verify" \
        sys sh -c '! systemd-analyze verify vmsup@x.service 2>&1 | grep .'
check_match "the installed vmsupd runs" '^vmsupd [0-9]' "$(sys /usr/sbin/vmsupd --version)"

# --- the demo, against the installed binaries: the tiny guest as vmsup-qemu (no run_as)
for u in "$U_NONE" "$U_AUDIT"; do
        sys id "$u" >/dev/null 2>&1 || sys useradd --system --no-create-home --user-group --shell /usr/sbin/nologin "$u"
done
if [[ -r $GUEST_DIR/vmlinuz && -r $GUEST_DIR/initrd.img ]]; then
        sys_write "/etc/vmsup/vms/$VM.json" 0600 <<JSON
{ "qemu": { "binary": "$QEMU", "machine": "q35", "accel": "tcg", "memory_mib": 256,
            "kernel": "$SYS_GUEST_DIR/vmlinuz", "initrd": "$SYS_GUEST_DIR/initrd.img",
            "append": "console=ttyS0 quiet" },
  "agent": true,
  "shutdown_timeout_sec": 60,
  "acl": [ { "user": "$U_AUDIT", "privileges": [ "VM.Audit" ] } ] }
JSON
        check "systemctl start vmsup@$VM (the installed unit and binaries)" sys systemctl start "vmsup@$VM.service"
        pid=$(vmprop "$VM" Pid)
        check_match "QEMU runs as vmsup-qemu, the user the package created" '^vmsup-qemu$' \
                "$(sys ps -o user= -p "$pid" 2>&1)"
        if sys_wait 300 agent_up "$VM"; then
                ok "$VM: the guest's agent connects"
        else
                not_ok "$VM: the guest's agent connects"
                journal "$VM" | tail -10 | sed 's/^/#   /'
        fi
        check_match "installed vmsupctl list names the VM, running" "$VM +running" "$(sys vmsupctl list 2>&1)"
        check_match "installed vmsupctl agent: guest-ping" '^\{\}$' "$(sys vmsupctl agent "$VM" guest-ping 2>&1)"
        check_match "installed vmsupctl status as a VM.Audit user" 'running' "$(sys_as "$U_AUDIT" vmsupctl status "$VM" 2>&1)"
        check_eq "installed vmsupctl status as a user without rights: exit 4 (access denied)" 4 \
                "$(rc_of sys_as "$U_NONE" vmsupctl status "$VM")"
        check_match "... and the message names VM.Audit" 'VM.Audit' "$(sys_as "$U_NONE" vmsupctl status "$VM" 2>&1)"
        check "promtool accepts the installed vmsupctl metrics" \
                sh -c "nsenter -t $PID1 -a vmsupctl metrics $VM | promtool check metrics"
        check "systemctl stop vmsup@$VM" sys systemctl stop "vmsup@$VM.service"
        check_eq "no QEMU left" "" "$(sys pgrep -f '^/usr/bin/qemu-system' | tr '\n' ' ')"
else
        skip "the demo with the tiny guest" "no guest in $GUEST_DIR (make guest)"
fi

# --- removal
check "dpkg --purge vmsup" sys dpkg --purge vmsup
check "purged: binaries, unit, bus policy and the conffile are gone" \
        sys sh -c '! test -e /usr/sbin/vmsupd -o -e /usr/bin/vmsupctl -o -e /lib/systemd/system/vmsup@.service -o -e /usr/share/dbus-1/system.d/org.vmsup.VM.conf -o -e /etc/vmsup/example.json'

diag "suite wall time: $(($(now_ms) - SUITE_T0)) ms"
finish
