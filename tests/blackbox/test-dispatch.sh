#!/bin/bash
# Every method of every interface, and Properties Get/GetAll, answered as the
# first call of a fresh connection: such a call waits while the supervisor
# fetches the caller's credentials, then goes through the same dispatch as any
# later call. For root and for a caller without rights; calls that wait keep
# their order.
source "$(dirname "$0")/lib.sh"

ensure_user vmsupt-none
bus_start || exit 1
host_acl '{ "acl": [] }'
define_vm dsp "{ \"qemu\": { \"binary\": \"$QEMU\", \"machine\": \"none\", \"accel\": \"tcg\", \"memory_mib\": 32 },
  \"autostart\": false, \"agent\": false, \"shutdown_timeout_sec\": 2 }"
check_here "vmsupd starts" vmsupd_start dsp

FIRST=$ROOT/tests/helpers/first-calls.py
DENIED=org.freedesktop.DBus.Error.AccessDenied
INVALID=org.freedesktop.DBus.Error.InvalidArgs
NOT_RUNNING='org.vmsup.Error.NotRunning: The VM is not running.'
NO_AGENT='org.vmsup.Error.AgentNotConnected: The guest agent is disabled for this VM.'
STATUS_KEYS='\{agent-connected,cpu-usec,event-seq,pid,qemu-version,qmp-status,rss-bytes,state,state-reason,uptime-usec\}'
PROPS='\{AgentConnected,Name,PendingChanges,Pid,QemuVersion,StartedAtUSec,State,StateReason\}'

# expect USER [--pipelined] <<< "CALL<TAB>REGEX" lines: makes the calls (each the first
# call of its own connection, or all at once on one fresh connection) and checks that
# answer i is CALL i's and matches REGEX i (the whole answer after the call's name).
expect() {
        local user=$1 mode=${2:-} line names=() regexes=() out answers i
        while IFS=$'\t' read -r line rx; do
                [[ -n $line ]] || continue
                names+=("$line")
                regexes+=("$rx")
        done
        if [[ $user == root ]]; then
                out=$("$FIRST" $mode "$BUS" dsp "${names[@]}" 2>&1)
        else
                out=$(as "$user" "$FIRST" $mode "$BUS" dsp "${names[@]}" 2>&1)
        fi
        mapfile -t answers <<< "$out"
        for i in "${!names[@]}"; do
                check_match "$user${mode:+ $mode}: ${names[$i]}" "^${names[$i]} ${regexes[$i]}\$" "${answers[$i]:-}"
        done
        check_eq "$user${mode:+ $mode}: one answer per call" "${#names[@]}" "$(grep -c . <<< "$out")"
}

# --- root, the VM stopped: each call reaches its handler, which says why it cannot act
expect root <<EOF2
VM1.Shutdown	error $NOT_RUNNING
VM1.Shutdown-too-long	error $INVALID: The timeout must be at most 86400 seconds\.
VM1.Shutdown-bad-signature	error $INVALID: .*
VM1.Stop	error $NOT_RUNNING
VM1.Reset	error $NOT_RUNNING
VM1.Pause	error $NOT_RUNNING
VM1.Resume	error $NOT_RUNNING
VM1.SendKey	error $NOT_RUNNING
VM1.SendKey-no-keys	error $INVALID: Give between 1 and 16 keys\.
VM1.GetStatus	ok $STATUS_KEYS
VM1.Nonexistent	error org.freedesktop.DBus.Error.UnknownMethod: .*
Monitor1.HumanCommand	error $NOT_RUNNING
Monitor1.Execute	error $NOT_RUNNING
Agent1.Command	error $NO_AGENT
Agent1.ReadFile	error $NO_AGENT
Agent1.WriteFile	error $NO_AGENT
Properties.Get	ok stopped
Properties.GetAll	ok $PROPS
Properties.GetAll-Monitor1	ok \{\}
Properties.Set	error org.freedesktop.DBus.Error.PropertyReadOnly: .*
EOF2

# --- a caller without rights: each call is refused by its handler, naming what it lacks
# (validation comes first: malformed arguments are InvalidArgs for everyone)
expect vmsupt-none <<EOF2
VM1.Start	error $DENIED: VM.PowerMgmt privilege required\.
VM1.Shutdown	error $DENIED: VM.PowerMgmt privilege required\.
VM1.Shutdown-too-long	error $INVALID: The timeout must be at most 86400 seconds\.
VM1.Shutdown-bad-signature	error $INVALID: .*
VM1.Stop	error $DENIED: VM.PowerMgmt privilege required\.
VM1.Reset	error $DENIED: VM.PowerMgmt privilege required\.
VM1.Pause	error $DENIED: VM.PowerMgmt privilege required\.
VM1.Resume	error $DENIED: VM.PowerMgmt privilege required\.
VM1.SendKey	error $DENIED: VM.Console privilege required\.
VM1.SendKey-no-keys	error $INVALID: Give between 1 and 16 keys\.
VM1.GetStatus	error $DENIED: VM.Audit privilege required\.
VM1.Nonexistent	error org.freedesktop.DBus.Error.UnknownMethod: .*
Monitor1.HumanCommand	error $DENIED: VM.Monitor privilege required\.
Monitor1.Execute	error $DENIED: VM.Monitor privilege required\.
Agent1.Command	error $DENIED: Command 'guest-ping' requires the VM.GuestAgent.Audit privilege\.
Agent1.ReadFile	error $DENIED: VM.GuestAgent.FileRead privilege required\.
Agent1.WriteFile	error $DENIED: VM.GuestAgent.FileWrite privilege required\.
Properties.Get	error $DENIED: VM.Audit privilege required\.
Properties.GetAll	error $DENIED: VM.Audit privilege required\.
Properties.GetAll-Monitor1	error $DENIED: VM.Audit privilege required\.
Properties.Set	error org.freedesktop.DBus.Error.PropertyReadOnly: .*
EOF2
check_eq "the refused calls left the VM stopped" "stopped 0" "$(vmprop_value dsp State) $(vmprop_value dsp Pid)"

# --- calls that all wait for the same credentials are answered in the order sent
# (each of these is answered at once by its handler, so the order of the answers is
# the order of dispatch)
expect root --pipelined <<EOF2
VM1.GetStatus	ok $STATUS_KEYS
Properties.Get	ok stopped
VM1.Stop	error $NOT_RUNNING
VM1.Shutdown-too-long	error $INVALID: .*
Properties.GetAll	ok $PROPS
VM1.SendKey-no-keys	error $INVALID: .*
Monitor1.Execute	error $NOT_RUNNING
Agent1.Command	error $NO_AGENT
Agent1.ReadFile	error $NO_AGENT
VM1.Reset	error $NOT_RUNNING
EOF2
expect vmsupt-none --pipelined <<EOF2
VM1.GetStatus	error $DENIED: VM.Audit privilege required\.
VM1.SendKey	error $DENIED: VM.Console privilege required\.
Monitor1.HumanCommand	error $DENIED: VM.Monitor privilege required\.
Properties.Get	error $DENIED: VM.Audit privilege required\.
Agent1.ReadFile	error $DENIED: VM.GuestAgent.FileRead privilege required\.
VM1.Stop	error $DENIED: VM.PowerMgmt privilege required\.
Agent1.Command	error $DENIED: Command 'guest-ping' requires .*
Agent1.WriteFile	error $DENIED: VM.GuestAgent.FileWrite privilege required\.
VM1.Shutdown-too-long	error $INVALID: .*
Properties.GetAll	error $DENIED: VM.Audit privilege required\.
EOF2

# --- root, the VM running: each call does what it says (machine "none" has no ACPI:
# Shutdown without force times out after the definition's 2 s)
expect root <<EOF2
VM1.Start	ok
VM1.GetStatus	ok $STATUS_KEYS
Properties.Get	ok running
Monitor1.HumanCommand	ok VM status: running
Monitor1.Execute	ok \{"status":"running",.*\}
VM1.Pause	ok
VM1.Resume	ok
VM1.Reset	ok
VM1.SendKey	ok
Agent1.Command	error $NO_AGENT
VM1.Shutdown	error org.freedesktop.DBus.Error.Timeout: The guest did not shut down in time\.
VM1.Stop	ok
EOF2
check_eq "Stop ended the VM" stopped "$(vmprop_value dsp State)"

finish
