#!/bin/bash
# Fair shares: one caller flooding the VM from many connections never takes the whole
# VM's capacity. With QEMU stopped (SIGSTOP), QMP calls stay in flight: a user holds at
# most 16 of them, a connection 5, the rest are Busy at once, and a second user's calls
# still go through; callers with no rights at all flooding are refused one by one while
# others are answered. QEMU with machine "none": no guest needed.
source "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
FLOOD="$ROOT/tests/blackbox/flood.py"
$PY -c 'import dbus, gi' 2>/dev/null || { echo "not ok 1 - /usr/bin/python3 with python3-dbus and python3-gi missing"; exit 1; }
for u in vmsupf-flood vmsupf-other vmsupf-none; do ensure_user "$u"; done
bus_start || exit 1
host_acl '{}'
BUSY=org.vmsup.Error.Busy

define_vm fair "{ \"qemu\": { \"binary\": \"$QEMU\", \"machine\": \"none\", \"accel\": \"tcg\", \"memory_mib\": 32 },
  \"autostart\": true, \"shutdown_timeout_sec\": 2,
  \"acl\": [ { \"user\": \"vmsupf-flood\", \"privileges\": [ \"VM.Audit\", \"VM.Monitor\" ] },
             { \"user\": \"vmsupf-other\", \"privileges\": [ \"VM.Audit\", \"VM.Monitor\" ] } ] }"
check_here "supervisor starts" vmsupd_start fair
check "the VM runs" wait_state fair running
SUP=${VMSUPD_PID[fair]}
QPID=$(vmprop_value fair Pid)
ATTACKERS=()
trap 'kill -CONT "$QPID" 2>/dev/null; for p in "${ATTACKERS[@]}"; do pkill -P "$p" 2>/dev/null; kill "$p" 2>/dev/null; done; cleanup' EXIT
# wait_count FILE REGEX N [SECONDS]: until FILE has at least N lines matching REGEX.
wait_count() {
        local i
        for i in $(seq $((${4:-30} * 20))); do
                [[ $(grep -Ec -- "$2" "$1" 2>/dev/null) -ge $3 ]] && return 0
                sleep 0.05
        done
        echo "$(grep -Ec -- "$2" "$1" 2>/dev/null) lines of $2, wanted $3" >&2
        return 1
}

# --- one connection: five calls in flight, the others Busy at once
kill -STOP "$QPID"
as vmsupf-flood $PY "$FLOOD" fair 1 10 VM1 GetStatus > "$T/one" 2>&1 &
ATTACKERS+=($!)
check "one connection, 10 calls with QEMU stopped: 5 Busy at once" wait_count "$T/one" "^$BUSY\$" 5
kill -CONT "$QPID"
check "the 5 in flight answered once QEMU runs" wait_count "$T/one" '^done 5 5 0$' 1

# --- one user, 40 connections, 30 calls each (1200: more than QMP's 1024 requests in
# flight), QEMU stopped: 16 in flight, the rest Busy at once; another user goes through
kill -STOP "$QPID"
as vmsupf-flood $PY "$FLOOD" fair 40 30 VM1 GetStatus > "$T/flood" 2>&1 &
ATTACKERS+=($!)
# 176 = 1200 - 1024: by then, however the supervisor shares, QEMU's queue would be full
# if one user could fill it.
check "flood: at least 176 Busy at once" wait_count "$T/flood" "^$BUSY\$" 176
as vmsupf-other $PY "$FLOOD" fair 1 1 VM1 GetStatus > "$T/other.status" 2>&1 &
ATTACKERS+=($!)
as vmsupf-other $PY "$FLOOD" fair 1 1 Monitor1 HumanCommand s 'info status' > "$T/other.hmp" 2>&1 &
ATTACKERS+=($!)
check "other user: GetStatus sent" wait_for_line "$T/other.status" '^SENT'
check "other user: HumanCommand sent" wait_for_line "$T/other.hmp" '^SENT'
check "flood: 1184 of 1200 Busy at once" wait_count "$T/flood" "^$BUSY\$" 1184
as vmsupf-flood $PY "$FLOOD" fair 1 1 Monitor1 HumanCommand s 'info status' > "$T/flood.more" 2>&1
check_eq "flood: the same user's next call is Busy too" "$BUSY" "$(sed -n 2p "$T/flood.more")"
check_eq "root's State read answers meanwhile" 's "running"' \
        "$(busctl --system get-property org.vmsup.VM.fair /org/vmsup/VM org.vmsup.VM1 State)"
kill -CONT "$QPID"
check "flood: 16 answered once QEMU runs" wait_count "$T/flood" '^done 16 1184 0$' 1 60
check "other user: GetStatus answered, not Busy" wait_count "$T/other.status" '^done 1 0 0$' 1 60
check "other user: HumanCommand answered, not Busy" wait_count "$T/other.hmp" '^done 1 0 0$' 1 60

# --- a user with no rights at all floods (QEMU running): every call refused, others answered
as vmsupf-none $PY "$FLOOD" fair 40 30 VM1 GetStatus > "$T/none" 2>&1 &
ATTACKERS+=($!)
check "no rights: flood sent" wait_for_line "$T/none" '^SENT' 60
for i in 1 2 3; do
        check_eq "no rights flooding: other user's HumanCommand $i answered" 0 \
                "$(as vmsupf-other busctl --system call org.vmsup.VM.fair /org/vmsup/VM org.vmsup.Monitor1 HumanCommand s 'info status' > /dev/null 2>&1; echo $?)"
done
check "no rights: every call answered" wait_for_line "$T/none" '^done ' 120
check "no rights: refused (AccessDenied, or Busy while held for credentials), none ok" \
        bash -c "grep -q '^done 0 ' '$T/none' && ! grep -Ev '^(SENT|done .*|org.freedesktop.DBus.Error.AccessDenied|$BUSY)$' '$T/none'"
diag "no-rights flood: $(tail -1 "$T/none")"
check "the supervisor is alive" kill -0 "$SUP"

finish
