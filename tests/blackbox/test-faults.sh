#!/bin/bash
# Injected faults against a real vmsupd, each case checked for the supervisor's memory,
# its loop (another caller answered) and correctness:
#   - an event storm from a fake QEMU (100,000 events as fast as the supervisor reads):
#     memory bounded, the ring bounded, Event signals to a subscriber bounded (the rest
#     announced by vmsup-events-dropped, nothing lost from the count);
#   - QEMU stopped (SIGSTOP) with calls pending: the loop answers, SIGCONT recovers;
#   - callers dying with calls pending: their shares come back;
#   - a hostile QEMU (the fake, on cue): lines it is not owed are dropped and the stream goes
#     on (replies with ids no request has, duplicate replies, replies to requests never made,
#     events with malformed data, a reply line of hundreds of MiB); a stream that is not
#     QMP any more (garbage, binary bytes, NUL bytes, a greeting without capabilities, the
#     socket closed inside a line) ends that QEMU (SIGKILL, crashed, qmp-protocol-error),
#     and the VM can be started again;
#   - the bus daemon killed under the supervisor: it exits 1 (for the service manager to
#     restart it), QEMU runs on under its launcher, and the next supervisor on a new bus
#     adopts the same QEMU.
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

# --- a hostile QEMU
FQ=$T/fq
mkdir -p "$FQ"
chmod 0777 "$FQ"
define_vm hq "{ \"qemu\": { \"binary\": \"$FAKE\", \"machine\": \"none\", \"accel\": \"tcg\", \"memory_mib\": 32,
  \"extra_args\": [ \"-fake-dir\", \"$FQ\" ] }, \"agent\": false, \"autostart\": true, \"shutdown_timeout_sec\": 2,
  \"acl\": [ { \"user\": \"vmsupq-audit\", \"privileges\": [ \"VM.Audit\" ] },
             { \"user\": \"vmsupq-other\", \"privileges\": [ \"VM.Audit\" ] } ] }"
check_here "hostile: supervisor starts" vmsupd_start hq
check "hostile: the fake QEMU runs" wait_state hq running
HSUP=${VMSUPD_PID[hq]}
peak_reset "$HSUP"
HPID=$(vmprop_value hq Pid)
# qmp_status USER: QEMU's own status, through GetStatus (empty when QEMU gave none).
qmp_status() {
        as "$1" busctl --system --timeout=60 call org.vmsup.VM.hq /org/vmsup/VM org.vmsup.VM1 GetStatus |
                grep -oE '"qmp-status" s "[a-z-]*"' | sed -E 's/.* s "(.*)"/\1/'
}
# inject PRINTF-FORMAT [FILE]: the fake sends these bytes (printf's escapes, \0 included) at
# once (FILE inject) or just before its next reply (inject-reply).
inject() {
        local f=${2:-inject}
        rm -f "$FQ/$f-sent"
        printf "$1" > "$FQ/.$f"
        mv "$FQ/.$f" "$FQ/$f"
}
# alive CASE: the supervisor runs, another caller's State answers, the QEMU is the same one
# and runs (the VM's state is QEMU's).
alive() {
        check "$1: the supervisor is alive" kill -0 "$HSUP"
        check_eq "$1: another caller's State answers: running, same QEMU" "running $HPID" \
                "$(as vmsupq-other busctl --system get-property org.vmsup.VM.hq /org/vmsup/VM org.vmsup.VM1 State |
                   sed -E 's/^s "(.*)"$/\1/') $(vmprop_value hq Pid)"
        check "$1: that QEMU still runs" kill -0 "$HPID"
        check_eq "$1: QEMU answers the next request in step" running "$(qmp_status vmsupq-other)"
}
# ended CASE: the supervisor ended that QEMU as a protocol violator; it answers, and the
# VM starts again.
ended() {
        check "$1: the VM is crashed" wait_state hq crashed 30
        check_eq "$1: StateReason says why" qmp-protocol-error "$(vmprop_value hq StateReason)"
        check "$1: that QEMU is gone" bash -c "for i in \$(seq 100); do kill -0 $HPID 2>/dev/null || exit 0; sleep 0.1; done; exit 1"
        check "$1: the supervisor is alive" kill -0 "$HSUP"
        check "$1: the supervisor logged it" grep -q 'QMP protocol error' "$T/logs/hq.log"
        check "$1: Start again" vmcall hq VM1 Start
        check "$1: running again" wait_state hq running
        HPID=$(vmprop_value hq Pid)
        check_eq "$1: the new QEMU answers" running "$(qmp_status vmsupq-other)"
}

# Replies with ids no request has, just before the real reply: dropped; the real one answers.
inject '{"return": {"status": "paused", "running": false}, "id": 4242}\r\n{"return": {}, "id": "x"}\r\n{"return": {}, "id": -1}\r\n{"return": {}, "id": 9007199254740993}\r\n' inject-reply
check_eq "wrong ids: GetStatus gets its own reply, not the stray ones" running "$(qmp_status vmsupq-audit)"
check "wrong ids: the fake sent them" test -e "$FQ/inject-reply-sent"
alive "wrong ids"
# Replies to requests never made, nothing pending: dropped (an id-less error is logged as an
# anomaly).
inject '{"return": {}, "id": 77}\r\n{"return": {"status": "paused"}}\r\n{"error": {"class": "GenericError", "desc": "stray"}}\r\n'
check "never made: the fake sent them" wait_file "$FQ/inject-sent"
check "never made: the id-less error is logged as an anomaly" \
        wait_for_line "$T/logs/hq.log" 'QMP protocol anomaly: error reply without an id \(stray\), with no request waiting'
alive "never made"
# A duplicate reply: the earlier query-status reply (paused) again, just before the reply to
# a later query-status (running): the later request gets its own.
vmcall hq VM1 Pause > /dev/null
touch "$FQ/dup-go"
check_eq "duplicate: GetStatus while paused" paused "$(qmp_status vmsupq-audit)"
vmcall hq VM1 Resume > /dev/null
check "duplicate: resumed" wait_state hq running
check_eq "duplicate: the next GetStatus gets its own reply, not the duplicate" running "$(qmp_status vmsupq-audit)"
check "duplicate: the fake sent the duplicate" test -e "$FQ/dup-sent"
alive "duplicate"
# Events with malformed data: data not an object (passed as {}), a name that is not a string
# (dropped), a garbled timestamp (the supervisor's clock instead).
inject '{"event": "FAKE_ARRAY", "data": [1, 2], "timestamp": {"seconds": 1, "microseconds": 0}}\r\n{"event": 42, "data": {}}\r\n{"event": "FAKE_STAMP", "data": {"a": 1}, "timestamp": "yesterday"}\r\n{"event": "FAKE_STR", "data": "x"}\r\n'
check "malformed events: the fake sent them" wait_file "$FQ/inject-sent"
events_of() { as vmsupq-audit $PY "$EV" call hq GetEvents 0; }
check "malformed events: data not an object recorded as {}" bash -c "for i in \$(seq 100); do $PY '$EV' call hq GetEvents 0 | grep -q '^G [0-9]* FAKE_ARRAY {}\$' && exit 0; sleep 0.1; done; exit 1"
check_match "malformed events: a garbled timestamp, the data kept" 'FAKE_STAMP \{"a": ?1\}' "$(events_of)"
check_match "malformed events: data a string, recorded as {}" 'FAKE_STR \{\}' "$(events_of)"
alive "malformed events"
# A reply line of 300 MiB without a newline before its end: dropped unread as it comes, the
# request it answers fails ResponseTooLarge, memory stays bounded, the stream stays in step.
peak_reset "$HSUP"
touch "$FQ/endless-go"
check_match "endless line: the request it answers fails" 'ResponseTooLarge' \
        "$(dsend_as root hq Monitor1.Execute 'string:{"execute":"query-status"}' 2>&1)"
check "endless line: the fake sent 300 MiB" wait_file "$FQ/endless-sent"
hwm=$(proc_kb "$HSUP" VmHWM)
diag "endless line: supervisor VmHWM ${hwm} kB through a 300 MiB line"
check "endless line: the supervisor's peak RSS stayed below $((limit / 1024)) MiB" test "$hwm" -lt "$limit"
alive "endless line"

# The stream is not QMP any more: that QEMU ends, the VM starts again.
inject 'this is not JSON\r\n'
ended "garbage"
inject '\001\377\376{]\033[2J\r\n'
ended "binary"
inject '{"event": "X\0Y", "data": {}}\r\n'
ended "NUL bytes"
# Closing the socket in the middle of a reply: the call fails, the VM ends.
touch "$FQ/close-go"
out=$(as vmsupq-audit busctl --system --timeout=60 call org.vmsup.VM.hq /org/vmsup/VM org.vmsup.VM1 GetStatus 2>&1)
diag "closed mid-reply: GetStatus said: $out"
check "closed mid-reply: the fake closed" test -e "$FQ/close-sent"
rm -f "$FQ/close-go"
ended "closed mid-reply"
# QEMU's last words: a SHUTDOWN event written just before QEMU exits decides the reason,
# even when the launcher's exit report is there first (the supervisor stopped meanwhile,
# both are readable when it goes on).
check_eq "poweroff: running" running "$(vmprop_value hq State)"
qpid=$(vmprop_value hq Pid)
kill -STOP "${VMSUPD_PID[hq]}"
touch "$FQ/poweroff-go"
for i in $(seq 200); do [[ -e /proc/$qpid ]] || break; sleep 0.05; done
check "poweroff: the fake QEMU exited and was reaped" test ! -e "/proc/$qpid"
sleep 0.2 # the launcher writes its exit report right after reaping
kill -CONT "${VMSUPD_PID[hq]}"
rm -f "$FQ/poweroff-go"
check "poweroff: stopped" wait_state hq stopped 20
check_eq "poweroff: the reason is the SHUTDOWN event's, not the exit status" guest-shutdown "$(vmprop_value hq StateReason)"
# A greeting without capabilities: that QEMU never becomes the VM's.
define_vm hqn "{ \"qemu\": { \"binary\": \"$FAKE\", \"machine\": \"none\", \"accel\": \"tcg\", \"memory_mib\": 32,
  \"extra_args\": [ \"-fake-dir\", \"$FQ\", \"-fake-greeting\", \"nocaps\" ] }, \"agent\": false, \"autostart\": false }"
check_here "no capabilities: supervisor starts" vmsupd_start hqn
out=$(vmcall hqn VM1 Start 2>&1)
diag "no capabilities: Start said: $out"
check "no capabilities: Start fails" test -n "$out" -a "$(vmprop_value hqn State)" != running
check_match "no capabilities: the VM is not running" '^(crashed|stopped)$' "$(vmprop_value hqn State)"
check "no capabilities: no QEMU left" bash -c "for i in \$(seq 100); do pgrep -f -- '-fake-greeting nocap[s]' > /dev/null || exit 0; sleep 0.1; done; exit 1"
check "no capabilities: the supervisor is alive" kill -0 "${VMSUPD_PID[hqn]}"
check_match "no capabilities: it answers" '^(crashed|stopped)$' "$(vmprop_value hqn State)"
check "hostile: no sanitizer report" bash -c "! cat '$T'/logs/*.log | grep -E 'Sanitizer|runtime error'"

# --- the bus daemon killed under the supervisor (last: every supervisor here loses its bus)
define_vm busloss "{ \"qemu\": { \"binary\": \"$QEMU\", \"machine\": \"none\", \"accel\": \"tcg\", \"memory_mib\": 32 },
  \"autostart\": true, \"acl\": [ { \"user\": \"vmsupq-audit\", \"privileges\": [ \"VM.Audit\" ] } ] }"
check_here "bus loss: supervisor starts" vmsupd_start busloss
check "bus loss: the VM runs" wait_state busloss running
BPID=$(vmprop_value busloss Pid)
BSUP=${VMSUPD_PID[busloss]}
kill -KILL "$BUS_PID"
BUS_PID=
rc=0
wait "$BSUP" || rc=$?
unset "VMSUPD_PID[busloss]"
check_eq "bus loss: the supervisor exits 1, for the service manager to restart it" 1 "$rc"
check "bus loss: QEMU runs on without it" kill -0 "$BPID"
rm -f "$T/bus"
check "bus loss: a new bus" bus_start
check_here "bus loss: the next supervisor starts" vmsupd_start busloss
check "bus loss: it adopts the VM: running" wait_state busloss running
check_eq "bus loss: the same QEMU" "$BPID" "$(vmprop_value busloss Pid)"
check_eq "bus loss: StateReason reattached" reattached "$(vmprop_value busloss StateReason)"
check "bus loss: QEMU answers through it" vmcall busloss VM1 GetStatus

finish
