#!/bin/bash
# org.vmsup.VM1 end to end with a real QEMU (machine "none": no guest needed):
# definition errors, every method as root and as refused callers, properties,
# signals, crash detection, SIGTERM/SIGKILL of the supervisor.
source "$(dirname "$0")/lib.sh"

for u in vmsupt-none vmsupt-audit vmsupt-power vmsupt-grp vmsupt-host; do ensure_user "$u"; done
ensure_group vmsupg-ops
OPS_GID=$(getent group vmsupg-ops | cut -d: -f3)
bus_start || exit 1
host_acl '{ "acl": [ { "user": "vmsupt-host", "privileges": [ "VM.Audit" ] } ] }'

none_def() {
        cat <<DEF
{ "qemu": { "binary": "$QEMU", "machine": "none", "accel": "tcg", "memory_mib": 32 },
  "autostart": ${1:-false}, "shutdown_timeout_sec": ${2:-2},
  "acl": [ { "user": "vmsupt-audit", "privileges": [ "VM.Audit" ] },
           { "user": "vmsupt-power", "privileges": [ "VM.Audit", "VM.PowerMgmt" ] },
           { "group": "$OPS_GID", "privileges": [ "VM.PowerMgmt" ] } ] }
DEF
}

# --- malformed input: exit 2, one line naming file, path and reason; nothing starts
define_vm bad1 '{ "qemu": { "cpus": "two" } }'
out=$("$VMSUPD" --config-dir "$T/vms" --runtime-dir "$T/run" --bus "$BUS" bad1 2>&1); rc=$?
check_eq "malformed definition exits 2" 2 "$rc"
check_match "message names file, JSON path and reason" "^vmsupd: $T/vms/bad1.json: \\\$\\.qemu\\.cpus: must be an integer" "$out"
check_eq "message is one line" 1 "$(printf '%s\n' "$out" | wc -l)"
check "nothing was started for it" bash -c "! busctl --system status org.vmsup.VM.bad1 && ! pgrep -f 'guest=[b]ad1,'"
define_vm bad2 '{ "qemu": {}, "acl": [ { "user": "root", "privileges": [ "VM.Root" ] } ] }'
out=$("$VMSUPD" --config-dir "$T/vms" --runtime-dir "$T/run" --bus "$BUS" bad2 2>&1); rc=$?
check_eq "unknown privilege exits 2" 2 "$rc"
check_match "unknown privilege message" 'bad2.json: \$\.acl\[0\]\.privileges\[0\]: unknown privilege "VM.Root"' "$out"
out=$("$VMSUPD" --config-dir "$T/vms" --bus "$BUS" 'bad name' 2>&1); rc=$?
check_eq "invalid VM name exits 2" 2 "$rc"
check_match "invalid name message" 'invalid VM name' "$out"
out=$("$VMSUPD" --config-dir "$T/vms" --bus "$BUS" missing 2>&1); rc=$?
check_eq "missing definition exits 2" 2 "$rc"
printf '{ "acl": 5 }' > "$T/badacl.json"
define_vm ok1 "$(none_def)"
out=$("$VMSUPD" --config-dir "$T/vms" --acl "$T/badacl.json" --bus "$BUS" ok1 2>&1); rc=$?
check_eq "malformed host ACL exits 2" 2 "$rc"
check_match "host ACL message" 'badacl.json: \$\.acl: must be an array' "$out"

# --- a supervisor with a stopped VM
define_vm vm1 "$(none_def false 2)"
check_here "vmsupd starts and owns org.vmsup.VM.vm1" vmsupd_start vm1
check_eq "runtime directory is 0700" 700 "$(stat -c %a "$T/run/vm1")"
check_eq "Name" '"vm1"' "$(vmprop vm1 Name | cut -d' ' -f2)"
check_eq "State is stopped" stopped "$(vmprop_value vm1 State)"
check_eq "Pid is 0" 0 "$(vmprop_value vm1 Pid)"
check_eq "QemuVersion empty before the first start" "" "$(vmprop_value vm1 QemuVersion)"
check_fails "Stop when stopped: NotRunning" 'org.vmsup.Error.NotRunning|not running' vmcall vm1 VM1 Stop
check_fails "Shutdown when stopped: NotRunning" 'not running' vmcall vm1 VM1 Shutdown ub 0 false
check_fails "Pause when stopped: NotRunning" 'not running' vmcall vm1 VM1 Pause
check_fails "Resume when stopped: NotRunning" 'not running' vmcall vm1 VM1 Resume
check_fails "Reset when stopped: NotRunning" 'not running' vmcall vm1 VM1 Reset
check_fails "SendKey when stopped: NotRunning" 'not running' vmcall vm1 VM1 SendKey asu 1 ret 0

# --- refused callers, while stopped: QEMU is never started
for m in Start Stop Reset Pause Resume; do
        check_fails "no ACL: $m refused, names VM.PowerMgmt" 'AccessDenied: VM.PowerMgmt privilege required' dsend_as vmsupt-none vm1 VM1.$m
        check_fails "no ACL: $m refused through busctl too" 'Access denied' as vmsupt-none busctl --system call org.vmsup.VM.vm1 /org/vmsup/VM org.vmsup.VM1 $m
done
check_fails "no ACL: Shutdown refused" 'AccessDenied: VM.PowerMgmt' dsend_as vmsupt-none vm1 VM1.Shutdown uint32:0 boolean:true
check_fails "no ACL: SendKey refused, names VM.Console" 'AccessDenied: VM.Console' dsend_as vmsupt-none vm1 VM1.SendKey array:string:ret uint32:0
check_fails "no ACL: GetStatus refused, names VM.Audit" 'AccessDenied: VM.Audit' dsend_as vmsupt-none vm1 VM1.GetStatus
check_fails "no ACL: property State refused" 'VM.Audit|Access denied' as vmsupt-none busctl --system get-property org.vmsup.VM.vm1 /org/vmsup/VM org.vmsup.VM1 State
check_fails "no ACL: GetAll refused" 'VM.Audit|Access denied' as vmsupt-none busctl --system call org.vmsup.VM.vm1 /org/vmsup/VM org.freedesktop.DBus.Properties GetAll s org.vmsup.VM1
check "no ACL: introspection is open" as vmsupt-none busctl --system introspect --xml-interface org.vmsup.VM.vm1 /org/vmsup/VM
check_fails "VM.Audit alone: Start refused" 'AccessDenied: VM.PowerMgmt' dsend_as vmsupt-audit vm1 VM1.Start
check_eq "refused Start left the VM stopped and QEMU unstarted" "stopped 0" "$(vmprop_value vm1 State) $(vmprop_value vm1 Pid)"
check "VM.Audit: properties readable" as vmsupt-audit busctl --system get-property org.vmsup.VM.vm1 /org/vmsup/VM org.vmsup.VM1 State
check "host-wide ACL grants VM.Audit" as vmsupt-host busctl --system get-property org.vmsup.VM.vm1 /org/vmsup/VM org.vmsup.VM1 State
check_fails "host-wide ACL grants nothing more" 'AccessDenied: VM.PowerMgmt' dsend_as vmsupt-host vm1 VM1.Start

# --- Start, watched by a subscriber
events_start vm1 "$T/ev1" || not_ok "subscriber started"
t0=$(date +%s%N)
check "VM.PowerMgmt: Start" as vmsupt-power busctl --system --timeout=60 call org.vmsup.VM.vm1 /org/vmsup/VM org.vmsup.VM1 Start
diag "Start returned after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
check_eq "Start returns with the VM running" running "$(vmprop_value vm1 State)"
pid=$(vmprop_value vm1 Pid)
check "Pid is QEMU's" test "$(cat /proc/"$pid"/comm 2>/dev/null)" = qemu-system-x86
check_match "QemuVersion from the greeting" '^[0-9]+\.[0-9]+\.[0-9]+$' "$(vmprop_value vm1 QemuVersion)"
check_match "StartedAtUSec set" '^[1-9][0-9]{15}$' "$(vmprop_value vm1 StartedAtUSec)"
check "subscriber saw StateChanged starting" wait_for_line "$T/ev1" '^StateChanged starting'
check "subscriber saw StateChanged running started" wait_for_line "$T/ev1" '^StateChanged running started'
check "subscriber saw the RESUME event" wait_for_line "$T/ev1" '^Event RESUME \{\} [0-9]+'
check_fails "Start again: AlreadyRunning" 'AlreadyRunning|already running' vmcall vm1 VM1 Start
check "QMP has no socket in the file system: QEMU's monitor has only the supervisor's connection" test ! -e "$T/run/vm1/qmp.sock"
check_match "QEMU's QMP descriptor is a socket" '^socket:' "$(readlink /proc/"$pid"/fd/3)"
st=$(vmcall vm1 VM1 GetStatus)
check_match "GetStatus: state and qmp-status" '"state" s "running".*"qmp-status" s "running"' "$st"
check_match "GetStatus: pid, uptime, cpu, rss, agent" "\"pid\" u $pid .*\"uptime-usec\" t [0-9]+ .*\"cpu-usec\" t [0-9]+ .*\"rss-bytes\" t [1-9][0-9]+ .*\"agent-connected\" b false" "$st"
check "VM.Audit: GetStatus" as vmsupt-audit busctl --system call org.vmsup.VM.vm1 /org/vmsup/VM org.vmsup.VM1 GetStatus
all=$(as vmsupt-audit busctl --system call org.vmsup.VM.vm1 /org/vmsup/VM org.freedesktop.DBus.Properties GetAll s org.vmsup.VM1)
check_match "GetAll returns every property" '"Name".*"State".*"StateReason".*"Pid".*"QemuVersion".*"StartedAtUSec".*"AgentConnected"' "$all"

# --- many calls over one connection, as a long-lived client makes them
check_eq "VM.Audit: three GetStatus on one connection all answered" "ok ok ok" \
        "$(as vmsupt-audit "$ROOT/$BUILD/tests/bus-repeat" "$BUS" vm1 org.vmsup.VM1 GetStatus 3 | xargs)"
out=$(as vmsupt-none "$ROOT/$BUILD/tests/bus-repeat" "$BUS" vm1 org.vmsup.VM1 GetStatus 3)
check_eq "no ACL: every call on one connection refused by the ACL, naming VM.Audit" 3 \
        "$(grep -c '^error org.freedesktop.DBus.Error.AccessDenied: VM.Audit privilege required.$' <<< "$out")"
check_eq "root: three GetStatus on one connection" "ok ok ok" "$("$ROOT/$BUILD/tests/bus-repeat" "$BUS" vm1 org.vmsup.VM1 GetStatus 3 | xargs)"

# --- refused while running: QEMU is not touched
check_fails "no ACL: Stop refused while running" 'AccessDenied: VM.PowerMgmt' dsend_as vmsupt-none vm1 VM1.Stop
check_fails "VM.Audit: Pause refused" 'AccessDenied: VM.PowerMgmt' dsend_as vmsupt-audit vm1 VM1.Pause
check_eq "refused calls left QEMU running, same pid" "running $pid" "$(vmprop_value vm1 State) $(vmprop_value vm1 Pid)"
check "no STOP event reached the subscriber" bash -c "! grep -q '^Event STOP' '$T/ev1'"

# --- Pause / Resume / Reset
check "Pause (group ACL)" as_groups vmsupt-grp "$OPS_GID" busctl --system call org.vmsup.VM.vm1 /org/vmsup/VM org.vmsup.VM1 Pause
check "paused" wait_state vm1 paused 5
check_eq "StateReason after Pause" host-qmp-stop "$(vmprop_value vm1 StateReason)"
check "subscriber saw STOP" wait_for_line "$T/ev1" '^Event STOP'
check "subscriber saw StateChanged paused" wait_for_line "$T/ev1" '^StateChanged paused host-qmp-stop'
check_fails "group ACL does not apply without the group" 'AccessDenied: VM.PowerMgmt' dsend_as vmsupt-grp vm1 VM1.Resume
check "Resume" vmcall vm1 VM1 Resume
check "running again" wait_state vm1 running 5
check_eq "StateReason after Resume" host-qmp-cont "$(vmprop_value vm1 StateReason)"
check "Reset" vmcall vm1 VM1 Reset
check "subscriber saw RESET" wait_for_line "$T/ev1" '^Event RESET \{"guest":false,"reason":"host-qmp-system-reset"\}'
check_fails "SendKey with a bad key name: InvalidArgs" 'InvalidArgs|QKeyCode' vmcall vm1 VM1 SendKey asu 1 'ctrl;quit' 0
check_fails "SendKey with no keys: InvalidArgs" 'between 1 and 16' vmcall vm1 VM1 SendKey asu 0 0

# --- a Shutdown that waits does not block other callers
vmcall vm1 VM1 Shutdown ub 4 false > "$T/shutdown.out" 2>&1 &
sd_pid=$!
wait_state vm1 shutting-down 5 >/dev/null
check "GetStatus answers while a Shutdown waits" as vmsupt-audit busctl --system call org.vmsup.VM.vm1 /org/vmsup/VM org.vmsup.VM1 GetStatus
check "the Shutdown is still waiting" kill -0 $sd_pid
wait $sd_pid
check_match "Shutdown without force times out (no ACPI in machine none)" 'Timeout|did not shut down' "$(cat "$T/shutdown.out")"
check "VM runs on after the timeout" wait_state vm1 running 2
check_eq "StateReason shutdown-timeout" shutdown-timeout "$(vmprop_value vm1 StateReason)"
check "Shutdown(1, force) stops it hard" vmcall vm1 VM1 Shutdown ub 1 true
check_eq "stopped after forced Shutdown" stopped "$(vmprop_value vm1 State)"
check_eq "Pid 0 after stop" 0 "$(vmprop_value vm1 Pid)"
check "QEMU process gone" bash -c "! kill -0 $pid 2>/dev/null"

# --- Stop
check "Start again" vmcall vm1 VM1 Start
pid=$(vmprop_value vm1 Pid)
check "Stop" vmcall vm1 VM1 Stop
check_eq "Stop: stopped, host-qmp-quit" "stopped host-qmp-quit" "$(vmprop_value vm1 State) $(vmprop_value vm1 StateReason)"
check "Stop returned after the process was reaped" bash -c "! kill -0 $pid 2>/dev/null"
check "subscriber saw SHUTDOWN host-qmp-quit" wait_for_line "$T/ev1" '^Event SHUTDOWN \{"guest":false,"reason":"host-qmp-quit"\}'

# --- QEMU killed under the supervisor
check "Start for the crash test" vmcall vm1 VM1 Start
pid=$(vmprop_value vm1 Pid)
t0=$(date +%s%N)
kill -KILL "$pid"
if wait_state vm1 crashed 5; then
        diag "crash reported after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
        ok "kill -9 of QEMU: state crashed"
else
        not_ok "kill -9 of QEMU: state crashed"
fi
check_eq "StateReason killed-by-signal-9" killed-by-signal-9 "$(vmprop_value vm1 StateReason)"
check "subscriber saw StateChanged crashed" wait_for_line "$T/ev1" '^StateChanged crashed killed-by-signal-9'
check_eq "Pid 0 after the crash" 0 "$(vmprop_value vm1 Pid)"
check "Start after a crash" vmcall vm1 VM1 Start
pid=$(vmprop_value vm1 Pid)

# A waiting call is answered when QEMU dies under it.
vmcall vm1 VM1 Shutdown ub 30 false > "$T/shutdown2.out" 2>&1 &
sd_pid=$!
wait_state vm1 shutting-down 5 >/dev/null
kill -KILL "$pid"
wait $sd_pid
check_eq "a waiting Shutdown is answered when QEMU dies" 0 "$?"

# --- a QEMU that exits with status 1 while running (a crashing binary)
cat > "$T/crashing-qemu" <<SH
#!/bin/bash
# Runs the real QEMU, then dies with status 1 when told to.
"$QEMU" "\$@" &
child=\$!
while [[ ! -e "$T/crash-now" ]]; do sleep 0.05; done
kill -KILL \$child
exit 1
SH
chmod +x "$T/crashing-qemu"
define_vm vm2 "{ \"qemu\": { \"binary\": \"$T/crashing-qemu\", \"machine\": \"none\", \"accel\": \"tcg\", \"memory_mib\": 32 }, \"autostart\": true }"
check_here "autostarting supervisor" vmsupd_start vm2
check "autostart: running once the name is visible or soon after" wait_state vm2 running 20
touch "$T/crash-now"
check "exit status 1: crashed" wait_state vm2 crashed 5
check_eq "StateReason exit-status-1" exit-status-1 "$(vmprop_value vm2 StateReason)"

# --- start failure: QEMU refuses its command line
define_vm vm3 "{ \"qemu\": { \"binary\": \"$QEMU\", \"machine\": \"none\", \"accel\": \"tcg\", \"extra_args\": [ \"-device\", \"no-such-device-x\" ] }, \"autostart\": false }"
check_here "supervisor for a VM that cannot start" vmsupd_start vm3
check_fails "Start reports QEMU's error" "start-failed: .*no-such-device-x" vmcall vm3 VM1 Start
check_eq "state stopped after a failed start" stopped "$(vmprop_value vm3 State)"
check_match "StateReason start-failed with QEMU's message" '^start-failed: .*no-such-device-x' "$(vmprop_value vm3 StateReason)"
# The flight recorder: what led to the failure, debug messages included, although the
# supervisor logs at info level.
check "a failed start writes the flight recorder to the log" grep -q 'flight recorder: VM vm3: start failed' "$T/logs/vm3.log"
check "… with the debug-level story of the start" grep -qE 'flight recorder: -[0-9.]+ s D launcher: QEMU is pid [0-9]+' "$T/logs/vm3.log"
check "… and QEMU's own words" grep -qE 'flight recorder: -[0-9.]+ s I qemu: .*no-such-device-x' "$T/logs/vm3.log"
check "debug messages are not logged otherwise" bash -c "! grep -v 'flight recorder' '$T/logs/vm3.log' | grep -q 'launcher: QEMU is pid'"

# --- start failure: the monitor greets, then goes away (QEMU does not exit)
cat > "$T/mute-qemu" <<'SH'
#!/bin/bash
printf '%s\r\n' '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "fake"}, "capabilities": []}}' >&3
exec 3>&-
exec sleep 600
SH
chmod +x "$T/mute-qemu"
define_vm vm5 "{ \"qemu\": { \"binary\": \"$T/mute-qemu\", \"machine\": \"none\", \"accel\": \"tcg\" }, \"autostart\": false }"
check_here "supervisor for a VM whose monitor goes away" vmsupd_start vm5
check_fails "Start fails" "start-failed" vmcall vm5 VM1 Start
check "the flight recorder tells the failed start and its QMP failure" \
        bash -c "grep -q 'flight recorder: VM vm5: start failed' '$T/logs/vm5.log' && grep -qE 'flight recorder: .* W VM vm5: QMP (protocol error|connection lost)' '$T/logs/vm5.log'"
check "… with the greeting and the end of the connection" \
        bash -c "grep -q 'flight recorder: .* D QMP greeting from QEMU 7.2.0' '$T/logs/vm5.log' && grep -q 'flight recorder: .* D QMP connection ended' '$T/logs/vm5.log'"
check "… and QEMU's threads" grep -qE 'flight recorder: .* D VM vm5: QEMU thread [0-9]+ "[^"]+": state [A-Z]' "$T/logs/vm5.log"
vmsupd_stop vm5

# --- SIGTERM: graceful shutdown (forced after shutdown_timeout_sec), exit 0
check "Start vm1 for SIGTERM" vmcall vm1 VM1 Start
pid=$(vmprop_value vm1 Pid)
vmsupd_stop vm1
check_eq "SIGTERM: vmsupd exits 0" 0 "$VMSUPD_RC"
check "SIGTERM: QEMU is gone" bash -c "! kill -0 $pid 2>/dev/null"
check "SIGTERM: bus name released" bash -c "! busctl --system status org.vmsup.VM.vm1 >/dev/null 2>&1"

# --- readiness and the watchdog, as systemd sees them
define_vm vm4 "$(none_def true 2)"
"$ROOT/$BUILD/tests/notify-listen" "$T/notify" 8 > "$T/notify.out" &
wait_for_line "$T/notify.out" '^LISTENING' 5
NOTIFY_SOCKET="$T/notify" WATCHDOG_USEC=400000 vmsupd_start vm4
check "READY=1 sent" wait_for_line "$T/notify.out" '^READY=1' 10
check "with autostart, the first status after READY=1 is running" \
        bash -c "sed -n '/^READY=1/,\$p' '$T/notify.out' | grep -m1 '^STATUS=' | grep -q 'STATUS=VM vm4: running'"
check "watchdog pings at WATCHDOG_USEC/2" wait_for_line "$T/notify.out" '^WATCHDOG=1' 5
kill -TERM "${VMSUPD_PID[vm4]}"
wait_for_line "$T/notify.out" '^STOPPING=1' 5 && ok "STOPPING=1 sent on SIGTERM" || not_ok "STOPPING=1 sent on SIGTERM"
{ wait "${VMSUPD_PID[vm4]}"; } 2>/dev/null
unset "VMSUPD_PID[vm4]"

# --- SIGKILL of the supervisor: QEMU stays for the next one (test-reattach.sh), and
# SIGTERM to its launcher (no supervisor there) ends it: nothing lingers.
check_here "supervisor restarted" vmsupd_start vm1
check "Start" vmcall vm1 VM1 Start
pid=$(vmprop_value vm1 Pid)
lau=$(awk '$1 == "launcher_pid" { print $2 }' "$T/run/vm1/run-state")
kill -KILL "${VMSUPD_PID[vm1]}"
{ wait "${VMSUPD_PID[vm1]}"; } 2>/dev/null
unset "VMSUPD_PID[vm1]"
check "SIGKILL of vmsupd: QEMU keeps running" kill -0 "$pid"
kill -TERM "$lau"
gone=no
for i in $(seq 200); do kill -0 "$pid" 2>/dev/null || kill -0 "$lau" 2>/dev/null || { gone=yes; break; }; sleep 0.05; done
check_eq "then SIGTERM to the unsupervised launcher: QEMU and the launcher end" yes "$gone"

# --- The launcher's answer is read on the loop: while it has not come (here the launcher
# is stopped), other callers are answered and Start waits for it.
check_here "supervisor for the stopped-launcher test" vmsupd_start vm1
lau=$(pgrep -P "${VMSUPD_PID[vm1]}" -x vmsupd-launcher)
asked=$(grep -c 'asking the launcher' "$T/logs/vm1.log")
kill -STOP "$lau"
( vmcall vm1 VM1 Start > "$T/start-held.out" 2>&1; echo "rc=$?" >> "$T/start-held.out" ) &
held=$!
asked_more() { [[ $(grep -c 'asking the launcher' "$T/logs/vm1.log") -gt $asked ]]; }
for i in $(seq 200); do asked_more && break; sleep 0.05; done
check "Start reached the launcher" asked_more
check "GetStatus is answered while the launcher has not answered" vmcall vm1 VM1 GetStatus
check "... while Start still waits for the launcher" bash -c "kill -0 $held"
kill -CONT "$lau"
wait "$held"
check "Start returns once QEMU runs" grep -q '^rc=0' "$T/start-held.out"
check_eq "running" running "$(vmprop_value vm1 State)"
# SIGTERM while the launcher forks: the QEMU that comes is stopped, nothing lingers.
check "Stop" vmcall vm1 VM1 Stop
asked=$(grep -c 'asking the launcher' "$T/logs/vm1.log")
kill -STOP "$lau"
( vmcall vm1 VM1 Start > "$T/start-held.out" 2>&1; echo "rc=$?" >> "$T/start-held.out" ) &
held=$!
for i in $(seq 200); do asked_more && break; sleep 0.05; done
check "Start reached the launcher" asked_more
kill -TERM "${VMSUPD_PID[vm1]}"
kill -CONT "$lau"
wait "$held"
vmsupd_stop vm1
check_eq "SIGTERM while QEMU was being forked: vmsupd exits 0" 0 "$VMSUPD_RC"
check_match "the held Start fails, saying why" "supervisor is stopping|QEMU" "$(cat "$T/start-held.out")"
no_qemu_for() { ! qemu_running_for "$1"; }
check "no QEMU left for vm1" no_qemu_for vm1

finish
