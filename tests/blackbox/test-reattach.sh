#!/bin/bash
# The VM outlives its supervisor: after kill -9 of vmsupd the next one adopts the same
# QEMU through its launcher (same pid, StateReason reattached, the agent answers, a file
# written into the guest before is read back after, a paused VM stays paused, Stop works).
# QEMU killed while no supervisor runs: the next one reports crashed with the real signal.
# A run record pointing at a reused pid, another executable, or corrupt: refused, nothing
# adopted, nothing killed. SIGUSR2 hands the VM over to the next supervisor (the upgrade
# command). A wrapper script as binary: the record names what it execed.
source "$(dirname "$0")/lib.sh"

[[ -r $GUEST_DIR/vmlinuz ]] || { echo "not ok 1 - tiny guest missing: run tests/guest/build-guest.sh"; exit 1; }
ensure_user vmsupt-none
bus_start || exit 1
host_acl '{}'
ctl() { "$VMSUPCTL" --bus "$BUS" "$@"; }
kill9() { kill -KILL "${VMSUPD_PID[$1]}"; wait "${VMSUPD_PID[$1]}" 2>/dev/null; unset "VMSUPD_PID[$1]"; }
launcher_pid() { awk '$1 == "launcher_pid" { print $2 }' "$T/run/$1/run-state" 2>/dev/null; }
alive() { kill -0 "$1" 2>/dev/null; }

define_vm ra "$(guest_kernel_def '"autostart": true, "shutdown_timeout_sec": 60, "agent_file_paths": [ "/tmp" ]')"
check_here "supervisor with the tiny guest" vmsupd_start ra
check "running" wait_state ra running 60
check "the guest's agent connects" wait_prop ra AgentConnected true 120
pid=$(vmprop_value ra Pid)
printf 'survives the supervisor\n' > "$T/payload"
check "write-file into the guest" ctl write-file ra "$T/payload" /tmp/reattach
check_match "run record: 0600, private" '^600 ' "$(stat -c '%a %U' "$T/run/ra/run-state")"
check_match "launcher socket: 0600" '^600 ' "$(stat -c '%a %U' "$T/run/ra/launcher.sock")"
lau=$(launcher_pid ra)

# kill -9 of the supervisor: QEMU and its launcher stay.
kill9 ra
check_here "a new supervisor" vmsupd_start ra
check "QEMU survived kill -9 of vmsupd" alive "$pid"
check "its launcher survived too" alive "$lau"
check "reattached: running" wait_state ra running 60
check_eq "same QEMU pid, StateReason reattached" "$pid reattached" "$(vmprop_value ra Pid) $(vmprop_value ra StateReason)"
check "the agent answers again" wait_prop ra AgentConnected true 60
check "read-file after the reattach" ctl read-file ra /tmp/reattach "$T/back"
check_eq "the file written before is read back after" "survives the supervisor" "$(cat "$T/back" 2>/dev/null)"
check_match "QemuVersion known after the reattach" '^[0-9]+\.[0-9]+\.[0-9]+$' "$(vmprop_value ra QemuVersion)"
check_fails "a caller with no rights is still refused after the reattach" 'AccessDenied' \
        dsend_as vmsupt-none ra VM1.Pause

# A paused VM stays paused across a reattach.
check "Pause" vmcall ra VM1 Pause
check "paused" wait_state ra paused 30
kill9 ra
check_here "a new supervisor while paused" vmsupd_start ra
check "reattached: paused" wait_state ra paused 60
check_eq "paused, reattached, same pid" "$pid reattached" "$(vmprop_value ra Pid) $(vmprop_value ra StateReason)"
check "Resume after the reattach" vmcall ra VM1 Resume
check "running again" wait_state ra running 30

# Twice in a row: the adopted launcher is adoptable again.
kill9 ra
check_here "a third supervisor" vmsupd_start ra
check "reattached again: running" wait_state ra running 60
check_eq "still the same QEMU" "$pid" "$(vmprop_value ra Pid)"
# A second supervisor for the same VM while one serves it: the launcher answers no one
# else; the second exits without touching the launcher's socket (the handover below
# still finds it).
"$VMSUPD" --config-dir "$T/vms" --runtime-dir "$T/run" --acl "$T/acl.json" --bus "$BUS" ra >> "$T/logs/ra2.log" 2>&1
check_eq "a second supervisor for a served VM exits with status 1" 1 "$?"
check "it says why" grep -q "another supervisor serves this VM" "$T/logs/ra2.log"
check_eq "the first one still serves the same QEMU" "$pid running" "$(vmprop_value ra Pid) $(vmprop_value ra State)"

# The upgrade command: SIGUSR2 hands the VM over (exit status 3, so that systemd's
# Restart=on-failure starts the new binary), and the next supervisor adopts it.
sup=${VMSUPD_PID[ra]}
kill -USR2 "$sup"
wait "$sup"
check_eq "SIGUSR2: the supervisor hands over and exits with status 3" 3 "$?"
unset "VMSUPD_PID[ra]"
check "QEMU keeps running across the handover" alive "$pid"
check_here "the next supervisor after the handover" vmsupd_start ra
check "reattached after the handover: running" wait_state ra running 60
check_eq "same QEMU, reattached" "$pid reattached" "$(vmprop_value ra Pid) $(vmprop_value ra StateReason)"
check "the agent answers after the handover" wait_prop ra AgentConnected true 60
check "read-file after the handover" ctl read-file ra /tmp/reattach "$T/back2"
check_eq "the file is still there" "survives the supervisor" "$(cat "$T/back2" 2>/dev/null)"
check "Stop works after the reattach" vmcall ra VM1 Stop
check_eq "stopped" stopped "$(vmprop_value ra State)"
check "QEMU is gone" bash -c "! kill -0 $pid 2>/dev/null"
check "the run record is gone with it" test ! -e "$T/run/ra/run-state"
check "Start after the reattach (the adopted launcher starts it)" vmcall ra VM1 Start
check "running" wait_state ra running 60
pid2=$(vmprop_value ra Pid)
lau2=$(launcher_pid ra)

# QEMU killed while no supervisor runs: the next one says how it ended.
kill9 ra
kill -KILL "$pid2"
for i in $(seq 100); do alive "$pid2" || break; sleep 0.05; done
check "the launcher keeps QEMU's exit for the next supervisor" alive "$lau2"
check_here "a supervisor after QEMU died unsupervised" vmsupd_start ra
check_eq "crashed, killed-by-signal-9" "crashed killed-by-signal-9" "$(vmprop_value ra State) $(vmprop_value ra StateReason)"
check "the old launcher exits once it told" bash -c "for i in \$(seq 100); do kill -0 $lau2 2>/dev/null || exit 0; sleep 0.05; done; exit 1"
check "Start works after that" vmcall ra VM1 Start
check "running" wait_state ra running 60
vmsupd_stop ra
check_eq "SIGTERM: the VM is shut down and vmsupd exits 0" 0 "$VMSUPD_RC"
check "no run record after a clean stop" test ! -e "$T/run/ra/run-state"

# A binary that is a wrapper script: the record names what it execed, and the adoption works.
printf '#!/bin/sh\nexec %s "$@"\n' "$QEMU" > "$T/qemu-wrap"
chmod 755 "$T/qemu-wrap"
define_vm rw "{ \"qemu\": { \"binary\": \"$T/qemu-wrap\", \"machine\": \"none\", \"accel\": \"tcg\", \"memory_mib\": 32 },
  \"run_as\": { \"user\": \"root\" }, \"autostart\": true, \"shutdown_timeout_sec\": 2 }"
check_here "a VM whose binary is a wrapper script" vmsupd_start rw
check "running" wait_state rw running 60
wpid=$(vmprop_value rw Pid)
check_eq "the run record names the binary the wrapper execed" "$QEMU" \
        "$(awk '$1 == "qemu_exe" { print $2 }' "$T/run/rw/run-state")"
kill9 rw
check_here "a new supervisor for the wrapped QEMU" vmsupd_start rw
check "reattached: running" wait_state rw running 60
check_eq "wrapped QEMU: same pid, reattached" "$wpid reattached" "$(vmprop_value rw Pid) $(vmprop_value rw StateReason)"
vmsupd_stop rw

# Hostile and stale run records: refused, nothing adopted, nothing killed.
define_vm rb "$(guest_kernel_def '"autostart": false')"
mkdir -p "$T/run/rb" && chmod 700 "$T/run/rb"
sleep 600 &
victim=$!
vstart=$(awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$victim/stat")
record() { # PID START EXE LAUNCHER LSTART
        printf 'vmsup-run 1\nqemu_pid %s\nqemu_start %s\nqemu_exe %s\nlauncher_pid %s\nlauncher_start %s\n' "$@" \
                > "$T/run/rb/run-state"
        chmod 600 "$T/run/rb/run-state"
}
refused_case() { # NAME: starts rb, expects a refusal in the log and the victim alive
        : > "$T/logs/rb.log"
        check_here "$1: the supervisor starts" vmsupd_start rb
        check_eq "$1: nothing adopted (stopped, no pid)" "stopped 0" "$(vmprop_value rb State) $(vmprop_value rb Pid)"
        check "$1: refused in the log" grep -q "not adopting\|refusing the run record" "$T/logs/rb.log"
        check "$1: nothing killed" alive "$victim"
        vmsupd_stop rb
}
# A live process of another executable, with its real start time, and "its launcher" the shell.
record "$victim" "$vstart" "$QEMU" "$$" 1
refused_case "run record naming another process (sleep), no launcher"
record "$victim" $((vstart + 1)) /usr/bin/sleep "$victim" 1
refused_case "run record with a reused pid (start time differs)"
printf 'vmsup-run 1\nqemu_pid 0\n' > "$T/run/rb/run-state"; chmod 600 "$T/run/rb/run-state"
refused_case "corrupt run record"
head -c 3000 /dev/urandom > "$T/run/rb/run-state"; chmod 600 "$T/run/rb/run-state"
refused_case "random bytes as run record"
record "$victim" "$vstart" /usr/bin/sleep "$victim" 1
chmod 644 "$T/run/rb/run-state"
refused_case "a run record readable by others"
kill "$victim"
wait "$victim" 2>/dev/null
# Neither the recorded QEMU nor its launcher exists (both killed): crashed, said so.
record "$victim" "$vstart" "$QEMU" 1 1
: > "$T/logs/rb.log"
check_here "a record whose QEMU and launcher are gone: the supervisor starts" vmsupd_start rb
check_eq "crashed, lost-with-its-launcher" "crashed lost-with-its-launcher" "$(vmprop_value rb State) $(vmprop_value rb StateReason)"
check "the stale record is removed" test ! -e "$T/run/rb/run-state"
vmsupd_stop rb

finish
