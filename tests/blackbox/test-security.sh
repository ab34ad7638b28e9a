#!/bin/bash
# Callers with no right at all against the supervisor's own resources (machine
# "none": no guest needed): descriptors whose close would block (a lingering TCP
# socket) never stall the loop; ReadFile/WriteFile take only pipes, FIFOs and
# AF_UNIX stream sockets, checked before anything else; descriptors on calls that
# take none are refused; hundreds of connections leave the supervisor and QEMU
# running; losing the bus ends the supervisor with a failure status.
source "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
FDCALL="$ROOT/tests/blackbox/fdcall.py"
$PY -c 'import dbus' 2>/dev/null || { echo "not ok 1 - /usr/bin/python3 with the dbus module (python3-dbus) missing"; exit 1; }
for u in vmsups-none vmsups-none2 vmsups-none3; do ensure_user "$u"; done
bus_start || exit 1
host_acl '{}'
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
# The attackers run in subshells (as is a function): stop their programs, then them.
ATTACKERS=()
stop_attackers() {
        local p
        for p in "${ATTACKERS[@]}"; do pkill -P "$p" 2>/dev/null; kill "$p" 2>/dev/null; done
        wait "${ATTACKERS[@]}" 2>/dev/null
        ATTACKERS=()
}
trap 'stop_attackers; cleanup' EXIT
INVALID=org.freedesktop.DBus.Error.InvalidArgs

define_vm sec "{ \"qemu\": { \"binary\": \"$QEMU\", \"machine\": \"none\", \"accel\": \"tcg\", \"memory_mib\": 32 },
  \"autostart\": true, \"shutdown_timeout_sec\": 2, \"acl\": [] }"
check_here "supervisor starts" vmsupd_start sec
check "the VM runs" wait_state sec running
SUP=${VMSUPD_PID[sec]}

# --- a lingering TCP socket handed over by a caller with no right, all its copies closed
# first: the supervisor's close of the message's copy is never the last one.
as vmsups-none $PY "$FDCALL" linger sec > "$T/linger.out" 2>&1 &
ATTACKERS+=($!)
check "attacker: lingering socket sent with GetStatus" wait_for_line "$T/linger.out" '^SENT' 30
sleep 0.5 # the call is dispatched and refused meanwhile
t0=$(date +%s%N)
state=$(busctl --system --timeout=10 get-property org.vmsup.VM.sec /org/vmsup/VM org.vmsup.VM1 State 2>&1)
diag "root's State read during the linger attack: $(ms_since "$t0") ms"
check_eq "root's State read answers during the linger attack" 's "running"' "$state"
check "the supervisor is alive" kill -0 "$SUP"
# Ten more at once.
for i in $(seq 10); do
        as vmsups-none $PY "$FDCALL" linger sec > "$T/linger.$i.out" 2>&1 &
        ATTACKERS+=($!)
done
for i in $(seq 10); do wait_for_line "$T/linger.$i.out" '^SENT' 30 || break; done
sleep 0.5
t0=$(date +%s%N)
state=$(busctl --system --timeout=10 get-property org.vmsup.VM.sec /org/vmsup/VM org.vmsup.VM1 State 2>&1)
diag "root's State read after ten more lingering sockets: $(ms_since "$t0") ms"
check_eq "root's State read answers after ten more" 's "running"' "$state"
out=$(as vmsups-none $PY "$FDCALL" fdon sec VM1 GetStatus 2>&1)
check_eq "a descriptor on GetStatus is InvalidArgs" "error $INVALID" "$out"
out=$(as vmsups-none $PY "$FDCALL" fdon sec Monitor1 Execute 2>&1)
check_eq "a descriptor on Monitor1.Execute is InvalidArgs" "error $INVALID" "$out"

# --- ReadFile/WriteFile: the descriptor's kind, checked before anything else
for kind in dgram seqpacket opath dir regular rdonly; do
        out=$(as vmsups-none $PY "$FDCALL" readfile sec $kind 2>&1)
        check_eq "ReadFile into $kind: InvalidArgs, nothing written" "error $INVALID
written 0" "$out"
done
for kind in wronly dgram; do
        out=$(as vmsups-none $PY "$FDCALL" writefile sec $kind 2>&1)
        check_eq "WriteFile from $kind: InvalidArgs" "error $INVALID" "$out"
done
# The kinds taken pass the check (and meet the ACL).
for kind in pipe stream; do
        out=$(as vmsups-none $PY "$FDCALL" readfile sec $kind 2>&1)
        check_match "ReadFile into a $kind passes the type check (AccessDenied)" \
                '^error org.freedesktop.DBus.Error.AccessDenied' "$out"
done

# --- 600 connections from three users with no right, each making one call, all left open
for u in vmsups-none vmsups-none2 vmsups-none3; do
        as "$u" $PY "$FDCALL" connections sec 200 > "$T/conn.$u.out" 2>&1 &
        ATTACKERS+=($!)
done
for u in vmsups-none vmsups-none2 vmsups-none3; do
        check "200 connections from $u made their calls" wait_for_line "$T/conn.$u.out" '^HOLDING' 300
        check_match "$u: every call AccessDenied" '^error org.freedesktop.DBus.Error.AccessDenied: 200$' \
                "$(grep -v HOLDING "$T/conn.$u.out")"
done
check "the supervisor is alive after 600 connections" kill -0 "$SUP"
state=$(busctl --system --timeout=10 get-property org.vmsup.VM.sec /org/vmsup/VM org.vmsup.VM1 State 2>&1)
check_eq "root's State read answers with 600 connections open" 's "running"' "$state"
check "QEMU still runs" qemu_running_for sec
check "root's GetStatus answers" vmcall sec VM1 GetStatus
diag "supervisor: $(proc_kb "$SUP" VmRSS) kB RSS, $(ls /proc/"$SUP"/fd | wc -l) descriptors open"
stop_attackers

# --- losing the bus is a failure: the service manager restarts the supervisor
kill "$BUS_PID"
BUS_PID=
rc=0
wait "$SUP" || rc=$?
unset "VMSUPD_PID[sec]"
# 1 (EXIT_FAILURE); not 0, and not a signal's 128+N.
check_eq "the supervisor exits with a failure status when the bus goes" 1 "$rc"
diag "exit status: $rc"

finish
