#!/bin/bash
# Callers killed in the middle of what they started, against the tiny guest:
#   - ReadFile and WriteFile of a 56 MiB file, the client (vmsupctl) killed mid-transfer, two
#     at once (the uid's whole share): the transfers end, the guest file handles are closed
#     (the agent holds no file open afterwards), the shares come back (two transfers at once
#     work again), memory bounded, the loop answering;
#   - a console session whose client is killed: the console is free again for a new session
#     without force.
# (Callers killed with plain calls pending: test-faults.)
source "$(dirname "$0")/lib.sh"

[[ -r $GUEST_DIR/vmlinuz ]] || { echo "not ok 1 - tiny guest missing: run tests/guest/build-guest.sh"; exit 1; }
PY=/usr/bin/python3
CONSOLE_PY="$ROOT/tests/blackbox/console.py"
$PY -c 'import dbus' 2>/dev/null || { echo "not ok 1 - /usr/bin/python3 with python3-dbus missing"; exit 1; }
for u in vmsupk-rw vmsupk-other; do ensure_user "$u"; done
bus_start || exit 1
host_acl '{}'
U=$T/u
mkdir -m 1777 "$U"
MiB=1048576
SIZE=56
define_vm dy "$(guest_kernel_def '"autostart": true, "shutdown_timeout_sec": 60, "agent_file_paths": [ "/tmp" ],
  "acl": [ { "user": "vmsupk-rw", "privileges": [ "VM.GuestAgent.FileRead", "VM.GuestAgent.FileWrite", "VM.Console" ] },
           { "user": "vmsupk-other", "privileges": [ "VM.Audit" ] } ]' "console=ttyS0 quiet" 512)"

cmd() { agent_cmd root dy "$1"; }
sha_of() { sha256sum "$1" | cut -d' ' -f1; }
# guest_sh SCRIPT: SCRIPT with the guest's busybox sh as root (guest-exec); its output.
guest_sh() {
        local s=$1 pid st i
        s=${s//\\/\\\\}
        s=${s//\"/\\\"}
        pid=$(cmd "{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"/bin/busybox\",\"arg\":[\"sh\",\"-c\",\"$s\"],\"capture-output\":true}}" |
                sed -n 's/^{"pid":\([0-9]*\)}$/\1/p')
        [[ -n $pid ]] || return 125
        for i in $(seq 1800); do
                st=$(cmd "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":$pid}}") || return 125
                if [[ $st == *'"exited":true'* ]]; then
                        printf '%s' "$st" | sed -n 's/.*"out-data":"\([^"]*\)".*/\1/p' | base64 -d
                        return 0
                fi
                sleep 0.1
        done
        return 124
}
# The guest files qemu-ga holds open (guest-file-open without its guest-file-close).
guest_agent_files() { guest_sh 'ls -l /proc/$(pidof qemu-ga)/fd | grep -c /tmp/'; }
no_guest_files() {
        local i n
        for i in $(seq 60); do
                n=$(guest_agent_files)
                [[ $n == 0 ]] && return 0
                sleep 0.5
        done
        echo "qemu-ga holds $n guest files open" >&2
        return 1
}
# size_at_least FILE BYTES
size_at_least() {
        local i
        for i in $(seq 1200); do
                [[ $(stat -c %s "$1" 2>/dev/null || echo 0) -ge $2 ]] && return 0
                sleep 0.05
        done
        return 1
}
# read_at_least PID FILE BYTES: PID's offset in FILE (its open descriptor) reached BYTES.
read_at_least() {
        local i fd pos
        for i in $(seq 1200); do
                for fd in /proc/"$1"/fd/*; do
                        [[ $(readlink "$fd" 2>/dev/null) == "$2" ]] || continue
                        pos=$(awk '$1 == "pos:" { print $2 }' "/proc/$1/fdinfo/${fd##*/}" 2>/dev/null)
                        [[ ${pos:-0} -ge $3 ]] && return 0
                done
                sleep 0.05
        done
        return 1
}
# The process a background "as USER CMD" runs (the subshell's child, or itself once exec'd).
leaf() {
        local i c
        for i in $(seq 100); do
                c=$(pgrep -P "$1" | head -1)
                [[ -n $c ]] && { echo "$c"; return 0; }
                [[ $(readlink "/proc/$1/exe") != */bash ]] && { echo "$1"; return 0; }
                sleep 0.05
        done
        echo "$1"
}
# kill_as PID...: SIGKILL to what background "as" jobs run, and the jobs.
kill_as() {
        local p
        for p in "$@"; do
                kill -KILL "$(leaf "$p")" "$p" 2>/dev/null
        done
        wait "$@" 2>/dev/null
}
# healthy CASE: the supervisor runs, another caller's State answers running, same QEMU.
healthy() {
        check "$1: the supervisor is alive" kill -0 "$SUP"
        check_eq "$1: another caller's State answers" 's "running"' \
                "$(as vmsupk-other busctl --system get-property org.vmsup.VM.dy /org/vmsup/VM org.vmsup.VM1 State 2>&1)"
        check_eq "$1: the same QEMU" "$QPID" "$(vmprop_value dy Pid)"
        check "$1: that QEMU runs" kill -0 "$QPID"
}

check_here "supervisor starts" vmsupd_start dy
check "the VM runs" wait_state dy running
check "the agent connects" wait_prop dy AgentConnected true 180
SUP=${VMSUPD_PID[dy]}
QPID=$(vmprop_value dy Pid)
SHA=$(guest_sh "/bin/busybox dd if=/dev/urandom of=/tmp/big bs=1M count=$SIZE 2>/dev/null && sha256sum /tmp/big" | cut -d' ' -f1)
check_match "a $SIZE MiB file in the guest" '^[0-9a-f]{64}$' "$SHA"
check_eq "no guest file open to begin with" 0 "$(guest_agent_files)"
peak_reset "$SUP"

# --- ReadFile: two at once (the uid's share), both clients killed mid-transfer
RPIDS=()
for i in 1 2; do
        as vmsupk-rw "$VMSUPCTL" --bus "$BUS" read-file dy /tmp/big "$U/part$i" > "$U/part$i.out" 2>&1 &
        RPIDS+=($!)
done
check "ReadFile: both transfers under way (1 MiB arrived each)" \
        bash -c "$(declare -f size_at_least); size_at_least '$U/part1' $MiB && size_at_least '$U/part2' $MiB"
kill_as "${RPIDS[@]}"
diag "ReadFile: killed after $(stat -c %s "$U/part1") and $(stat -c %s "$U/part2") bytes"
check "ReadFile: the guest file handles are closed" no_guest_files
healthy "ReadFile killed"
ok1=$(as vmsupk-rw "$VMSUPCTL" --bus "$BUS" read-file dy /tmp/big "$U/again1" 2>&1 &
      as vmsupk-rw "$VMSUPCTL" --bus "$BUS" read-file dy /tmp/big "$U/again2" 2>&1; wait)
check_eq "ReadFile: two transfers at once work again (the shares came back)" "$((SIZE * MiB)) $((SIZE * MiB))" \
        "$(echo $ok1 | tr '\n' ' ' | sed 's/ $//')"
check_eq "ReadFile: the data is whole" "$SHA $SHA" "$(sha_of "$U/again1") $(sha_of "$U/again2")"
check "ReadFile: no guest file left open" no_guest_files

# --- WriteFile: two at once, both clients killed mid-transfer
WPIDS=()
for i in 1 2; do
        as vmsupk-rw "$VMSUPCTL" --bus "$BUS" write-file dy "$U/again1" "/tmp/w$i" > "$U/w$i.out" 2>&1 &
        WPIDS+=($!)
done
check "WriteFile: both transfers under way (1 MiB sent each)" \
        bash -c "$(declare -f read_at_least); read_at_least $(leaf "${WPIDS[0]}") '$U/again1' $MiB && read_at_least $(leaf "${WPIDS[1]}") '$U/again1' $MiB"
kill_as "${WPIDS[@]}"
check "WriteFile: the guest file handles are closed" no_guest_files
diag "WriteFile: the guest files hold $(guest_sh 'wc -c /tmp/w1 /tmp/w2 | head -2 | tr "\n" " "') (what arrived before the caller died)"
healthy "WriteFile killed"
# Both shares back: two transfers at once (4 MiB each: the agent runs one command at a time,
# and two 8 MiB chunk writers queue behind each other under TCG); then a whole file.
head -c $((4 * MiB)) "$U/again1" > "$U/four"
ok2=$(as vmsupk-rw "$VMSUPCTL" --bus "$BUS" write-file dy "$U/four" /tmp/w1 2>&1 &
      as vmsupk-rw "$VMSUPCTL" --bus "$BUS" write-file dy "$U/four" /tmp/w2 2>&1; wait)
check_eq "WriteFile: two transfers at once work again (the shares came back)" "$((4 * MiB)) $((4 * MiB))" \
        "$(echo $ok2 | tr '\n' ' ' | sed 's/ $//')"
check_eq "WriteFile: the whole file again" $((SIZE * MiB)) \
        "$(as vmsupk-rw "$VMSUPCTL" --bus "$BUS" write-file dy "$U/again1" /tmp/w1 2>&1)"
check_eq "WriteFile: the guest has the whole file" "$SHA" "$(guest_sh 'sha256sum /tmp/w1' | cut -d' ' -f1)"
check "WriteFile: no guest file left open" no_guest_files
hwm=$(proc_kb "$SUP" VmHWM)
diag "supervisor VmHWM ${hwm} kB through the transfers"
limit=$((128 * 1024))
[[ $BUILD == build-san ]] && limit=$((600 * 1024))
check "transfers: the supervisor's peak RSS stayed below $((limit / 1024)) MiB" test "$hwm" -lt "$limit"

# --- a console session whose client is killed
as vmsupk-rw $PY "$CONSOLE_PY" hold dy > "$T/hold" 2>&1 &
HOLD=$!
check "console: a session is open" wait_for_line "$T/hold" '^OPEN$' 60
check_match "console: while it is open, another is refused without force" '^error ' \
        "$(as vmsupk-rw $PY "$CONSOLE_PY" open dy 2>&1)"
kill_as "$HOLD"
free_again() {
        local i out
        for i in $(seq 100); do
                out=$(as vmsupk-rw $PY "$CONSOLE_PY" open dy 2>&1)
                [[ $out == ok ]] && return 0
                sleep 0.1
        done
        echo "$out" >&2
        return 1
}
check "console: free again for a new session, without force" free_again
check_eq "console: a new session talks to the guest" found \
        "$(as vmsupk-rw $PY "$CONSOLE_PY" run dy 'echo $((6*7))' '\n42\r?\n' 2>/dev/null)"
healthy "console client killed"
check "no sanitizer report" bash -c "! cat '$T'/logs/*.log | grep -E 'Sanitizer|runtime error'"

finish
