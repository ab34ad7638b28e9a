#!/bin/bash
# The runtime directory's filesystem full (a 2 MiB tmpfs mounted as the runtime directory,
# filled with a file), with the tiny guest running and a second VM (machine none) beside it:
#   - the guest's console output: the session still works, the log stops with one clear
#     warning, the VM keeps running; once space is free the log resumes by itself and says
#     how many bytes it is missing;
#   - Screenshot (a memfd, not in the runtime directory) works;
#   - Start writes the run record: it cannot, says so, and QEMU runs all the same (it cannot
#     be adopted after a crash of the supervisor meanwhile: said, not hidden);
#   - after freeing space, Start writes the record again, and a new supervisor adopts QEMU
#     from it (with the filesystem full again: adoption only reads).
# The supervisor answers another caller throughout and nothing crashes.
source "$(dirname "$0")/lib.sh"

[[ -r $GUEST_DIR/vmlinuz ]] || { echo "not ok 1 - tiny guest missing: run tests/guest/build-guest.sh"; exit 1; }
PY=/usr/bin/python3
CONSOLE_PY="$ROOT/tests/blackbox/console.py"
$PY -c 'import dbus' 2>/dev/null || { echo "not ok 1 - /usr/bin/python3 with python3-dbus missing"; exit 1; }
if ! mount -t tmpfs -o size=2m,mode=0755 tmpfs "$T/run" 2>/dev/null; then
        echo "ok 1 # SKIP cannot mount a tmpfs (not root, or no CAP_SYS_ADMIN)"
        echo "1..1"
        exit 0
fi
trap 'umount -l "$T/run" 2>/dev/null; cleanup' EXIT
for u in vmsupf-con vmsupf-other; do ensure_user "$u"; done
bus_start || exit 1
host_acl '{}'
define_vm full "$(guest_kernel_def '"autostart": true, "shutdown_timeout_sec": 60,
  "acl": [ { "user": "vmsupf-con", "privileges": [ "VM.Console", "VM.Audit" ] },
           { "user": "vmsupf-other", "privileges": [ "VM.Audit" ] } ]' "console=ttyS0 quiet" 256)"
define_vm ff "{ \"qemu\": { \"binary\": \"$QEMU\", \"machine\": \"none\", \"accel\": \"tcg\", \"memory_mib\": 32 },
  \"agent\": false, \"autostart\": false, \"shutdown_timeout_sec\": 2 }"

SLOG=$T/logs/full.log
CLOG=$T/run/full/console.log
# healthy CASE: the supervisor runs, another caller's State answers running, same QEMU.
healthy() {
        check "$1: the supervisor is alive" kill -0 "$SUP"
        check_eq "$1: another caller's State answers" 's "running"' \
                "$(as vmsupf-other busctl --system get-property org.vmsup.VM.full /org/vmsup/VM org.vmsup.VM1 State 2>&1)"
        check_eq "$1: the same QEMU, running" "$QPID" "$(vmprop_value full Pid)"
        check "$1: that QEMU runs" kill -0 "$QPID"
}
console_says() { # CMD REGEX: the guest's shell on the console answers
        [[ $(as vmsupf-con $PY "$CONSOLE_PY" run full "$1" "$2" 2>/dev/null) == found ]]
}

check_here "supervisor starts" vmsupd_start full
check "the VM runs" wait_state full running
check "the guest booted (its agent connected)" wait_prop full AgentConnected true 180
SUP=${VMSUPD_PID[full]}
QPID=$(vmprop_value full Pid)
check_here "a supervisor for a second VM" vmsupd_start ff
check "the console log has the boot" test -s "$CLOG"
check "the console answers" console_says 'echo a$((6*7))' '\na42\r?\n'

# --- fill the filesystem
dd if=/dev/zero of="$T/run/fill" bs=4k > /dev/null 2>&1
diag "runtime directory: $(df -k --output=avail "$T/run" | tail -1) kB available"
check_eq "the runtime directory's filesystem is full" 0 "$(df -k --output=avail "$T/run" | tail -1 | tr -d ' ')"
# More output than a page's slack at the end of the log (tmpfs allocates by pages).
check "full: the console session still works (20 KiB of output)" console_says 'seq 1 4000; echo b$((6*7))' '\nb42\r?\n'
check "full: the supervisor warned that the console log cannot be written" \
        wait_for_line "$SLOG" 'cannot write the console log .*No space left on device'
check_eq "full: one warning, not one per write" 1 "$(grep -c 'cannot write the console log' "$SLOG")"
check "full: the console session works on" console_says 'seq 1 4000; echo c$((6*7))' '\nc42\r?\n'
check_eq "full: still one warning" 1 "$(grep -c 'cannot write the console log' "$SLOG")"
mkdir -m 1777 "$T/u"
shot=$(as vmsupf-con $PY "$CONSOLE_PY" shot full "$T/u/shot.png" 2>&1)
check_match "full: Screenshot works (a memfd, not on this filesystem)" '^ok' "$shot"
healthy "full"
# Start with the run record impossible to write: QEMU runs, the reason is logged.
check "full: Start of the second VM" vmcall ff VM1 Start
check "full: it runs" wait_state ff running
check "full: the launcher said the run record cannot be written" \
        wait_for_line "$T/logs/ff.log" 'cannot write the run record.*No space left on device'
check "full: no run record" test ! -e "$T/run/ff/run-state"
check "full: the second VM's supervisor answers" vmcall ff VM1 GetStatus

# --- free the space
rm -f "$T/run/fill"
log_resumed() {
        local i
        for i in $(seq 30); do
                console_says "echo d\$((7*11))" '\nd77\r?\n' > /dev/null
                grep -q 'd77' "$CLOG" 2>/dev/null && return 0
                sleep 1
        done
        return 1
}
check "freed: the console log is written again" log_resumed
check "freed: the log says what it is missing" grep -qE '^\[vmsupd: [0-9]+ bytes of console output not logged\]' "$CLOG"
check "freed: the supervisor said the log resumed" grep -q 'console log .* can be written again' "$SLOG"
healthy "freed"
check "freed: Stop the second VM" vmcall ff VM1 Stop
check "freed: stopped" wait_state ff stopped
check "freed: Start again" vmcall ff VM1 Start
check "freed: running" wait_state ff running
check "freed: the run record is written" test -s "$T/run/ff/run-state"
FPID=$(vmprop_value ff Pid)
# Adoption with the filesystem full again: the new supervisor only reads the record.
dd if=/dev/zero of="$T/run/fill" bs=4k > /dev/null 2>&1
check_eq "full again" 0 "$(df -k --output=avail "$T/run" | tail -1 | tr -d ' ')"
kill -KILL "${VMSUPD_PID[ff]}"
wait "${VMSUPD_PID[ff]}" 2>/dev/null
unset "VMSUPD_PID[ff]"
check_here "full again: a new supervisor" vmsupd_start ff
check "full again: it adopts the VM" wait_state ff running
check_eq "full again: the same QEMU" "$FPID" "$(vmprop_value ff Pid)"
check_eq "full again: StateReason reattached" reattached "$(vmprop_value ff StateReason)"
check "full again: QEMU answers through it" vmcall ff VM1 GetStatus
rm -f "$T/run/fill"
check "no sanitizer report" bash -c "! cat '$T'/logs/*.log | grep -E 'Sanitizer|runtime error'"

finish
