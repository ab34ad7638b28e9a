# Shared helpers for the black-box suites: a private system-type dbus-daemon
# using the shipped bus policy, test users, real vmsupd and QEMU, busctl as the
# client. Each suite prints TAP-style "ok N - ..." / "not ok N - ..." lines.
# shellcheck shell=bash
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-build}
VMSUPD=$ROOT/$BUILD/vmsupd
VMSUPCTL=$ROOT/$BUILD/vmsupctl
GUEST_DIR=${VMSUP_GUEST_DIR:-$ROOT/.cache/guest}
QEMU=$(command -v qemu-system-x86_64)

T=$(mktemp -d /tmp/vmsup-bb.XXXXXX)
chmod 0755 "$T"
mkdir -p "$T/vms" "$T/run" "$T/logs"
BUS="unix:path=$T/bus"
export DBUS_SYSTEM_BUS_ADDRESS=$BUS
TEST_N=0
TEST_FAILED=0
declare -A VMSUPD_PID=()
BUS_PID=

ok() {
        TEST_N=$((TEST_N + 1))
        echo "ok $TEST_N - $*"
}
not_ok() {
        TEST_N=$((TEST_N + 1))
        TEST_FAILED=$((TEST_FAILED + 1))
        echo "not ok $TEST_N - $*"
}
diag() { echo "# $*"; }

# check DESCRIPTION CMD...: passes when CMD succeeds.
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

# check_here DESCRIPTION CMD...: like check, but CMD runs in this shell (it may set variables).
check_here() {
        local desc=$1
        shift
        if "$@"; then
                ok "$desc"
        else
                not_ok "$desc"
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

# check_eq DESCRIPTION EXPECTED ACTUAL
check_eq() {
        if [[ $2 == "$3" ]]; then
                ok "$1"
        else
                not_ok "$1"
                diag "expected: $2"
                diag "actual:   $3"
        fi
}

# check_match DESCRIPTION REGEX ACTUAL
check_match() {
        if [[ $3 =~ $2 ]]; then
                ok "$1"
        else
                not_ok "$1"
                diag "expected to match: $2"
                diag "actual: $3"
        fi
}

# launchers_of_tests: the QEMU launchers this test directory left: children of its
# supervisors, and those named by run records (they outlive a killed supervisor).
launchers_of_tests() {
        local name pid f
        for name in "${!VMSUPD_PID[@]}"; do
                pgrep -P "${VMSUPD_PID[$name]}" -x vmsupd-launcher
        done
        # Also one a refused adoption left behind (its record since replaced): a launcher's
        # command line is its supervisor's, naming this test directory.
        for pid in $(pgrep -f -- "--runtime-dir $T/run "); do
                [[ $(cat "/proc/$pid/comm" 2>/dev/null) == vmsupd-launcher ]] && echo "$pid"
        done
        for f in "$T"/run/*/run-state; do
                [[ -f $f ]] || continue
                pid=$(awk '$1 == "launcher_pid" { print $2 }' "$f")
                [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == vmsupd-launcher ]] && echo "$pid"
        done
        return 0
}

cleanup() {
        local name pid launchers
        launchers=$(launchers_of_tests)
        for name in "${!VMSUPD_PID[@]}"; do
                pid=${VMSUPD_PID[$name]}
                kill -KILL "$pid" 2>/dev/null
        done
        # A launcher outlives its supervisor; QEMU dies with its launcher.
        [[ -n $launchers ]] && kill -KILL $launchers 2>/dev/null
        [[ -n $BUS_PID ]] && kill "$BUS_PID" 2>/dev/null
        # Subscribers and anything else started in the background.
        local jobs_left
        jobs_left=$(jobs -p)
        [[ -n $jobs_left ]] && kill $jobs_left 2>/dev/null
        wait 2>/dev/null
        if [[ $TEST_FAILED -gt 0 ]]; then
                for f in "$T"/logs/*.log; do
                        [[ -s $f ]] || continue
                        echo "# --- $f (tail)"
                        tail -15 "$f" | sed 's/^/#   /'
                done
        fi
        if [[ -n ${VMSUP_TEST_KEEP:-} ]]; then
                echo "# kept for inspection: $T"
                return
        fi
        rm -rf "$T"
}
trap cleanup EXIT

bus_start() {
        cat > "$T/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>$BUS</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <!-- as Debian's system bus: anyone connects; nobody owns names or calls methods unless allowed -->
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Peer"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <include>$ROOT/units/org.vmsup.VM.conf</include>
  ${BUS_EXTRA_CONF:-}
</busconfig>
CONF
        BUS_PID=$( (umask 000; dbus-daemon --config-file="$T/bus.conf" --fork --print-pid) )
        local i
        for i in $(seq 50); do
                [[ -S $T/bus ]] && return 0
                sleep 0.1
        done
        echo "dbus-daemon did not start" >&2
        return 1
}

# ensure_user NAME: a system user with its own group; prints nothing.
ensure_user() {
        id "$1" >/dev/null 2>&1 || useradd --system --no-create-home --user-group --shell /usr/sbin/nologin "$1"
}
# QEMU's identity when a definition has no run_as (units/vmsup.sysusers at install).
ensure_user vmsup-qemu
ensure_group() {
        getent group "$1" >/dev/null 2>&1 || groupadd --system "$1"
}
uid_of() { id -u "$1"; }
gid_of() { id -g "$1"; }

# as USER CMD...: run as USER with only its primary group.
as() {
        local u=$1
        shift
        setpriv --reuid="$(id -u "$u")" --regid="$(id -g "$u")" --clear-groups "$@"
}
# as_groups USER GROUP1,GROUP2 CMD...: the same with supplementary groups (numeric).
as_groups() {
        local u=$1 g=$2
        shift 2
        setpriv --reuid="$(id -u "$u")" --regid="$(id -g "$u")" --groups="$g" "$@"
}

# vmcall NAME IFACE METHOD [SIG ARGS...]: busctl call on the VM's object.
vmcall() {
        local name=$1 iface=$2 method=$3
        shift 3
        busctl --system --timeout=120 call "org.vmsup.VM.$name" /org/vmsup/VM "org.vmsup.$iface" "$method" "$@"
}
# dsend [USER] METHOD_PATH ARGS...: dbus-send to the VM, printing the reply or the
# error with its message (busctl replaces AccessDenied's message with "Access denied").
# Usage: dsend_as USER NAME IFACE.METHOD [dbus-send args...]
dsend_as() {
        local user=$1 name=$2 method=$3
        shift 3
        local cmd=(dbus-send --system --print-reply --reply-timeout=120000 --dest="org.vmsup.VM.$name" /org/vmsup/VM
                   "org.vmsup.$method" "$@")
        if [[ $user == root ]]; then
                "${cmd[@]}"
        else
                as "$user" "${cmd[@]}"
        fi
}

vmprop() {
        busctl --system get-property "org.vmsup.VM.$1" /org/vmsup/VM org.vmsup.VM1 "$2"
}
# vmprop_value NAME PROP: the bare value ("running", 1234, true).
vmprop_value() {
        vmprop "$1" "$2" | sed -E 's/^[a-z] //; s/^"(.*)"$/\1/'
}

# define_vm NAME JSON
define_vm() {
        printf '%s\n' "$2" > "$T/vms/$1.json"
}
host_acl() {
        printf '%s\n' "$1" > "$T/acl.json"
}

# vmsupd_start NAME [OPTIONS...]: starts the supervisor, waits for its bus name.
vmsupd_start() {
        local name=$1 i
        shift
        "$VMSUPD" --config-dir "$T/vms" --runtime-dir "$T/run" --acl "$T/acl.json" --bus "$BUS" "$@" "$name" \
                >> "$T/logs/$name.log" 2>&1 &
        VMSUPD_PID[$name]=$!
        for i in $(seq 300); do
                if busctl --system status "org.vmsup.VM.$name" >/dev/null 2>&1; then
                        return 0
                fi
                kill -0 "${VMSUPD_PID[$name]}" 2>/dev/null || return 1
                sleep 0.05
        done
        return 1
}

# vmsupd_stop NAME: SIGTERM, wait; the exit status lands in VMSUPD_RC (call it in this shell).
VMSUPD_RC=
vmsupd_stop() {
        local pid=${VMSUPD_PID[$1]:-}
        VMSUPD_RC="no supervisor"
        [[ -n $pid ]] || return 1
        kill -TERM "$pid" 2>/dev/null
        wait "$pid"
        VMSUPD_RC=$?
        unset "VMSUPD_PID[$1]"
}

# wait_state NAME STATE [SECONDS]: polls the State property.
wait_state() {
        local name=$1 want=$2 secs=${3:-30} i s=
        for i in $(seq $((secs * 20))); do
                s=$(vmprop_value "$name" State 2>/dev/null)
                [[ $s == "$want" ]] && return 0
                sleep 0.05
        done
        echo "state is '$s', wanted '$want'" >&2
        return 1
}

# wait_prop NAME PROP VALUE [SECONDS]
wait_prop() {
        local name=$1 prop=$2 want=$3 secs=${4:-30} i v=
        for i in $(seq $((secs * 20))); do
                v=$(vmprop_value "$name" "$prop" 2>/dev/null)
                [[ $v == "$want" ]] && return 0
                sleep 0.05
        done
        echo "$prop is '$v', wanted '$want'" >&2
        return 1
}

# events_start NAME FILE: a subscriber (vmsupctl events) writing to FILE; waits until subscribed.
events_start() {
        "$VMSUPCTL" --bus "$BUS" events "$1" > "$2" 2>&1 &
        local i
        for i in $(seq 100); do
                grep -q READY "$2" 2>/dev/null && return 0
                sleep 0.05
        done
        return 1
}

# wait_for_line FILE REGEX [SECONDS]
wait_for_line() {
        local i secs=${3:-20}
        for i in $(seq $((secs * 20))); do
                grep -Eq -- "$2" "$1" 2>/dev/null && return 0
                sleep 0.05
        done
        return 1
}

qemu_running_for() {
        # QEMU processes whose command line names this test directory's VM.
        pgrep -f -- "-name guest=$1,debug-threads=on" >/dev/null
}

guest_kernel_def() {
        # The tiny guest: kernel + initramfs with qemu-ga, under TCG.
        local append=${2:-console=ttyS0 quiet}
        cat <<DEF
{ "qemu": { "binary": "$QEMU", "machine": "q35", "accel": "tcg", "memory_mib": ${3:-256},
            "kernel": "$GUEST_DIR/vmlinuz", "initrd": "$GUEST_DIR/initrd.img", "append": "$append" },
  $1 }
DEF
}

finish() {
        echo "1..$TEST_N"
        [[ $TEST_FAILED -eq 0 ]]
}

# agent_cmd USER NAME JSON: Agent1.Command; prints the returned JSON (dbus-send
# prints strings unescaped) or fails with "Error NAME: message" on stderr.
agent_cmd() {
        local out
        out=$(dsend_as "$1" "$2" Agent1.Command string:"$3") || return 1
        printf '%s\n' "$out" | sed -n 's/^   string "\(.*\)"$/\1/p'
}

# proc_kb PID FIELD: a /proc/PID/status value in kB (VmRSS, VmHWM).
proc_kb() {
        awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null
}
# peak_reset PID: VmHWM starts again from the current RSS.
peak_reset() {
        echo 5 > "/proc/$1/clear_refs"
}
# proc_cpu_ms PID: user + system CPU time of a process so far, in ms.
proc_cpu_ms() {
        awk -v hz="$(getconf CLK_TCK)" '{ print int(($14 + $15) * 1000 / hz) }' "/proc/$1/stat" 2>/dev/null
}
