#!/bin/bash
# VM1 against the real tiny guest (q35, TCG), without its agent: SendKey into a
# real keyboard, Reset of a running guest, and Shutdown through ACPI alone.
source "$(dirname "$0")/lib.sh"

[[ -r $GUEST_DIR/vmlinuz ]] || { echo "not ok 1 - tiny guest missing: run tests/guest/build-guest.sh"; exit 1; }
ensure_user vmsupt-console
ensure_user vmsupt-audit
bus_start || exit 1
host_acl '{}'
define_vm g1 "$(guest_kernel_def '"agent": false, "autostart": true, "shutdown_timeout_sec": 60,
  "acl": [ { "user": "vmsupt-console", "privileges": [ "VM.Console" ] },
           { "user": "vmsupt-audit", "privileges": [ "VM.Audit" ] } ]')"

check_here "supervisor with the tiny guest (autostart)" vmsupd_start g1
check "running" wait_state g1 running 60
events_start g1 "$T/ev" || not_ok "subscriber started"

check "VM.Console: SendKey ctrl-alt-delete" as vmsupt-console busctl --system call org.vmsup.VM.g1 /org/vmsup/VM org.vmsup.VM1 SendKey asu 3 ctrl alt delete 50
check "root: SendKey with hold time" vmcall g1 VM1 SendKey asu 1 ret 100
check_fails "a key QEMU does not know: QemuError" 'QemuError|GenericError|not accept|Invalid' dsend_as root g1 VM1.SendKey array:string:nosuchkey uint32:0
check_fails "VM.Audit: SendKey refused, names VM.Console" 'AccessDenied: VM.Console' dsend_as vmsupt-audit g1 VM1.SendKey array:string:ret uint32:0
check "agent disabled: AgentConnected stays false" test "$(vmprop_value g1 AgentConnected)" = false
check_fails "agent disabled: Agent1.Command is AgentNotConnected" 'AgentNotConnected' dsend_as root g1 Agent1.Command string:'{"execute":"guest-ping"}'

pid=$(vmprop_value g1 Pid)
check "Reset" vmcall g1 VM1 Reset
check "subscriber saw RESET" wait_for_line "$T/ev" '^Event RESET \{"guest":false,"reason":"host-qmp-system-reset"\}'
check_eq "Reset keeps the VM running, same QEMU" "running $pid" "$(vmprop_value g1 State) $(vmprop_value g1 Pid)"

# The guest only listens to the power button once its acpid runs: wait until its
# init reports on the console (after acpid started), then ask.
booted=no
for i in $(seq 600); do
        if grep -q 'vmsup-guest: ' "$T/run/g1/console.log" 2>/dev/null; then
                booted=yes
                break
        fi
        sleep 0.1
done
check_eq "the guest's init reports on its console (read from the console log)" yes "$booted"
check "Shutdown through ACPI returns when QEMU has exited" vmcall g1 VM1 Shutdown ub 60 false
check_eq "stopped, guest-shutdown" "stopped guest-shutdown" "$(vmprop_value g1 State) $(vmprop_value g1 StateReason)"
check "subscriber saw shutting-down host-qmp-system-powerdown" wait_for_line "$T/ev" '^StateChanged shutting-down host-qmp-system-powerdown'
check "subscriber saw SHUTDOWN from the guest" wait_for_line "$T/ev" '^Event SHUTDOWN \{"guest":true,"reason":"guest-shutdown"\}'
check "subscriber saw stopped guest-shutdown" wait_for_line "$T/ev" '^StateChanged stopped guest-shutdown'
check "QEMU is gone" bash -c "! kill -0 $pid 2>/dev/null"

finish
