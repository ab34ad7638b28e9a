#!/bin/bash
# org.vmsup.Agent1 against the tiny guest and its real qemu-ga (q35, TCG): each
# VM.GuestAgent.* privilege grants exactly its commands, the supervisor's own
# limits, file handles that belong to their opener, ReadFile/WriteFile of small
# and 200 MiB files, AgentConnected through an agent restart, shutdown through
# the agent and through ACPI, AgentNotConnected.
source "$(dirname "$0")/lib.sh"

[[ -r $GUEST_DIR/vmlinuz ]] || { echo "not ok 1 - tiny guest missing: run tests/guest/build-guest.sh"; exit 1; }
for u in vmsupa-none vmsupa-audit vmsupa-read vmsupa-write vmsupa-fsmgmt vmsupa-unres vmsupa-power; do
        ensure_user "$u"
done
bus_start || exit 1
host_acl '{}'
U=$T/u # files the unprivileged callers read and write
mkdir -m 1777 "$U"
MiB=1048576

# /tmp in the guest is a tmpfs of 90% of RAM: 768 MiB holds two 200 MiB files.
# Non-root callers may open guest files under /tmp only (agent_file_paths).
define_vm ga "$(guest_kernel_def '"autostart": false, "shutdown_timeout_sec": 60, "agent_file_paths": [ "/tmp" ],
  "acl": [ { "user": "vmsupa-audit", "privileges": [ "VM.GuestAgent.Audit" ] },
           { "user": "vmsupa-read", "privileges": [ "VM.GuestAgent.FileRead" ] },
           { "user": "vmsupa-write", "privileges": [ "VM.GuestAgent.FileWrite" ] },
           { "user": "vmsupa-fsmgmt", "privileges": [ "VM.GuestAgent.FileSystemMgmt" ] },
           { "user": "vmsupa-unres", "privileges": [ "VM.GuestAgent.Unrestricted" ] },
           { "user": "vmsupa-power", "privileges": [ "VM.PowerMgmt" ] } ]' "console=ttyS0 quiet" 768)"
define_vm noag "$(guest_kernel_def '"agent": false, "autostart": false, "shutdown_timeout_sec": 60')"

# acmd USER JSON: Agent1.Command on ga, raw dbus-send output (errors with their message).
acmd() { dsend_as "$1" ga Agent1.Command string:"$2"; }
# cmd USER JSON: the returned JSON.
cmd() { agent_cmd "$1" ga "$2"; }
ctl() { "$VMSUPCTL" --bus "$BUS" "$@"; }
# b64_of FILE OFFSET COUNT: base64 of a slice of a local file.
b64_of() { tail -c +$(($2 + 1)) "$1" | head -c "$3" | base64 -w0; }
# read_b64 USER HANDLE COUNT: the buf-b64 of one guest-file-read.
read_b64() {
        cmd "$1" "{\"execute\":\"guest-file-read\",\"arguments\":{\"handle\":$2,\"count\":$3}}" |
                sed -n 's/.*"buf-b64":"\([^"]*\)".*/\1/p'
}
open_file() { # open_file USER PATH [MODE]: prints the handle
        cmd "$1" "{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"$2\",\"mode\":\"${3:-r}\"}}" | grep -E '^[0-9]+$'
}
sha_of() { sha256sum "$1" | cut -d' ' -f1; }
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# guest_sh SCRIPT: runs SCRIPT with the guest's busybox sh as root (guest-exec),
# waits for it, prints its standard output and returns its exit status.
guest_sh() {
        local s=$1 pid st code i
        s=${s//\\/\\\\}
        s=${s//\"/\\\"}
        pid=$(cmd root "{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"/bin/busybox\",\"arg\":[\"sh\",\"-c\",\"$s\"],\"capture-output\":true}}" |
                sed -n 's/^{"pid":\([0-9]*\)}$/\1/p')
        [[ -n $pid ]] || return 125
        for i in $(seq 1800); do
                st=$(cmd root "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":$pid}}") || return 125
                if [[ $st == *'"exited":true'* ]]; then
                        printf '%s' "$st" | sed -n 's/.*"out-data":"\([^"]*\)".*/\1/p' | base64 -d
                        code=$(printf '%s' "$st" | sed -n 's/.*"exitcode":\([0-9]*\).*/\1/p')
                        return "${code:-126}"
                fi
                sleep 0.1
        done
        return 124
}
guest_sha() { guest_sh "sha256sum $1" | cut -d' ' -f1; }
# The AgentConnected values a PropertiesChanged subscriber saw, in order.
agent_connected_seen() {
        tr '\n' ' ' < "$T/props" | grep -oE '"AgentConnected" +variant +boolean (true|false)' | awk '{ printf "%s ", $NF }'
}
# AgentConnected leaves the qemu-ga handles open in the guest (the exec's own pipes are not files).
guest_agent_files() { guest_sh 'ls -l /proc/$(pidof qemu-ga)/fd | grep -c /tmp/'; }

# --- a second VM without an agent boots alongside, for the ACPI shutdown at the end
check_here "supervisor for a VM with \"agent\": false" vmsupd_start noag
check "noag: Start" vmcall noag VM1 Start
check_fails "agent disabled: Command is AgentNotConnected" 'AgentNotConnected' dsend_as root noag Agent1.Command string:'{"execute":"guest-ping"}'
check_fails "agent disabled: ReadFile is AgentNotConnected" 'AgentNotConnected' ctl read-file noag /etc/hostname "$T/nothing.noag"
check_eq "agent disabled: AgentConnected false" false "$(vmprop_value noag AgentConnected)"

# --- boot: AgentNotConnected until the guest's agent answers, then AgentConnected
check_here "supervisor for the agent VM" vmsupd_start ga
SUP=${VMSUPD_PID[ga]}
dbus-monitor --system "type='signal',path='/org/vmsup/VM',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged'" \
        > "$T/props" 2>&1 &
wait_for_line "$T/props" . 10 || diag "dbus-monitor printed nothing yet"
events_start ga "$T/ev" || not_ok "subscriber started"
check_fails "stopped VM: Command is NotRunning" 'NotRunning' acmd root '{"execute":"guest-ping"}'
t0=$(date +%s%N)
check "Start" vmcall ga VM1 Start
check_fails "right after Start: Command is AgentNotConnected" 'AgentNotConnected' acmd root '{"execute":"guest-ping"}'
check_fails "right after Start: ReadFile is AgentNotConnected" 'AgentNotConnected' ctl read-file ga /etc/hostname "$T/nothing.ga"
if wait_prop ga AgentConnected true 120; then
        ok "AgentConnected becomes true once the guest's agent answers"
        diag "boot to agent: $(ms_since "$t0") ms from Start"
else
        not_ok "AgentConnected becomes true once the guest's agent answers"
fi
check "a PropertiesChanged subscriber saw AgentConnected true" \
        bash -c "for i in \$(seq 100); do tr '\n' ' ' < '$T/props' | grep -Eq '\"AgentConnected\" +variant +boolean true' && exit 0; sleep 0.1; done; exit 1"
check_match "GetStatus agent-connected" '"agent-connected" b true' "$(vmcall ga VM1 GetStatus)"

check_eq "guest-ping returns {}" '{}' "$(cmd root '{"execute":"guest-ping"}')"
check_match "guest-info has the agent's version" '^\{.*"version":"[0-9]+\.[0-9]+' "$(cmd root '{"execute":"guest-info"}')"
check_match "guest-get-osinfo: Debian" '"id":"debian"' "$(cmd vmsupa-audit '{"execute":"guest-get-osinfo"}')"
check_match "guest-network-get-interfaces has lo" '"name":"lo"' "$(cmd vmsupa-audit '{"execute":"guest-network-get-interfaces"}')"

# --- ReadFile / WriteFile of a 9 MiB file (more than one 8 MiB chunk)
head -c $((9 * MiB + 123)) /dev/urandom > "$U/small"
chmod 644 "$U/small"
SMALL=$((9 * MiB + 123))
check_eq "FileWrite: WriteFile (vmsupctl write-file) reports every byte" $SMALL \
        "$(as vmsupa-write "$VMSUPCTL" --bus "$BUS" write-file ga "$U/small" /tmp/small 2>&1)"
check_eq "the guest's sha256sum matches the local file" "$(sha_of "$U/small")" "$(guest_sha /tmp/small)"
check_eq "FileRead: ReadFile (vmsupctl read-file) reports every byte" $SMALL \
        "$(as vmsupa-read "$VMSUPCTL" --bus "$BUS" read-file ga /tmp/small "$U/small.back" 2>&1)"
check_eq "ReadFile returns what WriteFile wrote (sha256)" "$(sha_of "$U/small")" "$(sha_of "$U/small.back")"
as vmsupa-read "$VMSUPCTL" --bus "$BUS" read-file ga /tmp/small "$U/slice" --offset 1000 --length 5000 >/dev/null
check "ReadFile --offset 1000 --length 5000 returns exactly that slice" cmp "$U/slice" <(tail -c +1001 "$U/small" | head -c 5000)
as vmsupa-read "$VMSUPCTL" --bus "$BUS" read-file ga /tmp/small "$U/slice" --offset 77 --length $((8 * MiB + 10)) >/dev/null
check "a slice across the 8 MiB chunk boundary" cmp "$U/slice" <(tail -c +78 "$U/small" | head -c $((8 * MiB + 10)))
as vmsupa-read "$VMSUPCTL" --bus "$BUS" read-file ga /tmp/small "$U/slice" --offset $((SMALL - 100)) >/dev/null
check "--offset without --length reads to EOF" cmp "$U/slice" <(tail -c 100 "$U/small")
check_eq "an offset beyond EOF reads nothing" 0 \
        "$(as vmsupa-read "$VMSUPCTL" --bus "$BUS" read-file ga /tmp/small "$U/slice" --offset $((SMALL + 5)) 2>&1)"
head -c 1000 /dev/urandom > "$U/part2"
chmod 644 "$U/part2"
as vmsupa-write "$VMSUPCTL" --bus "$BUS" write-file ga "$U/part2" /tmp/app >/dev/null
as vmsupa-write "$VMSUPCTL" --bus "$BUS" write-file ga "$U/small" /tmp/app --append >/dev/null
check_eq "WriteFile --append appends" "$(cat "$U/part2" "$U/small" | sha256sum | cut -d' ' -f1)" "$(guest_sha /tmp/app)"
check_fails "ReadFile of a missing file: AgentError" 'org.vmsup.Error.AgentError: .*(No such file|open)' \
        as vmsupa-read "$VMSUPCTL" --bus "$BUS" read-file ga /tmp/no-such-file "$U/nothing.read"
# Guest bytes never go where the supervisor's credentials would vouch for them (a datagram
# socket to a root service), nor into a regular file the loop would write directly.
for kind in dgram regular; do
        check_eq "FileRead: ReadFile into a $kind descriptor is InvalidArgs, nothing written" \
                "error org.freedesktop.DBus.Error.InvalidArgs
written 0" "$(as vmsupa-read /usr/bin/python3 "$ROOT/tests/blackbox/fdcall.py" readfile ga $kind /tmp/small 2>&1)"
done
check_fails "WriteFile without FileWrite: AccessDenied naming it" 'AccessDenied: VM.GuestAgent.FileWrite privilege required' \
        as vmsupa-read "$VMSUPCTL" --bus "$BUS" write-file ga "$U/small" /tmp/refused
check_fails "ReadFile without FileRead: AccessDenied naming it" 'AccessDenied: VM.GuestAgent.FileRead privilege required' \
        as vmsupa-write "$VMSUPCTL" --bus "$BUS" read-file ga /tmp/small "$U/nothing.write"
check_fails "no privilege at all: ReadFile refused" 'AccessDenied: VM.GuestAgent.FileRead' \
        as vmsupa-none "$VMSUPCTL" --bus "$BUS" read-file ga /tmp/small "$U/nothing.none"
check_eq "the refused WriteFile created nothing in the guest" absent "$(guest_sh 'test -e /tmp/refused && echo present || echo absent')"
check_eq "Unrestricted: ReadFile" $SMALL "$(as vmsupa-unres "$VMSUPCTL" --bus "$BUS" read-file ga /tmp/small "$U/small.unres" 2>&1)"
check_eq "Unrestricted: WriteFile" 1000 "$(as vmsupa-unres "$VMSUPCTL" --bus "$BUS" write-file ga "$U/part2" /tmp/unres 2>&1)"

# --- each privilege grants exactly its commands
deny() { # deny USER JSON PATTERN: refused with AccessDenied matching PATTERN
        check_fails "$1: $(sed -E 's/.*"execute":"([^"]*)".*/\1/' <<< "$2") refused${4:+ ($4)}" "AccessDenied: .*$3" acmd "$1" "$2"
}
ping='{"execute":"guest-ping"}'
deny vmsupa-none "$ping" "Command 'guest-ping' requires the VM.GuestAgent.Audit privilege"
deny vmsupa-none '{"execute":"guest-get-osinfo"}' "requires the VM.GuestAgent.Audit privilege"

check_eq "Audit: guest-ping" '{}' "$(cmd vmsupa-audit "$ping")"
check_eq "Audit: guest-fsfreeze-status" '"thawed"' "$(cmd vmsupa-audit '{"execute":"guest-fsfreeze-status"}')"
check_match "Audit: guest-get-host-name" 'vmsup-guest' "$(cmd vmsupa-audit '{"execute":"guest-get-host-name"}')"
deny vmsupa-audit '{"execute":"guest-file-open","arguments":{"path":"/tmp/small"}}' "requires the VM.GuestAgent.FileRead privilege"
deny vmsupa-audit '{"execute":"guest-fsfreeze-thaw"}' "requires the VM.GuestAgent.FileSystemMgmt privilege"
deny vmsupa-audit '{"execute":"guest-exec","arguments":{"path":"/bin/true"}}' "requires the VM.GuestAgent.Unrestricted privilege"
deny vmsupa-audit '{"execute":"guest-shutdown"}' "requires the VM.PowerMgmt privilege"

h=$(open_file vmsupa-read /tmp/small r)
check_match "FileRead: guest-file-open r" '^[0-9]+$' "$h"
check_eq "FileRead: guest-file-read" "$(b64_of "$U/small" 0 64)" "$(read_b64 vmsupa-read "$h" 64)"
check_match "FileRead: guest-file-seek" '"position":10' "$(cmd vmsupa-read "{\"execute\":\"guest-file-seek\",\"arguments\":{\"handle\":$h,\"offset\":10,\"whence\":\"set\"}}")"
deny vmsupa-read "{\"execute\":\"guest-file-write\",\"arguments\":{\"handle\":$h,\"buf-b64\":\"aGk=\"}}" "requires the VM.GuestAgent.FileWrite privilege" "on its own handle"
deny vmsupa-read '{"execute":"guest-file-open","arguments":{"path":"/tmp/x","mode":"w"}}' "Opening a guest file for writing requires the VM.GuestAgent.FileWrite privilege"
deny vmsupa-read '{"execute":"guest-file-open","arguments":{"path":"/tmp/small","mode":"r+"}}' "VM.GuestAgent.FileWrite" "mode r+"
deny vmsupa-read "$ping" "VM.GuestAgent.Audit"
check_eq "FileRead: guest-file-close" '{}' "$(cmd vmsupa-read "{\"execute\":\"guest-file-close\",\"arguments\":{\"handle\":$h}}")"

h=$(open_file vmsupa-write /tmp/fw w)
check_match "FileWrite: guest-file-open w" '^[0-9]+$' "$h"
check_match "FileWrite: guest-file-write" '"count":6' "$(cmd vmsupa-write "{\"execute\":\"guest-file-write\",\"arguments\":{\"handle\":$h,\"buf-b64\":\"aGVsbG8K\"}}")"
check_eq "FileWrite: guest-file-flush" '{}' "$(cmd vmsupa-write "{\"execute\":\"guest-file-flush\",\"arguments\":{\"handle\":$h}}")"
deny vmsupa-write "{\"execute\":\"guest-file-read\",\"arguments\":{\"handle\":$h,\"count\":4}}" "requires the VM.GuestAgent.FileRead privilege" "on its own handle"
deny vmsupa-write '{"execute":"guest-file-open","arguments":{"path":"/tmp/small"}}' "requires the VM.GuestAgent.FileRead privilege"
deny vmsupa-write '{"execute":"guest-fsfreeze-status"}' "VM.GuestAgent.Audit"
check_eq "FileWrite: guest-file-close" '{}' "$(cmd vmsupa-write "{\"execute\":\"guest-file-close\",\"arguments\":{\"handle\":$h}}")"
check_eq "what FileWrite wrote is in the guest" hello "$(guest_sh 'cat /tmp/fw')"

check_eq "FileSystemMgmt: guest-fsfreeze-thaw" 0 "$(cmd vmsupa-fsmgmt '{"execute":"guest-fsfreeze-thaw"}')"
deny vmsupa-fsmgmt '{"execute":"guest-fsfreeze-status"}' "requires the VM.GuestAgent.Audit privilege"
deny vmsupa-fsmgmt "$ping" "VM.GuestAgent.Audit"
deny vmsupa-fsmgmt '{"execute":"guest-file-open","arguments":{"path":"/tmp/small"}}' "VM.GuestAgent.FileRead"

check_match "Unrestricted: guest-exec" '^\{"pid":[0-9]+\}$' "$(cmd vmsupa-unres '{"execute":"guest-exec","arguments":{"path":"/bin/busybox","arg":["true"]}}')"
check_eq "Unrestricted: guest-fsfreeze-status" '"thawed"' "$(cmd vmsupa-unres '{"execute":"guest-fsfreeze-status"}')"
h=$(open_file vmsupa-unres /tmp/unres2 w+)
check_match "Unrestricted: guest-file-open w+" '^[0-9]+$' "$h"
check_eq "Unrestricted: guest-file-close" '{}' "$(cmd vmsupa-unres "{\"execute\":\"guest-file-close\",\"arguments\":{\"handle\":$h}}")"
deny vmsupa-unres '{"execute":"guest-set-time"}' "Command 'guest-set-time' is root-only"
deny vmsupa-unres '{"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"root"}}' "is root-only"
deny vmsupa-unres '{"execute":"guest-no-such-command"}' "Command 'guest-no-such-command' is root-only" "unknown"

deny vmsupa-power "$ping" "VM.GuestAgent.Audit"
deny vmsupa-power '{"execute":"guest-exec","arguments":{"path":"/bin/true"}}' "VM.GuestAgent.Unrestricted"

# --- agent_file_paths: FileWrite is root in the guest unless confined. Under
# "/tmp" a FileWrite caller cannot reach /etc/shadow by any spelling, through
# Command or WriteFile, and a FileRead caller cannot read outside it.
SHADOW0=$(guest_sha /etc/shadow)
check_match "the guest has an /etc/shadow to protect" '^[0-9a-f]{64}$' "$SHADOW0"
NOTNORMAL="InvalidArgs: The guest path must be absolute and normalised"
for path in /etc/shadow /tmpx/f /tmp2 / /etc; do
        deny vmsupa-write "{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"$path\",\"mode\":\"w\"}}" \
                "The guest path is outside the paths this VM allows" "$path"
done
for path in /tmp/../etc/shadow /tmp/./x /tmp//x /tmp/ tmp/x '' /tmp/.. '/tmp/.. ' '/tmp\\..\\etc' //tmp/x; do
        check_fails "vmsupa-write: guest-file-open $(printf '%q' "$path") is InvalidArgs" "$NOTNORMAL" \
                acmd vmsupa-write "{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"$path\",\"mode\":\"w\"}}"
done
check_fails "vmsupa-write: guest-file-open without a path is InvalidArgs" 'InvalidArgs: guest-file-open needs a string "path"' \
        acmd vmsupa-write '{"execute":"guest-file-open","arguments":{"mode":"w"}}'
check_fails "vmsupa-write: guest-file-open with a \\u0000 in the path is InvalidArgs" 'InvalidArgs' \
        acmd vmsupa-write '{"execute":"guest-file-open","arguments":{"path":"/tmp/x\u0000/../../etc/shadow","mode":"w"}}'
deny vmsupa-unres '{"execute":"guest-file-open","arguments":{"path":"/etc/shadow","mode":"a"}}' \
        "The guest path is outside the paths this VM allows" "Unrestricted is confined too"
deny vmsupa-none '{"execute":"guest-file-open","arguments":{"path":"/tmp/x","mode":"w"}}' "requires the VM.GuestAgent.FileWrite privilege" "no privilege: privilege first"
check_fails "vmsupa-write: WriteFile to /etc/shadow is refused" "AccessDenied: The guest path is outside" \
        as vmsupa-write "$VMSUPCTL" --bus "$BUS" write-file ga "$U/part2" /etc/shadow
check_fails "vmsupa-write: WriteFile to /tmp/../etc/shadow is InvalidArgs" "$NOTNORMAL" \
        as vmsupa-write "$VMSUPCTL" --bus "$BUS" write-file ga "$U/part2" /tmp/../etc/shadow
check_fails "vmsupa-write: WriteFile to /etc/motd is refused" "AccessDenied: The guest path is outside" \
        as vmsupa-write "$VMSUPCTL" --bus "$BUS" write-file ga "$U/part2" /etc/motd
check_eq "/etc/shadow is unchanged" "$SHADOW0" "$(guest_sha /etc/shadow)"
check_eq "no /etc/motd was created" absent "$(guest_sh 'test -e /etc/motd && echo present || echo absent')"
rm -f "$U/shadow.read"
check_fails "vmsupa-read: ReadFile of /etc/shadow is refused" "AccessDenied: The guest path is outside" \
        as vmsupa-read "$VMSUPCTL" --bus "$BUS" read-file ga /etc/shadow "$U/shadow.read"
check_fails "vmsupa-read: ReadFile of /tmp/../etc/shadow is InvalidArgs" "$NOTNORMAL" \
        as vmsupa-read "$VMSUPCTL" --bus "$BUS" read-file ga /tmp/../etc/shadow "$U/shadow.read"
deny vmsupa-read '{"execute":"guest-file-open","arguments":{"path":"/etc/shadow"}}' "The guest path is outside the paths this VM allows" "read"
check "nothing of /etc/shadow reached the caller" bash -c "! test -s '$U/shadow.read'"
check_eq "root is not confined: ReadFile /etc/shadow" "$(guest_sh 'wc -c < /etc/shadow' | tr -d ' \n')" \
        "$("$VMSUPCTL" --bus "$BUS" read-file ga /etc/shadow "$T/shadow.root" 2>&1)"
# Inside the prefix: allowed. A file the agent creates is 0666 whatever the
# guest's umask (qemu-ga 7.2); an existing file keeps its mode.
check_eq "vmsupa-write: WriteFile creates /tmp/created" 1000 "$(as vmsupa-write "$VMSUPCTL" --bus "$BUS" write-file ga "$U/part2" /tmp/created 2>&1)"
check_eq "a file the agent creates is 0666 (documented)" "666" "$(guest_sh 'stat -c %a /tmp/created' | tr -d '\n')"
guest_sh 'umask 077; echo x > /tmp/private; chmod 600 /tmp/private' >/dev/null
check_eq "vmsupa-write: WriteFile rewrites /tmp/private" 1000 "$(as vmsupa-write "$VMSUPCTL" --bus "$BUS" write-file ga "$U/part2" /tmp/private 2>&1)"
check_eq "an existing file keeps its mode (600)" "600" "$(guest_sh 'stat -c %a /tmp/private' | tr -d '\n')"
# Advisory against the guest: a symlink the guest itself planted below the prefix is followed.
guest_sh 'ln -sf /etc/shadow /tmp/hostlink' >/dev/null
check_eq "a guest-planted symlink under the prefix is followed (advisory, documented)" \
        "$(guest_sh 'wc -c < /etc/shadow' | tr -d ' \n')" \
        "$(as vmsupa-read "$VMSUPCTL" --bus "$BUS" read-file ga /tmp/hostlink "$U/hostlink" 2>&1)"

deny root '{"execute":"guest-sync","arguments":{"id":1}}' "Command 'guest-sync' is reserved for the supervisor" "root too"
deny root '{"execute":"guest-sync-delimited","arguments":{"id":1}}' "Command 'guest-sync-delimited' is reserved for the supervisor" "root too"
deny vmsupa-unres '{"execute":"guest-sync","arguments":{"id":1}}' "reserved for the supervisor"
check_fails "root: an unknown command reaches the agent, which does not know it" 'AgentError: CommandNotFound' \
        acmd root '{"execute":"guest-no-such-command"}'
check_eq "the channel is in step after all that" '{}' "$(cmd vmsupa-audit "$ping")"

# --- guest-file-read count: above 48 MiB refused before the guest sees it
h=$(open_file vmsupa-read /tmp/small)
check_eq "16 bytes from the start" "$(b64_of "$U/small" 0 16)" "$(read_b64 vmsupa-read "$h" 16)"
check_fails "count 50331649 (48 MiB + 1): InvalidArgs" 'InvalidArgs: guest-file-read "count" must be an integer from 0 to 50331648' \
        acmd vmsupa-read "{\"execute\":\"guest-file-read\",\"arguments\":{\"handle\":$h,\"count\":50331649}}"
check_fails "count 50331649 from root: InvalidArgs too" 'InvalidArgs' \
        acmd root "{\"execute\":\"guest-file-read\",\"arguments\":{\"handle\":$h,\"count\":50331649}}"
check_fails "count -1: InvalidArgs" 'InvalidArgs' acmd vmsupa-read "{\"execute\":\"guest-file-read\",\"arguments\":{\"handle\":$h,\"count\":-1}}"
check_eq "the guest never read for them: the position is still 16" "$(b64_of "$U/small" 16 16)" "$(read_b64 vmsupa-read "$h" 16)"
out=$(cmd vmsupa-read "{\"execute\":\"guest-file-read\",\"arguments\":{\"handle\":$h,\"count\":50331648}}")
check_match "count 50331648 passes: the rest of the file, eof" "^\{\"count\":$((SMALL - 32)),\"buf-b64\":\"[A-Za-z0-9+/=]{100}.*\"eof\":true\}$" "${out:0:200}${out: -20}"
check_eq "and it is the right data" "$(tail -c +33 "$U/small" | sha_of -)" \
        "$(sed -n 's/.*"buf-b64":"\([^"]*\)".*/\1/p' <<< "$out" | base64 -d | sha_of -)"
unset out
cmd vmsupa-read "{\"execute\":\"guest-file-close\",\"arguments\":{\"handle\":$h}}" >/dev/null

# --- file handles belong to whoever opened them
h=$(open_file vmsupa-read /tmp/small)
check_match "A (FileRead) opens a handle" '^[0-9]+$' "$h"
check_fails "B (Unrestricted) cannot read A's handle" 'AccessDenied: The file handle was not opened by this caller' \
        acmd vmsupa-unres "{\"execute\":\"guest-file-read\",\"arguments\":{\"handle\":$h,\"count\":4}}"
check_fails "B cannot seek A's handle" 'AccessDenied: The file handle was not opened by this caller' \
        acmd vmsupa-unres "{\"execute\":\"guest-file-seek\",\"arguments\":{\"handle\":$h,\"offset\":0,\"whence\":\"end\"}}"
check_fails "B cannot close A's handle" 'AccessDenied: The file handle was not opened by this caller' \
        acmd vmsupa-unres "{\"execute\":\"guest-file-close\",\"arguments\":{\"handle\":$h}}"
check_fails "C (FileWrite) cannot close A's handle" 'AccessDenied: The file handle was not opened by this caller' \
        acmd vmsupa-write "{\"execute\":\"guest-file-close\",\"arguments\":{\"handle\":$h}}"
check_eq "A reads its handle, from where it was" "$(b64_of "$U/small" 0 8)" "$(read_b64 vmsupa-read "$h" 8)"
check_eq "root reads any handle" "$(b64_of "$U/small" 8 8)" "$(read_b64 root "$h" 8)"
check_eq "A closes its handle" '{}' "$(cmd vmsupa-read "{\"execute\":\"guest-file-close\",\"arguments\":{\"handle\":$h}}")"
check_fails "a closed handle is forgotten" 'AccessDenied: The file handle was not opened by this caller' \
        acmd vmsupa-read "{\"execute\":\"guest-file-read\",\"arguments\":{\"handle\":$h,\"count\":4}}"
h=$(open_file root /tmp/small)
check_fails "A cannot read root's handle" 'AccessDenied: The file handle was not opened by this caller' \
        acmd vmsupa-read "{\"execute\":\"guest-file-read\",\"arguments\":{\"handle\":$h,\"count\":4}}"
check_eq "root closes its handle" '{}' "$(cmd root "{\"execute\":\"guest-file-close\",\"arguments\":{\"handle\":$h}}")"
check_eq "no guest file is left open by the agent" 0 "$(guest_agent_files)"

# --- 200 MiB through ReadFile and WriteFile
t1=$(date +%s%N)
BIG_SHA=$(guest_sh '/bin/busybox dd if=/dev/urandom of=/tmp/big bs=1M count=200 2>/dev/null && sha256sum /tmp/big' | cut -d' ' -f1)
check_match "a 200 MiB random file in the guest (guest-exec dd, sha256sum)" '^[0-9a-f]{64}$' "$BIG_SHA"
diag "guest dd + sha256sum of 200 MiB: $(ms_since "$t1") ms"
peak_reset "$SUP"
rss0=$(proc_kb "$SUP" VmRSS)
cpu0=$(proc_cpu_ms "$SUP")
t1=$(date +%s%N)
n=$(as vmsupa-read "$VMSUPCTL" --bus "$BUS" read-file ga /tmp/big "$U/big" 2>&1)
ms=$(ms_since "$t1")
hwm=$(proc_kb "$SUP" VmHWM)
cpu=$(( $(proc_cpu_ms "$SUP") - cpu0 ))
check_eq "ReadFile of 200 MiB reports every byte" $((200 * MiB)) "$n"
check_eq "ReadFile of 200 MiB: sha256 matches the guest's sha256sum" "$BIG_SHA" "$(sha_of "$U/big")"
diag "ReadFile 200 MiB: $ms ms, $(( 200 * 1000 / (ms > 0 ? ms : 1) )) MiB/s; supervisor VmRSS before ${rss0} kB," \
        "VmHWM during ${hwm} kB, CPU ${cpu} ms"
if [[ $BUILD == build ]]; then
        check "supervisor peak RSS during ReadFile stays below 200 MiB (8 MiB chunks)" test "$hwm" -lt $((200 * 1024))
fi
peak_reset "$SUP"
cpu0=$(proc_cpu_ms "$SUP")
qpid=$(vmprop_value ga Pid)
qcpu0=$(proc_cpu_ms "$qpid")
t1=$(date +%s%N)
n=$(as vmsupa-write "$VMSUPCTL" --bus "$BUS" write-file ga "$U/big" /tmp/big2 2>&1)
ms=$(ms_since "$t1")
hwm=$(proc_kb "$SUP" VmHWM)
cpu=$(( $(proc_cpu_ms "$SUP") - cpu0 ))
check_eq "WriteFile of 200 MiB reports every byte" $((200 * MiB)) "$n"
check_eq "WriteFile of 200 MiB: the guest's sha256sum matches" "$BIG_SHA" "$(guest_sha /tmp/big2)"
diag "WriteFile 200 MiB: $ms ms, $(( 200 * 1000 / (ms > 0 ? ms : 1) )) MiB/s; supervisor VmHWM during ${hwm} kB," \
        "CPU ${cpu} ms (QEMU, i.e. the guest under TCG: $(( $(proc_cpu_ms "$qpid") - qcpu0 )) ms)"
if [[ $BUILD == build ]]; then
        check "supervisor peak RSS during WriteFile stays below 200 MiB" test "$hwm" -lt $((200 * 1024))
fi
guest_sh 'rm -f /tmp/big2' >/dev/null

# 48 MiB in one Command is allowed, but its reply (64 MiB of base64) is not put on the bus.
h=$(open_file vmsupa-read /tmp/big)
check_eq "16 bytes of the big file" "$(b64_of "$U/big" 0 16)" "$(read_b64 vmsupa-read "$h" 16)"
check_fails "count 50331648 of a 200 MiB file reaches the guest; the reply is ResponseTooLarge" 'ResponseTooLarge' \
        acmd vmsupa-read "{\"execute\":\"guest-file-read\",\"arguments\":{\"handle\":$h,\"count\":50331648}}"
check_eq "the guest did read those 48 MiB: the position moved on" "$(b64_of "$U/big" $((16 + 48 * MiB)) 16)" "$(read_b64 vmsupa-read "$h" 16)"
cmd vmsupa-read "{\"execute\":\"guest-file-close\",\"arguments\":{\"handle\":$h}}" >/dev/null

# --- the caller closes its end mid-transfer: the guest handle is closed all the same
mkfifo -m 666 "$U/fifo"
(head -c $((3 * MiB)) < "$U/fifo" > "$U/fifo.head") &
reader=$!
check_fails "ReadFile into a FIFO whose reader leaves after 3 MiB fails" 'IOError|closed its end' \
        as vmsupa-read "$VMSUPCTL" --bus "$BUS" read-file ga /tmp/big "$U/fifo"
wait $reader
check "the reader got the start of the file" cmp "$U/fifo.head" <(head -c $((3 * MiB)) "$U/big")
t1=$(date +%s%N)
check "the supervisor answers GetStatus" vmcall ga VM1 GetStatus
diag "GetStatus after the aborted transfer: $(ms_since "$t1") ms"
check_eq "a ReadFile after it works" $SMALL "$(as vmsupa-read "$VMSUPCTL" --bus "$BUS" read-file ga /tmp/small "$U/small.again" 2>&1)"
check_eq "no guest file is left open by the agent after the aborted ReadFile" 0 "$(guest_agent_files)"

# --- transfers at once are capped: four parked on pipes nobody reads (two by a user, who
# may hold no more, two by root), the fifth is Busy
declare -a park_fd=() park_pid=()
for i in 1 2 3 4; do
        mkfifo -m 666 "$U/park$i"
        exec {f}<>"$U/park$i"  # a reader that never reads: the pipe fills and the transfer waits
        park_fd+=("$f")
        who=vmsupa-read
        [[ $i -gt 2 ]] && who=root
        # Retries while Busy: a transfer from an earlier check may still hold a slot.
        (while :; do
                if [[ $who == root ]]; then
                        "$VMSUPCTL" --bus "$BUS" read-file ga /tmp/big "$U/park$i" > "$U/park$i.out" 2>&1
                else
                        as $who "$VMSUPCTL" --bus "$BUS" read-file ga /tmp/big "$U/park$i" > "$U/park$i.out" 2>&1
                fi
                grep -q org.vmsup.Error.Busy "$U/park$i.out" || break
                sleep 0.2
        done) &
        park_pid+=($!)
done
busy=no
for i in $(seq 600); do
        out=$("$VMSUPCTL" --bus "$BUS" read-file ga /tmp/small "$U/small.busy" 2>&1)
        if [[ $out == *org.vmsup.Error.Busy*"for this VM"* ]]; then
                busy=yes
                break
        fi
        sleep 0.1
done
check_eq "a fifth transfer while four are under way is Busy" yes "$busy"
[[ $busy == yes ]] || for i in 1 2 3 4; do diag "parked $i: $(cat "$U/park$i.out")"; done
check_fails "a user's third transfer while it has two under way is Busy" 'Busy: This user has 2 file transfers' \
        as vmsupa-read "$VMSUPCTL" --bus "$BUS" read-file ga /tmp/small "$U/small.busy.user"
for f in "${park_fd[@]}"; do exec {f}>&-; done
for p in "${park_pid[@]}"; do wait "$p" 2>/dev/null; done
check_eq "once the parked transfers end, a ReadFile works again" $SMALL \
        "$(as vmsupa-read "$VMSUPCTL" --bus "$BUS" read-file ga /tmp/small "$U/small.after" 2>&1)"
check_eq "no guest file is left open after the parked transfers" 0 "$(guest_agent_files)"
rm -f "$U/big" "$U/fifo.head" "$U"/park?*

# --- the agent restarts: AgentConnected false, then true again when the new one answers
n_seen=$(agent_connected_seen | wc -w)
check_match "the guest's agent is killed (its init restarts it)" '^\{"pid":[0-9]+\}$' \
        "$(cmd root '{"execute":"guest-exec","arguments":{"path":"/bin/busybox","arg":["sh","-c","sleep 0.5; kill $(pidof qemu-ga)"]}}')"
for i in $(seq 600); do
        [[ $(agent_connected_seen | wc -w) -ge $((n_seen + 2)) ]] && break
        sleep 0.1
done
check_match "AgentConnected went false, then true again for the new agent (PropertiesChanged)" 'false true $' "$(agent_connected_seen)"
check_eq "AgentConnected is true" true "$(vmprop_value ga AgentConnected)"
check_eq "the new agent answers" '{}' "$(cmd vmsupa-audit "$ping")"

# --- guest-shutdown through Command (VM.PowerMgmt)
pid=$(vmprop_value ga Pid)
check_eq "VM.PowerMgmt: guest-shutdown returns {}" '{}' "$(cmd vmsupa-power '{"execute":"guest-shutdown"}')"
check "the VM stops" wait_state ga stopped 120
check_eq "StateReason guest-shutdown" guest-shutdown "$(vmprop_value ga StateReason)"
check "subscriber saw SHUTDOWN from the guest" wait_for_line "$T/ev" '^Event SHUTDOWN \{"guest":true,"reason":"guest-shutdown"\}'
check "QEMU is gone" bash -c "! kill -0 $pid 2>/dev/null"
check_eq "AgentConnected false once stopped" false "$(vmprop_value ga AgentConnected)"

# --- Shutdown(0, false) with the agent on: through guest-shutdown
check "Start again" vmcall ga VM1 Start
check "the agent answers again" wait_prop ga AgentConnected true 120
# --- Reboot with the agent: guest-shutdown mode reboot, the guest resets inside the same QEMU
pid=$(vmprop_value ga Pid)
n_open=$(grep -c '^Event VSERPORT_CHANGE .*"open":true' "$T/ev")
check_fails "no ACL: Reboot refused, names VM.PowerMgmt" 'AccessDenied: VM.PowerMgmt' dsend_as vmsupa-none ga VM1.Reboot uint32:0
check "Reboot(120) with the agent returns once the guest runs again" vmcall ga VM1 Reboot u 120
check "subscriber saw the guest's RESET" wait_for_line "$T/ev" '^Event RESET \{"guest":true,"reason":"guest-reset"\}'
check_eq "same QEMU, running" "running $pid" "$(vmprop_value ga State) $(vmprop_value ga Pid)"
for i in $(seq 1200); do
        [[ $(grep -c '^Event VSERPORT_CHANGE .*"open":true' "$T/ev") -gt $n_open ]] && break
        sleep 0.1
done
check "the rebooted guest's agent opens its port again" test "$(grep -c '^Event VSERPORT_CHANGE .*"open":true' "$T/ev")" -gt "$n_open"
check "the agent answers after the reboot" wait_prop ga AgentConnected true 120
check "Shutdown(0, false) returns when QEMU has exited" vmcall ga VM1 Shutdown ub 0 false
check "subscriber saw shutting-down host-qga-guest-shutdown" wait_for_line "$T/ev" '^StateChanged shutting-down host-qga-guest-shutdown'
check_eq "stopped, guest-shutdown" "stopped guest-shutdown" "$(vmprop_value ga State) $(vmprop_value ga StateReason)"

# --- "agent": false: Shutdown through ACPI. The power button is only heard once
# the guest's acpid runs; its init reports on the console after that.
# The agent-less guest's init says "no agent port" once acpid runs (and after
# its search for the port); the power button script and shutdown print other
# "vmsup-guest:" lines, so only this one counts as a boot.
noag_boot='vmsup-guest: no agent port'
booted=no
for i in $(seq 1200); do
        if grep -q "$noag_boot" "$T/run/noag/console.log" 2>/dev/null; then
                booted=yes
                break
        fi
        sleep 0.1
done
check_eq "noag: the guest's init reports on its console" yes "$booted"
events_start noag "$T/ev2" || not_ok "subscriber started"
# --- Reboot without the agent: ACPI power-down, then a fresh QEMU
pid=$(vmprop_value noag Pid)
# The console log keeps the first boot's lines: the rebooted guest adds one more.
boots=$(grep -c "$noag_boot" "$T/run/noag/console.log" 2>/dev/null)
check "noag: Reboot(120) returns once the new QEMU runs" vmcall noag VM1 Reboot u 120
check "noag: subscriber saw shutting-down host-reboot-system-powerdown" wait_for_line "$T/ev2" '^StateChanged shutting-down host-reboot-system-powerdown'
check "noag: subscriber saw the guest power off" wait_for_line "$T/ev2" '^StateChanged stopped guest-shutdown'
check "noag: subscriber saw the fresh start" wait_for_line "$T/ev2" '^StateChanged running started'
newpid=$(vmprop_value noag Pid)
check_eq "noag: running again" running "$(vmprop_value noag State)"
check "noag: a new QEMU process ($pid -> $newpid)" test "$newpid" != 0 -a "$newpid" != "$pid"
check "noag: the old QEMU is gone" bash -c "! kill -0 $pid 2>/dev/null"
booted=no
for i in $(seq 1200); do
        if [[ $(grep -c "$noag_boot" "$T/run/noag/console.log" 2>/dev/null) -gt ${boots:-0} ]]; then
                booted=yes
                break
        fi
        sleep 0.1
done
check_eq "noag: the rebooted guest's init reports on its console (a new boot line in the console log)" yes "$booted"
# That line comes ~10 s after acpid is started (the port search gives up first),
# so acpid listens by now; a press before it listens would be lost.
check "noag: Shutdown(0, false) returns when QEMU has exited" vmcall noag VM1 Shutdown ub 0 false
check "noag: subscriber saw shutting-down host-qmp-system-powerdown" wait_for_line "$T/ev2" '^StateChanged shutting-down host-qmp-system-powerdown'
check_eq "noag: stopped, guest-shutdown" "stopped guest-shutdown" "$(vmprop_value noag State) $(vmprop_value noag StateReason)"

finish
