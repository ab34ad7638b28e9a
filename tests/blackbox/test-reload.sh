#!/bin/bash
# Reload without a restart (SIGHUP and org.vmsup.VM1.Reload), under the supervisor's real
# confinement: ACL changes apply to the next call (also of a caller the supervisor already
# knows), QEMU settings wait for the next start (PendingChanges), a malformed definition or
# ACL keeps the old configuration and says why, only root may call Reload.
source "$(dirname "$0")/lib.sh"

for u in vmsupt-none vmsupt-late vmsupt-audit; do ensure_user "$u"; done
bus_start || exit 1
host_acl '{}'

# reload_def MEMORY_MIB EXTRA_ACL: a machine "none" VM (no guest needed).
reload_def() {
        cat <<DEF
{ "qemu": { "binary": "$QEMU", "machine": "none", "accel": "tcg", "memory_mib": $1 },
  "autostart": true, "shutdown_timeout_sec": 2,
  "acl": [ { "user": "vmsupt-audit", "privileges": [ "VM.Audit" ] } ${2:-} ] }
DEF
}
reload() { dsend_as root rl VM1.Reload; }
qemu_pid() { vmprop_value rl Pid; }
cmdline() { tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null; }
# eventually CMD...: CMD succeeds within 20 s (a signal is handled when the loop gets to it).
eventually() {
        local i
        for i in $(seq 200); do
                "$@" >/dev/null 2>&1 && return 0
                sleep 0.1
        done
        "$@"
}
pending() { busctl --system get-property org.vmsup.VM.rl /org/vmsup/VM org.vmsup.VM1 PendingChanges; }

define_vm rl "$(reload_def 32)"
check_here "supervisor" vmsupd_start rl
check "running" wait_state rl running 30
pid=$(qemu_pid)
check_eq "PendingChanges empty after the start" "as 0" "$(pending)"

# --- who may reload
asks() { grep -c 'asking the launcher to take' "$T/logs/rl.log"; }
asked0=$(asks)
check_fails "Reload from a caller with no rights: AccessDenied" 'AccessDenied' dsend_as vmsupt-none rl VM1.Reload
check_fails "Reload from a non-root caller with VM.Audit: AccessDenied" 'AccessDenied.*root-only' \
        dsend_as vmsupt-audit rl VM1.Reload
check_eq "... and nothing was sent to the launcher for them" "$asked0" "$(asks)"
check "Reload as root with nothing changed" reload
check_eq "nothing changed: PendingChanges empty" "as 0" "$(pending)"

# --- ACL: a line added lets a refused caller in at once; the same QEMU runs on
check_fails "vmsupt-late refused before" 'AccessDenied' dsend_as vmsupt-late rl VM1.GetStatus
define_vm rl "$(reload_def 32 ', { "user": "vmsupt-late", "privileges": [ "VM.Audit" ] }')"
check "Reload after adding an ACL line" reload
check "vmsupt-late allowed after Reload" dsend_as vmsupt-late rl VM1.GetStatus
check_eq "the same QEMU after Reload" "$pid" "$(qemu_pid)"
# Removed again: refused at once, though the supervisor knows the caller from its last call.
define_vm rl "$(reload_def 32)"
check "Reload after removing it" reload
check_fails "vmsupt-late refused at once after the line is removed" 'AccessDenied' \
        dsend_as vmsupt-late rl VM1.GetStatus

# --- the host ACL, through SIGHUP (as systemctl reload)
host_acl '{ "acl": [ { "user": "vmsupt-late", "privileges": [ "VM.Audit" ] } ] }'
kill -HUP "${VMSUPD_PID[rl]}"
check "vmsupt-late allowed after SIGHUP (host ACL)" eventually dsend_as vmsupt-late rl VM1.GetStatus
check_eq "the same QEMU after SIGHUP" "$pid" "$(qemu_pid)"
host_acl '{}'
kill -HUP "${VMSUPD_PID[rl]}"
late_refused() { local out; out=$(dsend_as vmsupt-late rl VM1.GetStatus 2>&1); [[ $out == *AccessDenied* ]]; }
check "vmsupt-late refused again after SIGHUP" eventually late_refused

# --- malformed files: refused with file, JSON path and reason; the old configuration stays
define_vm rl "$(reload_def 32 ', { "user": "vmsupt-late", "privileges": [ "VM.Audit" ] }')"
cp "$T/vms/rl.json" "$T/good.json"
printf '{ "qemu": { "binary": "%s", "machine": "none", "cpus": "two" }, "acl": [ { "user": "vmsupt-late", "privileges": [ "VM.Audit" ] } ] }\n' \
        "$QEMU" > "$T/vms/rl.json"
check_fails "malformed definition: InvalidArgs naming file, path and reason" \
        "InvalidArgs.*$T/vms/rl.json: \\\$\\.qemu\\.cpus: must be an integer" reload
check_fails "the ACL of the refused definition is not in force" 'AccessDenied' dsend_as vmsupt-late rl VM1.GetStatus
check "the refusal is logged" grep -q "reload refused, the configuration in force stays: $T/vms/rl.json" "$T/logs/rl.log"
printf '{ "acl": [ { "user": "vmsupt-no-such-user", "privileges": [ "VM.Audit" ] } ] }' > "$T/acl.json"
cp "$T/good.json" "$T/vms/rl.json"
check_fails "an unknown user in the host ACL: InvalidArgs naming it (resolved under the filter)" \
        'InvalidArgs.*acl.json: \$\.acl\[0\]\.user: user "vmsupt-no-such-user" does not exist' reload
check_fails "nothing of that reload is in force" 'AccessDenied' dsend_as vmsupt-late rl VM1.GetStatus
printf '{ "acl": [' > "$T/acl.json"
check_fails "malformed host ACL: InvalidArgs" 'InvalidArgs.*acl.json: line 1' reload
printf '{ "acl": [], "x": 1 }' > "$T/acl.json"
check_fails "unknown key in the host ACL: InvalidArgs" 'InvalidArgs.*acl.json: \$: unknown key "x"' reload
host_acl '{}'
head -c $((1024 * 1024 + 1)) /dev/zero | tr '\0' ' ' > "$T/vms/rl.json"
check_fails "a definition over 1 MiB: InvalidArgs" 'InvalidArgs.*larger than 1048576 bytes' reload
rm -f "$T/vms/rl.json"; mkdir "$T/vms/rl.json"
check_fails "a directory instead of the definition: InvalidArgs" 'InvalidArgs.*not a regular file' reload
rmdir "$T/vms/rl.json"
check_fails "a missing definition: InvalidArgs" 'InvalidArgs.*rl.json: cannot open' reload
define_vm rl "$(reload_def 32 ', { "user": "vmsupt-late", "privileges": [ "VM.Audit" ] }' | sed 's/"machine": "none"/"machine": "q35"/; s/"autostart": true,/"autostart": true, "agent": false,/')"
check_fails "a change that needs a new supervisor (serial console): InvalidArgs" \
        'InvalidArgs.*\$\.qemu\.machine: whether QEMU has a serial console' reload
kill -HUP "${VMSUPD_PID[rl]}"
check "a refused SIGHUP is logged" wait_for_line "$T/logs/rl.log" 'reload refused.*serial console'
check "the supervisor survived every refused reload" kill -0 "${VMSUPD_PID[rl]}"
check_fails "the old configuration is still in force" 'AccessDenied' dsend_as vmsupt-late rl VM1.GetStatus
check_eq "the same QEMU through all of it" "$pid" "$(qemu_pid)"

# --- QEMU settings: pending until the next start, which applies them
check_match "the running QEMU has -m 32M" ' -m 32M ' "$(cmdline "$pid")"
# A subscriber (python3-dbus) printing PropertiesChanged; its stdin stays open until we exit.
mkfifo "$T/events.in"
/usr/bin/python3 "$ROOT/tests/blackbox/events.py" follow rl subscribe < "$T/events.in" > "$T/events" 2>&1 &
exec {EVFD}> "$T/events.in"
check "a subscriber" wait_for_line "$T/events" '^READY' 30
define_vm rl "$(reload_def 48)"
check "Reload with memory_mib changed" reload
check_eq "PendingChanges lists qemu" 'as 1 "qemu"' "$(pending)"
check "PropertiesChanged(PendingChanges) reaches a subscriber" wait_for_line "$T/events" "^P org.vmsup.VM1 PendingChanges=.*'qemu'"
check_eq "the running QEMU is untouched" "$pid" "$(qemu_pid)"
check_match "it still runs with -m 32M" ' -m 32M ' "$(cmdline "$pid")"
define_vm rl "$(reload_def 48 | sed 's/"autostart": true,/"autostart": true, "run_as": { "user": "vmsupt-none" },/')"
check "Reload with run_as changed too" reload
check_eq "PendingChanges lists both keys" 'as 2 "qemu" "run_as"' "$(pending)"
ctl() { "$VMSUPCTL" --bus "$BUS" "$@"; }
check_match "vmsupctl status names what is pending" 'Pending: qemu, run_as \(reloaded; applied at the next start\)' "$(ctl status rl)"
check_eq "vmsupctl status --json: PendingChanges" '["qemu","run_as"]' "$(ctl --json status rl | jq -c .PendingChanges)"
check "vmsupctl reload as root" ctl reload rl
as vmsupt-audit "$VMSUPCTL" --bus "$BUS" reload rl > "$T/out" 2>&1; rc=$?
check_eq "vmsupctl reload as non-root: exit 4" 4 "$rc"
check "vmsupctl reload as non-root names why" grep -q 'root-only' "$T/out"
cp "$T/vms/rl.json" "$T/good.json"
printf '{ "qemu": 1 }' > "$T/vms/rl.json"
ctl reload rl > "$T/out" 2>&1; rc=$?
check_eq "vmsupctl reload of a malformed definition: exit 2" 2 "$rc"
check "vmsupctl reload prints the reason" grep -q 'rl.json: \$\.qemu: must be an object' "$T/out"
cp "$T/good.json" "$T/vms/rl.json"
check "Stop" vmcall rl VM1 Stop
check "Start" vmcall rl VM1 Start
check "running" wait_state rl running 30
pid2=$(qemu_pid)
check_match "the new QEMU has -m 48" ' -m 48M ' "$(cmdline "$pid2")"
check_eq "the new QEMU runs as the reloaded run_as" "$(id -u vmsupt-none)" "$(stat -c %u "/proc/$pid2")"
check_eq "PendingChanges empty after the start" "as 0" "$(pending)"
check "PropertiesChanged(PendingChanges) emptied" wait_for_line "$T/events" '^P org.vmsup.VM1 PendingChanges=dbus.Array\(\[\]'

# --- a change while QEMU is stopped applies to the next start at once: nothing pending
check "Stop" vmcall rl VM1 Stop
define_vm rl "$(reload_def 40)"
check "Reload while stopped" reload
check_eq "nothing pending while stopped" "as 0" "$(pending)"
check "Start" vmcall rl VM1 Start
check "running" wait_state rl running 30
check_match "the new QEMU has -m 40" ' -m 40M ' "$(cmdline "$(qemu_pid)")"


# --- the launcher's answer to a reload is read on the loop: while it has not come (here the
# launcher is stopped), everybody else is answered, and the reload is taken only with it
lau=$(pgrep -P "${VMSUPD_PID[rl]}" -x vmsupd-launcher)
asked=$(grep -c 'asking the launcher to take' "$T/logs/rl.log")
asked_more() { [[ $(grep -c 'asking the launcher to take' "$T/logs/rl.log") -gt $asked ]]; }
# The stopped launcher's end of the socket pair holds an unread request (ss -x: Recv-Q).
launcher_has_request() {
        ss -x -p 2>/dev/null | awk -v p="pid=$lau," '$1 == "u_seq" && $2 == "ESTAB" && index($0, p) && $3 > 0 { f = 1 } END { exit !f }'
}
# hold_reload: stops the launcher, calls Reload in the background ($held), and checks that the
# request waits, unread, in the launcher's socket.
hold_reload() {
        kill -STOP "$lau"
        ( reload > "$T/reload-held.out" 2>&1; echo "rc=$?" >> "$T/reload-held.out" ) &
        held=$!
        for i in $(seq 200); do launcher_has_request && break; sleep 0.05; done
        check "Reload reached the launcher" launcher_has_request
        check "... as the log says" asked_more
}
taken=$(grep -c ': reloaded ' "$T/logs/rl.log")
# (busctl get-property ignores --timeout: Properties.Get is called.)
state_now() {
        busctl --system --timeout=3 call org.vmsup.VM.rl /org/vmsup/VM org.freedesktop.DBus.Properties Get ss \
                org.vmsup.VM1 State
}
status_now() {
        as vmsupt-audit busctl --system --timeout=3 call org.vmsup.VM.rl /org/vmsup/VM org.vmsup.VM1 GetStatus
}
define_vm rl "$(reload_def 40 ', { "user": "vmsupt-late", "privileges": [ "VM.Audit" ] }')"
hold_reload
check "State is read while the launcher has not answered the reload" state_now
check "another caller's GetStatus is answered meanwhile" status_now
check "... while Reload still waits for the launcher" kill -0 "$held"
check_fails "the reload is not in force before the launcher's answer" 'AccessDenied' dsend_as vmsupt-late rl VM1.GetStatus
# A second Reload and a SIGHUP meanwhile: one more reload after the one in flight answers both.
( reload > "$T/reload-held2.out" 2>&1; echo "rc=$?" >> "$T/reload-held2.out" ) &
held2=$!
kill -HUP "${VMSUPD_PID[rl]}"
check "a SIGHUP during the reload is handled (the loop serves)" state_now
check "... and the second Reload waits too" kill -0 "$held2"
kill -CONT "$lau"
wait "$held"
check "Reload returns once the launcher took the definition" grep -q '^rc=0' "$T/reload-held.out"
wait "$held2"
check "the second Reload returns after one more reload" grep -q '^rc=0' "$T/reload-held2.out"
check "vmsupt-late allowed after the held Reload" dsend_as vmsupt-late rl VM1.GetStatus
two_more() { [[ $(grep -c ': reloaded ' "$T/logs/rl.log") -eq $((taken + 2)) ]]; }
check "two reloads taken: the held one, then one for the second Reload and the SIGHUP" eventually two_more

# A launcher stopped past its answer's bound: Reload fails saying so, nothing of it is in force,
# the supervisor serves on, and no QEMU starts until the supervisor and the launcher agree on
# the definition again (the launcher, resumed, takes it late: the supervisor reloads it then).
check "Stop" vmcall rl VM1 Stop
define_vm rl "$(reload_def 56)"
kill -STOP "$lau"
check_fails "Reload with the launcher stopped past the bound: Timeout naming the launcher" \
        'Timeout.*launcher did not answer' reload
check "the supervisor still serves" state_now
check "the configuration in force stays (vmsupt-late allowed)" dsend_as vmsupt-late rl VM1.GetStatus
check_fails "Reload again before the launcher answered: refused, saying why" \
        'InvalidArgs.*has not answered the previous reload' reload
check_fails "Start while the launcher's answer is owed: Busy" 'Error.Busy.*reload' dsend_as root rl VM1.Start
check_eq "... and the VM stays stopped" stopped "$(vmprop_value rl State)"
kill -CONT "$lau"
check "the launcher's late answer is followed by a reload" \
        wait_for_line "$T/logs/rl.log" 'hold the same definition again'
check_fails "what the file says is in force then (vmsupt-late refused)" 'AccessDenied' dsend_as vmsupt-late rl VM1.GetStatus
check "Start" vmcall rl VM1 Start
check "running" wait_state rl running 30
check_match "the new QEMU has the definition both hold (-m 56)" ' -m 56M ' "$(cmdline "$(qemu_pid)")"
check "Reload once the launcher answers again" reload

# SIGTERM with a reload in flight: the caller is told, the supervisor exits cleanly.
check "Stop" vmcall rl VM1 Stop
asked=$(grep -c 'asking the launcher to take' "$T/logs/rl.log")
hold_reload
vmsupd_stop rl
kill -CONT "$lau"
wait "$held"
check_eq "SIGTERM with a reload in flight: vmsupd exits 0" 0 "$VMSUPD_RC"
check "the held Reload is told the supervisor exits" grep -q 'NotRunning.*exiting' "$T/reload-held.out"

finish
