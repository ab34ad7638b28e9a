#!/bin/bash
# A guest kernel panic end to end: the tiny guest with a pvpanic device
# ("qemu": {"pvpanic": true}) panics (sysrq c through guest-exec), QEMU reports
# GUEST_PANICKED, a subscriber sees it, and the definition's on_crash applies:
# restart (a fresh QEMU whose guest boots again), preserve (QEMU kept with its
# CPUs stopped, state paused, reason guest-panicked), destroy (state crashed,
# reason guest-panicked). Without the device the same panic goes unnoticed.
source "$(dirname "$0")/lib.sh"

[[ -r $GUEST_DIR/vmlinuz ]] || { echo "not ok 1 - tiny guest missing: run tests/guest/build-guest.sh"; exit 1; }
ensure_user vmsupt-none
bus_start || exit 1
host_acl '{}'

# panic_def ON_CRASH [PVPANIC]: the tiny guest with its agent, pvpanic unless PVPANIC is false.
panic_def() {
        guest_kernel_def '"agent": true, "autostart": true, "shutdown_timeout_sec": 30, "on_crash": "'"$1"'",
  "acl": []' | sed 's|"append"|"pvpanic": '"${2:-true}"', "append"|'
}
agent_up() { [[ $(vmprop_value "$1" AgentConnected 2>/dev/null) == true ]]; }
wait_agent() {
        local i
        for i in $(seq 3000); do
                agent_up "$1" && return 0
                sleep 0.1
        done
        return 1
}
# panic NAME: the guest kernel panics a moment after guest-exec has answered.
panic() {
        agent_cmd root "$1" '{"execute":"guest-exec","arguments":{"path":"/bin/busybox","arg":["sh","-c","sleep 1; echo c > /proc/sysrq-trigger"]}}'
}
# guest_out NAME SCRIPT: SCRIPT's standard output (guest-exec as root, busybox sh).
guest_out() {
        local s=${2//\"/\\\"} pid st i
        pid=$(agent_cmd root "$1" "{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"/bin/busybox\",\"arg\":[\"sh\",\"-c\",\"$s\"],\"capture-output\":true}}" |
                sed -n 's/^{"pid":\([0-9]*\)}$/\1/p')
        [[ -n $pid ]] || return 1
        for i in $(seq 600); do
                st=$(agent_cmd root "$1" "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":$pid}}") || return 1
                if [[ $st == *'"exited":true'* ]]; then
                        sed -n 's/.*"out-data":"\([^"]*\)".*/\1/p' <<< "$st" | base64 -d
                        return 0
                fi
                sleep 0.1
        done
        return 1
}
qmp_status() {
        busctl --system --timeout=60 call "org.vmsup.VM.$1" /org/vmsup/VM org.vmsup.Monitor1 Execute s '{"execute":"query-status"}'
}

# --- the definition key's limits (vmsupd --check reads the definition only)
define_vm bad "$(panic_def destroy '"yes"')"
out=$("$VMSUPD" --config-dir "$T/vms" --runtime-dir "$T/run" --bus "$BUS" --check bad 2>&1); rc=$?
check_eq "pvpanic that is not a boolean: exit 2" 2 "$rc"
check_match "... the message names the key" '\$\.qemu\.pvpanic: must be true or false' "$out"
define_vm bad '{ "qemu": { "binary": "'"$QEMU"'", "machine": "none", "accel": "tcg", "pvpanic": true } }'
out=$("$VMSUPD" --config-dir "$T/vms" --runtime-dir "$T/run" --bus "$BUS" --check bad 2>&1); rc=$?
check_eq "pvpanic on machine none (no ISA bus): exit 2" 2 "$rc"
check_match "... the message says why" 'pvpanic: needs a machine with an ISA bus' "$out"

# --- on_crash restart
define_vm pr "$(panic_def restart)"
check_here "vmsupd starts pr (pvpanic, on_crash restart)" vmsupd_start pr
check "pr: the guest's agent connects" wait_agent pr
pid=$(vmprop_value pr Pid)
check_match "QEMU has the pvpanic device" '-device pvpanic,id=vmsup-pvpanic' "$(tr '\0' ' ' < "/proc/$pid/cmdline")"
check_match "the guest's pvpanic-mmio driver bound the ACPI device QEMU0001" 'QEMU0001' \
        "$(guest_out pr 'ls /sys/bus/platform/drivers/pvpanic-mmio')"
check_fails "a caller without rights cannot make the guest panic (guest-exec refused)" 'AccessDenied' \
        agent_cmd vmsupt-none pr '{"execute":"guest-exec","arguments":{"path":"/bin/busybox","arg":["sh","-c","echo c > /proc/sysrq-trigger"]}}'
check_eq "... the VM runs on, same QEMU" "running $pid" "$(vmprop_value pr State) $(vmprop_value pr Pid)"
events_start pr "$T/ev-pr" || not_ok "subscriber started"
panic pr >/dev/null
check "subscriber saw GUEST_PANICKED" wait_for_line "$T/ev-pr" '^Event GUEST_PANICKED \{"action":"poweroff"' 120
check "subscriber saw the crash: StateChanged crashed guest-panicked" wait_for_line "$T/ev-pr" '^StateChanged crashed guest-panicked' 60
check "then a fresh start (on_crash restart)" wait_for_line "$T/ev-pr" '^StateChanged running started' 60
newpid=$(vmprop_value pr Pid)
check "a new QEMU ($pid -> $newpid)" test "$newpid" != 0 -a "$newpid" != "$pid"
check "the restarted guest boots: its agent connects again" wait_agent pr
check "... and answers guest-ping" agent_cmd root pr '{"execute":"guest-ping"}'
vmsupd_stop pr

# --- on_crash preserve: -action panic=pause keeps the panicked guest for inspection
define_vm pp "$(panic_def preserve)"
check_here "vmsupd starts pp (pvpanic, on_crash preserve)" vmsupd_start pp
check "pp: the guest's agent connects" wait_agent pp
pid=$(vmprop_value pp Pid)
events_start pp "$T/ev-pp" || not_ok "subscriber started"
panic pp >/dev/null
check "subscriber saw GUEST_PANICKED with action pause" wait_for_line "$T/ev-pp" '^Event GUEST_PANICKED \{"action":"pause"' 120
check "state paused, reason guest-panicked" wait_prop pp StateReason guest-panicked 60
check_eq "the same QEMU is kept, paused" "paused $pid" "$(vmprop_value pp State) $(vmprop_value pp Pid)"
check_match "QEMU says guest-panicked" 'guest-panicked' "$(qmp_status pp)"
check "Stop ends it" vmcall pp VM1 Stop
check_eq "the panic is remembered: crashed guest-panicked, no QEMU, no restart" "crashed guest-panicked 0" \
        "$(vmprop_value pp State) $(vmprop_value pp StateReason) $(vmprop_value pp Pid)"
vmsupd_stop pp

# --- on_crash destroy (the default)
define_vm pd "$(panic_def destroy)"
check_here "vmsupd starts pd (pvpanic, on_crash destroy)" vmsupd_start pd
check "pd: the guest's agent connects" wait_agent pd
events_start pd "$T/ev-pd" || not_ok "subscriber started"
panic pd >/dev/null
check "subscriber saw GUEST_PANICKED" wait_for_line "$T/ev-pd" '^Event GUEST_PANICKED ' 120
check "state crashed" wait_state pd crashed 60
check_eq "reason guest-panicked, no QEMU" "guest-panicked 0" "$(vmprop_value pd StateReason) $(vmprop_value pd Pid)"
check_eq "no restart followed" 0 "$(grep -c '^StateChanged starting' "$T/ev-pd")"
vmsupd_stop pd

# --- the control: no pvpanic device, the same panic reaches no one
define_vm pn "$(panic_def restart false)"
check_here "vmsupd starts pn (no pvpanic)" vmsupd_start pn
check "pn: the guest's agent connects" wait_agent pn
pid=$(vmprop_value pn Pid)
check "QEMU has no pvpanic device" bash -c "! tr '\\0' ' ' < /proc/$pid/cmdline | grep -q pvpanic"
events_start pn "$T/ev-pn" || not_ok "subscriber started"
panic pn >/dev/null
check "the guest panicked (its console log)" wait_for_line "$T/run/pn/console.log" 'end Kernel panic' 120
check_eq "no GUEST_PANICKED without the device: the VM still looks running" "running $pid 0" \
        "$(vmprop_value pn State) $(vmprop_value pn Pid) $(grep -c '^Event GUEST_PANICKED' "$T/ev-pn")"
check "Stop" vmcall pn VM1 Stop
vmsupd_stop pn
finish
