#!/bin/bash
# Audit records without journald: one stderr line per state-changing call and per refusal,
# with the VM, the caller's uid and pid, the method, the monitor or agent command's name and
# the result, and never an argument's value.
source "$(dirname "$0")/lib.sh"

for u in vmsupt-none vmsupt-audit; do ensure_user "$u"; done
bus_start || exit 1
host_acl '{}'
define_vm au "{ \"qemu\": { \"binary\": \"$QEMU\", \"machine\": \"none\", \"accel\": \"tcg\", \"memory_mib\": 32 },
  \"autostart\": true, \"shutdown_timeout_sec\": 2,
  \"acl\": [ { \"user\": \"vmsupt-audit\", \"privileges\": [ \"VM.Audit\" ] } ] }"
check_here "supervisor" vmsupd_start au
check "running" wait_state au running 30
LOG=$T/logs/au.log
NONE=$(id -u vmsupt-none)
AUDIT=$(id -u vmsupt-audit)
SECRET=Sekr3tPassw0rdValue
B64=$(printf '%s' "$SECRET" | base64)

# A refusal: a caller with no rights, its pid as the bus saw it.
as vmsupt-none /usr/bin/python3 -c '
import dbus, os, sys
print(os.getpid(), flush=True)
b = dbus.SystemBus()
o = b.get_object("org.vmsup.VM.au", "/org/vmsup/VM")
try:
    o.Pause(dbus_interface="org.vmsup.VM1")
except dbus.exceptions.DBusException as e:
    print(e.get_dbus_name())
' > "$T/out" 2>&1
cpid=$(head -1 "$T/out")
check_eq "the caller with no rights is refused" "org.freedesktop.DBus.Error.AccessDenied" "$(sed -n 2p "$T/out")"
check "refusal: one line with vm, uid, pid, method, result" grep -q \
        "audit: refused vm=au uid=$NONE pid=$cpid method=org.vmsup.VM1.Pause result=org.freedesktop.DBus.Error.AccessDenied" "$LOG"
check_fails "a refused property read" 'Access denied' as vmsupt-none busctl --system get-property org.vmsup.VM.au \
        /org/vmsup/VM org.vmsup.VM1 State
check "refusal of a property read: logged" grep -Eq \
        "audit: refused vm=au uid=$NONE pid=[0-9]+ method=org.freedesktop.DBus.Properties.Get result=org.freedesktop.DBus.Error.AccessDenied" "$LOG"
check_fails "an agent command with a password, refused" 'AccessDenied' dsend_as vmsupt-audit au Agent1.Command \
        string:"{\"execute\":\"guest-set-user-password\",\"arguments\":{\"username\":\"root\",\"password\":\"$B64\",\"crypted\":false}}"
check "refusal of an agent command: its name" grep -Eq \
        "audit: refused vm=au uid=$AUDIT pid=[0-9]+ method=org.vmsup.Agent1.Command command=guest-set-user-password result=org.freedesktop.DBus.Error.AccessDenied" "$LOG"
check_fails "the same as root (no agent here)" 'AgentNotConnected|NotRunning|Agent' dsend_as root au Agent1.Command \
        string:"{\"execute\":\"guest-set-user-password\",\"arguments\":{\"username\":\"root\",\"password\":\"$B64\",\"crypted\":false}}"
check "root's agent command: a call record with its name and result" grep -Eq \
        "audit: call vm=au uid=0 pid=[0-9]+ method=org.vmsup.Agent1.Command command=guest-set-user-password result=org\\.vmsup\\.Error\\." "$LOG"
check_fails "an HMP line with a secret argument, refused" 'AccessDenied' dsend_as vmsupt-audit au Monitor1.HumanCommand \
        string:"change vnc password $SECRET"
check "refusal of an HMP line: the command's name only" grep -Eq \
        "audit: refused vm=au uid=$AUDIT pid=[0-9]+ method=org.vmsup.Monitor1.HumanCommand command=change result=org.freedesktop.DBus.Error.AccessDenied" "$LOG"
check "root's info status: a call record naming info status" dsend_as root au Monitor1.HumanCommand string:"info status"
check "HMP info: the subcommand in the name" grep -Eq \
        "audit: call vm=au uid=0 pid=[0-9]+ method=org.vmsup.Monitor1.HumanCommand command=info status result=accepted" "$LOG"
check "QMP Execute as root" dsend_as root au Monitor1.Execute string:'{"execute":"query-status"}'
check "QMP: the execute name" grep -Eq \
        "audit: call vm=au uid=0 pid=[0-9]+ method=org.vmsup.Monitor1.Execute command=query-status result=accepted" "$LOG"
check "no argument value in the log (the password, plain or base64)" bash -c "! grep -q -e '$SECRET' -e '$B64' '$LOG'"

# State changes.
check "Pause as root" vmcall au VM1 Pause
check "Pause: a call record" grep -Eq "audit: call vm=au uid=0 pid=[0-9]+ method=org.vmsup.VM1.Pause result=accepted" "$LOG"
check "Resume as root" vmcall au VM1 Resume
check "Stop as root" vmcall au VM1 Stop
check "Stop: a call record" grep -Eq "audit: call vm=au uid=0 pid=[0-9]+ method=org.vmsup.VM1.Stop result=accepted" "$LOG"
check_fails "Pause of a stopped VM" 'NotRunning' dsend_as root au VM1.Pause
check "a failed call: its error as the result" grep -Eq \
        "audit: call vm=au uid=0 pid=[0-9]+ method=org.vmsup.VM1.Pause result=org.vmsup.Error.NotRunning" "$LOG"
check "a read-only call (GetStatus) gets no record" bash -c "! grep -q 'method=org.vmsup.VM1.GetStatus' '$LOG'"

finish
