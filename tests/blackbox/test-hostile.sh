#!/bin/bash
# The tiny guest with a hostile agent (vmsup.hostile=MODE, tests/guest/hostile-agent.c)
# instead of qemu-ga. For flood, silent, hugeline and stale: agent calls fail
# cleanly (AgentTimeout, AgentProtocol or AgentNotConnected; never a reply),
# the supervisor's memory stays bounded, and VM1 keeps answering other callers
# while agent calls wait. recover:N: the real qemu-ga takes over after N
# seconds and the agent works again.
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

finish
