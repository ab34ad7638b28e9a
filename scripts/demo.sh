#!/bin/bash
# make demo: vmsupd supervising the bundled tiny guest on a private bus, driven
# with busctl as root and as unprivileged users. Prints every command and its
# result; removes everything it created when done.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
source tests/blackbox/lib.sh   # private bus, users, helpers (cleans up on exit)

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() {
        printf '\033[36m$ %s\033[0m\n' "$*"
        "$@" 2>&1 | sed 's/^/  /'
        return "${PIPESTATUS[0]}"
}
# Shows a command run as another user, as "(as USER) busctl ...".
run_as() {
        local u=$1
        shift
        printf '\033[36m$ (as %s) %s\033[0m\n' "$u" "$*"
        as "$u" "$@" 2>&1 | sed 's/^/  /'
}

[[ -r $GUEST_DIR/vmlinuz && -r $GUEST_DIR/initrd.img ]] || { echo "demo: build the guest first (make guest)"; exit 1; }
ensure_user vmsup-viewer
ensure_user vmsup-nobody
bus_start || exit 1
host_acl '{}'
define_vm demo "$(guest_kernel_def '"autostart": false, "shutdown_timeout_sec": 30,
  "acl": [ { "user": "vmsup-viewer", "privileges": [ "VM.Audit", "VM.GuestAgent.Audit" ] } ]')"

bold "The VM definition ($T/vms/demo.json)"
sed 's/^/  /' "$T/vms/demo.json"

bold "Start the supervisor on a private bus (as root, as systemd would)"
echo "  vmsupd --config-dir $T/vms --runtime-dir $T/run --bus $BUS demo"
vmsupd_start demo || { echo "vmsupd did not start"; cat "$T/logs/demo.log"; exit 1; }
run busctl --system list --no-pager --no-legend --acquired
run busctl --system introspect org.vmsup.VM.demo /org/vmsup/VM org.vmsup.VM1

bold "Follow its signals (vmsupctl events), in the background"
"$VMSUPCTL" --bus "$BUS" events demo | sed -u 's/^/  [signal] /' &
sleep 0.5

bold "Status of a stopped VM"
run busctl --system get-property org.vmsup.VM.demo /org/vmsup/VM org.vmsup.VM1 State

bold "Start it: the call returns once QMP is negotiated and the VM runs"
run busctl --system call org.vmsup.VM.demo /org/vmsup/VM org.vmsup.VM1 Start
run busctl --system get-property org.vmsup.VM.demo /org/vmsup/VM org.vmsup.VM1 State Pid QemuVersion
run busctl --system call org.vmsup.VM.demo /org/vmsup/VM org.vmsup.VM1 GetStatus

bold "Wait for the guest agent (the guest boots under TCG)"
wait_prop demo AgentConnected true 60 && run busctl --system get-property org.vmsup.VM.demo /org/vmsup/VM org.vmsup.VM1 AgentConnected
run busctl --system call org.vmsup.VM.demo /org/vmsup/VM org.vmsup.Agent1 Command s '{"execute":"guest-get-osinfo"}'

bold "Pause and resume"
run busctl --system call org.vmsup.VM.demo /org/vmsup/VM org.vmsup.VM1 Pause
run busctl --system get-property org.vmsup.VM.demo /org/vmsup/VM org.vmsup.VM1 State StateReason
run busctl --system call org.vmsup.VM.demo /org/vmsup/VM org.vmsup.VM1 Resume
run busctl --system get-property org.vmsup.VM.demo /org/vmsup/VM org.vmsup.VM1 State StateReason

bold "The monitor (root here; others need VM.Monitor and the command's tier)"
run busctl --system call org.vmsup.VM.demo /org/vmsup/VM org.vmsup.Monitor1 HumanCommand s 'info status'

bold "Unprivileged callers: vmsup-viewer holds VM.Audit and VM.GuestAgent.Audit only"
run_as vmsup-viewer busctl --system get-property org.vmsup.VM.demo /org/vmsup/VM org.vmsup.VM1 State
run_as vmsup-viewer busctl --system call org.vmsup.VM.demo /org/vmsup/VM org.vmsup.Agent1 Command s '{"execute":"guest-ping"}'
run_as vmsup-viewer dbus-send --system --print-reply --dest=org.vmsup.VM.demo /org/vmsup/VM org.vmsup.VM1.Stop
run_as vmsup-viewer dbus-send --system --print-reply --dest=org.vmsup.VM.demo /org/vmsup/VM org.vmsup.Agent1.Command \
        string:'{"execute":"guest-exec","arguments":{"path":"/bin/sh"}}'
run_as vmsup-nobody dbus-send --system --print-reply --dest=org.vmsup.VM.demo /org/vmsup/VM org.vmsup.VM1.GetStatus
run busctl --system get-property org.vmsup.VM.demo /org/vmsup/VM org.vmsup.VM1 State

bold "The same with vmsupctl: every VM on the bus, status, a refusal in plain words (exit status 4)"
run "$VMSUPCTL" --bus "$BUS" list
run "$VMSUPCTL" --bus "$BUS" status demo
run "$VMSUPCTL" --bus "$BUS" qmp demo query-status
run_as vmsup-viewer "$VMSUPCTL" --bus "$BUS" stop demo
run_as vmsup-nobody "$VMSUPCTL" --bus "$BUS" list

bold "Shut it down (through the guest agent; ACPI when there is none); returns when QEMU exited"
run busctl --system --timeout=60 call org.vmsup.VM.demo /org/vmsup/VM org.vmsup.VM1 Shutdown ub 30 false
run busctl --system get-property org.vmsup.VM.demo /org/vmsup/VM org.vmsup.VM1 State StateReason Pid
sleep 0.3

bold "Stop the supervisor (SIGTERM: a running VM would be shut down first)"
vmsupd_stop demo
echo "  vmsupd exited with status $VMSUPD_RC"
TEST_FAILED=0
echo
echo "Demo finished; the private bus, the supervisor and the test directory are removed."
