#!/bin/bash
# The VM's signals reach subscribers holding VM.Audit only: real clients on the bus
# (python3-dbus) add match rules for every signal of the VM, eavesdropping included, and
# receive nothing unless they subscribed; a subscriber receives StateChanged, Event and
# PropertiesChanged in the order of the event ring (GetEvents); Subscribe, Unsubscribe and
# GetEvents refuse callers without VM.Audit; a client that reads the state and then
# subscribes fills the gap from the ring; the ring and the subscribers are bounded, and a
# subscription ends with its connection. QEMU with machine "none": no guest needed.
source "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
EV="$ROOT/tests/blackbox/events.py"
$PY -c 'import dbus, gi' 2>/dev/null || { echo "not ok 1 - /usr/bin/python3 with python3-dbus and python3-gi missing"; exit 1; }
for u in vmsupe-none vmsupe-audit vmsupe-power; do ensure_user "$u"; done
bus_start || exit 1
host_acl '{}'
DENIED=org.freedesktop.DBus.Error.AccessDenied

define_vm ev "{ \"qemu\": { \"binary\": \"$QEMU\", \"machine\": \"none\", \"accel\": \"tcg\", \"memory_mib\": 32 },
  \"autostart\": true, \"shutdown_timeout_sec\": 2,
  \"acl\": [ { \"user\": \"vmsupe-audit\", \"privileges\": [ \"VM.Audit\" ] },
             { \"user\": \"vmsupe-power\", \"privileges\": [ \"VM.PowerMgmt\", \"VM.Console\", \"VM.Monitor\" ] } ] }"
check_here "supervisor starts" vmsupd_start ev
check "the VM runs" wait_state ev running

# --- followers: events.py follow, driven through a FIFO on its stdin
declare -A FD=()
FOLLOWERS=()
# follow ID USER [subscribe]
follow() {
        local id=$1 user=$2 fd
        shift 2
        mkfifo "$T/$id.in"
        if [[ $user == root ]]; then
                $PY "$EV" follow ev "$@" < "$T/$id.in" > "$T/$id.out" 2>&1 &
        else
                as "$user" $PY "$EV" follow ev "$@" < "$T/$id.in" > "$T/$id.out" 2>&1 &
        fi
        FOLLOWERS+=($!)
        exec {fd}> "$T/$id.in"
        FD[$id]=$fd
        wait_for_line "$T/$id.out" '^(READY|error)' 30
}
say() { echo "$2" >&"${FD[$1]}"; }
# wait_count FILE REGEX N: until FILE has at least N lines matching REGEX.
wait_count() {
        local i
        for i in $(seq 600); do
                [[ $(grep -Ec -- "$2" "$1" 2>/dev/null) -ge $3 ]] && return 0
                sleep 0.05
        done
        return 1
}
# sync_all ID...: each follower has printed every signal the supervisor sent it so far.
sync_all() {
        local id n
        for id in "$@"; do
                n=$(grep -c '^SYNCED' "$T/$id.out")
                say "$id" sync
                wait_count "$T/$id.out" '^SYNCED' $((n + 1)) || { echo "$id did not sync" >&2; return 1; }
        done
}
signals_of() { grep -Ec '^(S|P|X) ' "$T/$1.out"; }
seq_of() { sed -n 's/^READY \([0-9]*\)$/\1/p' "$T/$1.out"; }
# A follower running as another user is a subshell (as) with the program as its child.
trap 'for p in "${FOLLOWERS[@]}"; do pkill -P "$p" 2>/dev/null; kill "$p" 2>/dev/null; done; cleanup' EXIT

# --- who may subscribe
for u in vmsupe-none vmsupe-power; do
        out=$(as $u $PY "$EV" call ev Subscribe 2>&1)
        check_eq "$u: Subscribe is AccessDenied" "error $DENIED" "$out"
        out=$(as $u $PY "$EV" call ev GetEvents 0 2>&1)
        check_eq "$u: GetEvents is AccessDenied" "error $DENIED" "$out"
        out=$(as $u $PY "$EV" call ev Unsubscribe 2>&1)
        check_eq "$u: Unsubscribe is AccessDenied" "error $DENIED" "$out"
done
out=$(dsend_as vmsupe-none ev VM1.Subscribe 2>&1)
check_match "the refusal names VM.Audit" 'VM.Audit privilege required' "$out"
out=$(as vmsupe-audit $PY "$EV" call ev Subscribe 2>&1)
check_match "VM.Audit: Subscribe returns the sequence number" '^reply [0-9]+$' "$out"
out=$(as vmsupe-audit $PY "$EV" call ev Unsubscribe 2>&1)
check_eq "VM.Audit: Unsubscribe without a subscription is fine" "reply " "$out"

check_here "no rights, match rules only: listening" follow none vmsupe-none
check_here "VM.PowerMgmt without VM.Audit, match rules only: listening" follow power vmsupe-power
check_eq "VM.PowerMgmt without VM.Audit cannot subscribe" "error $DENIED" \
        "$(as vmsupe-power $PY "$EV" follow ev subscribe < /dev/null 2>&1 | grep -m1 "^error")"
check_here "VM.Audit, match rules but no subscription: listening" follow audnosub vmsupe-audit
check_here "VM.Audit, subscribed" follow sub vmsupe-audit subscribe
check_here "root, subscribed" follow rootsub root subscribe
SUBSEQ=$(seq_of sub)

# --- lifecycle: every kind of signal
vmcall ev VM1 Pause > /dev/null
vmcall ev VM1 Resume > /dev/null
vmcall ev VM1 Reset > /dev/null
vmcall ev VM1 Stop > /dev/null
vmcall ev VM1 Start > /dev/null
check "the VM runs again" wait_state ev running
check "everyone synced" sync_all none power audnosub sub rootsub
check_eq "no rights: nothing received" 0 "$(signals_of none)"
check_eq "VM.PowerMgmt without VM.Audit: nothing received" 0 "$(signals_of power)"
check_eq "VM.Audit without subscribing: nothing received" 0 "$(signals_of audnosub)"
check "subscriber: StateChanged paused" grep -qx 'S StateChanged {"state":"paused","reason":"host-qmp-stop"}' "$T/sub.out"
check "subscriber: the STOP event" grep -qx 'S STOP {}' "$T/sub.out"
check "subscriber: the RESET event" grep -q '^S RESET ' "$T/sub.out"
check "subscriber: StateChanged stopped" grep -q '^S StateChanged {"state":"stopped"' "$T/sub.out"
check "subscriber: StateChanged running started" grep -qx 'S StateChanged {"state":"running","reason":"started"}' "$T/sub.out"
check "subscriber: PropertiesChanged of State and StateReason" grep -q '^P org.vmsup.VM1 State=paused StateReason=host-qmp-stop$' "$T/sub.out"
check "subscriber: PropertiesChanged of Pid" grep -Eq '^P org.vmsup.VM1 Pid=[1-9][0-9]*$' "$T/sub.out"
check "root subscriber received the same StateChanged and Event" \
        diff <(grep '^S ' "$T/sub.out") <(grep '^S ' "$T/rootsub.out")

# In order, and exactly the ring's events after the subscription's sequence number.
say sub "events $SUBSEQ"
check "GetEvents answered the subscriber" wait_for_line "$T/sub.out" '^END'
grep '^G ' "$T/sub.out" | cut -d' ' -f3- > "$T/ring"
grep '^S ' "$T/sub.out" | cut -d' ' -f2- > "$T/signals"
check_eq "signals and ring: the same count" "$(wc -l < "$T/ring")" "$(wc -l < "$T/signals")"
check "signals in the ring's order, none missing" diff "$T/ring" "$T/signals"
check "sequence numbers follow each other from Subscribe's" \
        bash -c "grep '^G ' '$T/sub.out' | awk -v s=$SUBSEQ '{ if (\$2 != ++s) exit 1 }'"

# --- read the state, then subscribe: the ring fills the gap
status=$(as vmsupe-audit busctl --system call org.vmsup.VM.ev /org/vmsup/VM org.vmsup.VM1 GetStatus 2>&1)
E=$(sed -n 's/.*"event-seq" t \([0-9]*\).*/\1/p' <<< "$status")
check_match "GetStatus has event-seq" '^[0-9]+$' "$E"
vmcall ev VM1 Pause > /dev/null # between the read and the subscription
check_here "a late subscriber" follow late vmsupe-audit subscribe
LATE=$(seq_of late)
say late "events $E"
check "late: answered" wait_for_line "$T/late.out" '^END'
check "late: the gap holds the pause" grep -q "^G [0-9]* StateChanged {\"state\":\"paused\"" "$T/late.out"
check "late: nothing in the gap after Subscribe's number" \
        bash -c "grep '^G ' '$T/late.out' | awk -v s=$LATE '{ if (\$2 > s) exit 1 }'"
vmcall ev VM1 Resume > /dev/null
sync_all late
check "late: the resume came as a signal" grep -qx 'S StateChanged {"state":"running","reason":"host-qmp-cont"}' "$T/late.out"

# --- Unsubscribe: no more signals
say sub unsubscribe
check "unsubscribed" wait_for_line "$T/sub.out" '^UNSUBSCRIBED'
before=$(signals_of sub)
vmcall ev VM1 Pause > /dev/null
vmcall ev VM1 Resume > /dev/null
sync_all sub rootsub none
check_eq "after Unsubscribe: nothing more" "$before" "$(signals_of sub)"
check "root, still subscribed, saw that pause" grep -c 'StateChanged {"state":"paused","reason":"host-qmp-stop"}' "$T/rootsub.out"
check_eq "no rights: still nothing" 0 "$(signals_of none)"

# --- the ring is bounded: 2400 events, GetEvents returns the last 1024 in order
$PY - <<'PY'
import os, dbus
c = dbus.bus.BusConnection(os.environ["DBUS_SYSTEM_BUS_ADDRESS"])
for _ in range(600):
    for m in ("Pause", "Resume"):
        c.call_blocking("org.vmsup.VM.ev", "/org/vmsup/VM", "org.vmsup.VM1", m, "", [], timeout=60)
PY
$PY "$EV" call ev GetEvents 0 > "$T/all" 2>&1
check_eq "GetEvents 0: the ring's 1024 events" "END 1024" "$(tail -1 "$T/all")"
check "the ring's sequence numbers are consecutive" \
        bash -c "grep '^G ' '$T/all' | awk 'NR > 1 && \$2 != p + 1 { exit 1 } { p = \$2 }'"
last=$($PY "$EV" call ev Subscribe | cut -d' ' -f2)
check_eq "the ring ends at Subscribe's number" "$last" "$(grep '^G ' "$T/all" | tail -1 | cut -d' ' -f2)"
check_eq "GetEvents after the last: nothing" "END 0" "$($PY "$EV" call ev GetEvents "$last" | tail -1)"
check_eq "GetEvents 2^64-1: nothing" "END 0" "$($PY "$EV" call ev GetEvents 18446744073709551615 | tail -1)"
check_fails "GetEvents with a wrong signature is InvalidArgs" 'InvalidArgs|Invalid' \
        busctl --system call org.vmsup.VM.ev /org/vmsup/VM org.vmsup.VM1 GetEvents s x

# --- subscribers are bounded; a subscription ends with its connection
# Their stdin ends: they leave the bus.
for id in "${!FD[@]}"; do exec {FD[$id]}>&-; done
wait "${FOLLOWERS[@]}" 2>/dev/null
FOLLOWERS=()
# The departures are handled as the bus reports them: until then the slots stay taken.
full_ok() {
        local i
        for i in $(seq 100); do
                as vmsupe-audit $PY "$EV" many ev 65 < /dev/null > "$T/many" 2>&1
                grep -q '^ok 64 busy 1 other 0$' "$T/many" && return 0
                sleep 0.1
        done
        cat "$T/many" >&2
        return 1
}
check "65 subscriptions: 64 taken, the 65th Busy, the departed ones released" full_ok
mkfifo "$T/hold.in"
as vmsupe-audit $PY "$EV" many ev 64 < "$T/hold.in" > "$T/hold.out" 2>&1 &
HOLDER=$!
exec {hold}> "$T/hold.in"
check "a holder of 64 subscriptions" wait_for_line "$T/hold.out" '^HOLDING' 60
check_eq "the holder got them all" "ok 64 busy 0 other 0" "$(head -1 "$T/hold.out")"
check_eq "one more is Busy" "error org.vmsup.Error.Busy" "$($PY "$EV" call ev Subscribe 2>&1)"
exec {hold}>&-
wait "$HOLDER"
released() {
        local i
        for i in $(seq 200); do
                [[ $($PY "$EV" call ev Subscribe 2>&1) == reply* ]] && return 0
                sleep 0.05
        done
        return 1
}
check "the holder gone, Subscribe succeeds again" released
check "the supervisor is alive" kill -0 "${VMSUPD_PID[ev]}"
check_eq "State still answers" 's "running"' "$(busctl --system get-property org.vmsup.VM.ev /org/vmsup/VM org.vmsup.VM1 State)"

finish
