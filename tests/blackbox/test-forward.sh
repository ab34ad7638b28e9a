#!/bin/bash
# Caller JSON forwarded to QEMU and to the guest agent means to them what it
# meant to the supervisor's judge: nothing nested deeper than 64 levels leaves
# (QEMU's and qemu-ga's parser stop at 1024, drop what they read and run the
# rest of the line as new commands), no noncharacter (QEMU refuses the request
# without an id, which answered nothing for 30 s), and the other parser
# differences are refused or normalised. A reply over 16 MiB that arrives after
# its request timed out is dropped; the VM keeps running (a fake QEMU).
source "$(dirname "$0")/lib.sh"

[[ -r $GUEST_DIR/vmlinuz ]] || { echo "not ok 1 - tiny guest missing: run tests/guest/build-guest.sh"; exit 1; }
FAKE=$ROOT/$BUILD/tests/fake-qemu
[[ -x $FAKE ]] || { echo "not ok 1 - $FAKE missing: make tests"; exit 1; }
U_MON=vmsupf-mon     # VM.Monitor
U_AUD=vmsupf-audit   # VM.GuestAgent.Audit
U_NONE=vmsupf-none   # no ACL entry
for u in $U_MON $U_AUD $U_NONE; do ensure_user "$u"; done
bus_start || exit 1
host_acl '{ "acl": [] }'
U=$T/u # files the unprivileged callers own
mkdir -m 1777 "$U"
install -d -o vmsup-qemu -g vmsup-qemu "$T/fake" # the fake QEMU runs as vmsup-qemu

define_vm mon "{ \"qemu\": { \"binary\": \"$QEMU\", \"machine\": \"none\", \"accel\": \"tcg\", \"memory_mib\": 32 },
  \"agent\": false, \"autostart\": true, \"shutdown_timeout_sec\": 2,
  \"acl\": [ { \"user\": \"$U_MON\", \"privileges\": [ \"VM.Monitor\" ] } ] }"
define_vm ga "$(guest_kernel_def '"autostart": true, "shutdown_timeout_sec": 30,
  "acl": [ { "user": "'$U_AUD'", "privileges": [ "VM.GuestAgent.Audit" ] } ]')"
define_vm fake "{ \"qemu\": { \"binary\": \"$FAKE\", \"machine\": \"none\", \"accel\": \"tcg\", \"memory_mib\": 32,
  \"extra_args\": [ \"-fake-dir\", \"$T/fake\", \"-fake-late\", \"query-uuid\" ] }, \"agent\": false, \"autostart\": true }"

INVALID='org.freedesktop.DBus.Error.InvalidArgs'
TOO_DEEP="$INVALID: The command is nested deeper than 64 levels"
NONCHAR="$INVALID: The command holds a character QEMU and the guest agent refuse"

qmp() { dsend_as "$1" "$2" Monitor1.Execute "string:$3"; }
hmp() { dsend_as "$1" "$2" Monitor1.HumanCommand "string:$3"; }
acmd() { dsend_as "$1" ga Agent1.Command "string:$2"; }
reply_of() { "$@" 2>&1 | sed -n '2,$p' | sed -E '1s/^   string "//; $s/"$//'; }
# nest OUTER INNER [N]: OUTER's arguments {"x": [[[...INNER...]]]} with N arrays (1023: the
# 1025th level, where QEMU's and qemu-ga's parser give up and start afresh on INNER).
nest() {
        local n=${3:-1023} open close
        open=$(printf '%*s' "$n" '' | tr ' ' '[')
        close=$(printf '%*s' "$n" '' | tr ' ' ']')
        printf '{"execute":"%s","arguments":{"x":%s%s%s}}' "$1" "$open" "$2" "$close"
}
wait_file() {
        local i
        for i in $(seq 1200); do
                [[ -e $1 ]] && return 0
                sleep 0.05
        done
        return 1
}

# --- the fake QEMU first: its late reply needs the 30 s request timeout to pass
check_here "fake: vmsupd starts" vmsupd_start fake
check "fake: running" wait_state fake running 20
FPID=$(vmprop_value fake Pid)
qmp root fake '{"execute":"query-uuid"}' > "$T/late.out" 2>&1 &
LATE=$!

# --- Monitor1: smuggling by nesting, as a caller holding only VM.Monitor
check_here "mon: vmsupd starts" vmsupd_start mon
check "mon: running" wait_state mon running 20
QPID=$(vmprop_value mon Pid)
intact() {
        local pid st
        pid=$(vmprop_value mon Pid)
        [[ $pid == "$QPID" ]] || { echo "QEMU pid $pid, was $QPID"; return 1; }
        [[ $(vmprop_value mon State) == running ]] || { echo "State $(vmprop_value mon State)"; return 1; }
        st=$(reply_of qmp root mon '{"execute":"query-status"}')
        [[ $st == *'"status":"running"'* ]] || { echo "query-status: $st"; return 1; }
}

check_fails "VM.Monitor: chardev-add file nested in query-status is InvalidArgs" "$TOO_DEEP" \
        qmp $U_MON mon "$(nest query-status '{"execute":"chardev-add","arguments":{"id":"smug","backend":{"type":"file","data":{"out":"'"$U"'/smuggled"}}}}')"
check "no file created by a smuggled chardev-add" test ! -e "$U/smuggled"
check "no chardev smug" bash -c "! dbus-send --system --print-reply --dest=org.vmsup.VM.mon /org/vmsup/VM org.vmsup.Monitor1.Execute string:'{\"execute\":\"query-chardev\"}' | grep -q smug"

head -c 1048576 /dev/urandom | base64 -w0 | head -c 1048576 > "$T/secret"
chmod 0600 "$T/secret"
# QEMU runs as uid 0 without capabilities: it reads root's files, and writes the
# caller's file once the caller lets everyone write it.
as $U_MON truncate -s 1M "$U/copy"
as $U_MON chmod 0666 "$U/copy"
# One smuggled command per request (QEMU reads the first object after its reset).
smuggled_block=("{\"execute\":\"blockdev-add\",\"arguments\":{\"driver\":\"file\",\"node-name\":\"smugsrc\",\"filename\":\"$T/secret\",\"read-only\":true}}"
                "{\"execute\":\"blockdev-add\",\"arguments\":{\"driver\":\"file\",\"node-name\":\"smugdst\",\"filename\":\"$U/copy\"}}"
                '{"execute":"blockdev-backup","arguments":{"job-id":"smugjob","device":"smugsrc","target":"smugdst","sync":"full"}}')
for c in "${smuggled_block[@]}"; do
        check_fails "VM.Monitor: $(jq -r .execute <<<"$c") nested in query-status is InvalidArgs" "$TOO_DEEP" \
                qmp $U_MON mon "$(nest query-status "$c")"
done
nodes=$(reply_of qmp root mon '{"execute":"query-named-block-nodes"}')
check_eq "no block node was added" '[]' "$nodes"
check_eq "no block job runs" '[]' "$(reply_of qmp root mon '{"execute":"query-block-jobs"}')"
check "the caller's file holds none of the secret" bash -c "! grep -qF \"\$(head -c 64 '$T/secret')\" '$U/copy'"
check "smuggled block commands left QEMU running" intact

# Last of the three: on a supervisor without the check, it ends the VM.
check_fails "VM.Monitor: quit nested in query-status is InvalidArgs" "$TOO_DEEP" \
        qmp $U_MON mon "$(nest query-status '{"execute":"quit"}')"
check "the smuggled quit did not reach QEMU" intact

# Every door that forwards caller JSON, every caller, before authorization.
check_fails "no ACL: the nested shape is InvalidArgs, not AccessDenied" "$TOO_DEEP" \
        qmp $U_NONE mon "$(nest query-status '{"execute":"quit"}')"
check_fails "root: the nested shape is InvalidArgs too" "$TOO_DEEP" \
        qmp root mon "$(nest query-status '{"execute":"quit"}')"
check_fails "VM.Monitor: nested inside human-monitor-command arguments" "$TOO_DEEP" \
        qmp $U_MON mon "$(nest human-monitor-command '{"execute":"quit"}')"
check_fails "65 levels are refused" "$TOO_DEEP" qmp root mon "$(nest query-status 1 63)"
check_fails "64 levels reach QEMU (which refuses the unknown argument itself)" \
        "QemuError: GenericError: Parameter 'x' is unexpected" qmp root mon "$(nest query-status 1 62)"
check_fails "deep objects count as well" "$TOO_DEEP" qmp $U_MON mon \
        "{\"execute\":\"query-status\",\"arguments\":$(printf '{"a":%.0s' $(seq 64))1$(printf '}%.0s' $(seq 64))}"
check "nothing nested reached QEMU" intact

# --- noncharacters: QEMU refused them without an id and the request waited 30 s;
# all at once in the background, so that the old behaviour costs 30 s, not 30 s each.
nonchar=('\uFFFF' '\uFFFE' '\uFDD0' '\uFDEF' '\uD83F\uDFFF' '\uDBFF\uDFFE' '\uDB80\uDC00\uFFFF')
i=0
nc_pids=()
for c in "${nonchar[@]}"; do
        qmp $U_MON mon "{\"execute\":\"query-status\",\"arguments\":{\"x\":\"$c\"}}" > "$T/nc.$i" 2>&1 &
        nc_pids+=($!)
        i=$((i + 1))
done
qmp $U_MON mon '{"execute":"query-status","arguments":{"\uFFFF":1}}' > "$T/nc.key" 2>&1 &
nc_pids+=($!)
qmp root mon '{"execute":"human-monitor-command","arguments":{"command-line":"info status \uFFFF"}}' > "$T/nc.hmc" 2>&1 &
nc_pids+=($!)
wait "${nc_pids[@]}"
i=0
for c in "${nonchar[@]}"; do
        check_match "VM.Monitor: $(printf '%q' "$c") in a string is InvalidArgs" "$NONCHAR" "$(cat "$T/nc.$i")"
        i=$((i + 1))
done
check_match "VM.Monitor: a noncharacter in a key is InvalidArgs" "$NONCHAR" "$(cat "$T/nc.key")"
# Raw (unescaped) noncharacters never reach the supervisor: D-Bus strings may not hold them.
for c in $'\xef\xbf\xbf' $'\xef\xb7\xa0' $'\xf3\xbf\xbf\xbe'; do
        check_fails "dbus-send: raw $(printf '%q' "$c") is refused by the bus" 'InconsistentMessage|Invalid' \
                qmp $U_MON mon "{\"execute\":\"query-status\",\"arguments\":{\"x\":\"$c\"}}"
        check_fails "busctl: raw $(printf '%q' "$c") is refused by the bus" 'Invalid|Bad message' \
                busctl --system call org.vmsup.VM.mon /org/vmsup/VM org.vmsup.Monitor1 HumanCommand s "info status $c"
done
check_match "root: human-monitor-command with U+FFFF is InvalidArgs" "$NONCHAR" "$(cat "$T/nc.hmc")"
check_match "U+FFFD is an ordinary character: it reaches QEMU" "QemuError: GenericError: Parameter 'x' is unexpected" \
        "$(qmp root mon '{"execute":"query-status","arguments":{"x":"\uFFFD"}}' 2>&1)"

# --- the other differences between jansson and QEMU's parser: refused, or normalised
for c in '{"execute":"query-status","arguments":{"x":"\uD800"}}' '{"execute":"query-status","arguments":{"x":"\uDC00\uD800"}}' \
         '{"execute":"query-status","arguments":{"x":"a\u0000b"}}' '{"execute":"query-status","arguments":{"x":1e999}}' \
         '{"execute":"query-status","arguments":{"x":123456789012345678901234567890}}' \
         '{"execute":"query-status","arguments":{"x":1,"x":2}}' "{\"execute\":\"query-status\",\"arguments\":{'x':1}}" \
         "{\"execute\":\"query-status\",\"arguments\":{\"x\":\"\\'\"}}" $'{"execute":"query-status","arguments":{"x":"\x01"}}' \
         '{"execute":"query-status","arguments":{"x":NaN}}'; do
        check_fails "VM.Monitor: $(printf '%q' "$c") is InvalidArgs" "$INVALID: The command is not valid JSON" qmp $U_MON mon "$c"
done
check_fails "busctl refuses a string that is not UTF-8 before it is sent" 'Invalid argument' \
        busctl --system call org.vmsup.VM.mon /org/vmsup/VM org.vmsup.Monitor1 Execute s $'{"execute":"query-status","arguments":{"x":"\xc0\x80"}}'
long=$(printf '3%.0s' $(seq 1000))
check_match "a 1000-digit number reaches QEMU as a double, answered with its id" "QemuError: GenericError: Parameter 'x' is unexpected" \
        "$(qmp root mon "{\"execute\":\"query-status\",\"arguments\":{\"x\":0.$long}}" 2>&1)"
check "after all of it: the same QEMU, running" intact

# --- Agent1: a caller with only VM.GuestAgent.Audit cannot smuggle guest-exec
check_here "ga: vmsupd starts" vmsupd_start ga
check "ga: running" wait_state ga running 60
check "ga: the agent connects" wait_prop ga AgentConnected true 120
exec_touch='{"execute":"guest-exec","arguments":{"path":"/bin/busybox","arg":["touch","/tmp/smuggled"]}}'
check_fails "VM.GuestAgent.Audit: guest-exec nested in guest-ping is InvalidArgs" "$TOO_DEEP" \
        acmd $U_AUD "$(nest guest-ping "$exec_touch")"
check_fails "VM.GuestAgent.Audit: nested in guest-info too" "$TOO_DEEP" acmd $U_AUD "$(nest guest-info "$exec_touch" 1100)"
check_fails "no ACL: the nested shape is InvalidArgs" "$TOO_DEEP" acmd $U_NONE "$(nest guest-ping "$exec_touch")"
check_fails "VM.GuestAgent.Audit: a noncharacter is InvalidArgs" "$NONCHAR" acmd $U_AUD '{"execute":"guest-ping","arguments":{"x":"\uFFFF"}}'
check_fails "root: U+FDD0 in a file path is InvalidArgs" "$NONCHAR" acmd root '{"execute":"guest-file-open","arguments":{"path":"/tmp/\uFDD0"}}'
# Anything the smuggled guest-exec started ran before this later command (the agent
# runs commands in order); give its process a second to finish.
ls_out=$(reply_of acmd root '{"execute":"guest-exec","arguments":{"path":"/bin/busybox","arg":["sh","-c","sleep 1; ls /tmp"],"capture-output":true}}')
gpid=$(sed -n 's/^{"pid":\([0-9]*\)}$/\1/p' <<<"$ls_out")
st=
for i in $(seq 100); do
        st=$(reply_of acmd root "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":${gpid:-0}}}")
        [[ $st == *'"exited":true'* ]] && break
        sleep 0.1
done
listing=$(sed -n 's/.*"out-data":"\([^"]*\)".*/\1/p' <<<"$st" | base64 -d 2>/dev/null)
check_match "root's own guest-exec ran (the check can see /tmp)" '"exited":true' "$st"
check "no smuggled guest-exec ran in the guest" bash -c "! grep -qx smuggled <<<'$listing'"
check_match "the agent still answers the audit caller" '^\{\}$' "$(reply_of acmd $U_AUD '{"execute":"guest-ping"}')"

# --- the fake QEMU: a reply over 16 MiB after its request timed out
wait "$LATE"
check_match "fake: the request QEMU holds times out" 'Error org.freedesktop.DBus.Error.Timeout' "$(cat "$T/late.out")"
touch "$T/fake/late-go"
check "fake: the late 17 MiB reply was sent" wait_file "$T/fake/late-sent"
check_match "fake: the next request is answered (the stream is in step)" '"status":"running"' \
        "$(reply_of qmp root fake '{"execute":"query-status"}')"
check_eq "fake: the VM keeps running, same QEMU" "running $FPID" "$(vmprop_value fake State) $(vmprop_value fake Pid)"
check "fake: QEMU was not killed" kill -0 "$FPID"
check "fake: the supervisor logged no protocol error" bash -c "! grep -q 'QMP protocol error' '$T/logs/fake.log'"
# A long line with no reply owed at all is a broken stream: still fatal.
touch "$T/fake/garbage-go"
check "fake: an unasked 17 MiB line ends the VM" wait_state fake crashed 30
check_eq "fake: StateReason says why" qmp-protocol-error "$(vmprop_value fake StateReason)"

for n in mon ga; do
        vmsupd_stop $n
        check_eq "$n: SIGTERM, vmsupd exits 0" 0 "$VMSUPD_RC"
done
check "no sanitizer report" bash -c "! cat '$T'/logs/*.log | grep -E 'Sanitizer|runtime error'"

finish
