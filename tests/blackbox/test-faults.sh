#!/bin/bash
# Injected faults against a real vmsupd, each case checked for the supervisor's memory,
# its loop (another caller answered) and correctness:
#   - an event storm from a fake QEMU (100,000 events as fast as the supervisor reads):
#     memory bounded, the ring bounded, Event signals to a subscriber bounded (the rest
#     announced by vmsup-events-dropped, nothing lost from the count);
#   - QEMU stopped (SIGSTOP) with calls pending: the loop answers, SIGCONT recovers;
#   - callers dying with calls pending: their shares come back.
source "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
EV="$ROOT/tests/blackbox/events.py"
FLOOD="$ROOT/tests/blackbox/flood.py"
FAKE=$ROOT/$BUILD/tests/fake-qemu
[[ -x $FAKE ]] || { echo "not ok 1 - $FAKE missing: make tests"; exit 1; }
$PY -c 'import dbus, gi' 2>/dev/null || { echo "not ok 1 - /usr/bin/python3 with python3-dbus and python3-gi missing"; exit 1; }
for u in vmsupq-audit vmsupq-other; do ensure_user "$u"; done
bus_start || exit 1
host_acl '{}'
mkdir -p "$T/fake"
chmod 0777 "$T/fake"
ATTACKERS=()
trap 'for p in "${ATTACKERS[@]}"; do pkill -P "$p" 2>/dev/null; kill "$p" 2>/dev/null; done; cleanup' EXIT
proc_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
wait_count() {
        local i
        for i in $(seq $((${4:-30} * 20))); do
                [[ $(grep -Ec -- "$2" "$1" 2>/dev/null) -ge $3 ]] && return 0
                sleep 0.05
        done
        echo "$(grep -Ec -- "$2" "$1" 2>/dev/null) lines of $2, wanted $3" >&2
        return 1
}

# --- an event storm
define_vm storm "{ \"qemu\": { \"binary\": \"$FAKE\", \"machine\": \"none\", \"accel\": \"tcg\", \"memory_mib\": 32,
  \"extra_args\": [ \"-fake-dir\", \"$T/fake\" ] }, \"agent\": false, \"autostart\": true,
  \"acl\": [ { \"user\": \"vmsupq-audit\", \"privileges\": [ \"VM.Audit\" ] } ] }"
check_here "storm: supervisor starts" vmsupd_start storm
check "storm: the fake QEMU runs" wait_state storm running
SUP=${VMSUPD_PID[storm]}
mkfifo "$T/sub.in"
as vmsupq-audit $PY "$EV" follow storm subscribe < "$T/sub.in" > "$T/sub.out" 2>&1 &
ATTACKERS+=($!)
exec {subfd}> "$T/sub.in"
check "storm: a subscriber" wait_for_line "$T/sub.out" '^READY [0-9]+$'
rss0=$(proc_kb "$SUP" VmRSS)
echo 5 > "/proc/$SUP/clear_refs" 2>/dev/null # VmHWM from here
touch "$T/fake/storm-go"
wait_file() {
        local i
        for i in $(seq 2400); do
                [[ -e $1 ]] && return 0
                sleep 0.05
        done
        return 1
}
check "storm: the fake QEMU sent 100,000 events" wait_file "$T/fake/storm-sent"
last_storm() { $PY "$EV" call storm GetEvents 0 | grep '^G .* STORM ' | tail -1; }
storm_read() {
        local i
        for i in $(seq 1200); do
                [[ $(last_storm) == *'{"i":99999}' ]] && return 0
                sleep 0.1
        done
        return 1
}
check "storm: the supervisor read them all" storm_read
hwm=$(proc_kb "$SUP" VmHWM)
diag "storm: supervisor VmRSS before ${rss0} kB, VmHWM through the storm ${hwm} kB"
# Under SANITIZE=1, ASan's quarantine keeps up to 256 MiB of freed memory resident.
limit=$((64 * 1024))
[[ $BUILD == build-san ]] && limit=$((400 * 1024))
check "storm: the supervisor's peak RSS stayed below $((limit / 1024)) MiB" test "$hwm" -lt "$limit"
check_eq "storm: GetEvents returns the ring's 1024" "END 1024" "$($PY "$EV" call storm GetEvents 0 | tail -1)"
check_eq "storm: another caller's State answers" 's "running"' \
        "$(busctl --system get-property org.vmsup.VM.storm /org/vmsup/VM org.vmsup.VM1 State)"
# One more event (STOP) carries the last drop notice before it.
vmcall storm VM1 Pause > /dev/null
echo sync >&$subfd
check "storm: the subscriber synced" wait_for_line "$T/sub.out" '^SYNCED' 60
check "storm: the subscriber saw the STOP after the storm" grep -qx 'S STOP {}' "$T/sub.out"
signalled=$(grep -c '^S STORM ' "$T/sub.out")
dropped=$(grep '^S vmsup-events-dropped ' "$T/sub.out" | sed -E 's/.*"count":([0-9]+).*/\1/' | awk '{ s += $1 } END { print s + 0 }')
diag "storm: $signalled STORM events signalled, $dropped announced as dropped"
check "storm: fewer signals than events (bounded)" test "$signalled" -lt 100000
check_eq "storm: signalled + announced dropped = 100,000" 100000 $((signalled + dropped))
check "storm: signals in order" bash -c "grep '^S STORM ' '$T/sub.out' | sed -E 's/.*\"i\":([0-9]+).*/\\1/' | sort -n -c"
exec {subfd}>&-
check "storm: the supervisor is alive" kill -0 "$SUP"

# --- QEMU stopped with calls pending; callers dying with calls pending
define_vm sig "{ \"qemu\": { \"binary\": \"$QEMU\", \"machine\": \"none\", \"accel\": \"tcg\", \"memory_mib\": 32 },
  \"autostart\": true, \"shutdown_timeout_sec\": 2,
  \"acl\": [ { \"user\": \"vmsupq-audit\", \"privileges\": [ \"VM.Audit\" ] },
             { \"user\": \"vmsupq-other\", \"privileges\": [ \"VM.Audit\" ] } ] }"
check_here "sigstop: supervisor starts" vmsupd_start sig
check "sigstop: the VM runs" wait_state sig running
QPID=$(vmprop_value sig Pid)
kill -STOP "$QPID"
as vmsupq-audit $PY "$FLOOD" sig 4 4 VM1 GetStatus > "$T/pending" 2>&1 &
DYING=$!
ATTACKERS+=($DYING)
check "sigstop: 16 calls pending" wait_for_line "$T/pending" '^SENT'
check_eq "sigstop: the loop answers State meanwhile" 's "running"' \
        "$(busctl --system get-property org.vmsup.VM.sig /org/vmsup/VM org.vmsup.VM1 State)"
# The caller dies with its 16 calls pending: its shares return when QEMU answers them.
pkill -KILL -P "$DYING"; kill -KILL "$DYING" 2>/dev/null; wait "$DYING" 2>/dev/null
kill -CONT "$QPID"
as vmsupq-other $PY "$FLOOD" sig 1 1 VM1 GetStatus > "$T/other" 2>&1
check_eq "sigcont: another caller's GetStatus answered" "done 1 0 0" "$(tail -1 "$T/other")"
released() {
        local i
        for i in $(seq 100); do
                as vmsupq-audit $PY "$FLOOD" sig 4 4 VM1 GetStatus > "$T/again" 2>&1
                [[ $(tail -1 "$T/again") == "done 16 0 0" ]] && return 0
                sleep 0.1
        done
        cat "$T/again" >&2
        return 1
}
check "sigcont: the dead caller's uid has its 16 shares again" released
check "sigstop: the supervisor is alive" kill -0 "${VMSUPD_PID[sig]}"

finish
