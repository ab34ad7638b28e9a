#!/bin/bash
# vmsupctl, every verb against a real vmsupd (QEMU with machine "none"; the tiny
# guest for the agent verbs): as root, as callers with some rights and with none;
# exit statuses, error messages, and --json parsed by jq.
source "$(dirname "$0")/lib.sh"

for u in vmsupc-none vmsupc-audit vmsupc-all; do ensure_user "$u"; done
bus_start || exit 1
host_acl '{ "acl": [] }'

ctl() { "$VMSUPCTL" --bus "$BUS" "$@"; }
# rc_of CMD...: the exit status of CMD (its output goes to $T/out).
rc_of() { "$@" > "$T/out" 2>&1; echo $?; }
# check_rc DESCRIPTION STATUS PATTERN CMD...: CMD exits with STATUS and prints something matching PATTERN.
check_rc() {
        local desc=$1 want=$2 pat=$3 rc
        shift 3
        "$@" > "$T/out" 2>&1
        rc=$?
        if [[ $rc -eq $want ]] && grep -Eq -- "$pat" "$T/out"; then
                ok "$desc"
        else
                not_ok "$desc (exit $rc, wanted $want)"
                head -5 "$T/out" | sed 's/^/#   /'
                diag "expected: $pat"
        fi
}
# jq_ok DESCRIPTION FILTER CMD...: CMD succeeds and its output, parsed by jq, passes FILTER (jq -e).
jq_ok() {
        local desc=$1 filter=$2 rc
        shift 2
        "$@" > "$T/json" 2> "$T/json.err"
        rc=$?
        if [[ $rc -eq 0 ]] && jq -e "$filter" "$T/json" > /dev/null 2>&1; then
                ok "$desc"
        else
                not_ok "$desc (exit $rc)"
                head -c 600 "$T/json" "$T/json.err" | sed 's/^/#   /'
                diag "filter: $filter"
        fi
}

none_def() {
        cat <<DEF
{ "qemu": { "binary": "$QEMU", "machine": "none", "accel": "tcg", "memory_mib": 32 },
  "autostart": $1, "shutdown_timeout_sec": 2,
  "acl": [ { "user": "vmsupc-audit", "privileges": [ "VM.Audit" ] },
           { "user": "vmsupc-all", "privileges": [ "VM.Audit", "VM.PowerMgmt", "VM.Console", "VM.Monitor",
                                                   "VM.GuestAgent.Audit", "VM.GuestAgent.FileRead" ] } ] }
DEF
}

# --- usage errors: exit 2, nothing sent
check_rc "no verb: usage, exit 2" 2 'Usage: vmsupctl' ctl
check_rc "unknown verb: exit 2" 2 'unknown verb "frobnicate"' ctl frobnicate c1
check_rc "missing VM name: exit 2" 2 'usage: vmsupctl status NAME' ctl status
check_rc "too many arguments: exit 2" 2 'usage: vmsupctl start NAME' ctl start c1 c2
check_rc "invalid VM name: exit 2" 2 'invalid VM name "a.b"' ctl status a.b
check_rc "an option the verb does not take: exit 2" 2 'start does not take --force' ctl start c1 --force
check_rc "a non-number: exit 2" 2 'not a number: soon' ctl shutdown c1 --timeout soon
check_rc "qmp arguments that are not a JSON object: exit 2" 2 'not a JSON object' ctl qmp c1 query-status '[1]'
check_rc "sendkey without keys: exit 2" 2 'usage: vmsupctl sendkey' ctl sendkey c1
check_rc "unknown option: exit 2" 2 'unrecognized option' ctl --frob list
long=$(printf 'v%.0s' $(seq 65))
check_rc "a VM name of 65 characters: exit 2" 2 'invalid VM name' ctl status "$long"
check_rc "a VM name of 64 characters is a name (nobody serves it: exit 5)" 5 'no such VM' ctl status "${long:1}"
check_rc "a number beyond 64 bits: exit 2" 2 'not a number: 18446744073709551616' \
        ctl read-file c1 /x /dev/null --offset 18446744073709551616
check_rc "--timeout beyond 32 bits for shutdown: exit 2" 2 'too large' ctl shutdown c1 --timeout 4294967296
check_rc "--help: exit 0, names every verb" 0 'write-file NAME LOCAL_FILE GUEST_PATH' ctl --help
check_rc "unreachable bus: exit 1" 1 'cannot connect to the unix:path=/nonexistent bus' \
        "$VMSUPCTL" --bus unix:path=/nonexistent list

# --- list with no VM
check_rc "list with no VM: only the header" 0 '^NAME +STATE +PID +AGENT +REASON$' ctl list
jq_ok "list --json with no VM: []" 'length == 0' ctl list --json
check_rc "a VM nobody serves: exit 5, said in words" 5 \
        'c1: no such VM on the bus \(no supervisor serves it\) \(org.freedesktop.DBus.Error.ServiceUnknown' ctl status c1

# --- two supervisors: c1 stopped, c2 running
define_vm c1 "$(none_def false)"
define_vm c2 "$(none_def true)"
check_here "vmsupd c1 on the bus" vmsupd_start c1
check_here "vmsupd c2 on the bus" vmsupd_start c2
wait_state c2 running || not_ok "c2 running"
c2pid=$(vmprop_value c2 Pid)

out=$(ctl list)
check_match "list: c1 stopped" $'(^|\n)c1 +stopped +- +no ' "$out"
check_match "list: c2 running with its pid" "(^|"$'\n'")c2 +running +$c2pid +no +started" "$out"
jq_ok "list --json: both VMs with their properties" \
        'length == 2 and .[0].Name == "c1" and .[0].State == "stopped" and .[1].State == "running" and .[1].Pid > 0' \
        ctl list --json
check_eq "list --name: the names, sorted" "c1 c2" "$(ctl list --name | xargs)"
jq_ok "list --name --json" '. == ["c1","c2"]' ctl list --name --json
out=$(as vmsupc-none "$VMSUPCTL" --bus "$BUS" list); rc=$?
check_eq "list by a caller with no rights: exit 0" 0 "$rc"
check_match "... the VMs are listed, their state refused" $'c1 +- +- +- +access denied\nc2 +- +- +- +access denied' "$out"
jq_ok "... --json names the refusal" \
        '.[0].Name == "c1" and .[0].error.name == "org.freedesktop.DBus.Error.AccessDenied" and (.[0].error.message | test("VM.Audit"))' \
        as vmsupc-none "$VMSUPCTL" --bus "$BUS" list --json
check_eq "VMSUP_BUS is the default bus" "c1 c2" "$(VMSUP_BUS=$BUS "$VMSUPCTL" list --name | xargs)"

# --- status
check_rc "status of a stopped VM" 0 'State: stopped' ctl status c1
check_rc "status of a running VM names its pid" 0 "Pid: $c2pid" ctl status c2
jq_ok "status --json: properties and GetStatus" \
        ".Name == \"c2\" and .State == \"running\" and .Pid == $c2pid and .status[\"qmp-status\"] == \"running\" and .status[\"rss-bytes\"] > 0 and (.QemuVersion | test(\"^[0-9]+\\\\.[0-9]+\\\\.[0-9]+$\"))" \
        ctl status c2 --json
check_rc "status with VM.Audit" 0 'State: running' as vmsupc-audit "$VMSUPCTL" --bus "$BUS" status c2
check_rc "status with no rights: exit 4 and the missing privilege" 4 \
        'c2: access denied \(org.freedesktop.DBus.Error.AccessDenied: VM.Audit privilege required' \
        as vmsupc-none "$VMSUPCTL" --bus "$BUS" status c2

# --- lifecycle
for v in stop reset pause resume; do
        check_rc "$v of a stopped VM: exit 3" 3 'c1: the VM is not running \(org.vmsup.Error.NotRunning' ctl $v c1
done
check_rc "shutdown of a stopped VM: exit 3" 3 'not running' ctl shutdown c1
check_rc "sendkey to a stopped VM: exit 3" 3 'not running' ctl sendkey c1 ret
for v in start stop reset pause resume shutdown; do
        check_rc "$v with no rights: exit 4, names VM.PowerMgmt" 4 \
                'access denied \(org.freedesktop.DBus.Error.AccessDenied: VM.PowerMgmt privilege required' \
                as vmsupc-none "$VMSUPCTL" --bus "$BUS" $v c1
        check_rc "$v with VM.Audit only: exit 4" 4 'VM.PowerMgmt privilege required' \
                as vmsupc-audit "$VMSUPCTL" --bus "$BUS" $v c1
done
check_rc "sendkey with no rights: exit 4, names VM.Console" 4 'VM.Console privilege required' \
        as vmsupc-none "$VMSUPCTL" --bus "$BUS" sendkey c1 ctrl+alt+delete
check_eq "the refused calls left c1 stopped" stopped "$(vmprop_value c1 State)"
check "start" ctl start c1
check_eq "start returned with c1 running" running "$(vmprop_value c1 State)"
check_rc "start again: exit 1, already running" 1 'the VM is already running \(org.vmsup.Error.AlreadyRunning' ctl start c1
check "pause (VM.PowerMgmt)" as vmsupc-all "$VMSUPCTL" --bus "$BUS" pause c1
check_eq "paused" paused "$(vmprop_value c1 State)"
check "resume" ctl resume c1
check_eq "running again" running "$(vmprop_value c1 State)"
check "reset" ctl reset c1
check "sendkey ctrl+alt+delete (VM.Console)" as vmsupc-all "$VMSUPCTL" --bus "$BUS" sendkey c1 ctrl+alt+delete
check "sendkey with keys as arguments and --hold-ms" ctl sendkey c1 shift a --hold-ms 50
check_rc "sendkey with an unknown key: exit 2, invalid arguments" 2 'invalid arguments' ctl sendkey c1 'no;key'
check_rc "sendkey with 17 keys: exit 2, the supervisor's limit" 2 'invalid arguments .*between 1 and 16' \
        ctl sendkey c1 $(printf 'a %.0s' $(seq 17))
check "sendkey with 16 keys" ctl sendkey c1 $(printf 'a %.0s' $(seq 16))
check_rc "monitor, a line over 64 KiB: exit 2" 2 'invalid arguments .*64 KiB' ctl monitor c1 info "$(head -c 70000 /dev/zero | tr '\0' x)"
check_rc "monitor, a line over 64 KiB with no rights: exit 2 (validated first)" 2 'invalid arguments' \
        as vmsupc-none "$VMSUPCTL" --bus "$BUS" monitor c1 info "$(head -c 70000 /dev/zero | tr '\0' x)"
check_rc "shutdown that times out without --force: exit 1, timed out" 1 \
        'timed out \(org.freedesktop.DBus.Error.Timeout' ctl shutdown c1 --timeout 1
check_eq "... and the VM runs on" running "$(vmprop_value c1 State)"
check "shutdown --force stops it after the timeout" ctl shutdown c1 --timeout 1 --force
check_eq "... stopped" stopped "$(vmprop_value c1 State)"
check "start as a caller with VM.PowerMgmt" as vmsupc-all "$VMSUPCTL" --bus "$BUS" start c1
check "stop as that caller" as vmsupc-all "$VMSUPCTL" --bus "$BUS" stop c1
check_eq "stopped by stop" stopped "$(vmprop_value c1 State)"

# --- monitor, qmp
check_rc "monitor: HMP output" 0 '^VM status: running' ctl monitor c2 info status
jq_ok "monitor --json" '.output | test("VM status: running")' ctl monitor c2 info status --json
check_rc "monitor with VM.Monitor" 0 'VM status: running' as vmsupc-all "$VMSUPCTL" --bus "$BUS" monitor c2 info status
check_rc "monitor with no rights: exit 4, names VM.Monitor" 4 'access denied .*VM.Monitor' \
        as vmsupc-none "$VMSUPCTL" --bus "$BUS" monitor c2 info status
check_rc "monitor, a root-only command: exit 4, says root-only" 4 'access denied .*root' \
        as vmsupc-all "$VMSUPCTL" --bus "$BUS" monitor c2 quit
check_rc "monitor of a stopped VM: exit 3" 3 'not running' ctl monitor c1 info status
jq_ok "qmp COMMAND: pretty JSON of the return" '.status == "running" and .running == true' ctl qmp c2 query-status
check_match "qmp without --json is indented" $'^\\{\n  "' "$(ctl qmp c2 query-status)"
jq_ok "qmp --json: one compact line" '.running == true' ctl qmp c2 query-status --json
check_eq "... one line" 1 "$(ctl qmp c2 query-status --json | wc -l)"
jq_ok "qmp COMMAND ARGUMENTS" 'type == "array" and length > 0' ctl qmp c2 qom-list '{"path":"/machine"}'
jq_ok "qmp with a whole QMP object" '.status == "running"' ctl qmp c2 '{"execute":"query-status"}'
check_rc "qmp, a request the supervisor finds malformed: exit 2" 2 'invalid arguments \(org.freedesktop.DBus.Error.InvalidArgs' \
        ctl qmp c2 '{"execute":"query-status","id":1}'
check_rc "qmp, QEMU's error: exit 1, QemuError" 1 'QEMU reported an error \(org.vmsup.Error.QemuError: CommandNotFound' \
        ctl qmp c2 no-such-command
check_rc "qmp, reserved for the supervisor even for root: exit 4" 4 'reserved for the supervisor' ctl qmp c2 quit
check_rc "qmp with no rights: exit 4" 4 'access denied .*VM.Monitor' \
        as vmsupc-none "$VMSUPCTL" --bus "$BUS" qmp c2 query-status

# --- agent and files on a VM without a guest: the agent is not there
check_rc "agent without a guest agent: exit 1, said in words" 1 \
        'no guest agent is connected \(org.vmsup.Error.AgentNotConnected' ctl agent c2 guest-ping
check_rc "agent with no rights: exit 4, names the privilege" 4 'access denied .*VM.GuestAgent.Audit' \
        as vmsupc-none "$VMSUPCTL" --bus "$BUS" agent c2 guest-ping
echo data > "$T/local"
chmod 644 "$T/local"
check_rc "read-file with no rights: exit 4" 4 'access denied .*VM.GuestAgent.FileRead' \
        as vmsupc-none "$VMSUPCTL" --bus "$BUS" read-file c2 /etc/hostname /dev/null
check_rc "write-file with no rights: exit 4" 4 'access denied .*VM.GuestAgent.FileWrite' \
        as vmsupc-none "$VMSUPCTL" --bus "$BUS" write-file c2 "$T/local" /tmp/x
check_rc "write-file of a local file that does not exist: exit 1" 1 'cannot open /nonexistent' \
        ctl write-file c2 /nonexistent /tmp/x

# --- events: Subscribe (VM.Audit), then the signals addressed to this connection; text and JSON
check_rc "events with no rights: exit 4, names VM.Audit" 4 'access denied .*VM.Audit privilege required' \
        as vmsupc-none "$VMSUPCTL" --bus "$BUS" events c1 --timeout 1
as vmsupc-audit "$VMSUPCTL" --bus "$BUS" events c1 --json --count 3 > "$T/ev.json" 2>&1 &
evpid=$!
check "events --json: subscribed with VM.Audit" wait_for_line "$T/ev.json" '"type":"READY"'
ctl start c1
ctl pause c1
wait $evpid
check_eq "events --count 3 ends by itself after three signals" 0 $?
check "every events --json line is a JSON object" jq -e -s 'length == 4 and all(.[]; type == "object")' "$T/ev.json"
check "READY carries the sequence number" jq -e -s '.[0].type == "READY" and (.[0].seq | type) == "number"' "$T/ev.json"
check "StateChanged as JSON" jq -e -s 'any(.[]; .type == "StateChanged" and .state == "running" and .reason == "started")' "$T/ev.json"
check "Event as JSON, its data parsed" jq -e -s 'any(.[]; .type == "Event" and .name == "RESUME" and .data == {} and .timestamp_usec > 0)' "$T/ev.json"
ctl events c1 --timeout 1 > "$T/ev.txt" 2>&1
check_match "events --timeout ends it, exit 0" '^0 READY [0-9]+$' "$? $(cat "$T/ev.txt")"
# --since: the buffered events first (the start and the pause above), then nothing more.
ctl events c1 --since 0 --timeout 1 > "$T/ev.txt" 2>&1
check "events --since 0 replays the start" grep -q '^StateChanged running started$' "$T/ev.txt"
check "events --since 0 replays the pause" grep -q '^StateChanged paused host-qmp-stop$' "$T/ev.txt"
check "events --since 0 replays QMP events" grep -Eq '^Event STOP \{\} [0-9]+$' "$T/ev.txt"
ctl stop c1

# --- bash completion, through bash: verbs, VM names from the bus, options
# complete WORDS...: COMPREPLY (sorted, one line) for the last word of "vmsupctl WORDS...".
complete_words() {
        bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _vmsupctl
                 printf "%s\n" "${COMPREPLY[@]}" | sort | xargs' _ "$ROOT/completion/vmsupctl.bash" "$VMSUPCTL" "$@"
}
check_eq "completion: verbs" "read-file reboot reload reset resume" "$(complete_words re)"
check_eq "completion: every verb from nothing" 25 "$(complete_words '' | wc -w)"
check_eq "completion: VM names from the bus" "c1 c2" "$(complete_words status '')"
check_eq "completion: VM names after --bus ADDRESS" "c1 c2" "$(DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent complete_words --bus "$BUS" start c)"
check_eq "completion: no VM names from another bus" "" "$(complete_words --bus unix:path=/nonexistent start c)"
check_eq "completion: options of the verb" "--force" "$(complete_words shutdown c1 --f)"
check_eq "completion: --bus values" "session system" "$(complete_words --bus '')"
check_eq "completion: keys for sendkey" "ctrl ctrl+alt+delete ctrl+alt+f1 ctrl+alt+f2 ctrl_r" "$(complete_words sendkey c1 ct)"
check_eq "completion: local file for read-file" "$T/local" "$(complete_words read-file c1 /etc/hostname "$T/loc")"
check_eq "completion: nothing after list" "" "$(complete_words list '')"
check_eq "completion: stats groups" "balloon block" "$(complete_words stats c1 b)"
check_eq "completion: metrics takes any number of VM names" "c1 c2" "$(complete_words metrics c1 '')"
check_eq "completion: start --paused" "--paused" "$(complete_words start c1 --p)"
check_eq "completion: metrics --format" "--format" "$(complete_words metrics --f)"
check_eq "completion: the formats of metrics --format" "openmetrics prometheus" "$(complete_words metrics --format '')"
check_eq "completion: VM names after metrics --format FORMAT" "c1 c2" "$(complete_words metrics --format openmetrics '')"

# --- the agent verbs with the tiny guest
if [[ -f $GUEST_DIR/vmlinuz ]]; then
        define_vm cg "$(guest_kernel_def '"autostart": true, "acl": [ { "user": "vmsupc-all", "privileges": [ "VM.GuestAgent.Audit", "VM.GuestAgent.FileRead" ] } ]')"
        check_here "vmsupd cg (guest) on the bus" vmsupd_start cg
        check "the guest's agent connects" wait_prop cg AgentConnected true 120
        jq_ok "agent guest-ping: {}" '. == {}' ctl agent cg guest-ping
        check_rc "agent guest-sync is the supervisor's, even for root: exit 4" 4 'reserved for the supervisor' \
                ctl agent cg guest-sync '{"id":5}'
        jq_ok "agent guest-info as a caller with VM.GuestAgent.Audit" '.version | type == "string"' \
                as vmsupc-all "$VMSUPCTL" --bus "$BUS" agent cg guest-info --json
        jq_ok "write-file --json: the bytes written" '.bytes == 5' ctl write-file cg "$T/local" /tmp/ctl --json
        jq_ok "read-file --json: the bytes read" '.bytes == 5' ctl read-file cg /tmp/ctl "$T/back" --json
        check "read-file brought the same bytes" cmp "$T/local" "$T/back"
        jq_ok "agent COMMAND ARGUMENTS --json" 'type == "number"' ctl agent cg guest-file-open '{"path":"/tmp/ctl"}' --json
        jq_ok "agent with a whole QGA object" '. == {}' ctl agent cg "{\"execute\":\"guest-file-close\",\"arguments\":{\"handle\":$(cat "$T/json")}}"
        check_rc "agent, the guest's error: exit 1 in words" 1 \
                'the guest agent reported an error \(org.vmsup.Error.AgentError' ctl agent cg guest-file-open '{"path":"/nonexistent"}'
        check_rc "write-file with FileRead only: exit 4" 4 'VM.GuestAgent.FileWrite privilege required' \
                as vmsupc-all "$VMSUPCTL" --bus "$BUS" write-file cg "$T/local" /tmp/refused
        # Regular files and devices are copied through a pipe (the supervisor takes no other kind).
        head -c $((3 * 1024 * 1024 + 17)) /dev/urandom > "$T/big"
        chmod 644 "$T/big"
        check_eq "write-file of a regular file larger than the pipe: every byte" $((3 * 1024 * 1024 + 17)) \
                "$(ctl write-file cg "$T/big" /tmp/big 2>&1)"
        check_eq "read-file into a regular file larger than the pipe: every byte" $((3 * 1024 * 1024 + 17)) \
                "$(ctl read-file cg /tmp/big "$T/big.back" 2>&1)"
        check "read-file brought the same 3 MiB" cmp "$T/big" "$T/big.back"
        check_eq "read-file --offset --length into a regular file" 1000 \
                "$(ctl read-file cg /tmp/big "$T/slice" --offset 4096 --length 1000 2>&1)"
        check "the slice is the right one" cmp "$T/slice" <(tail -c +4097 "$T/big" | head -c 1000)
        ctl write-file cg "$T/local" /tmp/big --append >/dev/null
        check_eq "write-file --append from a regular file" $((3 * 1024 * 1024 + 17 + 5)) \
                "$(ctl read-file cg /tmp/big /dev/null 2>&1)"
        check_rc "read-file of a missing guest file through the pipe: exit 1 in words" 1 \
                'the guest agent reported an error \(org.vmsup.Error.AgentError' ctl read-file cg /nonexistent "$T/none"
        check_rc "read-file into a local file that cannot take it: exit 1" 1 'cannot write the local file' \
                ctl read-file cg /tmp/big /dev/full
        jq_ok "the supervisor still answers after that" '. == {}' ctl agent cg guest-ping
        check_rc "write-file with no rights from a regular file: exit 4" 4 'access denied .*VM.GuestAgent.FileWrite' \
                as vmsupc-none "$VMSUPCTL" --bus "$BUS" write-file cg "$T/big" /tmp/refused
else
        ok "the agent verbs with a guest # SKIP no tiny guest in $GUEST_DIR (make guest)"
fi

finish
