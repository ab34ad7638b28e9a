#!/bin/bash
# Lifecycle additions with a real QEMU (machine "none": no guest needed):
# StartWithOptions (paused), Reboot's refusals and timeout, the on_* definition
# keys, and the crash → restart policy with its bound.
source "$(dirname "$0")/lib.sh"

for u in vmsupt-none vmsupt-power; do ensure_user "$u"; done
bus_start || exit 1
host_acl '{}'

none_def() {
        cat <<DEF
{ "qemu": { "binary": "$QEMU", "machine": "none", "accel": "tcg", "memory_mib": 32 },
  "autostart": false, "shutdown_timeout_sec": 2 $1,
  "acl": [ { "user": "vmsupt-power", "privileges": [ "VM.Audit", "VM.PowerMgmt" ] } ] }
DEF
}
ctl_call() { busctl --system --timeout=120 call org.vmsup.VM.r1 /org/vmsup/VM org.vmsup.VM1 "$@"; }

# --- definition keys
define_vm badact "$(none_def ', "on_crash": "explode"')"
out=$("$VMSUPD" --config-dir "$T/vms" --runtime-dir "$T/run" --bus "$BUS" badact 2>&1); rc=$?
check_eq "on_crash with an unknown action exits 2" 2 "$rc"
check_match "the message names the key and the choices" '\$\.on_crash: must be one of "destroy" "restart" "preserve"' "$out"
define_vm badact "$(none_def ', "on_reboot": "preserve"')"
out=$("$VMSUPD" --config-dir "$T/vms" --runtime-dir "$T/run" --bus "$BUS" badact 2>&1); rc=$?
check_eq "on_reboot preserve is refused (exit 2)" 2 "$rc"
check_match "the message names on_reboot's choices" '\$\.on_reboot: must be one of "destroy" "restart"$' "$out"
define_vm badact "$(none_def ', "on_poweroff": 1')"
out=$("$VMSUPD" --config-dir "$T/vms" --runtime-dir "$T/run" --bus "$BUS" badact 2>&1); rc=$?
check_eq "on_poweroff of the wrong type exits 2" 2 "$rc"

# --- a VM that is restarted when it crashes
define_vm r1 "$(none_def ', "on_crash": "restart", "on_poweroff": "destroy", "on_reboot": "restart"')"
check_here "vmsupd starts r1" vmsupd_start r1

# Refused callers first: QEMU is never started.
check_fails "no ACL: StartWithOptions refused" 'Access denied|AccessDenied' as vmsupt-none busctl --system call org.vmsup.VM.r1 /org/vmsup/VM org.vmsup.VM1 StartWithOptions 'a{sv}' 1 paused b true
check_fails "no ACL: StartWithOptions refused, names VM.PowerMgmt (gdbus)" 'AccessDenied: VM.PowerMgmt' as vmsupt-none gdbus call --system -d org.vmsup.VM.r1 -o /org/vmsup/VM -m org.vmsup.VM1.StartWithOptions "{'paused': <true>}"
check_fails "no ACL: Reboot refused, names VM.PowerMgmt" 'AccessDenied: VM.PowerMgmt' dsend_as vmsupt-none r1 VM1.Reboot uint32:0
check_eq "refused calls left the VM stopped" "stopped 0" "$(vmprop_value r1 State) $(vmprop_value r1 Pid)"

# Argument limits (checked before anything starts).
check_fails "StartWithOptions: unknown option is InvalidArgs" 'InvalidArgs|Unknown start option "bogus"' ctl_call StartWithOptions 'a{sv}' 1 bogus b true
check_fails "StartWithOptions: paused as a string is InvalidArgs" 'boolean' ctl_call StartWithOptions 'a{sv}' 1 paused s yes
check_fails "StartWithOptions: paused twice is InvalidArgs" 'given twice' ctl_call StartWithOptions 'a{sv}' 2 paused b true paused b false
many=(); for i in $(seq 10000); do many+=(paused b true); done
check_fails "StartWithOptions: 10000 entries is InvalidArgs" 'given twice' ctl_call StartWithOptions 'a{sv}' 10000 "${many[@]}"
long=$(head -c 100000 /dev/zero | tr '\0' k)
check_fails "StartWithOptions: a 100000-byte key is InvalidArgs, echoed truncated" 'Unknown start option "kkkk' ctl_call StartWithOptions 'a{sv}' 1 "$long" b true
check_fails "Reboot: timeout above the maximum is InvalidArgs" 'at most 86400' ctl_call Reboot u 4000000000
check_fails "Reboot when stopped: NotRunning" 'not running' ctl_call Reboot u 0
check_eq "still stopped, QEMU never started" "stopped 0" "$(vmprop_value r1 State) $(vmprop_value r1 Pid)"

# --- paused start
events_start r1 "$T/ev" || not_ok "subscriber started"
check "VM.PowerMgmt: StartWithOptions paused=true" as vmsupt-power busctl --system --timeout=60 call org.vmsup.VM.r1 /org/vmsup/VM org.vmsup.VM1 StartWithOptions 'a{sv}' 1 paused b true
check_eq "state paused, reason start-paused" "paused start-paused" "$(vmprop_value r1 State) $(vmprop_value r1 StateReason)"
check_match "QEMU says the CPUs are stopped (prelaunch)" '"qmp-status".*"prelaunch"' "$(ctl_call GetStatus)"
check_fails "StartWithOptions while running: AlreadyRunning" 'already running' ctl_call StartWithOptions 'a{sv}' 0
check_fails "Reboot while paused: Busy" 'cannot reboot while it is paused' ctl_call Reboot u 0
check "Resume a paused start" ctl_call Resume
check_eq "running after Resume" running "$(vmprop_value r1 State)"
check "subscriber saw paused start-paused, then running" wait_for_line "$T/ev" '^StateChanged running host-qmp-cont'
check "Stop" ctl_call Stop
check "StartWithOptions paused=false runs the VM" ctl_call StartWithOptions 'a{sv}' 1 paused b false
check_eq "running, started" "running started" "$(vmprop_value r1 State) $(vmprop_value r1 StateReason)"
check "Stop" ctl_call Stop
check "StartWithOptions with no options runs the VM" ctl_call StartWithOptions 'a{sv}' 0
check_eq "running" running "$(vmprop_value r1 State)"

# --- Reboot without an agent on a machine without ACPI: the power button goes unheard
check_fails "Reboot without agent nor ACPI: Timeout" 'Timeout|did not run again' ctl_call Reboot u 1
check_eq "the VM runs on (reboot-timeout)" "running reboot-timeout" "$(vmprop_value r1 State) $(vmprop_value r1 StateReason)"

# --- crash → restart, bounded
pid=$(vmprop_value r1 Pid)
for n in 1 2 3 4 5; do
        kill -KILL "$pid"
        ok_restart=no
        for i in $(seq 400); do
                p=$(vmprop_value r1 Pid 2>/dev/null)
                if [[ $p != 0 && $p != "$pid" && $(vmprop_value r1 State) == running ]]; then ok_restart=yes; break; fi
                sleep 0.05
        done
        check_eq "kill -9 #$n of QEMU: restarted (on_crash restart)" yes "$ok_restart"
        pid=$p
done
check "subscriber saw crashed then starting" wait_for_line "$T/ev" '^StateChanged starting start'
kill -KILL "$pid"
check "kill -9 #6: the bound stops the restarts" wait_state r1 crashed 20
check_match "the state says why" '^restart-limit: 5 restarts within 60 s, last killed-by-signal-9$' "$(vmprop_value r1 StateReason)"
check_eq "no QEMU any more" 0 "$(vmprop_value r1 Pid)"
check "a caller's Start still works" ctl_call Start
pid=$(vmprop_value r1 Pid)
check "Stop (a caller's) is never followed by a restart" ctl_call Stop
check_eq "stopped, no QEMU" "stopped 0" "$(vmprop_value r1 State) $(vmprop_value r1 Pid)"

# --- on_reboot destroy: QEMU runs with -action reboot=shutdown, so a reset ends it
vmsupd_stop r1
define_vm r1 "$(none_def ', "on_reboot": "destroy", "on_poweroff": "restart", "on_crash": "restart"')"
check_here "vmsupd restarts with on_reboot destroy" vmsupd_start r1
check "Start" ctl_call Start
check_match "QEMU's command line has -action reboot=shutdown" '-action reboot=shutdown' "$(tr '\0' ' ' < "/proc/$(vmprop_value r1 Pid)/cmdline")"
pid=$(vmprop_value r1 Pid)
ctl_call Reset >/dev/null 2>&1
check "Reset with on_reboot destroy: QEMU ends" wait_state r1 stopped 20
check_eq "stopped, host-qmp-system-reset, no restart" "stopped host-qmp-system-reset 0" \
        "$(vmprop_value r1 State) $(vmprop_value r1 StateReason) $(vmprop_value r1 Pid)"

# --- vmsupctl: start --paused, reboot
ctl() { "$VMSUPCTL" --bus "$BUS" "$@"; }
rc_of() { "$@" >/dev/null 2>&1; echo $?; }
check_eq "vmsupctl reboot without rights: exit 4" 4 "$(rc_of as vmsupt-none "$VMSUPCTL" --bus "$BUS" reboot r1)"
check_match "vmsupctl reboot without rights names VM.PowerMgmt" 'VM.PowerMgmt' "$(as vmsupt-none "$VMSUPCTL" --bus "$BUS" reboot r1 2>&1)"
check_eq "vmsupctl start --paused without rights: exit 4" 4 "$(rc_of as vmsupt-none "$VMSUPCTL" --bus "$BUS" start r1 --paused)"
check_eq "vmsupctl reboot when stopped: exit 3" 3 "$(rc_of ctl reboot r1)"
check_eq "vmsupctl reboot --paused: usage, exit 2" 2 "$(rc_of ctl reboot r1 --paused)"
check_eq "vmsupctl reboot --timeout beyond 32 bits: exit 2" 2 "$(rc_of ctl reboot r1 --timeout 4294967296)"
check "vmsupctl start --paused (VM.PowerMgmt)" as vmsupt-power "$VMSUPCTL" --bus "$BUS" start r1 --paused
check_eq "paused, start-paused" "paused start-paused" "$(vmprop_value r1 State) $(vmprop_value r1 StateReason)"
check "vmsupctl resume" ctl resume r1
check_eq "running" running "$(vmprop_value r1 State)"
check_eq "vmsupctl reboot --timeout 1 on a machine without ACPI: exit 1 (timeout)" 1 "$(rc_of ctl reboot r1 --timeout 1)"
check "vmsupctl stop" ctl stop r1

vmsupd_stop r1
check_eq "vmsupd exits 0" 0 "$VMSUPD_RC"
finish
