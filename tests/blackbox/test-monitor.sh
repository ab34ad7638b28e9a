#!/bin/bash
# org.vmsup.Monitor1 end to end with a real QEMU (machine "none": no guest):
# HumanCommand and Execute as root and as callers holding every mix of
# VM.Monitor and Sys.Modify, the tiers of docs/permissions.md, attempts to pass
# a root-only command under another spelling, validation before authorization,
# NotRunning. Every refusal is also checked on QEMU's side: same pid, still
# running, no chardev or file the refused command would have created, no event.
source "$(dirname "$0")/lib.sh"

U_MON=vmsupm-mon    # VM.Monitor
U_MOD=vmsupm-mod    # VM.Monitor + Sys.Modify
U_SYS=vmsupm-sys    # Sys.Modify + VM.Audit, no VM.Monitor
U_AUD=vmsupm-audit  # VM.Audit
U_NONE=vmsupm-none  # no ACL entry
for u in $U_MON $U_MOD $U_SYS $U_AUD $U_NONE; do ensure_user "$u"; done
bus_start || exit 1
host_acl '{ "acl": [] }'
# Where QEMU (vmsup-qemu) may write: the files the refused commands would have made, and
# root's chardev file.
W=$T/qemu-writable
install -d -o vmsup-qemu -g vmsup-qemu -m 0700 "$W"
# A qcow2 disk (internal snapshots, resizing), a secret object (qom-get) and a
# ring buffer (ringbuf_*): what the commands that reach beyond the VM act on.
qemu-img create -q -f qcow2 "$T/disk.qcow2" 16M || not_ok "qemu-img created the test disk"
chown vmsup-qemu:vmsup-qemu "$T/disk.qcow2"
define_vm mon "{ \"qemu\": { \"binary\": \"$QEMU\", \"machine\": \"none\", \"accel\": \"tcg\", \"memory_mib\": 32,
  \"drives\": [ { \"file\": \"$T/disk.qcow2\", \"format\": \"qcow2\", \"interface\": \"none\" } ],
  \"extra_args\": [ \"-object\", \"secret,id=sec0,data=hunter2-passphrase\", \"-chardev\", \"ringbuf,id=rb0,size=4096\" ] },
  \"agent\": false, \"autostart\": true, \"shutdown_timeout_sec\": 2,
  \"acl\": [ { \"user\": \"$U_MON\", \"privileges\": [ \"VM.Monitor\" ] },
           { \"user\": \"$U_MOD\", \"privileges\": [ \"VM.Monitor\", \"Sys.Modify\" ] },
           { \"user\": \"$U_SYS\", \"privileges\": [ \"Sys.Modify\", \"VM.Audit\" ] },
           { \"user\": \"$U_AUD\", \"privileges\": [ \"VM.Audit\" ] } ] }"

# hmp USER LINE / qmp USER JSON: through dbus-send, which prints refusals with
# their message ("Error NAME: message") and replies as: string "..." (unescaped).
hmp() { dsend_as "$1" mon Monitor1.HumanCommand "string:$2"; }
qmp() { dsend_as "$1" mon Monitor1.Execute "string:$2"; }
# hmp_bc USER LINE: through busctl, which takes the line verbatim from argv
# (bash $'...' carries control bytes); it shows only "Access denied" for
# AccessDenied, but the message of every other error.
hmp_bc() {
        local u=$1
        shift
        if [[ $u == root ]]; then
                busctl --system call org.vmsup.VM.mon /org/vmsup/VM org.vmsup.Monitor1 HumanCommand s "$1"
        else
                as "$u" busctl --system call org.vmsup.VM.mon /org/vmsup/VM org.vmsup.Monitor1 HumanCommand s "$1"
        fi
}
# reply_of CMD...: the string a dbus-send call returned (without the framing).
reply_of() {
        "$@" 2>&1 | sed -n '2,$p' | sed -E '1s/^   string "//; $s/"$//'
}

INVALID='org.freedesktop.DBus.Error.InvalidArgs'
DENIED='org.freedesktop.DBus.Error.AccessDenied'
ROOT_ONLY="$DENIED: Command '[^']*' is root-only\\."
NEEDS_MONITOR="$DENIED: VM.Monitor privilege required\\."
NEEDS_SYS="$DENIED: Command '[^']*' requires the Sys.Modify privilege\\."
RESERVED="$DENIED: Command '[^']*' is reserved for the supervisor\\."
CONTROL="$INVALID: Control characters and non-ASCII are not accepted"

check_here "vmsupd starts with an autostarting VM" vmsupd_start mon
check "the VM runs" wait_state mon running 20
QPID=$(vmprop_value mon Pid)
check "Pid is QEMU's" test "$(cat /proc/"$QPID"/comm 2>/dev/null)" = qemu-system-x86
events_start mon "$T/ev" || not_ok "event subscriber started"

# intact: QEMU untouched by a refused command: same process, running (State and
# query-status), no chardev "x", none of the files a refused command names.
intact() {
        local st pid chardevs
        pid=$(vmprop_value mon Pid)
        [[ $pid == "$QPID" ]] || { echo "QEMU pid $pid, was $QPID"; return 1; }
        [[ $(vmprop_value mon State) == running ]] || { echo "State $(vmprop_value mon State)"; return 1; }
        st=$(reply_of qmp root '{"execute":"query-status"}')
        [[ $st == *'"status":"running"'* ]] || { echo "query-status: $st"; return 1; }
        chardevs=$(reply_of qmp root '{"execute":"query-chardev"}')
        [[ $chardevs == *'"label":"vmsup-qmp"'* ]] || { echo "query-chardev: $chardevs"; return 1; }
        [[ $chardevs != *'"label":"x"'* ]] || { echo "chardev x exists: $chardevs"; return 1; }
        for f in "$W/x" "$W/y" "$W/migrated"; do
                [[ ! -e $f ]] || { echo "$f exists"; return 1; }
        done
}
no_stop_event() { ! grep -q '^Event STOP' "$T/ev"; }
# wait_count FILE REGEX N: until exactly N lines match (the subscriber may lag the property).
wait_count() {
        local i n=
        for i in $(seq 100); do
                n=$(grep -Ec -- "$2" "$1")
                [[ $n == "$3" ]] && return 0
                sleep 0.05
        done
        echo "$n lines match $2, wanted $3"
        return 1
}

# --- validation before authorization: a line that names no command is InvalidArgs for everyone
for u in root $U_MON $U_MOD $U_SYS $U_NONE; do
        check_fails "$u: empty command line is InvalidArgs" "$INVALID: The command line names no command" hmp "$u" ''
done
check_fails "no ACL: blank line is InvalidArgs, not AccessDenied" "$INVALID: The command line names no command" hmp $U_NONE $' \t  '
check_fails "no ACL: a line starting with / is InvalidArgs" "$INVALID: The command line names no command" hmp $U_NONE '/x info'
check_fails "no ACL: control character is InvalidArgs before authorization" "$CONTROL" hmp $U_NONE $'info\x01status'
check_fails "no ACL: over 64 KiB is InvalidArgs" "$INVALID: .*longer than 64 KiB" hmp $U_NONE "info status$(printf '%65530s' '')"
check_fails "no ACL: malformed Execute is InvalidArgs" "$INVALID: " qmp $U_NONE '{"execute":"query-status","id":1}'

# --- VM.Monitor alone
out=$(reply_of hmp $U_MON 'info status')
check_match "VM.Monitor: info status returns QEMU's text" '^VM status: running' "$out"
check_match "VM.Monitor: help lists the commands" 'info \[subcommand\].*' "$(reply_of hmp $U_MON help)"
check_match "VM.Monitor: ? (help) works" 'cont\|c  -- resume emulation' "$(reply_of hmp $U_MON '?')"
VER=$(vmprop_value mon QemuVersion)
check_match "QemuVersion is known" '^[0-9]+\.[0-9]+\.[0-9]+$' "$VER"
check_match "VM.Monitor: info version" "^${VER//./\\.}" "$(reply_of hmp $U_MON 'info version')"
check_match "VM.Monitor: busctl gets the output too" '^s "VM status: running' "$(hmp_bc $U_MON 'info status')"
line=$(printf 'info status%65525s' '') # 65536 bytes
check_match "VM.Monitor: a line of exactly 64 KiB runs" '^VM status: running' "$(reply_of hmp $U_MON "$line")"
check_fails "VM.Monitor: stop refused, names Sys.Modify" "$DENIED: Command 'stop' requires the Sys.Modify privilege" hmp $U_MON stop
check_fails "VM.Monitor: busctl says Access denied" 'Access denied' hmp_bc $U_MON stop
check_fails "VM.Monitor: s (stop) refused, names Sys.Modify" "$DENIED: Command 's' requires the Sys.Modify privilege" hmp $U_MON s
check_fails "VM.Monitor: cont refused" "$NEEDS_SYS" hmp $U_MON cont
check_fails "VM.Monitor: system_reset refused" "$NEEDS_SYS" hmp $U_MON system_reset
check "refused stop left QEMU running" intact
check_match "root query-status after the refusal" '"status":"running"' "$(reply_of qmp root '{"execute":"query-status"}')"
check "no STOP event reached the subscriber" no_stop_event

# --- no VM.Monitor: nothing at all, whatever else the caller holds
for u in $U_SYS $U_AUD $U_NONE; do
        check_fails "$u: info status refused, names VM.Monitor" "$NEEDS_MONITOR" hmp $u 'info status'
        check_fails "$u: Execute query-status refused, names VM.Monitor" "$NEEDS_MONITOR" qmp $u '{"execute":"query-status"}'
done
check_fails "Sys.Modify without VM.Monitor: stop refused, names VM.Monitor" "$NEEDS_MONITOR" hmp $U_SYS stop
check_fails "Sys.Modify without VM.Monitor: Execute stop refused" "$NEEDS_MONITOR" qmp $U_SYS '{"execute":"stop"}'
check "still running, same QEMU" intact

# --- root-only HMP commands: refused to every non-root caller, QEMU untouched
root_only=("migrate exec:touch $W/migrated" "dump-guest-memory $W/x" "chardev-add file,id=x,path=$W/y"
           gdbserver quit q "pmemsave 0 4096 $W/x" "screendump $W/x" 'device_add pci-bridge,id=x'
           'qom-set /machine x y' 'nosuchcommand')
for cmd in "${root_only[@]}"; do
        check_fails "Sys.Modify: '${cmd%% *}' is root-only" "$ROOT_ONLY" hmp $U_MOD "$cmd"
        check_fails "VM.Monitor: '${cmd%% *}' is root-only" "$ROOT_ONLY" hmp $U_MON "$cmd"
        check_fails "no VM.Monitor: '${cmd%% *}' refused" "$NEEDS_MONITOR" hmp $U_SYS "$cmd"
done
check "root-only refusals left QEMU untouched (pid, status, chardevs, files)" intact

# --- other spellings of root-only commands, as the most privileged non-root caller
for line in ' q' $'\tq' $'  \t quit now' QUIT Quit 'q/' 'quit/x' '\q' 'q;info status' 'info;quit' \
            'migrate_incoming exec:true' 'c|q'; do
        check_fails "Sys.Modify: $(printf '%q' "$line") is AccessDenied" "$DENIED" hmp $U_MOD "$line"
done
for line in $'\nq' $'quit\n' $'info status\nquit' $'\rq' $'\vq' $'\fq' $'q\x01' $'\x1b[Aq' $'\x7fq' $'info status\x7f' \
             $'q\xc2\xa0' $'\xc2\xa0q' $'\xef\xbd\x91' $'info status \xc3\xa9' $'\xe2\x80\x8bquit'; do
        check_fails "Sys.Modify: $(printf '%q' "$line") is InvalidArgs" "$CONTROL" hmp $U_MOD "$line"
done
check_fails "busctl: \$'\\tq' is refused" 'Access denied' hmp_bc $U_MOD $'\tq'
check_fails "busctl: \$'\\nq' is refused with the reason" 'Control characters and non-ASCII are not accepted' hmp_bc $U_MOD $'\nq'
check_fails "busctl: non-ASCII is refused with the reason" 'Control characters and non-ASCII are not accepted' hmp_bc $U_MOD $'q\xc3\xa9'
check_fails "VM.Monitor: \$'\\tq' refused as root-only" "$ROOT_ONLY" hmp $U_MON $'\tq'
check_fails "VM.Monitor: \$'\\nq' refused as InvalidArgs" "$CONTROL" hmp $U_MON $'\nq'
check_fails "busctl refuses a string that is not UTF-8" 'Invalid argument' hmp_bc $U_MOD $'q\xff'
# A D-Bus string cannot hold NUL: from a shell it cannot even be written (argv
# ends at NUL; bash drops it from $(...)), and a hand-built message with one is
# invalid on the wire: dbus-daemon drops the sender before vmsupd sees it.
cat > "$T/rawcall.py" <<'PY'
# rawcall.py SOCKET DEST HEXSTRING: HumanCommand with exactly these bytes, sent
# by hand (no D-Bus library would build it). Prints "reply: ...", "error" or
# "disconnected".
import os, socket, struct, sys

def pad(b, n):
    b += b"\0" * (-len(b) % n)

def message(serial, dest, path, iface, member, sig, body):
    f = bytearray()
    def field(code, t, v):
        pad(f, 8)
        f.extend(bytes([code, 1]) + t.encode() + b"\0")
        if t == "g":
            f.extend(bytes([len(v)]) + v.encode() + b"\0")
        else:
            pad(f, 4)
            f.extend(struct.pack("<I", len(v)) + v.encode() + b"\0")
    field(1, "o", path); field(2, "s", iface); field(3, "s", member); field(6, "s", dest)
    if sig:
        field(8, "g", sig)
    m = bytearray(b"l\x01\x00\x01" + struct.pack("<III", len(body), serial, len(f)))
    m.extend(f)
    pad(m, 8)
    return bytes(m + body)

s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b"\0AUTH EXTERNAL " + str(os.geteuid()).encode().hex().encode() + b"\r\n")
if not s.recv(4096).startswith(b"OK "):
    sys.exit("auth failed")
s.sendall(b"BEGIN\r\n")
s.sendall(message(1, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello", "", b""))
arg = bytes.fromhex(sys.argv[3])
s.sendall(message(2, sys.argv[2], "/org/vmsup/VM", "org.vmsup.Monitor1", "HumanCommand", "s",
                  struct.pack("<I", len(arg)) + arg + b"\0"))
s.settimeout(10)
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        print("disconnected")
        break
    data += chunk
    if b"VM status" in data:
        print("reply:", data[data.find(b"VM status"):].split(b"\n")[0].decode(errors="replace"))
        break
    if b".Error." in data:
        print("error")
        break
PY
raw_call() { as "$1" /usr/bin/python3 "$T/rawcall.py" "$T/bus" org.vmsup.VM.mon "$(printf '%s' "$2" | od -An -tx1 | tr -d ' \n')${3:-}"; }
if [[ -x /usr/bin/python3 ]]; then
        check_match "a hand-built HumanCommand reaches vmsupd" '^reply: VM status: running' "$(raw_call $U_MON 'info status')"
        check_eq "with a NUL inside the string dbus-daemon drops it" disconnected "$(raw_call $U_MOD 'info status' 0071756974)"
else
        ok "a hand-built HumanCommand reaches vmsupd # SKIP no /usr/bin/python3"
        ok "with a NUL inside the string dbus-daemon drops it # SKIP no /usr/bin/python3"
fi
check "no spelling reached QEMU" intact
check "no STOP event reached the subscriber" no_stop_event

# --- commands whose effect reaches beyond the VM (host image files, QEMU's
# stderr and so the host log, host addresses, device MMIO, secrets, channels
# and settings that belong to others) are root-only: refused to the most
# privileged non-root caller, and checked on QEMU's side
img_state() { echo "$(stat -c %s "$T/disk.qcow2") $(sha256sum < "$T/disk.qcow2")"; }
IMG0=$(img_state)
check "root: ringbuf_write to rb0" hmp root 'ringbuf_write rb0 rootdata'
MIGPAR0=$(reply_of qmp root '{"execute":"query-migrate-parameters"}')
MIGCAP0=$(reply_of qmp root '{"execute":"query-migrate-capabilities"}')
retiered=('block_resize drive0 0' 'block_resize drive0 4T' 'savevm t1' 'loadvm t1' 'delvm t1'
          'snapshot_blkdev_internal drive0 t1' 'snapshot_delete_blkdev_internal drive0 t1'
          'trace-event * on' 'log all' 'sum 0 4294967295' 'xp /16xg 0' 'x /16xg 0' 'ringbuf_read rb0 100'
          'ringbuf_write rb0 forged' 'migrate_set_capability xbzrle on' 'migrate_set_parameter max-bandwidth 1'
          'migrate_set_parameter tls-creds ""' 'qom-get /objects/sec0 data' 'sync-profile on'
          'info tlb' 'info mem' 'info sync-profile' 'info virtio-vhost-queue-status /machine 0' 'info  tlb'
          $'info\ttlb' 'info tlb/x' 'info /x' 'info nosuchsubcommand')
for cmd in "${retiered[@]}"; do
        check_fails "Sys.Modify: $(printf '%q' "$cmd") is root-only" "$ROOT_ONLY" hmp $U_MOD "$cmd"
        check_fails "VM.Monitor: $(printf '%q' "$cmd") is root-only" "$ROOT_ONLY" hmp $U_MON "$cmd"
        check_fails "Sys.Modify: $(printf '%q' "$cmd") through human-monitor-command is root-only" "$ROOT_ONLY" \
                qmp $U_MOD "$(jq -cn --arg l "$cmd" '{execute:"human-monitor-command",arguments:{"command-line":$l}}')"
done
check_fails "Sys.Modify: info tlb is named in the refusal" "$DENIED: Command 'info tlb' is root-only\\." hmp $U_MOD 'info  tlb'
for c in '{"execute":"qom-get","arguments":{"path":"/objects/sec0","property":"data"}}' \
         '{"execute":"x-query-virtio-vhost-queue-status","arguments":{"path":"/machine","queue":0}}' \
         '{"execute":"block_resize","arguments":{"device":"drive0","size":0}}' \
         '{"execute":"snapshot-save","arguments":{"job-id":"s","tag":"t","vmstate":"drive0","devices":["drive0"]}}' \
         '{"execute":"trace-event-set-state","arguments":{"name":"*","enable":true}}' \
         '{"execute":"ringbuf-read","arguments":{"device":"rb0","size":100}}' \
         '{"execute":"migrate-set-parameters","arguments":{"max-bandwidth":1}}'; do
        name=$(jq -r .execute <<<"$c")
        check_fails "Sys.Modify: Execute $name is root-only" "$DENIED: Command '${name:0:32}[^']*' is root-only" qmp $U_MOD "$c"
        check_fails "VM.Monitor: Execute $name is root-only" "$ROOT_ONLY" qmp $U_MON "$c"
done
out=$(qmp $U_MOD '{"execute":"qom-get","arguments":{"path":"/objects/sec0","property":"data"}}' 2>&1)
check "the refusal does not carry the secret" bash -c "! grep -q hunter2 <<<'$out'"
check_eq "root: qom-get reads the secret (what the refusal protects)" '"hunter2-passphrase"' \
        "$(reply_of qmp root '{"execute":"qom-get","arguments":{"path":"/objects/sec0","property":"data"}}')"
check_eq "the image is untouched: same size and content" "$IMG0" "$(img_state)"
check_eq "the image has no internal snapshot" "" "$(qemu-img snapshot -U -l "$T/disk.qcow2")"
check_match "root: ringbuf_read rb0 still has root's data, not drained, nothing forged" '^rootdata$' \
        "$(reply_of hmp root 'ringbuf_read rb0 100' | tr -d '\r' | sed '/^$/d')"
check_eq "migration parameters unchanged" "$MIGPAR0" "$(reply_of qmp root '{"execute":"query-migrate-parameters"}')"
check_eq "migration capabilities unchanged" "$MIGCAP0" "$(reply_of qmp root '{"execute":"query-migrate-capabilities"}')"
check_eq "no trace event was enabled" 0 \
        "$(reply_of qmp root '{"execute":"trace-event-get-state","arguments":{"name":"*"}}' | grep -o '"state":"enabled"' | wc -l)"
check "no host address in root's info sync-profile: profiling stayed off" \
        bash -c "! grep -Eq '0x[0-9a-f]{8,}' <<<'$(reply_of hmp root 'info sync-profile')'"
# What the refusals protect: once root turns profiling on, info sync-profile prints QEMU's addresses.
check "root: sync-profile on" hmp root 'sync-profile on'
reply_of qmp root '{"execute":"query-status"}' >/dev/null
check_match "root: info sync-profile shows host addresses" '0x[0-9a-f]{8,}' "$(reply_of hmp root 'info sync-profile')"
check_fails "VM.Monitor: info sync-profile is root-only while profiling is on" "$ROOT_ONLY" hmp $U_MON 'info sync-profile'
check_fails "Sys.Modify: info sync-profile is root-only while profiling is on" "$ROOT_ONLY" hmp $U_MOD 'info sync-profile -n 3'
check "root: sync-profile off" hmp root 'sync-profile off'
check "root: sync-profile reset" hmp root 'sync-profile reset'
# info usbhost describes the host: Sys.Modify, not VM.Monitor alone.
check_fails "VM.Monitor: info usbhost needs Sys.Modify" "$DENIED: Command 'info usbhost' requires the Sys.Modify privilege" hmp $U_MON 'info usbhost'
check "Sys.Modify: info usbhost runs" hmp $U_MOD 'info usbhost'
# The rest of info is VM.Monitor's: spot checks of the reads that stay open.
for sub in status version chardev block ramblock roms qtree mtree 'qom-tree' 'virtio' 'jit' 'usernet' 'trace-events'; do
        check "VM.Monitor: info $sub runs" hmp $U_MON "info $sub"
done
check_match "VM.Monitor: info alone lists the subcommands" 'info tlb' "$(reply_of hmp $U_MON 'info')"
check "the re-tiered refusals left QEMU untouched" intact

# --- Sys.Modify: stop and cont through HumanCommand, State follows QEMU's events
check_match "Sys.Modify: stop" '^   string ""$' "$(hmp $U_MOD stop 2>&1 | sed -n 2p)"
check "State paused" wait_state mon paused 5
check "subscriber saw STOP" wait_for_line "$T/ev" '^Event STOP'
check_match "query-status paused" '"status":"paused"' "$(reply_of qmp root '{"execute":"query-status"}')"
check_match "info status says paused" '^VM status: paused' "$(reply_of hmp $U_MON 'info status')"
check "Sys.Modify: cont" hmp $U_MOD cont
check "State running" wait_state mon running 5
check "subscriber saw RESUME" wait_for_line "$T/ev" '^Event RESUME'
# Every event before this RESUME has been written: a refused stop would show as a second STOP.
check_eq "exactly one STOP: the refused ones never reached QEMU" 1 "$(grep -c '^Event STOP' "$T/ev")"
check "Sys.Modify: s" hmp_bc $U_MOD s
check "State paused after s" wait_state mon paused 5
check "Sys.Modify: c" hmp_bc $U_MOD c
check "State running after c" wait_state mon running 5
check "two RESUME events" wait_count "$T/ev" '^Event RESUME' 2
check_eq "two STOP events" 2 "$(grep -c '^Event STOP' "$T/ev")"

# --- memory dumps (root-only: they reach device MMIO): within the limit they
# run; past it QEMU's one reply would be longer than the supervisor reads
# (16 MiB), so it is refused to everyone, root too
out=$(reply_of hmp root 'xp /16384xg 0')
check_eq "root: xp /16384xg dumps 8192 lines" 8192 "$(printf '%s\n' "$out" | grep -c '^[0-9a-f]\{16\}: 0x')"
check_fails "Sys.Modify: xp is root-only" "$ROOT_ONLY" hmp $U_MOD 'xp /16xg 0'
for u in root $U_MOD $U_MON $U_NONE; do
        check_fails "$u: xp /700000xg is InvalidArgs" "$INVALID: x and xp dump at most 16384 units" hmp $u 'xp /700000xg 0'
done
check_fails "Sys.Modify: x/16385 is InvalidArgs" "$INVALID: x and xp dump at most" hmp $U_MOD 'x/16385i 0'
check_fails "Sys.Modify: a count that would wrap QEMU's int" "$INVALID: x and xp dump at most" hmp $U_MOD 'xp /4294967297xb 0'
check_fails "Sys.Modify: through human-monitor-command too" "$INVALID: x and xp dump at most" qmp $U_MOD '{"execute":"human-monitor-command","arguments":{"command-line":"xp /700000xg 0"}}'
check "refused dumps left QEMU running" intact
check_eq "the same QEMU throughout" "$QPID" "$(vmprop_value mon Pid)"

# --- root: root-only commands run, and their effects are visible
check_match "root: info version" "^${VER//./\\.}" "$(reply_of hmp root 'info version')"
chardevs=$(reply_of qmp root '{"execute":"query-chardev"}')
check "no chardev rootadded yet" test "${chardevs/rootadded/}" = "$chardevs"
check_match "root: chardev-add null,id=rootadded" '^   string ""$' "$(hmp root 'chardev-add null,id=rootadded' 2>&1 | sed -n 2p)"
check_match "query-chardev shows rootadded" '"label":"rootadded"' "$(reply_of qmp root '{"execute":"query-chardev"}')"
check "root: chardev-add of a file" hmp root "chardev-add file,id=rootfile,path=$W/rootfile"
check "root's chardev created its file (what the refused ones would have done)" test -e "$W/rootfile"
check_match "root: QEMU answers an unknown command itself" "^unknown command: 'QUIT'" "$(reply_of hmp root QUIT)"
check_match "root: control bytes are QEMU's business (\\v is white space to QEMU)" '^VM status: running' "$(reply_of hmp root $'\vinfo status')"
check_match "root: one line is one command" 'extraneous characters' "$(reply_of hmp root $'info status\nquit')"
check_eq "root: still the same QEMU" "$QPID running" "$(vmprop_value mon Pid) $(vmprop_value mon State)"

# --- Execute: replies, tiers (docs/permissions.md), reserved commands, validation
out=$(reply_of qmp root '{"execute":"query-status"}')
check_match "Execute query-status: compact JSON of return" '^\{"status":"running",("[a-z]+":[a-z"]+,?)+\}$' "$out"
check_match "busctl: same reply" '^s "\{\\"status\\":\\"running\\",' "$(busctl --system call org.vmsup.VM.mon /org/vmsup/VM org.vmsup.Monitor1 Execute s '{ "execute" : "query-status", "arguments" : { } }')"
check_eq "arguments are passed" '"none-machine"' "$(reply_of qmp root '{"execute":"qom-get","arguments":{"path":"/machine","property":"type"}}')"
check_match "VM.Monitor: query-status (tier VM.Monitor)" '"status":"running"' "$(reply_of qmp $U_MON '{"execute":"query-status"}')"
check_match "VM.Monitor: query-version" '"qemu":\{"micro":[0-9]+' "$(reply_of qmp $U_MON '{"execute":"query-version"}')"
check_match "VM.Monitor: query-chardev" '"label":"vmsup-qmp"' "$(reply_of qmp $U_MON '{"execute":"query-chardev"}')"
check_eq "VM.Monitor: query-name" '{"name":"mon"}' "$(reply_of qmp $U_MON '{"execute":"query-name"}')"
for c in stop cont system_reset system_powerdown qom-list; do
        check_fails "VM.Monitor: Execute $c refused, names Sys.Modify" "$DENIED: Command '$c' requires the Sys.Modify privilege" qmp $U_MON "{\"execute\":\"$c\"}"
done
check "refused Execute left QEMU running" intact
check_match "Sys.Modify: Execute qom-list" '"name":"type"' "$(reply_of qmp $U_MOD '{"execute":"qom-list","arguments":{"path":"/machine"}}')"
check_eq "Sys.Modify: Execute stop" '{}' "$(reply_of qmp $U_MOD '{"execute":"stop"}')"
check "State paused after Execute stop" wait_state mon paused 5
check_eq "Sys.Modify: Execute cont" '{}' "$(reply_of qmp $U_MOD '{"execute":"cont"}')"
check "State running after Execute cont" wait_state mon running 5
check_eq "Sys.Modify: Execute system_reset" '{}' "$(reply_of qmp $U_MOD '{"execute":"system_reset"}')"
check "subscriber saw RESET" wait_for_line "$T/ev" '^Event RESET'
for c in '{"execute":"chardev-add","arguments":{"id":"x","backend":{"type":"file","data":{"out":"'"$T"'/y"}}}}' \
         '{"execute":"migrate","arguments":{"uri":"exec:touch '"$T"'/migrated"}}' \
         '{"execute":"dump-guest-memory","arguments":{"paging":false,"protocol":"file:'"$T"'/x"}}' \
         '{"execute":"chardev-remove","arguments":{"id":"rootadded"}}' \
         '{"execute":"inject-nmi"}' '{"execute":"query-fdsets"}' '{"execute":"query-cpu-definitions"}' \
         '{"execute":"device-list-properties","arguments":{"typename":"pci-bridge"}}' \
         '{"execute":"qom-set","arguments":{"path":"/machine","property":"x","value":1}}' \
         '{"execute":"no-such-command"}' '{"execute":"Query-Status"}'; do
        name=$(jq -r .execute <<<"$c")
        check_fails "Sys.Modify: Execute $name is root-only" "$DENIED: Command '$name' is root-only" qmp $U_MOD "$c"
done
check "root-only Execute refusals left QEMU untouched" intact
check_match "rootadded survived the refused chardev-remove" '"label":"rootadded"' "$(reply_of qmp root '{"execute":"query-chardev"}')"
for c in quit getfd closefd qmp_capabilities add-fd remove-fd; do
        check_fails "root: Execute $c is reserved for the supervisor" "$DENIED: Command '$c' is reserved for the supervisor" qmp root "{\"execute\":\"$c\"}"
done
check_fails "Sys.Modify: Execute quit is reserved too" "$RESERVED" qmp $U_MOD '{"execute":"quit"}'
check_fails "root: \\u escapes spell quit too" "$DENIED: Command 'quit' is reserved" qmp root '{"execute":"\u0071ui\u0074"}'
check_fails "root: getfd with arguments" "$RESERVED" qmp root '{"execute":"getfd","arguments":{"fdname":"x"}}'
check "reserved commands left QEMU running" intact
malformed=('[]' '{}' '{"execute":1}' '{"execute":"query-status","arguments":[]}' '{"execute":"query-status","arguments":null}'
           '{"execute":"query-status","id":1}' '{"execute":"query-status","control":{}}' '{"exec-oob":"query-status"}'
           '{"execute":"query-status","execute":"quit"}' '{"execute":"query-status"} {"execute":"quit"}'
           '{"execute":""}' '{"execute":"query status"}' '{"execute":"query-status\u0000"}' '"query-status"' 'not json' '')
for u in root $U_MOD $U_NONE; do
        for c in "${malformed[@]}"; do
                check_fails "$u: Execute $(printf '%q' "$c") is InvalidArgs" "$INVALID: " qmp $u "$c"
        done
done
check_fails "root: unknown command is QEMU's CommandNotFound" '^Error org\.vmsup\.Error\.QemuError: CommandNotFound: The command no-such-command has not been found' qmp root '{"execute":"no-such-command"}'
check_fails "root: QEMU's error as class: desc" "^Error org\\.vmsup\\.Error\\.QemuError: GenericError: Chardev 'nonexistent' not found" qmp root '{"execute":"chardev-remove","arguments":{"id":"nonexistent"}}'
name128=$(printf 'a%.0s' $(seq 128))
check_fails "root: a 128-character name goes to QEMU" "QemuError: CommandNotFound: The command $name128 has not been found" qmp root "{\"execute\":\"$name128\"}"
for u in root $U_MOD $U_NONE; do
        check_fails "$u: a 129-character name is InvalidArgs" "$INVALID: \"execute\" must be a QMP command name" qmp $u "{\"execute\":\"${name128}a\"}"
        check_fails "$u: a name QAPI cannot spell is InvalidArgs" "$INVALID: \"execute\" must be a QMP command name" qmp $u '{"execute":"query-status!"}'
done
check_fails "root: bad arguments are QEMU's GenericError" 'QemuError: GenericError: .*' qmp root '{"execute":"query-status","arguments":{"x":1}}'

# --- human-monitor-command through Execute is judged by the HMP table
hmc() { printf '{"execute":"human-monitor-command","arguments":{"command-line":"%s"}}' "$1"; }
check_match "VM.Monitor: human-monitor-command info status" '^"VM status: running\\r\\n"$' "$(reply_of qmp $U_MON "$(hmc 'info status')")"
check_fails "VM.Monitor: human-monitor-command migrate is root-only" "$DENIED: Command 'migrate' is root-only" qmp $U_MON "$(hmc "migrate exec:touch $W/migrated")"
check_fails "VM.Monitor: human-monitor-command stop names Sys.Modify" "$NEEDS_SYS" qmp $U_MON "$(hmc stop)"
check_fails "Sys.Modify: human-monitor-command q is root-only" "$ROOT_ONLY" qmp $U_MOD "$(hmc q)"
check_fails "Sys.Modify: human-monitor-command \\t-escaped q is root-only" "$ROOT_ONLY" qmp $U_MOD "$(hmc '\tq')"
check_fails "Sys.Modify: human-monitor-command \\n-escaped quit is InvalidArgs" "$CONTROL" qmp $U_MOD "$(hmc '\nquit')"
check_fails "Sys.Modify: human-monitor-command \\u escapes too" "$CONTROL" qmp $U_MOD "$(hmc '\u000bq')"
check_fails "Sys.Modify: human-monitor-command non-ASCII" "$CONTROL" qmp $U_MOD "$(hmc 'info status \u00e9')"
check_fails "Sys.Modify: human-monitor-command with \\u0000" "$INVALID: The command is not valid JSON" qmp $U_MOD "$(hmc 'info status\u0000quit')"
check_fails "no VM.Monitor: human-monitor-command names VM.Monitor" "$NEEDS_MONITOR" qmp $U_SYS "$(hmc 'info status')"
check_fails "human-monitor-command without command-line" "$INVALID: human-monitor-command takes" qmp $U_MON '{"execute":"human-monitor-command","arguments":{}}'
check_fails "human-monitor-command without arguments" "$INVALID: human-monitor-command takes" qmp $U_MON '{"execute":"human-monitor-command"}'
check_fails "human-monitor-command with an extra argument" "$INVALID: human-monitor-command takes" qmp $U_MOD '{"execute":"human-monitor-command","arguments":{"command-line":"info status","x":1}}'
check_fails "human-monitor-command with a string cpu-index" "$INVALID: human-monitor-command takes" qmp $U_MOD '{"execute":"human-monitor-command","arguments":{"command-line":"info status","cpu-index":"0"}}'
check_fails "human-monitor-command with a duplicated command-line" "$INVALID: The command is not valid JSON" qmp $U_MOD '{"execute":"human-monitor-command","arguments":{"command-line":"info status","command-line":"quit"}}'
check_fails "no ACL: empty command-line is InvalidArgs first" "$INVALID: The command line names no command" qmp $U_NONE "$(hmc '')"
check "human-monitor-command refusals left QEMU untouched" intact
check_eq "one RESET, two STOP events in all" "1 3" "$(grep -c '^Event RESET' "$T/ev") $(grep -c '^Event STOP' "$T/ev")"

# --- NotRunning once root stopped the VM; authorization and validation still come first
check "root: Stop" vmcall mon VM1 Stop
check_eq "stopped" stopped "$(vmprop_value mon State)"
check_fails "root: HumanCommand when stopped: NotRunning" '^Error org\.vmsup\.Error\.NotRunning: The VM is not running' hmp root 'info status'
check_fails "root: Execute when stopped: NotRunning" '^Error org\.vmsup\.Error\.NotRunning' qmp root '{"execute":"query-status"}'
check_fails "VM.Monitor: info status when stopped: NotRunning" 'org\.vmsup\.Error\.NotRunning' hmp $U_MON 'info status'
check_fails "VM.Monitor: Execute when stopped: NotRunning" 'org\.vmsup\.Error\.NotRunning' qmp $U_MON '{"execute":"query-version"}'
check_fails "Sys.Modify: stop when stopped: NotRunning" 'org\.vmsup\.Error\.NotRunning' hmp $U_MOD stop
check_fails "VM.Monitor: stop when stopped: still AccessDenied" "$NEEDS_SYS" hmp $U_MON stop
check_fails "VM.Monitor: quit when stopped: still root-only" "$ROOT_ONLY" hmp $U_MON quit
check_fails "no VM.Monitor: refused when stopped too" "$NEEDS_MONITOR" hmp $U_SYS 'info status'
check_fails "root: Execute quit when stopped: still reserved" "$RESERVED" qmp root '{"execute":"quit"}'
check_fails "empty line when stopped: InvalidArgs" "$INVALID" hmp $U_NONE ''
check_fails "malformed Execute when stopped: InvalidArgs" "$INVALID" qmp root '[]'
check_eq "QEMU did not come back" "stopped 0" "$(vmprop_value mon State) $(vmprop_value mon Pid)"

# --- root may quit QEMU through HMP; the supervisor sees an orderly stop
check "root: Start" vmcall mon VM1 Start
pid=$(vmprop_value mon Pid)
check "root: HumanCommand quit" hmp root quit
check "stopped after quit" wait_state mon stopped 5
check_eq "StateReason host-qmp-quit" host-qmp-quit "$(vmprop_value mon StateReason)"
check "QEMU is gone" bash -c "! kill -0 $pid 2>/dev/null"

# --- the supervisor ends cleanly (under SANITIZE=1: no leak, no report)
vmsupd_stop mon
check_eq "SIGTERM: vmsupd exits 0" 0 "$VMSUPD_RC"
check "the supervisor's log has no sanitizer report" bash -c "! grep -E 'Sanitizer|runtime error' '$T/logs/mon.log'"

finish
