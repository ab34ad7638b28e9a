#!/bin/bash
# The tiny guest with a hostile agent (vmsup.hostile=MODE, tests/guest/hostile-agent.c)
# instead of qemu-ga. For flood, silent, hugeline and stale: agent calls fail
# cleanly (AgentTimeout, AgentProtocol or AgentNotConnected; never a reply),
# the supervisor's memory stays bounded, and VM1 keeps answering other callers
# while agent calls wait. recover:N: the real qemu-ga takes over after N
# seconds and the agent works again. liar: the agent syncs correctly and then
# lies (double replies, forged lines, late, over-long, hostile errors, broken
# JSON; every reply names the request it answers): each caller gets its own
# command's reply or the expected error, never another call's data.
source "$(dirname "$0")/lib.sh"

[[ -r $GUEST_DIR/vmlinuz ]] || { echo "not ok 1 - tiny guest missing: run tests/guest/build-guest.sh"; exit 1; }
for u in vmsuph-audit vmsuph-unres; do ensure_user "$u"; done
bus_start || exit 1
host_acl '{}'
# Generous: the supervisor needs a few MiB; an unbounded buffer would take the
# hugeline agent's 80 MiB lines several times over. AddressSanitizer's shadow
# memory and quarantine need more.
if [[ $BUILD == build ]]; then RSS_BOUND_KB=$((200 * 1024)); else RSS_BOUND_KB=$((1024 * 1024)); fi
ACL='"acl": [ { "user": "vmsuph-audit", "privileges": [ "VM.Audit", "VM.GuestAgent.Audit" ] },
              { "user": "vmsuph-unres", "privileges": [ "VM.GuestAgent.Unrestricted" ] } ]'
CLEAN='org.vmsup.Error.(AgentTimeout|AgentProtocol|AgentNotConnected)'
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
# rchar PID: bytes the process has read with read() so far: the agent's channel
# (the bus is read with recvmsg(), which does not count).
rchar() { awk '$1 == "rchar:" { print $2 }' "/proc/$1/io"; }

# start_hostile NAME MODE: supervisor, subscriber, Start, and the guest opening its agent port.
start_hostile() {
        local name=$1 mode=$2
        define_vm "$name" "$(guest_kernel_def "\"autostart\": false, $ACL" "console=ttyS0 quiet vmsup.hostile=$mode")"
        check_here "$mode: supervisor" vmsupd_start "$name"
        events_start "$name" "$T/ev.$name" || not_ok "$mode: subscriber started"
        check "$mode: Start" vmcall "$name" VM1 Start
        check "$mode: the hostile agent opens the port (VSERPORT_CHANGE open)" \
                wait_for_line "$T/ev.$name" '^Event VSERPORT_CHANGE .*"open":true' 120
}

# burst NAME MODE: agent calls from three callers at once; VM1 answers meanwhile;
# every agent call fails cleanly; the supervisor's memory stays bounded.
burst() {
        local name=$1 mode=$2 sup=${VMSUPD_PID[$1]} i t0 t_burst cpu0 rd0 lat_status lat_prop pending rss0 rss1 hwm f
        local -a pids=() calls=(
                'root {"execute":"guest-ping"}'
                'vmsuph-audit {"execute":"guest-info"}'
                'vmsuph-unres {"execute":"guest-exec","arguments":{"path":"/bin/true"}}'
                'root {"execute":"guest-file-open","arguments":{"path":"/etc/hostname"}}'
                'vmsuph-audit {"execute":"guest-network-get-interfaces"}'
                'vmsuph-unres {"execute":"guest-get-osinfo"}'
        )
        peak_reset "$sup"
        rss0=$(proc_kb "$sup" VmRSS)
        cpu0=$(proc_cpu_ms "$sup")
        rd0=$(rchar "$sup")
        t_burst=$(date +%s%N)
        for i in "${!calls[@]}"; do
                dsend_as ${calls[$i]%% *} "$name" Agent1.Command string:"${calls[$i]#* }" > "$T/burst.$name.$i" 2>&1 &
                pids+=($!)
        done
        "$VMSUPCTL" --bus "$BUS" read-file "$name" /etc/hostname "$T/read.$name" > "$T/burst.$name.read" 2>&1 &
        pids+=($!)
        sleep 0.5 # let the calls reach the supervisor; not an assertion

        t0=$(date +%s%N)
        check "$mode: GetStatus from another caller answers" as vmsuph-audit busctl --system call "org.vmsup.VM.$name" /org/vmsup/VM org.vmsup.VM1 GetStatus
        lat_status=$(ms_since "$t0")
        t0=$(date +%s%N)
        check_eq "$mode: property State from another caller" '"running"' \
                "$(as vmsuph-audit busctl --system get-property "org.vmsup.VM.$name" /org/vmsup/VM org.vmsup.VM1 State | cut -d' ' -f2)"
        lat_prop=$(ms_since "$t0")
        pending=0
        for i in "${pids[@]}"; do kill -0 "$i" 2>/dev/null && pending=$((pending + 1)); done
        check "$mode: ... while agent calls were still pending ($pending of ${#pids[@]})" test "$pending" -gt 0
        diag "$mode: latency under hostile traffic: GetStatus $lat_status ms, property Get $lat_prop ms (busctl included)"

        for i in "${pids[@]}"; do wait "$i"; done
        for f in "$T/burst.$name".*; do
                if grep -Eq "$CLEAN" "$f" && ! grep -q 'method return\|string "' "$f"; then
                        ok "$mode: fails cleanly: $(basename "$f" | sed "s/burst.$name.//") $(grep -Eo "$CLEAN" "$f")"
                else
                        not_ok "$mode: fails cleanly: $(basename "$f")"
                        head -3 "$f" | sed 's/^/#   /'
                fi
        done
        rss1=$(proc_kb "$sup" VmRSS)
        hwm=$(proc_kb "$sup" VmHWM)
        diag "$mode: supervisor VmRSS before ${rss0} kB, after ${rss1} kB; VmHWM during the burst ${hwm} kB;" \
                "read $(( ($(rchar "$sup") - rd0) / 1024 )) KiB and used $(( $(proc_cpu_ms "$sup") - cpu0 )) ms CPU in $(ms_since "$t_burst") ms"
        check "$mode: supervisor peak RSS below $((RSS_BOUND_KB / 1024)) MiB" test "$hwm" -lt "$RSS_BOUND_KB"
        check_eq "$mode: AgentConnected stays false" false "$(vmprop_value "$name" AgentConnected)"
}

for mode in flood silent hugeline stale; do
        name=h$mode
        start_hostile "$name" "$mode"
        burst "$name" "$mode"
        check_eq "$mode: the VM still runs" running "$(vmprop_value "$name" State)"
        check "$mode: Stop" vmcall "$name" VM1 Stop
        vmsupd_stop "$name"
        check_eq "$mode: the supervisor exits 0" 0 "$VMSUPD_RC"
done

# --- recover:N floods for N seconds, then the real qemu-ga takes over the port
start_hostile hrecover recover:20
t0=$(date +%s%N)
check_fails "recover: while it floods, guest-ping fails cleanly" "$CLEAN" dsend_as root hrecover Agent1.Command string:'{"execute":"guest-ping"}'
if wait_prop hrecover AgentConnected true 120; then
        ok "recover: AgentConnected becomes true once qemu-ga answers"
        diag "recover: AgentConnected $(ms_since "$t0") ms after the port opened (flood phase 20 s)"
else
        not_ok "recover: AgentConnected becomes true once qemu-ga answers"
fi
check_eq "recover: guest-ping works again" '{}' "$(agent_cmd root hrecover '{"execute":"guest-ping"}')"
check_match "recover: guest-info is qemu-ga's" '"version":"[0-9]+\.[0-9]+' "$(agent_cmd vmsuph-audit hrecover '{"execute":"guest-info"}')"
check "recover: the port was closed and opened again for qemu-ga" wait_for_line "$T/ev.hrecover" '^Event VSERPORT_CHANGE .*"open":false' 5
check "recover: ReadFile works" "$VMSUPCTL" --bus "$BUS" read-file hrecover /proc/version "$T/version"
check_match "recover: and returns the guest's file" '^Linux version' "$(cat "$T/version")"
diag "recover: supervisor VmRSS $(proc_kb "${VMSUPD_PID[hrecover]}" VmRSS) kB, VmHWM $(proc_kb "${VMSUPD_PID[hrecover]}" VmHWM) kB"
check "recover: Stop" vmcall hrecover VM1 Stop

# --- liar: correct syncs, lying replies. Each reply names its request
# ({"echo": "<execute>", "seq": K}; errors carry "echo=<execute> seq=K"), and
# the misbehaviour is keyed on the command name (tests/guest/hostile-agent.c):
#   guest-info           two replies (the second at once or 300 ms later)
#   guest-get-host-name  the reply, then an unsolicited "FORGED" line
#   guest-get-time       answered 12 s late (the timeout is 10 s)
#   guest-get-users      a 70 MiB line          guest-file-read  a 70 MiB line
#   guest-get-timezone   an error with control characters and a fake class
#   guest-get-vcpus      broken JSON (five forms in turn)
#   anything else        an honest reply
LIAR=hliar
declare -a LIAR_SEQS=() LIAR_ALL_SEQS=()

# liar_call USER CMD FILE: Agent1.Command {"execute": CMD}; FILE gets CMD, the exit status and the output.
liar_call() {
        local out rc
        out=$(dsend_as "$1" "$LIAR" Agent1.Command string:"{\"execute\":\"$2\"}" 2>&1)
        rc=$?
        printf '%s\n%s\n%s' "$2" "$rc" "$out" > "$3"
}

# liar_outcome FILE: sets OUTCOME to what the call got: own (the reply names
# this very command; its seq goes to LIAR_SEQ), timeout, protocol, toolarge,
# agenterror (one line of printable ASCII that names this command), or anything
# else: another call's data, a forged line, an unsanitized error.
OUTCOME= LIAR_SEQ=
liar_outcome() {
        local cmd rc out json name msg
        { read -r cmd; read -r rc; out=$(cat); } < "$1"
        LIAR_SEQ=
        if [[ $rc == 0 ]]; then
                json=$(printf '%s\n' "$out" | sed -n 's/^   string "\(.*\)"$/\1/p')
                if [[ $json =~ ^\{\"echo\":\"([a-zA-Z_-]+)\",\"seq\":([0-9]+)\}$ && ${BASH_REMATCH[1]} == "$cmd" ]]; then
                        LIAR_SEQ=${BASH_REMATCH[2]}
                        OUTCOME=own
                else
                        OUTCOME="reply ${json:-$out}"
                fi
        elif [[ $out == *$'\n'* ]]; then
                OUTCOME="multi-line error $(printf '%q' "$out")"
        elif [[ ! $out =~ ^Error\ org\.vmsup\.Error\.([A-Za-z]+):\ (.*)$ ]]; then
                OUTCOME="unexpected $(printf '%q' "$out")"
        else
                name=${BASH_REMATCH[1]} msg=${BASH_REMATCH[2]}
                case $name in
                AgentTimeout) OUTCOME=timeout ;;
                AgentProtocol) OUTCOME=protocol ;;
                ResponseTooLarge) OUTCOME=toolarge ;;
                AgentError)
                        if LC_ALL=C grep -q '[^ -~]' <<< "$msg"; then
                                OUTCOME="AgentError, not printable ASCII: $(printf '%q' "$msg")"
                        elif [[ $msg != *"echo=$cmd seq="* ]]; then
                                OUTCOME="AgentError of another call: $msg"
                        elif (( ${#msg} > 512 )); then
                                OUTCOME="AgentError message of ${#msg} bytes"
                        else
                                OUTCOME=agenterror
                        fi
                        ;;
                *) OUTCOME="error $name: $msg" ;;
                esac
        fi
        OUTCOME=${OUTCOME:0:300}
}

# liar_check DESC FILE OUTCOME...: the call's outcome is one of OUTCOME; an own
# reply's seq is appended to LIAR_SEQS and LIAR_ALL_SEQS.
liar_check() {
        local desc=$1 f=$2 want
        shift 2
        liar_outcome "$f"
        [[ $OUTCOME == own ]] && LIAR_SEQS+=("$LIAR_SEQ") LIAR_ALL_SEQS+=("$LIAR_SEQ")
        for want in "$@"; do
                if [[ $OUTCOME == "$want" ]]; then
                        ok "$desc: $OUTCOME"
                        return 0
                fi
        done
        not_ok "$desc: wanted $*"
        diag "got: $OUTCOME"
        return 1
}

# liar_seq_call DESC USER CMD OUTCOME...: one call in the foreground, checked.
LIAR_N=0
liar_seq_call() {
        local desc=$1 user=$2 cmd=$3 f
        shift 3
        LIAR_N=$((LIAR_N + 1))
        f=$T/liar.seq.$LIAR_N
        liar_call "$user" "$cmd" "$f"
        liar_check "$desc ($user $cmd)" "$f" "$@"
}
# liar_ping_after WHAT [USER]: the next caller's honest guest-ping gets its own reply.
liar_ping_after() {
        liar_seq_call "liar: after $1, guest-ping" "${2:-root}" guest-ping own
}
# liar_wait_read PID BASE BYTES: polls until the supervisor has read BYTES more
# than BASE (rchar): the over-long line has arrived completely.
liar_wait_read() {
        local i
        for i in $(seq 1200); do
                (( $(rchar "$1") - $2 >= $3 )) && return 0
                sleep 0.1
        done
        return 1
}

start_hostile "$LIAR" liar
check "liar: AgentConnected becomes true (the syncs are answered)" wait_prop "$LIAR" AgentConnected true 120
sup=${VMSUPD_PID[$LIAR]}

# One caller at a time, root and a user with VM.GuestAgent.Audit.
liar_seq_call "liar: honest" root guest-ping own
liar_seq_call "liar: honest" vmsuph-audit guest-get-osinfo own
liar_seq_call "liar: double reply at once" root guest-info own
liar_ping_after "a double reply" vmsuph-audit
liar_seq_call "liar: double reply, the second 300 ms later" vmsuph-audit guest-info own
liar_ping_after "a late second reply"
liar_seq_call "liar: reply and a forged line at once" root guest-get-host-name own
liar_ping_after "a forged line" vmsuph-audit
liar_seq_call "liar: reply and a forged line 300 ms later" vmsuph-audit guest-get-host-name own
liar_ping_after "a late forged line"
liar_seq_call "liar: error with control characters and a fake class" root guest-get-timezone agenterror
diag "liar: the caller saw: $(tail -n +3 "$T/liar.seq.$LIAR_N" | head -c 160 | LC_ALL=C tr -c ' -~' '?')..."
liar_ping_after "a hostile error" vmsuph-audit
liar_seq_call "liar: broken JSON, unclosed" root guest-get-vcpus protocol
check_eq "liar: AgentConnected is false after a protocol violation" false "$(vmprop_value "$LIAR" AgentConnected)"
liar_ping_after "broken JSON" vmsuph-audit
check_eq "liar: AgentConnected is true again once a sync is answered" true "$(vmprop_value "$LIAR" AgentConnected)"
for form in "trailing data" "a duplicate key" "a raw control byte" "invalid UTF-8"; do
        liar_seq_call "liar: broken JSON, $form" vmsuph-audit guest-get-vcpus protocol
        liar_ping_after "broken JSON ($form)"
done

t0=$(date +%s%N)
liar_seq_call "liar: reply 12 s late" root guest-get-time timeout
diag "liar: guest-get-time failed after $(ms_since "$t0") ms"
t0=$(date +%s%N)
liar_ping_after "a timeout, the late reply still to come" vmsuph-audit
diag "liar: the next guest-ping took $(ms_since "$t0") ms (it waits for the late reply to pass)"
liar_ping_after "the late reply"

# 70 MiB lines. Through Command the 16 MiB reply cap refuses the line first
# (ResponseTooLarge); ReadFile caps its chunks' replies itself (AgentProtocol).
# Either way the rest of the line is dropped as it arrives, and the next sync
# is answered once the agent has written all of it.
peak_reset "$sup"
rss0=$(proc_kb "$sup" VmRSS)
rd0=$(rchar "$sup")
t0=$(date +%s%N)
liar_seq_call "liar: a 70 MiB reply line" root guest-get-users toolarge
diag "liar: guest-get-users failed after $(ms_since "$t0") ms"
check "liar: the supervisor reads the whole 70 MiB line" liar_wait_read "$sup" "$rd0" $((70 * 1024 * 1024))
diag "liar: 70 MiB line read in $(ms_since "$t0") ms"
liar_ping_after "a 70 MiB line" vmsuph-audit
hwm=$(proc_kb "$sup" VmHWM)
diag "liar: supervisor VmRSS before ${rss0} kB, VmHWM through the 70 MiB line (Command) ${hwm} kB"
if [[ $BUILD == build ]]; then
        check "liar: supervisor peak RSS through a 70 MiB line below 200 MiB" test "$hwm" -lt $((200 * 1024))
else
        ok "liar: supervisor peak RSS through a 70 MiB line below 200 MiB # SKIP $BUILD (sanitizer memory)"
fi
peak_reset "$sup"
rd0=$(rchar "$sup")
check_fails "liar: ReadFile whose guest-file-read reply is a 70 MiB line" 'org\.vmsup\.Error\.AgentProtocol' \
        "$VMSUPCTL" --bus "$BUS" read-file "$LIAR" /etc/hostname "$T/liar.read"
check "liar: the supervisor reads the whole 70 MiB line (ReadFile)" liar_wait_read "$sup" "$rd0" $((70 * 1024 * 1024))
liar_ping_after "a 70 MiB guest-file-read line"
hwm=$(proc_kb "$sup" VmHWM)
diag "liar: VmHWM through the 70 MiB line (ReadFile) ${hwm} kB"
if [[ $BUILD == build ]]; then
        check "liar: supervisor peak RSS through a 70 MiB ReadFile line below 200 MiB" test "$hwm" -lt $((200 * 1024))
else
        ok "liar: supervisor peak RSS through a 70 MiB ReadFile line below 200 MiB # SKIP $BUILD (sanitizer memory)"
fi

seqs_ok=true
for ((i = 1; i < ${#LIAR_SEQS[@]}; i++)); do
        (( LIAR_SEQS[i] > LIAR_SEQS[i - 1] )) || seqs_ok=false
done
diag "liar: seq of the replies, in call order: ${LIAR_SEQS[*]}"
check_eq "liar: one caller at a time, every reply is fresher than the one before" true "$seqs_ok"

# Two callers at once, each with its own mix: every call gets its own reply or
# its own command's error. Nothing here is slow, so nothing may time out.
LIAR_SEQS=()
liar_caller() { # liar_caller TAG USER CMD...: calls in sequence, outputs in $T/liar.TAG.N
        local tag=$1 user=$2 i=0 cmd
        shift 2
        for cmd in "$@"; do
                i=$((i + 1))
                liar_call "$user" "$cmd" "$T/liar.$tag.$i"
        done
}
liar_expect() { # the outcome a command gets from the liar when nothing else is slow
        case $1 in
        guest-get-time) echo timeout ;;
        guest-get-users) echo toolarge ;;
        guest-get-timezone) echo agenterror ;;
        guest-get-vcpus) echo protocol ;;
        *) echo own ;;
        esac
}
mix_root=(guest-ping guest-info guest-get-host-name guest-get-timezone guest-get-vcpus guest-get-osinfo guest-info guest-get-host-name)
mix_audit=(guest-get-host-name guest-ping guest-get-vcpus guest-info guest-get-timezone guest-get-fsinfo guest-get-host-name guest-info)
t0=$(date +%s%N)
liar_caller croot root "${mix_root[@]}" "${mix_root[@]}" &
pid_a=$!
liar_caller caudit vmsuph-audit "${mix_audit[@]}" "${mix_audit[@]}" &
pid_b=$!
wait "$pid_a" "$pid_b"
diag "liar: two callers, $(( 2 * (${#mix_root[@]} + ${#mix_audit[@]}) )) calls in $(ms_since "$t0") ms"
bad=0 n=0
for f in "$T"/liar.croot.* "$T"/liar.caudit.*; do
        n=$((n + 1))
        cmd=$(head -1 "$f")
        liar_check "liar: concurrent $(basename "$f" | sed 's/^liar\.//') $cmd" "$f" "$(liar_expect "$cmd")" || bad=$((bad + 1))
done
check_eq "liar: concurrent calls, all $n as expected" 0 "$bad"

# A call the agent answers late, with callers queued behind it: they may time
# out (the timeout covers the wait in the queue), but the late reply answers
# none of them.
liar_caller slow root guest-get-time &
pid_a=$!
sleep 0.5 # let guest-get-time reach the agent first; not an assertion
liar_caller qaudit vmsuph-audit guest-ping guest-info &
pid_b=$!
liar_caller qroot root guest-get-host-name guest-ping &
pid_c=$!
wait "$pid_a" "$pid_b" "$pid_c"
liar_check "liar: late reply with callers queued: guest-get-time" "$T/liar.slow.1" timeout
for f in "$T"/liar.qaudit.* "$T"/liar.qroot.*; do
        liar_check "liar: queued behind it, $(basename "$f" | sed 's/^liar\.//') $(head -1 "$f")" "$f" own timeout
done
liar_ping_after "a late reply with callers queued" vmsuph-audit

# A 70 MiB line while another caller keeps asking.
rd0=$(rchar "$sup")
liar_caller huge root guest-get-users &
pid_a=$!
liar_caller hping vmsuph-audit guest-ping guest-info guest-ping guest-get-host-name &
pid_b=$!
wait "$pid_a" "$pid_b"
liar_check "liar: 70 MiB line with another caller: guest-get-users" "$T/liar.huge.1" toolarge
for f in "$T"/liar.hping.*; do
        liar_check "liar: meanwhile, $(basename "$f" | sed 's/^liar\.//') $(head -1 "$f")" "$f" own timeout
done
check "liar: the supervisor reads the whole 70 MiB line" liar_wait_read "$sup" "$rd0" $((70 * 1024 * 1024))
liar_ping_after "a 70 MiB line with another caller" root

dups=$(printf '%s\n' "${LIAR_ALL_SEQS[@]}" | sort | uniq -d | tr '\n' ' ')
check_eq "liar: no reply was handed out twice (${#LIAR_ALL_SEQS[@]} replies, each seq once)" "" "$dups"
check "liar: AgentConnected is true at the end" wait_prop "$LIAR" AgentConnected true 60
diag "liar: supervisor VmRSS $(proc_kb "$sup" VmRSS) kB at the end"
check_eq "liar: the VM still runs" running "$(vmprop_value "$LIAR" State)"
check "liar: Stop" vmcall "$LIAR" VM1 Stop
vmsupd_stop "$LIAR"
check_eq "liar: the supervisor exits 0" 0 "$VMSUPD_RC"

finish
