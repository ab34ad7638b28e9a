# Shared helpers for the system suites: a real systemd (PID 1 of a
# systemd-nspawn container) booted on a throw-away overlay of the host's own
# root, the project installed into it with `make install`, and everything
# driven through systemd and the container's real system bus.
#
#   sys_prepare            tmpfs + overlay of /, make install into it, masks
#   sys_boot               nspawn in its own cgroup; waits for the boot to settle
#   sys CMD...             runs CMD inside the container (all its namespaces)
#   sys_as USER CMD...     the same as USER (primary group only)
#   sys_teardown           (from the EXIT trap) power off, unmount, remove cgroups
#
# Each suite prints TAP-style "ok N - ..." lines; a check that cannot run here
# prints "ok N - ... # SKIP why", which tests/run-all.sh counts as skipped.
# shellcheck shell=bash
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-build}
GUEST_DIR=${VMSUP_GUEST_DIR:-$ROOT/.cache/guest}
# Where the container sees it: outside /tmp, which the unit's PrivateTmp= hides from
# vmsupd and QEMU (a checkout under /tmp would otherwise vanish for them).
SYS_GUEST_DIR=/var/lib/vmsup-test-guest
QEMU=/usr/bin/qemu-system-x86_64

MACHINE=vmsup-sys-$$
R=                # the tmpfs holding the overlay's upper layer and mount point
CROOT=            # the container's root: $R/root
NSPAWN_PID=
PID1=             # the container's systemd, as the host sees it
CGROUPS=()        # cgroups made for this container, removed at tear-down
SKIP_ALL=         # set when nothing can run here: every check is skipped
TEST_N=0
TEST_FAILED=0

ok() {
        TEST_N=$((TEST_N + 1))
        echo "ok $TEST_N - $*"
}
not_ok() {
        TEST_N=$((TEST_N + 1))
        TEST_FAILED=$((TEST_FAILED + 1))
        echo "not ok $TEST_N - $*"
}
skip() {
        TEST_N=$((TEST_N + 1))
        echo "ok $TEST_N - $1 # SKIP $2"
}
diag() { echo "# $*"; }

# check DESCRIPTION CMD...: passes when CMD succeeds (its output is shown when not).
check() {
        local desc=$1 out
        shift
        if out=$("$@" 2>&1); then
                ok "$desc"
        else
                not_ok "$desc"
                printf '%s\n' "$out" | head -20 | sed 's/^/#   /'
        fi
}
# check_fails DESCRIPTION PATTERN CMD...: passes when CMD fails and its output matches PATTERN (grep -E).
check_fails() {
        local desc=$1 pat=$2 out
        shift 2
        if out=$("$@" 2>&1); then
                not_ok "$desc (succeeded)"
                printf '%s\n' "$out" | head -5 | sed 's/^/#   /'
        elif printf '%s\n' "$out" | grep -Eq -- "$pat"; then
                ok "$desc"
        else
                not_ok "$desc (wrong error)"
                printf '%s\n' "$out" | head -5 | sed 's/^/#   /'
                diag "expected: $pat"
        fi
}
check_eq() {
        if [[ $2 == "$3" ]]; then
                ok "$1"
        else
                not_ok "$1"
                diag "expected: $2"
                diag "actual:   $3"
        fi
}
check_match() {
        if [[ $3 =~ $2 ]]; then
                ok "$1"
        else
                not_ok "$1"
                diag "expected to match: $2"
                diag "actual: $3"
        fi
}

finish() {
        echo "1..$TEST_N"
        [[ $TEST_FAILED -eq 0 ]]
}

# now_ms: a monotonic-enough wall clock in milliseconds (for diag lines only).
now_ms() { date +%s%3N; }

# sys_can_run: whether a container can boot here; on "no" sets SKIP_ALL to why.
sys_can_run() {
        if [[ $(id -u) -ne 0 ]]; then
                SKIP_ALL="needs root"
        elif ! command -v systemd-nspawn >/dev/null; then
                SKIP_ALL="systemd-nspawn is missing (package systemd-container: make deps)"
        elif ! command -v nsenter >/dev/null; then
                SKIP_ALL="nsenter is missing (package util-linux)"
        elif [[ ! -x /lib/systemd/systemd ]]; then
                SKIP_ALL="no systemd in the host's tree to boot"
        elif [[ ! -x $ROOT/$BUILD/vmsupd ]]; then
                SKIP_ALL="$BUILD/vmsupd is not built"
        else
                return 0
        fi
        return 1
}

# The units the host enables that a test does not need, and some that every
# Debian system has: masked (linked to /dev/null) in the overlay before boot, so
# the container boots quickly and never touches what the host runs.
SYS_MASK=(
        console-getty.service getty@tty1.service getty-static.service serial-getty@.service
        systemd-timesyncd.service systemd-pstore.service systemd-networkd-wait-online.service
        systemd-firstboot.service systemd-repart.service systemd-binfmt.service
        proc-sys-fs-binfmt_misc.automount sys-kernel-config.mount sys-kernel-debug.mount
        sys-kernel-tracing.mount sys-fs-fuse-connections.mount
        apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer
        e2scrub_reap.service fstrim.timer man-db.timer logrotate.timer
        systemd-tmpfiles-clean.timer cron.service ssh.service rsyslog.service
        unattended-upgrades.service networking.service ifupdown-pre.service
)
# What the tests need, never masked even when the host enables it.
SYS_KEEP=" dbus.service dbus.socket systemd-journald.service systemd-journald.socket
           systemd-logind.service systemd-machined.service "

sys_mask_units() {
        local d=$CROOT/etc/systemd/system u f
        local -A units=()
        for u in "${SYS_MASK[@]}"; do
                units[$u]=1
        done
        # Whatever the host enabled itself (databases, web servers, agents...).
        for f in /etc/systemd/system/*.wants/* /etc/systemd/system/*.requires/*; do
                [[ -e $f || -L $f ]] || continue
                u=${f##*/}
                case $u in
                *.service | *.timer | *.socket | *.path) units[$u]=1 ;;
                esac
        done
        mkdir -p "$d"
        for u in "${!units[@]}"; do
                [[ $SYS_KEEP == *" $u "* ]] && continue
                rm -f "$d/$u"
                ln -s /dev/null "$d/$u"
        done
}

# sys_sweep: what an earlier run left behind when it was killed before its trap ran
# (its container times out, but not its mounts and cgroups). Only this suite's own
# machines (vmsup-sys-PID) whose script PID is gone.
sys_sweep() {
        local d name m
        stale() {
                local pid=${1#vmsup-sys-}
                [[ $pid =~ ^[0-9]+$ ]] && ! kill -0 "$pid" 2>/dev/null
        }
        for d in /sys/fs/cgroup/unified/vmsup-sys-* /sys/fs/cgroup/systemd/vmsup-sys-* \
                 "$(dirname "$(sys_cgroup_dirs | head -1)")"/vmsup-sys-*; do
                if [[ -d $d ]] && stale "${d##*/}"; then
                        find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null
                fi
        done
        while read -r name m; do
                stale "$name" || continue
                umount "$m/root" 2>/dev/null
                umount "$m" 2>/dev/null && rmdir "$m" 2>/dev/null
        done < <(awk '$1 ~ /^vmsup-sys-[0-9]+$/ { print $1, $2 }' /proc/self/mounts)
        for d in /sys/fs/cgroup/unified/vmsup-sys-* /sys/fs/cgroup/systemd/vmsup-sys-* \
                 "$(dirname "$(sys_cgroup_dirs | head -1)")"/vmsup-sys-*; do
                if [[ -d $d ]] && stale "${d##*/}"; then
                        find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
                fi
        done
}

# sys_prepare: the overlay and the installed project in it. Fails with a message.
sys_prepare() {
        sys_sweep
        R=$(mktemp -d /tmp/vmsup-sys.XXXXXX) || return 1
        if ! mount -t tmpfs -o size=2G,mode=0755 "$MACHINE" "$R"; then
                SKIP_ALL="cannot mount a tmpfs here"
                return 1
        fi
        mkdir "$R/up" "$R/wk" "$R/root"
        CROOT=$R/root
        if ! mount -t overlay overlay -o "lowerdir=/,upperdir=$R/up,workdir=$R/wk" "$CROOT"; then
                SKIP_ALL="cannot mount an overlay of / here"
                return 1
        fi
        sys_mask_units
        # A machine id of its own (the overlay would share the host's).
        : > "$CROOT/etc/machine-id"
        # SYS_INSTALL=none: the suite installs the project itself (the package).
        [[ ${SYS_INSTALL:-make} == none ]] && return 0
        # The project, as a package would install it (binaries, unit, bus policy,
        # tmpfiles entry, docs); nothing is rebuilt here.
        make -C "$ROOT" --no-print-directory -s install DESTDIR="$CROOT" PREFIX=/usr BUILD="$BUILD" \
                SANITIZE="${SANITIZE:-0}" \
                >"$R/install.log" 2>&1 || { cat "$R/install.log" >&2; return 1; }
}

# sys_cgroup_dirs: where nspawn gets a cgroup of its own in every hierarchy it
# uses, so that the payload/ and supervisor/ it creates with --keep-unit never
# meet another container's. Where systemd is the host's PID 1, a delegated scope
# plays that part instead (SYS_SCOPE) and this prints nothing.
sys_cgroup_dirs() {
        if [[ -n $SYS_SCOPE ]]; then
                return 0
        elif [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
                # Pure cgroup2 without systemd: beside our own cgroup.
                local own
                own=$(sed -n 's/^0:://p' /proc/self/cgroup)
                echo "/sys/fs/cgroup${own%/*}/$MACHINE"
        else
                [[ -d /sys/fs/cgroup/unified ]] && echo "/sys/fs/cgroup/unified/$MACHINE"
                [[ -d /sys/fs/cgroup/systemd ]] && echo "/sys/fs/cgroup/systemd/$MACHINE"
        fi
}
SYS_SCOPE=
if [[ -d /run/systemd/system ]] && command -v systemd-run >/dev/null; then
        SYS_SCOPE=$MACHINE.scope
fi

sys_boot() {
        local d i state='' t0 children c gc scope=()
        mapfile -t CGROUPS < <(sys_cgroup_dirs)
        [[ -n $SYS_SCOPE ]] && scope=(systemd-run --quiet --scope --collect -p Delegate=yes --unit="$SYS_SCOPE" --)
        for d in "${CGROUPS[@]}"; do
                mkdir -p "$d" || return 1
        done
        local binds=()
        # The tiny guest, read-only, at SYS_GUEST_DIR inside.
        [[ -d $GUEST_DIR ]] && binds+=(--bind-ro="$GUEST_DIR:$SYS_GUEST_DIR")
        t0=$(now_ms)
        (
                for d in "${CGROUPS[@]}"; do
                        echo "$BASHPID" > "$d/cgroup.procs" || exit 1
                done
                export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1
                exec setsid "${scope[@]}" timeout --kill-after=10 900 systemd-nspawn --quiet --boot \
                        --directory="$CROOT" --machine="$MACHINE" --register=no --keep-unit \
                        --private-network "${binds[@]}" \
                        </dev/null >"$R/console.log" 2>&1
        ) &
        NSPAWN_PID=$!
        # The container's PID 1: the child of nspawn (under timeout) whose comm is systemd.
        for i in $(seq 300); do
                children=$(pgrep -P "$NSPAWN_PID" 2>/dev/null)
                for c in $children $(for gc in $children; do pgrep -P "$gc"; done); do
                        if [[ $(cat "/proc/$c/comm" 2>/dev/null) == systemd ]]; then
                                PID1=$c
                                break 2
                        fi
                done
                kill -0 "$NSPAWN_PID" 2>/dev/null || break
                sleep 0.05
        done
        if [[ -z $PID1 ]]; then
                echo "no systemd in the container; console:" >&2
                tail -20 "$R/console.log" >&2
                return 1
        fi
        for i in $(seq 1200); do
                state=$(sys systemctl is-system-running 2>/dev/null)
                case $state in
                running | degraded) break ;;
                esac
                kill -0 "$PID1" 2>/dev/null || break
                sleep 0.05
        done
        SYS_BOOT_MS=$(($(now_ms) - t0))
        SYS_BOOT_STATE=$state
        case $state in
        running) return 0 ;;
        degraded)
                sys systemctl --failed --no-legend --plain >&2
                return 0
                ;;
        esac
        echo "the container did not finish booting (state '$state'); console:" >&2
        tail -20 "$R/console.log" >&2
        return 1
}

# sys CMD...: runs CMD in the container, with a clean environment.
sys() {
        nsenter -t "$PID1" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 SYSTEMD_PAGER= \
                SYSTEMD_COLORS=0 "$@"
}
# sys_as USER CMD...: the same as USER, with only its primary group.
sys_as() {
        local u=$1 uid gid
        shift
        uid=$(sys id -u "$u") && gid=$(sys id -g "$u") || return 1
        sys setpriv --reuid="$uid" --regid="$gid" --clear-groups "$@"
}
# sys_write PATH MODE: stdin into a file of the container.
sys_write() {
        sys sh -c "umask 077; cat > '$1' && chmod '$2' '$1'"
}

# sys_kill SIGNAL PID: signals one process of the container, named by its pid there;
# refuses anything but a positive pid (kill 0 or -1 would reach this script too).
sys_kill() {
        [[ $2 =~ ^[1-9][0-9]*$ ]] || { echo "sys_kill: no pid ('$2')" >&2; return 1; }
        sys kill "-$1" "$2"
}

# sys_unit_prop UNIT PROP: one property of a unit, bare.
sys_unit_prop() {
        sys systemctl show -P "$2" "$1"
}

# sys_wait TIMEOUT_SECONDS CMD...: polls CMD (in this shell) until it succeeds.
sys_wait() {
        local secs=$1 i
        shift
        for i in $(seq $((secs * 10))); do
                "$@" && return 0
                sleep 0.1
        done
        return 1
}

sys_teardown() {
        local i d
        if [[ $TEST_FAILED -gt 0 && -n $PID1 ]] && kill -0 "$PID1" 2>/dev/null; then
                echo "# --- the container's failed units and last warnings"
                sys systemctl --failed --no-legend --plain 2>&1 | sed 's/^/#   /'
                sys journalctl --no-pager -o short-monotonic -p warning -n 30 2>&1 | sed 's/^/#   /'
        fi
        if [[ -n $NSPAWN_PID ]]; then
                # nspawn turns SIGTERM into a clean power-off of the container.
                kill -TERM "$NSPAWN_PID" 2>/dev/null
                [[ -n $PID1 ]] && kill -RTMIN+4 "$PID1" 2>/dev/null
                for i in $(seq 150); do
                        kill -0 "$NSPAWN_PID" 2>/dev/null || break
                        sleep 0.1
                done
                if kill -0 "$NSPAWN_PID" 2>/dev/null; then
                        echo "# the container did not power off: killing it" >&2
                        kill -KILL "$NSPAWN_PID" 2>/dev/null
                        pkill -KILL -P "$NSPAWN_PID" 2>/dev/null
                fi
                wait "$NSPAWN_PID" 2>/dev/null
                NSPAWN_PID=
        fi
        if [[ -n $SYS_SCOPE ]] && systemctl is-active -q "$SYS_SCOPE" 2>/dev/null; then
                systemctl kill --signal=KILL "$SYS_SCOPE" 2>/dev/null
                systemctl stop "$SYS_SCOPE" 2>/dev/null
        fi
        # Anything still in the container's cgroups (nspawn's own remnants).
        for d in "${CGROUPS[@]}"; do
                [[ -d $d ]] || continue
                find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null
        done
        if [[ -n $CROOT ]] && mountpoint -q "$CROOT"; then
                umount "$CROOT" 2>/dev/null || umount -l "$CROOT"
        fi
        if [[ -n $R ]]; then
                if mountpoint -q "$R"; then
                        umount "$R" 2>/dev/null || umount -l "$R"
                fi
                rmdir "$R/root" "$R/up" "$R/wk" 2>/dev/null
                rmdir "$R" 2>/dev/null
        fi
        # Depth first: a cgroup can only be removed once its children are.
        for d in "${CGROUPS[@]}"; do
                [[ -d $d ]] || continue
                for i in $(seq 50); do
                        find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
                        [[ -d $d ]] || break
                        sleep 0.1
                done
                [[ -d $d ]] && echo "# could not remove cgroup $d" >&2
        done
        CGROUPS=()
}
