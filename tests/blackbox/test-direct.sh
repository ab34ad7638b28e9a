#!/bin/bash
# The direct socket (RUNTIME/NAME.bus): peer-to-peer D-Bus past the bus daemon. The same
# calls as over the bus from root, a VM.Audit user and a user with no right at all (refused
# exactly as over the bus), descriptors both ways, signals to a direct subscriber, a silent
# connector that blocks nobody, the connection caps, and disconnections that free everything.
source "$(dirname "$0")/lib.sh"

DIRECT=$T/run/d1.bus
PY=/usr/bin/python3
DPY=$ROOT/tests/blackbox/direct.py
for u in vmsupd-none vmsupd-audit vmsupd-many; do ensure_user "$u"; done
bus_start || exit 1
host_acl '{}'
define_vm d1 "$(cat <<DEF
{ "qemu": { "binary": "$QEMU", "machine": "none", "accel": "tcg", "memory_mib": 32 },
  "autostart": false, "shutdown_timeout_sec": 2,
  "acl": [ { "user": "vmsupd-audit", "privileges": [ "VM.Audit" ] },
           { "user": "vmsupd-many", "privileges": [ "VM.Audit" ] } ] }
DEF
)"
define_vm d2 "{ \"qemu\": { \"binary\": \"$QEMU\", \"machine\": \"q35\", \"accel\": \"tcg\", \"memory_mib\": 64 },
  \"autostart\": false, \"shutdown_timeout_sec\": 2 }"

direct() { "$PY" "$DPY" "$@"; }
direct_as() { local u=$1; shift; as "$u" "$PY" "$DPY" "$@"; }
# spawn_as USER ARGS... &: the same in the background, $! being the client itself.
spawn_as() { local u=$1; shift; exec setpriv --reuid="$(id -u "$u")" --regid="$(id -g "$u")" --clear-groups "$PY" "$DPY" "$@"; }
# The supervisor's open descriptors: sockets (connections) among them.
sockets_of() { find "/proc/${VMSUPD_PID[d1]}/fd" -lname 'socket:*' 2>/dev/null | wc -l; }

check_here "vmsupd starts" vmsupd_start d1
check "the direct socket exists, a socket" test -S "$DIRECT"
check_eq "the direct socket is mode 0666 (the ACLs decide)" 666 "$(stat -c %a "$DIRECT")"

# --- the same answers as over the bus
check_eq "root: State over the direct socket" "ok stopped" "$(direct get "$DIRECT" State)"
check_eq "VM.Audit user: State over the direct socket" "ok stopped" "$(direct_as vmsupd-audit get "$DIRECT" State)"
check_match "VM.Audit user: GetStatus over the direct socket" '^ok .*state.*stopped' \
        "$(direct_as vmsupd-audit call "$DIRECT" VM1 GetStatus)"
# same_as_bus USER DESCRIPTION CALL...: the direct answer equals the bus's, and is given.
same_as_bus() {
        local user=$1 desc=$2 via_bus via_direct
        shift 2
        if [[ $user == root ]]; then
                via_bus=$(direct "$1" bus:d1 "${@:2}"); via_direct=$(direct "$1" "$DIRECT" "${@:2}")
        else
                via_bus=$(direct_as "$user" "$1" bus:d1 "${@:2}"); via_direct=$(direct_as "$user" "$1" "$DIRECT" "${@:2}")
        fi
        if [[ -n $via_bus && $via_bus == "$via_direct" ]]; then
                ok "$desc: $via_direct"
        else
                not_ok "$desc"
                diag "bus:    $via_bus"
                diag "direct: $via_direct"
        fi
}
same_as_bus vmsupd-none "no right: State refused as over the bus" get State
same_as_bus vmsupd-none "no right: GetStatus refused as over the bus" call VM1 GetStatus
same_as_bus vmsupd-none "no right: Start refused as over the bus" call VM1 Start
same_as_bus vmsupd-none "no right: GetEvents refused as over the bus" call VM1 GetEvents t 0
same_as_bus vmsupd-none "no right: Subscribe refused as over the bus" call VM1 Subscribe
same_as_bus vmsupd-none "no right: Monitor1.Execute refused as over the bus" call Monitor1 Execute s '{"execute":"query-status"}'
same_as_bus vmsupd-none "no right: HumanCommand refused as over the bus" call Monitor1 HumanCommand s 'info status'
same_as_bus vmsupd-none "no right: Agent1.Command refused as over the bus" call Agent1 Command s '{"execute":"guest-ping"}'
same_as_bus vmsupd-none "no right: Properties.GetAll refused as over the bus" call org.freedesktop.DBus.Properties GetAll s org.vmsup.VM1
same_as_bus vmsupd-none "no right: Properties.Set refused as over the bus" call org.freedesktop.DBus.Properties Set ssv org.vmsup.VM1 State x
same_as_bus vmsupd-none "no right: an unknown method as over the bus" call VM1 NoSuchMethod
same_as_bus vmsupd-none "no right: the wrong signature as over the bus" call VM1 GetEvents s x
big=$(head -c 100000 /dev/zero | tr '\0' x)
same_as_bus vmsupd-none "no right: a 100 kB HumanCommand refused as over the bus" call Monitor1 HumanCommand s "$big"
same_as_bus root "root: a 100 kB Execute request refused as over the bus" call Monitor1 Execute s "{\"execute\":\"$big\"}"
deep=$(printf '[%.0s' $(seq 100))$(printf ']%.0s' $(seq 100))
same_as_bus root "root: 100 levels of nesting refused as over the bus" call Monitor1 Execute s "{\"execute\":\"x\",\"arguments\":{\"a\":$deep}}"
same_as_bus root "root: GetEvents with a string for a number as over the bus" call VM1 GetEvents s 0
same_as_bus vmsupd-audit "VM.Audit user: Start refused as over the bus" call VM1 Start
same_as_bus vmsupd-audit "VM.Audit user: Monitor1.Execute refused as over the bus" call Monitor1 Execute s '{"execute":"query-status"}'
same_as_bus vmsupd-audit "VM.Audit user: GetEvents as over the bus" call VM1 GetEvents t 0
same_as_bus root "root: GetEvents as over the bus" call VM1 GetEvents t 0

# --- root drives the VM over the direct socket; signals reach a direct subscriber
direct subscribe "$DIRECT" > "$T/sub.out" 2>&1 &
SUB=$!
check "a direct subscriber subscribes" wait_for_line "$T/sub.out" READY 20
check_eq "root: Start over the direct socket" "ok None" "$(direct call "$DIRECT" VM1 Start)"
check "the VM runs (over the bus)" wait_state d1 running 30
check "StateChanged reached the direct subscriber" wait_for_line "$T/sub.out" 'signal StateChanged running' 20
check_match "root: Monitor1.Execute over the direct socket" '^ok .*running' \
        "$(direct call "$DIRECT" Monitor1 Execute s '{"execute":"query-status"}')"

# --- descriptors: negotiated, and refused where the method takes none
check_match "a descriptor on GetStatus is refused (it arrived)" 'takes no file descriptors' \
        "$(direct fdon "$DIRECT" VM1 GetStatus)"
check_match "no right: a descriptor on GetStatus refused the same" 'takes no file descriptors' \
        "$(direct_as vmsupd-none fdon "$DIRECT" VM1 GetStatus)"
check_match "no right: Screenshot with a descriptor refused, names VM.Console" 'AccessDenied.*VM.Console' \
        "$(direct_as vmsupd-none fdon "$DIRECT" Console1 Screenshot)"
check_match "root: Screenshot takes its descriptor (QEMU has no display to dump)" '^error org.vmsup.Error' \
        "$(direct fdon "$DIRECT" Console1 Screenshot)"
check_here "a VM with a serial port (q35, no kernel)" vmsupd_start d2
check "d2 starts" vmcall d2 VM1 Start
check_eq "root: OpenSerial returns a descriptor over the direct socket" "ok fd" "$(direct serial "$T/run/d2.bus")"
check_eq "no right: OpenSerial refused as over the bus" "$(direct_as vmsupd-none serial bus:d2)" \
        "$(direct_as vmsupd-none serial "$T/run/d2.bus")"
check "d2 stops" vmcall d2 VM1 Stop
check_here "d2's supervisor exits" vmsupd_stop d2

# --- a silent connector blocks nobody and is closed after the handshake timeout
direct silent "$DIRECT" > "$T/silent.out" 2>&1 &
SILENT=$!
check "a silent connector is connected" wait_for_line "$T/silent.out" SILENT 10
check_eq "root: State while a connector stays silent" "ok running" "$(direct get "$DIRECT" State)"
check_eq "over the bus too" running "$(vmprop_value d1 State)"
check "the silent connector is closed by the supervisor" wait_for_line "$T/silent.out" CLOSED 30
wait "$SILENT" 2>/dev/null

# --- a peer that reads none of its replies is cut off (the bus daemon bounds that too)
check_eq "a peer that leaves 100 replies unread stays connected" OPEN "$(direct_as vmsupd-audit unread "$DIRECT" 100)"
check_eq "a peer that leaves 20000 replies unread is disconnected" CLOSED "$(direct_as vmsupd-none unread "$DIRECT" 20000)"
check_eq "the others are still served" "ok running" "$(direct get "$DIRECT" State)"

# --- the caps: 16 per user, 64 in all with 8 kept for root; freed on disconnect
base=$(sockets_of)
spawn_as vmsupd-many hold "$DIRECT" 20 > "$T/hold.out" 2>&1 &
HOLD=$!
check "20 connections of one user: held" wait_for_line "$T/hold.out" HOLDING 60
check_eq "16 served, the 4 beyond the cap refused (closed at once)" "error org.freedesktop.DBus.Error.NoReply: 4,ok: 16,HOLDING" \
        "$(paste -sd, "$T/hold.out")"
check_eq "another user is still served" "ok running" "$(direct_as vmsupd-audit get "$DIRECT" State)"
check_eq "the supervisor holds 16 more sockets" 16 "$(( $(sockets_of) - base ))"
kill "$HOLD" 2>/dev/null; wait "$HOLD" 2>/dev/null
for i in $(seq 100); do [[ $(sockets_of) -le $base ]] && break; sleep 0.1; done
check_eq "disconnected: every socket freed" "$base" "$(sockets_of)"

holders=()
spawn_as vmsupd-many hold "$DIRECT" 16 > "$T/h1.out" 2>&1 & holders+=($!)
spawn_as vmsupd-audit hold "$DIRECT" 16 > "$T/h2.out" 2>&1 & holders+=($!)
spawn_as vmsupd-none hold "$DIRECT" 16 > "$T/h3.out" 2>&1 & holders+=($!)
spawn_as vmsup-qemu hold "$DIRECT" 16 > "$T/h4.out" 2>&1 & holders+=($!)
for f in h1 h2 h3 h4; do wait_for_line "$T/$f.out" HOLDING 60; done
served=$(cat "$T"/h[1-4].out | awk -F': ' '$1 == "ok" || $1 ~ /AccessDenied/ { n += $2 } END { print n + 0 }')
check_eq "other users hold 56 connections at most (8 kept for root)" 56 "$served"
check_eq "root is still served with 56 others connected" "ok running" "$(direct get "$DIRECT" State)"
kill "${holders[@]}" 2>/dev/null; wait "${holders[@]}" 2>/dev/null
for i in $(seq 100); do [[ $(sockets_of) -le $base ]] && break; sleep 0.1; done
check_eq "all disconnected: every socket freed" "$base" "$(sockets_of)"
check_eq "and a new user connection is served" "ok running" "$(direct_as vmsupd-audit get "$DIRECT" State)"

# --- vmsupctl: the direct socket when it answers, else the bus
ctl_direct() { "$VMSUPCTL" --direct --runtime-dir "$T/run" "$@"; }
check_match "vmsupctl --direct status (root)" 'running' "$(ctl_direct status d1 2>&1)"
check_match "vmsupctl --direct status (VM.Audit user)" 'running' "$(as vmsupd-audit "$VMSUPCTL" --direct --runtime-dir "$T/run" status d1 2>&1)"
out=$(as vmsupd-none "$VMSUPCTL" --direct --runtime-dir "$T/run" status d1 2>&1); rc=$?
check_eq "vmsupctl --direct, no right: exit 4" 4 "$rc"
check_match "vmsupctl --direct, no right: access denied, names VM.Audit" 'access denied.*VM.Audit' "$out"
check_match "auto: the direct socket, with no bus at all" 'running' \
        "$(VMSUP_BUS=unix:path=$T/nobus VMSUP_RUNTIME_DIR=$T/run "$VMSUPCTL" status d1 2>&1)"
check_match "auto: the bus when there is no direct socket" 'running' \
        "$(VMSUP_BUS=$BUS VMSUP_RUNTIME_DIR=$T/nodir "$VMSUPCTL" status d1 2>&1)"
out=$("$VMSUPCTL" --direct --runtime-dir "$T/nodir" status d1 2>&1); rc=$?
check_eq "--direct without a socket: exit 5" 5 "$rc"
check_match "--direct without a socket: says so" 'cannot use its direct socket' "$out"
out=$(VMSUP_RUNTIME_DIR=$T/run "$VMSUPCTL" --no-direct --bus unix:path=$T/nobus status d1 2>&1); rc=$?
check_eq "--no-direct: the bus only (none here): exit 1" 1 "$rc"
check_match "vmsupctl --direct monitor (HumanCommand)" 'VM status: running' "$(ctl_direct monitor d1 info status 2>&1)"
"$VMSUPCTL" --direct --runtime-dir "$T/run" events d1 > "$T/ctl-events.out" 2>&1 &
CTLEV=$!
check "vmsupctl --direct events: subscribed" wait_for_line "$T/ctl-events.out" READY 20
check "pause over the bus" vmcall d1 VM1 Pause
check "vmsupctl --direct events: StateChanged paused" wait_for_line "$T/ctl-events.out" 'paused' 20
check "resume" vmcall d1 VM1 Resume
kill "$CTLEV" 2>/dev/null; wait "$CTLEV" 2>/dev/null

# --- a subscriber that leaves is forgotten: Subscribe again from a new one works
kill "$SUB" 2>/dev/null; wait "$SUB" 2>/dev/null
check_match "GetStatus still answers after the subscriber left" '^ok' "$(direct call "$DIRECT" VM1 GetStatus)"
check "Stop over the bus" vmcall d1 VM1 Stop
check "stopped" wait_state d1 stopped 30
check "the supervisor is alive" kill -0 "${VMSUPD_PID[d1]}"
check_here "vmsupd exits on SIGTERM" vmsupd_stop d1
check_eq "exit status 0" 0 "$VMSUPD_RC"
check "the direct socket is removed at exit" test ! -e "$DIRECT"

finish
