#!/bin/bash
# org.vmsup.Console1 against the real tiny guest (q35, TCG): the serial console
# (a shell on ttyS0), its log, one session at a time and its take-over, a client
# that never reads while the guest floods the port, VNC viewers through passed
# sockets, screenshots, and callers without VM.Console or without any right.
source "$(dirname "$0")/lib.sh"

[[ -r $GUEST_DIR/vmlinuz ]] || { echo "not ok 1 - tiny guest missing: run tests/guest/build-guest.sh"; exit 1; }
CONSOLE_PY="/usr/bin/python3 $ROOT/tests/blackbox/console.py"
ensure_user vmsupt-console
ensure_user vmsupt-audit
ensure_user vmsupt-nobody
bus_start || exit 1
host_acl '{}'
# A small log cap, so that the flood below rotates it many times.
define_vm c1 "$(guest_kernel_def '"agent": false, "autostart": true, "console_log_kib": 64,
  "acl": [ { "user": "vmsupt-console", "privileges": [ "VM.Console" ] },
           { "user": "vmsupt-audit", "privileges": [ "VM.Audit" ] } ]' 'console=ttyS0')"

check_here "supervisor with the tiny guest (autostart)" vmsupd_start c1
check "running" wait_state c1 running 60
pid=${VMSUPD_PID[c1]}
LOG=$T/run/c1/console.log

# ---- serial ----
out=$(as vmsupt-console $CONSOLE_PY run c1 'echo $((6*7))' '\n42\r?\n' 2>"$T/run1.err")
check_eq "VM.Console: OpenSerial, echo \$((6*7)) answers 42" found "$out"
check "the boot messages are in the console log" grep -q 'Linux version' "$LOG"
check "the guest's init is in the console log" wait_for_line "$LOG" 'vmsup-guest: ' 60
check "the shell's answer is in the console log too" grep -q '^42' "$LOG"
check_eq "the log is root's alone (0600)" 600 "$(stat -c %a "$LOG")"

as vmsupt-console $CONSOLE_PY hold c1 > "$T/hold" 2>&1 &
check "a session is open" wait_for_line "$T/hold" '^OPEN$' 60
check_eq "a second OpenSerial is Busy" "error org.vmsup.Error.Busy" "$(as vmsupt-console $CONSOLE_PY open c1)"
check_eq "OpenSerialWithOptions without force is Busy too" "error org.vmsup.Error.Busy" \
        "$(as vmsupt-console $CONSOLE_PY run c1 true x noforce 2>/dev/null | head -1)"
out=$(as vmsupt-console $CONSOLE_PY run c1 'echo take$((1+1))over' '\ntake2over\r?\n' force 2>/dev/null)
check_eq "force takes the session over, and it works" found "$out"
check "the session taken over sees EOF" wait_for_line "$T/hold" '^EOF$' 60
check_eq "after the take-over ended, OpenSerial works again" ok "$(as vmsupt-console $CONSOLE_PY open c1)"

check_fails "VM.Audit: OpenSerial refused, names VM.Console" 'AccessDenied: VM.Console' dsend_as vmsupt-audit c1 Console1.OpenSerial
check_fails "no right at all: OpenSerial refused" 'AccessDenied' dsend_as vmsupt-nobody c1 Console1.OpenSerial
busctl_as() {
        local u=$1
        shift
        as "$u" busctl --system --timeout=120 call org.vmsup.VM.c1 /org/vmsup/VM org.vmsup.Console1 "$@"
}
check_fails "no right at all: OpenSerialWithOptions refused" 'Access denied|AccessDenied' busctl_as vmsupt-nobody OpenSerialWithOptions 'a{sv}' 1 force b true
check_eq "python: no right at all, OpenSerial is AccessDenied" "error org.freedesktop.DBus.Error.AccessDenied" \
        "$(as vmsupt-nobody $CONSOLE_PY open c1)"
check_eq "python: VM.Audit OpenSerial is AccessDenied" "error org.freedesktop.DBus.Error.AccessDenied" \
        "$(as vmsupt-audit $CONSOLE_PY open c1)"
check_fails "an unknown option is InvalidArgs" 'Unknown option' busctl_as root OpenSerialWithOptions 'a{sv}' 1 bogus b true
check_fails "force must be a boolean" 'force option is a boolean' busctl_as root OpenSerialWithOptions 'a{sv}' 1 force s yes

# ---- a guest that floods the port, a client that never reads ----
peak_reset "$pid"
hwm0=$(proc_kb "$pid" VmHWM)
# A bounded flood (3 MB), so that it ends by itself; its end shows in the log.
as vmsupt-console $CONSOLE_PY stall c1 'yes vmsup-flood-line | head -c 3000000; echo flood-$((1+1))-done' > "$T/stall" 2>&1 &
check "the stalled session is open" wait_for_line "$T/stall" '^OPEN$' 60
check "the supervisor closes the session that does not keep up" wait_for_line "$T/stall" '^HUP$' 120
check "GetStatus answers while the guest floods" vmcall c1 VM1 GetStatus
check "the flood goes on into the log (rotated)" test -s "$LOG.1"
hwm1=$(proc_kb "$pid" VmHWM)
diag "supervisor VmHWM before the flood ${hwm0} kB, during ${hwm1} kB"
check "the supervisor stays below 64 MiB (VmHWM) through the flood" test "$hwm1" -lt 65536
check "the supervisor grew by less than 4 MiB through the flood" test $((hwm1 - hwm0)) -lt 4096
check "the flood ends (in the log)" wait_for_line "$LOG" 'flood-2-done' 300
hwm1=$(proc_kb "$pid" VmHWM)
diag "supervisor VmHWM after the flood ${hwm1} kB"
check "after the flood, the supervisor is still below 64 MiB (VmHWM)" test "$hwm1" -lt 65536
check_eq "and the console works again" found "$(as vmsupt-console $CONSOLE_PY run c1 'echo $((6*8))' '\n48\r?\n' 2>/dev/null)"
sz=$(stat -c %s "$LOG") sz1=$(stat -c %s "$LOG.1")
diag "console log ${sz} bytes, previous ${sz1} bytes (cap 65536)"
check "the log stays within its cap" test "$sz" -le 65536 -a "$sz1" -le 65536
check "only the log and one previous log" test "$(ls "$T/run/c1" | grep -c '^console\.log')" -eq 2

# ---- VNC ----
out=$(as vmsupt-console $CONSOLE_PY vnc c1 1)
diag "OpenVNC: $out"
check_match "VM.Console: OpenVNC, RFB handshake, ServerInit, an update" '^viewer [1-9][0-9]* [1-9][0-9]* update$' "$out"
read -r _ vnc_w vnc_h _ <<< "$out"
out=$(as vmsupt-console $CONSOLE_PY vnc c1 2)
check_eq "two viewers at once" "viewer $vnc_w $vnc_h update
viewer $vnc_w $vnc_h update" "$out"
check_eq "VM.Audit: OpenVNC is AccessDenied" "error org.freedesktop.DBus.Error.AccessDenied" "$(as vmsupt-audit $CONSOLE_PY vnc c1)"
check_eq "no right at all: OpenVNC is AccessDenied" "error org.freedesktop.DBus.Error.AccessDenied" "$(as vmsupt-nobody $CONSOLE_PY vnc c1)"
check "no TCP port is open for VNC" bash -c "! ss -ltnp 2>/dev/null | grep -q qemu"

# ---- screenshot ----
mkdir -m 1777 "$T/out"
png_size() {
        /usr/bin/python3 -c 'import struct,sys
d=open(sys.argv[1],"rb").read()
assert d[:8]==b"\x89PNG\r\n\x1a\n" and d[12:16]==b"IHDR", "not a PNG"
print(*struct.unpack(">II", d[16:24]))' "$1"
}
out=$(as vmsupt-console $CONSOLE_PY shot c1 "$T/out/shot.png")
check_match "VM.Console: Screenshot into a pipe" '^ok' "$out"
check_eq "a PNG of the display's size" "$vnc_w $vnc_h" "$(png_size "$T/out/shot.png" 2>&1)"
out=$(as vmsupt-audit $CONSOLE_PY shot c1 "$T/out/shot-audit.png")
check_eq "VM.Audit: Screenshot refused, nothing written" "error org.freedesktop.DBus.Error.AccessDenied
bytes 0" "$out"
out=$(as vmsupt-nobody $CONSOLE_PY shot c1 "$T/out/shot-nobody.png")
check_eq "no right at all: Screenshot refused, nothing written" "error org.freedesktop.DBus.Error.AccessDenied
bytes 0" "$out"
check_eq "Screenshot into a regular file is InvalidArgs, nothing written" "error org.freedesktop.DBus.Error.InvalidArgs
bytes 0" "$(as vmsupt-console $CONSOLE_PY shot c1 "$T/out/regular" regular)"

# ---- vmsupctl ----
ctl() { as vmsupt-console "$VMSUPCTL" --bus "$BUS" "$@"; }
check "vmsupctl screenshot" ctl screenshot c1 "$T/out/ctl.png"
check_eq "vmsupctl screenshot: a PNG of the display's size" "$vnc_w $vnc_h" "$(png_size "$T/out/ctl.png" 2>&1)"
check_fails "vmsupctl screenshot without VM.Console: refused" 'VM.Console|denied' as vmsupt-audit "$VMSUPCTL" --bus "$BUS" screenshot c1 "$T/out/ctl-audit.png"
check "and no file is left" test ! -e "$T/out/ctl-audit.png"
ctl vnc c1 --listen "unix:$T/out/vnc.sock" > "$T/out/vnc.out" 2>&1 &
vncpid=$!
check "vmsupctl vnc listens" wait_for_line "$T/out/vnc.out" '^LISTENING' 30
check_eq "vmsupctl vnc: a viewer through the local socket" "viewer $vnc_w $vnc_h update" \
        "$(as vmsupt-console $CONSOLE_PY vncunix "$T/out/vnc.sock")"
check_eq "vmsupctl vnc: a second viewer" "viewer $vnc_w $vnc_h update" \
        "$(as vmsupt-console $CONSOLE_PY vncunix "$T/out/vnc.sock")"
kill "$vncpid" 2>/dev/null
check_fails "vmsupctl vnc refuses a non-loopback address" 'cannot listen' ctl vnc c1 --listen 0.0.0.0:5999

# vmsupctl console in a real terminal (tmux): prompt, a command, the escape key,
# and the terminal as it was.
TM=(tmux -S "$T/tmux.sock")
pane_has() {
        local i
        for i in $(seq 1200); do
                "${TM[@]}" capture-pane -p -t con -S -200 2>/dev/null | grep -Eq -- "$1" && return 0
                sleep 0.1
        done
        "${TM[@]}" capture-pane -p -t con -S -200 2>/dev/null | tail -5 | sed 's/^/# pane: /'
        return 1
}
"${TM[@]}" new-session -d -s con -x 132 -y 40 "bash --norc --noprofile"
"${TM[@]}" send-keys -t con "stty -g > $T/out/stty.before; setpriv --reuid=$(id -u vmsupt-console) --regid=$(id -g vmsupt-console) --clear-groups $VMSUPCTL --bus $BUS console c1; echo EXIT=\$?; stty -g > $T/out/stty.after" Enter
check "vmsupctl console connects" pane_has 'escape character is \^\]'
"${TM[@]}" send-keys -t con Enter
check "the guest's shell prompt shows" pane_has 'vmsup-guest# *$'
"${TM[@]}" send-keys -t con 'echo tmux-$((6*7))' Enter
check "a command runs in the guest" pane_has '^tmux-42'
"${TM[@]}" send-keys -t con 'C-]'
check "Ctrl-] leaves, exit status 0" pane_has '^EXIT=0'
check "the terminal is restored (stty -g before = after)" cmp -s "$T/out/stty.before" "$T/out/stty.after"
"${TM[@]}" kill-server 2>/dev/null

# ---- the VM stops ----
as vmsupt-console $CONSOLE_PY hold c1 > "$T/hold2" 2>&1 &
check "a session is open before the stop" wait_for_line "$T/hold2" '^OPEN$' 60
check "Stop" vmcall c1 VM1 Stop
check "the open session sees EOF when QEMU exits" wait_for_line "$T/hold2" '^EOF$' 60
check_fails "OpenSerial on a stopped VM: NotRunning" 'NotRunning' dsend_as vmsupt-console c1 Console1.OpenSerial
check_fails "OpenVNC on a stopped VM: NotRunning" 'NotRunning' dsend_as vmsupt-console c1 Console1.OpenVNC
check "Start again" vmcall c1 VM1 Start
check_eq "the console works in the new run" found "$(as vmsupt-console $CONSOLE_PY run c1 'echo $((7*7))' '\n49\r?\n' 2>/dev/null)"

finish
