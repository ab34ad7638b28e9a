#!/bin/bash
# Live migration (org.vmsup.Migration1) between two hosts on one machine: two network
# namespaces joined by a veth pair, each with its own dbus-daemon, vmsupd and runtime
# directory; the stream crosses the veth over TCP (socat on both ends, vmsupctl migrate on
# the source and vmsupctl migrate-in under socat on the target). The tiny guest with a
# marker in its RAM (a file in its tmpfs) arrives running, its agent answering, the marker
# intact; the source ends stopped, reason migrated; a kill -9 of the target's vmsupd after
# the migration is followed by a reattach. Failures (the target VM running, no VM.Migrate
# on the target, the stream cut, the target QEMU killed, a cancel) leave the source running
# with the same pid and its agent answering, and the target stopped and clean. Refusals:
# callers without VM.Migrate on either end, unknown options, descriptors that are not a
# stream, a VM in the wrong state.
source "$(dirname "$0")/lib.sh"

[[ -r $GUEST_DIR/vmlinuz ]] || { echo "not ok 1 - tiny guest missing: run tests/guest/build-guest.sh"; exit 1; }
command -v socat >/dev/null || { echo "ok 1 # SKIP socat missing"; echo "1..1"; exit 0; }
ip netns list >/dev/null 2>&1 || { echo "ok 1 # SKIP no network namespaces here"; echo "1..1"; exit 0; }

ensure_user vmsupt-none
ensure_user vmsupt-aud
ensure_user vmsupt-mig
bus_start || exit 1
host_acl '{}'

# The two hosts: NSA (this suite's bus, $T/run) and NSB (its own bus and runtime directory).
NSA=vmsupmA$$
NSB=vmsupmB$$
BUS_B="unix:path=$T/busb"
mkdir -p "$T/b/vms" "$T/b/run"
chmod 0755 "$T/b" "$T/b/vms"
echo '{}' > "$T/b/acl.json"
BUSB_PID=
ADDR_A=10.251.$(($$ % 200)).1
ADDR_B=10.251.$(($$ % 200)).2
PORT=$((20000 + $$ % 20000 * 2))

migrate_cleanup() {
        local f pid
        for f in "$T"/b/run/*/run-state; do
                [[ -f $f ]] || continue
                pid=$(awk '$1 == "launcher_pid" { print $2 }' "$f")
                [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == vmsupd-launcher ]] && kill -KILL "$pid" 2>/dev/null
        done
        for pid in $(pgrep -f -- "--runtime-dir $T/b/run "); do
                [[ $(cat "/proc/$pid/comm" 2>/dev/null) == vmsupd-launcher ]] && kill -KILL "$pid" 2>/dev/null
        done
        [[ -n $BUSB_PID ]] && kill "$BUSB_PID" 2>/dev/null
        ip netns del "$NSA" 2>/dev/null
        ip netns del "$NSB" 2>/dev/null
        cleanup
}
trap migrate_cleanup EXIT

ip netns add "$NSA" && ip netns add "$NSB" &&
        ip link add "vma$$" netns "$NSA" type veth peer name "vmb$$" netns "$NSB" &&
        ip -n "$NSA" addr add "$ADDR_A/24" dev "vma$$" && ip -n "$NSB" addr add "$ADDR_B/24" dev "vmb$$" &&
        ip -n "$NSA" link set "vma$$" up && ip -n "$NSB" link set "vmb$$" up &&
        ip -n "$NSA" link set lo up && ip -n "$NSB" link set lo up
check_eq "two network namespaces joined by a veth pair" 0 $?

sed "s|<listen>$BUS</listen>|<listen>$BUS_B</listen>|" "$T/bus.conf" > "$T/busb.conf"
BUSB_PID=$( (umask 000; ip netns exec "$NSB" dbus-daemon --config-file="$T/busb.conf" --fork --print-pid) )
for i in $(seq 50); do [[ -S $T/busb ]] && break; sleep 0.1; done
check "host B has its own dbus-daemon" test -S "$T/busb"

# onb CMD...: CMD against host B's bus.
onb() { DBUS_SYSTEM_BUS_ADDRESS=$BUS_B "$@"; }
ctl() { "$VMSUPCTL" --bus "$BUS" "$@"; }
ctlb() { "$VMSUPCTL" --bus "$BUS_B" "$@"; }

# start_a / start_b: the supervisor of VM "mig" inside its host's namespace.
start_a() {
        ip netns exec "$NSA" "$VMSUPD" --config-dir "$T/vms" --runtime-dir "$T/run" --acl "$T/acl.json" --bus "$BUS" \
                mig >> "$T/logs/mig-a.log" 2>&1 &
        VMSUPD_PID[mig]=$!
        wait_bus "$BUS" "${VMSUPD_PID[mig]}"
}
start_b() {
        ip netns exec "$NSB" "$VMSUPD" --config-dir "$T/b/vms" --runtime-dir "$T/b/run" --acl "$T/b/acl.json" \
                --bus "$BUS_B" mig >> "$T/logs/mig-b.log" 2>&1 &
        VMSUPD_PID[mig_b]=$!
        wait_bus "$BUS_B" "${VMSUPD_PID[mig_b]}"
}
wait_bus() {
        local i
        for i in $(seq 300); do
                DBUS_SYSTEM_BUS_ADDRESS=$1 busctl --system status org.vmsup.VM.mig >/dev/null 2>&1 && return 0
                kill -0 "$2" 2>/dev/null || return 1
                sleep 0.05
        done
        return 1
}

# The same VM defined on both hosts; VM.Migrate for vmsupt-mig on host A only.
acl_a='{ "user": "vmsupt-mig", "privileges": ["VM.Migrate", "VM.Audit"] }, { "user": "vmsupt-aud", "privileges": ["VM.Audit"] }'
acl_b='{ "user": "vmsupt-aud", "privileges": ["VM.Audit"] }'
guest_kernel_def '"autostart": true, "shutdown_timeout_sec": 30, "agent_file_paths": [ "/tmp" ], "acl": [ '"$acl_a"' ]' > "$T/vms/mig.json"
guest_kernel_def '"autostart": false, "shutdown_timeout_sec": 30, "agent_file_paths": [ "/tmp" ], "acl": [ '"$acl_b"' ]' > "$T/b/vms/mig.json"

check_here "host A: vmsupd with the tiny guest" start_a
check_here "host B: vmsupd with the same VM, stopped" start_b
check "A: running" wait_state mig running 60
check "A: the guest's agent connects" wait_prop mig AgentConnected true 120
check "B: stopped" onb wait_state mig stopped 10
pid=$(vmprop_value mig Pid)
printf 'in the guest RAM before the move\n' > "$T/marker"
check "a marker written into the guest's tmpfs on A" ctl write-file mig "$T/marker" /tmp/marker

# source_running WHAT: the source VM still runs, same QEMU, its agent answering.
source_running() {
        check "$1: A running again" wait_state mig running 30
        check_eq "$1: A's QEMU is the same process" "$pid" "$(vmprop_value mig Pid)"
        check_match "$1: A's guest agent answers" '^\{\}$' "$(agent_cmd root mig '{"execute":"guest-ping"}' 2>&1)"
}
# target_clean WHAT: the target VM stopped, reason migration-failed, no QEMU left.
target_clean() {
        check "$1: B stopped" onb wait_state mig stopped 30
        check_match "$1: B says migration-failed" '^migration-failed: ' "$(onb vmprop_value mig StateReason)"
        check_eq "$1: no QEMU on B" 0 "$(onb vmprop_value mig Pid)"
        check "$1: B's incoming QEMU (pid $bpid) is gone" bash -c "for i in \$(seq 100); do kill -0 $bpid 2>/dev/null || exit 0; sleep 0.05; done; exit 1"
}

FDCALL=(/usr/bin/python3 "$ROOT/tests/blackbox/fdcall.py" migrate mig)

# --- refusals: rights, descriptors, options, states
check_match "no rights: MigrateOut refused" 'AccessDenied' "$(as vmsupt-none "${FDCALL[@]}" MigrateOut unix)"
check_match "no rights: MigrateIn refused on B" 'AccessDenied' "$(onb as vmsupt-none "${FDCALL[@]}" MigrateIn unix)"
check_fails "no rights: MigrateCancel refused" 'AccessDenied' dsend_as vmsupt-none mig Migration1.MigrateCancel
check_fails "no rights: GetMigrationStatus refused" 'AccessDenied' dsend_as vmsupt-none mig Migration1.GetMigrationStatus
check_match "VM.Audit alone: MigrateOut refused, naming VM.Migrate" 'AccessDenied' \
        "$(as vmsupt-aud "${FDCALL[@]}" MigrateOut unix)"
check_match "VM.Audit: GetMigrationStatus answers (none so far)" '"status" s "none"' \
        "$(as vmsupt-aud busctl --system call org.vmsup.VM.mig /org/vmsup/VM org.vmsup.Migration1 GetMigrationStatus 2>&1)"
check_match "VM.Migrate on A but not on B: MigrateIn refused on B" 'AccessDenied' \
        "$(onb as vmsupt-mig "${FDCALL[@]}" MigrateIn unix)"
for kind in dgram seqpacket regular udp; do
        check_match "MigrateOut with a $kind descriptor: InvalidArgs" 'InvalidArgs: .*stream socket' \
                "$("${FDCALL[@]}" MigrateOut $kind)"
done
check_match "MigrateOut with an O_PATH descriptor: InvalidArgs" 'InvalidArgs: .*O_PATH' "$("${FDCALL[@]}" MigrateOut opath)"
check_match "MigrateOut with a pipe's read end: InvalidArgs" 'InvalidArgs: .*open for writing' \
        "$("${FDCALL[@]}" MigrateOut rdpipe)"
check_match "MigrateIn with a pipe's write end: InvalidArgs" 'InvalidArgs: .*open for reading' \
        "$(onb "${FDCALL[@]}" MigrateIn wrpipe)"
check_match "a TCP socket is a stream: B (stopped) answers NotRunning, not InvalidArgs" 'NotRunning' \
        "$(onb "${FDCALL[@]}" MigrateOut tcp)"
check_match "an unknown option: InvalidArgs" 'InvalidArgs: Unknown migration option "compress"' \
        "$("${FDCALL[@]}" MigrateOut unix "{'compress': dbus.Boolean(True)}")"
check_match "max-bandwidth as a string: InvalidArgs" 'InvalidArgs: .*max-bandwidth.*type t' \
        "$("${FDCALL[@]}" MigrateOut unix "{'max-bandwidth': 'fast'}")"
check_match "max-bandwidth 0: InvalidArgs" 'InvalidArgs: max-bandwidth is 1 to' \
        "$("${FDCALL[@]}" MigrateOut unix "{'max-bandwidth': dbus.UInt64(0)}")"
check_match "downtime-limit-ms above QEMU's 2000 s: InvalidArgs" 'InvalidArgs: downtime-limit-ms is at most' \
        "$("${FDCALL[@]}" MigrateOut unix "{'downtime-limit-ms': dbus.UInt64(2000001)}")"
check_match "17 options: InvalidArgs" 'InvalidArgs: (At most 16 options|Unknown migration option)' \
        "$("${FDCALL[@]}" MigrateOut unix "dict(('x%d' % i, dbus.Boolean(True)) for i in range(17))")"
check_match "disk-fd for a VM without a writable drive: NotSupported, nothing started" 'NotSupported' \
        "$("${FDCALL[@]}" MigrateOut unix "{'disk-fd': disk}")"
check_match "disk-fd as a pipe (NBD talks both ways): InvalidArgs" 'InvalidArgs: .*NBD talks both ways' \
        "$("${FDCALL[@]}" MigrateOut wrpipe "{'disk-fd': disk}")"
check_match "MigrateIn on A, where the VM runs: AlreadyRunning" 'AlreadyRunning' "$("${FDCALL[@]}" MigrateIn unix)"
check_match "MigrateOut on B, where the VM is stopped: NotRunning" 'NotRunning' "$(onb "${FDCALL[@]}" MigrateOut unix)"
check_fails "MigrateCancel without a migration: NotRunning" 'NotRunning' dsend_as root mig Migration1.MigrateCancel
check_eq "after the refusals A still runs, same pid" "running $pid" "$(vmprop_value mig State) $(vmprop_value mig Pid)"

# --- bounds in time: the "timeout" option (seconds without progress; 0: none, default 60)
check_match "timeout as a string: InvalidArgs" 'InvalidArgs: .*"timeout" has the type u' \
        "$("${FDCALL[@]}" MigrateOut unix "{'timeout': 'soon'}")"
check_match "timeout above a day: InvalidArgs" 'InvalidArgs: timeout is at most 86400' \
        "$("${FDCALL[@]}" MigrateOut unix "{'timeout': dbus.UInt32(86401)}")"
check_match "no rights: MigrateIn with a timeout refused on B" 'AccessDenied' \
        "$(onb as vmsupt-none "${FDCALL[@]}" MigrateIn unix "{'timeout': dbus.UInt32(2)}")"
# The target, from a source that never sends anything: its QEMU is stopped after the bound.
check_match "MigrateIn from a stream nobody writes (timeout 2 s): MigrationFailed, no data" \
        'MigrationFailed: .*no migration data for 2 s' "$(onb "${FDCALL[@]}" MigrateIn unix "{'timeout': dbus.UInt32(2)}")"
check "silent source: B stopped" onb wait_state mig stopped 30
check_match "silent source: B says migration-failed, no data" '^migration-failed: .*no migration data' \
        "$(onb vmprop_value mig StateReason)"
check_eq "silent source: no QEMU on B" 0 "$(onb vmprop_value mig Pid)"
ctlb migrate-in mig --timeout 2 < <(sleep 30) > "$T/ctl-in.out" 2>&1
check_match "vmsupctl migrate-in --timeout 2 from a silent source: fails, no data" 'no migration data for 2 s' \
        "$(cat "$T/ctl-in.out")"
check "vmsupctl's silent source: B stopped" onb wait_state mig stopped 30
# The source, into a stream nobody reads: the transferred bytes stop moving, QEMU cancels.
check_match "MigrateOut into a stream nobody reads (timeout 2 s): MigrationFailed, no progress" \
        'MigrationFailed: .*no progress for 2 s' "$("${FDCALL[@]}" MigrateOut unix "{'timeout': dbus.UInt32(2)}")"
source_running "stalled stream"
# The source's QEMU stops answering mid-migration (SIGSTOP): its queries go unanswered and
# the cancel is never confirmed; MigrateOut fails after the stall and the cancel's bounds.
( "${FDCALL[@]}" MigrateOut unix "{'timeout': dbus.UInt32(2)}" > "$T/hung.out" 2>&1 ) &
hung=$!
check "migrating into a stream nobody reads" wait_state mig migrating 30
kill -STOP "$pid"
wait "$hung"
kill -CONT "$pid"
check_match "QEMU stopped mid-migration: MigrateOut fails, the cancel unconfirmed" \
        'MigrationFailed: .*QEMU did not confirm the cancel within 10 s' "$(cat "$T/hung.out")"
check "the give-up is logged with QEMU's last status" grep -q 'did not confirm the migration.s cancel.*its last status' "$T/logs/mig-a.log"
source_running "QEMU stopped mid-migration"

# --- migrations over TCP between the namespaces
# target_listen [USER]: on B, socat accepts one connection and runs vmsupctl migrate-in on it
# (its standard input and output are one socket: passed as it is).
target_listen() {
        local who=
        [[ -n ${1:-} ]] && who="setpriv --reuid=$(id -u "$1") --regid=$(id -g "$1") --clear-groups"
        printf '#!/bin/sh\nexec %s "%s" --bus "%s" migrate-in mig\n' "$who" "$VMSUPCTL" "$BUS_B" > "$T/migrate-in"
        chmod 0755 "$T/migrate-in"
        ip netns exec "$NSB" socat "TCP-LISTEN:$PORT,bind=$ADDR_B,reuseaddr" EXEC:"$T/migrate-in" > "$T/target.log" 2>&1 &
        TARGET_PID=$!
        local i
        for i in $(seq 100); do
                ip netns exec "$NSB" ss -ltn 2>/dev/null | grep -q ":$PORT " && return 0
                sleep 0.05
        done
        return 1
}
# source_migrate [OPTIONS...]: on A in the background, vmsupctl migrate over socat to B.
source_migrate() {
        ip netns exec "$NSA" "$VMSUPCTL" --bus "$BUS" migrate mig "$@" -- socat - "TCP:$ADDR_B:$PORT" \
                > "$T/source.log" 2>&1 &
        SOURCE_PID=$!
}
# wait_active: A's migration is under way (bytes have moved).
wait_active() {
        local i out
        for i in $(seq 300); do
                out=$(busctl --system call org.vmsup.VM.mig /org/vmsup/VM org.vmsup.Migration1 GetMigrationStatus 2>/dev/null)
                [[ $out =~ \"status\"\ s\ \"active\" && $out =~ \"transferred-bytes\"\ t\ [1-9] ]] && return 0
                sleep 0.05
        done
        return 1
}
source_result() {
        local i
        wait "$SOURCE_PID"
        SOURCE_RC=$?
        # A source that never connected leaves the listener waiting: it goes after a while.
        for i in $(seq 600); do
                kill -0 "$TARGET_PID" 2>/dev/null || break
                sleep 0.1
        done
        kill "$TARGET_PID" 2>/dev/null
        wait "$TARGET_PID" 2>/dev/null
}

# The target VM runs already there: B refuses, A keeps running.
check "B: Start (the VM runs on the target)" onb vmcall mig VM1 Start
target_listen
source_migrate
source_result
check_match "target running: A's MigrateOut fails MigrationFailed" 'MigrationFailed' "$(cat "$T/source.log")"
check_match "target running: B's migrate-in says AlreadyRunning" 'AlreadyRunning' "$(cat "$T/target.log")"
source_running "target running"
check "B: Stop" onb vmcall mig VM1 Stop

# No VM.Migrate on B for the user who runs both ends.
target_listen vmsupt-mig
ip netns exec "$NSA" setpriv --reuid="$(id -u vmsupt-mig)" --regid="$(id -g vmsupt-mig)" --clear-groups \
        "$VMSUPCTL" --bus "$BUS" migrate mig -- socat - "TCP:$ADDR_B:$PORT" > "$T/source.log" 2>&1 &
SOURCE_PID=$!
source_result
check_match "no VM.Migrate on B: the target refuses (AccessDenied)" 'AccessDenied' "$(cat "$T/target.log")"
check_match "no VM.Migrate on B: A's MigrateOut fails MigrationFailed" 'MigrationFailed' "$(cat "$T/source.log")"
source_running "no VM.Migrate on B"
check_eq "no VM.Migrate on B: B never started QEMU" "stopped 0" "$(onb vmprop_value mig State) $(onb vmprop_value mig Pid)"

# The stream cut mid-migration (throttled to 2 MB/s so that it lasts).
target_listen
source_migrate --max-bandwidth 2000000
check "throttled: the migration is active" wait_active
check_eq "throttled: A is migrating" migrating "$(vmprop_value mig State)"
check "throttled: B is incoming" onb wait_state mig incoming 30
bpid=$(onb vmprop_value mig Pid)
pkill -KILL -f -- "^socat - TCP:$ADDR_B:$PORT"
source_result
check_eq "stream cut: vmsupctl migrate fails" 1 "$SOURCE_RC"
check_match "stream cut: MigrationFailed with QEMU's reason" 'MigrationFailed.*: .+' "$(cat "$T/source.log")"
check_match "stream cut: A's reason says migration-failed" '^migration-failed: ' "$(vmprop_value mig StateReason)"
source_running "stream cut"
target_clean "stream cut"

# The target QEMU killed mid-migration.
target_listen
source_migrate --max-bandwidth 2000000
check "target killed: the migration is active" wait_active
check "target killed: B is incoming" onb wait_state mig incoming 30
bpid=$(onb vmprop_value mig Pid)
check "target killed: B's QEMU has a pid" test "$bpid" -gt 0
[[ $bpid -gt 0 ]] && kill -KILL "$bpid"
source_result
check_match "target killed: MigrationFailed" 'MigrationFailed' "$(cat "$T/source.log")"
source_running "target killed"
target_clean "target killed"
check_match "target killed: B's reason names the signal" 'killed-by-signal-9' "$(onb vmprop_value mig StateReason)"

# A caller's cancel at a throttled bandwidth (vmsupt-mig holds VM.Migrate on A).
target_listen
source_migrate --max-bandwidth 2000000
check "cancel: the migration is active" wait_active
check "cancel: B is incoming" onb wait_state mig incoming 30
bpid=$(onb vmprop_value mig Pid)
check_fails "VM.Audit alone cannot cancel" 'AccessDenied' dsend_as vmsupt-aud mig Migration1.MigrateCancel
check "MigrateCancel (VM.Migrate)" dsend_as vmsupt-mig mig Migration1.MigrateCancel
source_result
check_match "cancel: MigrateOut fails MigrationFailed" 'MigrationFailed' "$(cat "$T/source.log")"
check_eq "cancel: A's reason" migration-cancelled "$(vmprop_value mig StateReason)"
source_running "cancel"
target_clean "cancel"

# --- the move: one vmsupctl line each side, over TCP across the veth
events_start mig "$T/events"
target_listen
ip netns exec "$NSA" "$VMSUPCTL" --bus "$BUS" --json migrate mig -- socat - "TCP:$ADDR_B:$PORT" > "$T/source.json" 2> "$T/source.log" &
SOURCE_PID=$!
source_result
check_eq "vmsupctl migrate succeeds" 0 "$SOURCE_RC"
check_match "--json: the final status says completed" '"status": *"completed"' "$(cat "$T/source.json")"
check_match "--json: with the downtime" '"downtime-ms": *[0-9]+' "$(cat "$T/source.json")"
check "A: the subscriber saw the end" wait_for_line "$T/events" '^StateChanged stopped ' 10
check_eq "A: StateChanged migrating, then stopped (migrated), nothing in between" \
        'StateChanged migrating migrate-out|StateChanged stopped migrated' \
        "$(grep '^StateChanged ' "$T/events" | tail -2 | paste -sd'|')"
check_eq "A: stopped, reason migrated, no QEMU" "stopped migrated 0" \
        "$(vmprop_value mig State) $(vmprop_value mig StateReason) $(vmprop_value mig Pid)"
check "A: its QEMU is gone" bash -c "! kill -0 $pid 2>/dev/null"
check_eq "B: running, reason migrated" "running migrated" "$(onb vmprop_value mig State) $(onb vmprop_value mig StateReason)"
check "B: the guest's agent answers" onb wait_prop mig AgentConnected true 60
check "B: read the marker back" ctlb read-file mig /tmp/marker "$T/back"
check_eq "B: the marker written on A is intact" "in the guest RAM before the move" "$(cat "$T/back" 2>/dev/null)"
check_match "B: GetMigrationStatus says in, completed" '"direction" s "in"' \
        "$(onb busctl --system call org.vmsup.VM.mig /org/vmsup/VM org.vmsup.Migration1 GetMigrationStatus 2>&1)"
check "B: its run record is written" test -s "$T/b/run/mig/run-state"

# kill -9 of the target's supervisor: the next one adopts the QEMU that arrived.
bpid=$(onb vmprop_value mig Pid)
kill -KILL "${VMSUPD_PID[mig_b]}"
wait "${VMSUPD_PID[mig_b]}" 2>/dev/null
unset "VMSUPD_PID[mig_b]"
check_here "B: a new supervisor" start_b
check "B: reattached, running" onb wait_state mig running 60
check_eq "B: same QEMU, reason reattached" "$bpid reattached" "$(onb vmprop_value mig Pid) $(onb vmprop_value mig StateReason)"
check "B: the agent answers after the reattach" onb wait_prop mig AgentConnected true 60

check "B: Stop" onb vmcall mig VM1 Stop

# --- a local qcow2 disk: the target holds a blank image of the same format and size; the disk
# travels over a second TCP connection (disk-fd), mirrored into the target's NBD export.
# The tiny guest has no virtio-blk driver (and QEMU 7.2 cannot migrate NVMe), so the data is
# written into the source image before the VM starts; the guest runs while it is mirrored.
head -c 24M /dev/urandom > "$T/disk.raw"
qemu-img convert -O qcow2 "$T/disk.raw" "$T/dk-a.qcow2" && qemu-img resize -q "$T/dk-a.qcow2" 64M
qemu-img create -q -f qcow2 "$T/b/dk-b.qcow2" 64M
chmod 0666 "$T/dk-a.qcow2" "$T/b/dk-b.qcow2"
dk_def() { # IMAGE AUTOSTART
        guest_kernel_def '"autostart": '"$2"', "shutdown_timeout_sec": 30, "agent": false' |
                sed 's|"append"|"drives": [ { "file": "'"$1"'", "format": "qcow2", "interface": "virtio" } ], "append"|'
}
dk_def "$T/dk-a.qcow2" true > "$T/vms/mig.json"
dk_def "$T/b/dk-b.qcow2" false > "$T/b/vms/mig.json"
qemu-img convert -O raw "$T/dk-a.qcow2" "$T/dk-a.raw"
sha_a=$(sha256sum < "$T/dk-a.raw" | cut -d' ' -f1)
kill -TERM "${VMSUPD_PID[mig]}" 2>/dev/null; wait "${VMSUPD_PID[mig]}" 2>/dev/null
kill -TERM "${VMSUPD_PID[mig_b]}" 2>/dev/null; wait "${VMSUPD_PID[mig_b]}" 2>/dev/null
check_here "disk: host A: vmsupd with a local qcow2 disk" start_a
check_here "disk: host B: vmsupd with a blank image" start_b
check "disk: A running" wait_state mig running 60
check "disk: B stopped" onb wait_state mig stopped 10
PORT2=$((PORT + 1))
ip netns exec "$NSB" /usr/bin/python3 "$ROOT/tests/blackbox/migrate.py" listen "$BUS_B" mig "$ADDR_B" "$PORT" "$PORT2" \
        > "$T/target.log" 2>&1 &
TARGET_PID=$!
wait_for_line "$T/target.log" LISTENING 10
ip netns exec "$NSA" /usr/bin/python3 "$ROOT/tests/blackbox/migrate.py" connect "$BUS" mig "$ADDR_B" "$PORT" "$PORT2" \
        > "$T/source.log" 2>&1 &
SOURCE_PID=$!
source_result
check_eq "disk: MigrateOut with disk-fd over TCP succeeds" ok "$(cat "$T/source.log")"
check_eq "disk: MigrateIn with disk-fd over TCP succeeds" ok "$(tail -1 "$T/target.log")"
check_eq "disk: A stopped, migrated" "stopped migrated" "$(vmprop_value mig State) $(vmprop_value mig StateReason)"
check_eq "disk: B running, migrated" "running migrated" "$(onb vmprop_value mig State) $(onb vmprop_value mig StateReason)"
check "disk: B: Stop" onb vmcall mig VM1 Stop
qemu-img convert -O raw "$T/b/dk-b.qcow2" "$T/dk-b.raw"
sha_b=$(sha256sum < "$T/dk-b.raw" | cut -d' ' -f1)
check_eq "disk: the target's image has the source's contents (sha256 of the raw disk)" "$sha_a" "$sha_b"
check "disk: qemu-img compare says identical" qemu-img compare -q "$T/dk-a.qcow2" "$T/b/dk-b.qcow2"

# ... and back, from B's image to a blank one on A, with one vmsupctl line on each side: both
# streams framed over one TCP connection (vmsupctl migrate --local-disk | migrate-in --local-disk).
qemu-img create -q -f qcow2 "$T/dk-a2.qcow2" 64M
chmod 0666 "$T/dk-a2.qcow2"
dk_def "$T/dk-a2.qcow2" false > "$T/vms/mig.json"
dk_def "$T/b/dk-b.qcow2" true > "$T/b/vms/mig.json"
kill -TERM "${VMSUPD_PID[mig]}" 2>/dev/null; wait "${VMSUPD_PID[mig]}" 2>/dev/null
kill -TERM "${VMSUPD_PID[mig_b]}" 2>/dev/null; wait "${VMSUPD_PID[mig_b]}" 2>/dev/null
check_here "back: host A: a blank image" start_a
check_here "back: host B: the migrated image" start_b
check "back: B running" onb wait_state mig running 60
printf '#!/bin/sh\nexec "%s" --bus "%s" migrate-in --local-disk mig\n' "$VMSUPCTL" "$BUS" > "$T/migrate-in-a"
chmod 0755 "$T/migrate-in-a"
ip netns exec "$NSA" socat "TCP-LISTEN:$PORT,bind=$ADDR_A,reuseaddr" EXEC:"$T/migrate-in-a" > "$T/target.log" 2>&1 &
TARGET_PID=$!
for i in $(seq 100); do ip netns exec "$NSA" ss -ltn 2>/dev/null | grep -q ":$PORT " && break; sleep 0.05; done
ip netns exec "$NSB" "$VMSUPCTL" --bus "$BUS_B" --json migrate mig --local-disk -- socat - "TCP:$ADDR_A:$PORT" \
        > "$T/source.json" 2> "$T/source.log" &
SOURCE_PID=$!
source_result
check_eq "back: vmsupctl migrate --local-disk succeeds" 0 "$SOURCE_RC"
check_match "back: its --json status says completed, with the disk" '"status": *"completed".*"disk-total-bytes": *67108864' \
        "$(tr -d '\n' < "$T/source.json")"
check_eq "back: A running, migrated" "running migrated" "$(vmprop_value mig State) $(vmprop_value mig StateReason)"
check_eq "back: B stopped, migrated" "stopped migrated" "$(onb vmprop_value mig State) $(onb vmprop_value mig StateReason)"
check "back: A: Stop" vmcall mig VM1 Stop
qemu-img convert -O raw "$T/dk-a2.qcow2" "$T/dk-a2.raw"
check_eq "back: A's blank image now has the disk's contents (sha256)" "$sha_a" "$(sha256sum < "$T/dk-a2.raw" | cut -d' ' -f1)"
finish
