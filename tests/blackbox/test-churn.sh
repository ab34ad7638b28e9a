#!/bin/bash
# Callers coming and going against a real vmsupd:
#   - a caller with no right calling over and over on one connection costs one credentials
#     query (GetConnectionCredentials) for the connection, not one per call;
#   - the credentials cache is bounded (CREDS_KEPT_MAX callers with rights,
#     CREDS_REFUSED_KEPT_MAX without): with more callers alive, the least recently used are
#     evicted, and an evicted caller is asked about again on its next call and answered;
#   - thousands of connections opening and closing, from several uids, some with no right,
#     some calling, some not: the supervisor's memory returns to its baseline, its
#     descriptors and match rules too, and its loop answers another caller throughout.
# The bus traffic is watched with dbus-monitor (root may monitor the private bus).
source "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
CALLERS="$ROOT/tests/blackbox/callers.py"
$PY -c 'import dbus' 2>/dev/null || { echo "not ok 1 - /usr/bin/python3 with python3-dbus missing"; exit 1; }
command -v dbus-monitor > /dev/null || { echo "not ok 1 - dbus-monitor missing"; exit 1; }
for u in vmsupq-audit vmsupq-none vmsupq-other; do ensure_user "$u"; done
bus_start || exit 1
host_acl '{}'
define_vm churn "{ \"qemu\": { \"binary\": \"$QEMU\", \"machine\": \"none\", \"accel\": \"tcg\", \"memory_mib\": 32 },
  \"autostart\": true,
  \"acl\": [ { \"user\": \"vmsupq-audit\", \"privileges\": [ \"VM.Audit\" ] },
             { \"user\": \"vmsupq-other\", \"privileges\": [ \"VM.Audit\" ] } ] }"
check_here "supervisor starts" vmsupd_start churn
check "the VM runs" wait_state churn running
SUP=${VMSUPD_PID[churn]}
SUPNAME=$(busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus GetNameOwner s \
        org.vmsup.VM.churn | sed -E 's/^s "(.*)"$/\1/')
diag "supervisor $SUP is $SUPNAME on the bus"

# Every credentials query, and every match rule added or removed, by the supervisor.
MON=$T/monitor
dbus-monitor --system "type='method_call',sender='$SUPNAME',interface='org.freedesktop.DBus',member='GetConnectionCredentials'" \
        "type='method_call',sender='$SUPNAME',interface='org.freedesktop.DBus',member='AddMatch'" \
        "type='method_call',sender='$SUPNAME',interface='org.freedesktop.DBus',member='RemoveMatch'" > "$MON" 2>&1 &
monitor_up() {
        local i
        for i in $(seq 100); do
                busctl --system call org.vmsup.VM.churn /org/vmsup/VM org.vmsup.VM1 GetStatus > /dev/null 2>&1
                grep -q 'member=GetConnectionCredentials' "$MON" && return 0
                sleep 0.1
        done
        return 1
}
check "dbus-monitor sees the supervisor's credentials queries" monitor_up
# queries NAME: the supervisor's credentials queries about NAME so far.
queries() { grep -cxF "   string \"$1\"" "$MON"; }
# rules: the departure match rules the supervisor holds (added minus removed).
rules() {
        awk '/member=AddMatch/ { m = 1; next } /member=RemoveMatch/ { m = -1; next }
             m != 0 && /NameOwnerChanged.*arg0=/ { n += m } { m = 0 } END { print n + 0 }' "$MON"
}
sync_monitor() { # a root call, then wait for its query to show
        local before i
        before=$(grep -c 'member=GetConnectionCredentials' "$MON")
        busctl --system call org.vmsup.VM.churn /org/vmsup/VM org.vmsup.VM1 GetStatus > /dev/null 2>&1
        for i in $(seq 100); do
                [[ $(grep -c 'member=GetConnectionCredentials' "$MON") -gt $before ]] && return 0
                sleep 0.05
        done
        return 1
}

# --- refused calls on one connection: one query
as vmsupq-none $PY "$CALLERS" repeat churn 200 > "$T/none.out" 2>&1
check_eq "a caller with no right: 200 calls refused" "done 0 200 0" "$(tail -1 "$T/none.out")"
NONE=$(sed -n 's/^NAME //p' "$T/none.out")
sync_monitor
check_eq "its 200 refused calls cost one credentials query" 1 "$(queries "$NONE")"
as vmsupq-audit $PY "$CALLERS" repeat churn 200 > "$T/audit.out" 2>&1
check_eq "a caller with VM.Audit: 200 calls answered" "done 200 0 0" "$(tail -1 "$T/audit.out")"
AUD=$(sed -n 's/^NAME //p' "$T/audit.out")
sync_monitor
check_eq "its 200 calls cost one credentials query" 1 "$(queries "$AUD")"
departed() {
        local i
        for i in $(seq 100); do
                [[ $(rules) -le $1 ]] && return 0
                sleep 0.1
        done
        echo "$(rules) departure rules held, wanted at most $1" >&2
        return 1
}
# Root, remembered, is the one left.
check "both departed callers forgotten (their match rules removed)" departed 1

# --- more callers than the cache keeps: the oldest are evicted and still answered
# (dbus-daemon lets one uid have 256 connections: the callers with rights come from two uids)
hold() { # TAG USER N: N connections of USER alive at once, each called once
        local tag=$1 user=$2 n=$3
        mkfifo "$T/$tag.in"
        as "$user" $PY "$CALLERS" hold churn "$n" < "$T/$tag.in" > "$T/$tag.out" 2>&1 &
        HOLD[$tag]=$!
        exec {fd}> "$T/$tag.in"
        HOLDFD[$tag]=$fd
}
hold_release() { # TAG
        local fd=${HOLDFD[$1]}
        echo go >&$fd
        wait_for_line "$T/$1.out" '^again ' 60
        exec {fd}>&-
        wait "${HOLD[$1]}"
}
declare -A HOLD=() HOLDFD=()
hold_check() { # TAG WANT_DONE BOUND
        local tag=$1
        check_eq "$tag: connections alive, each called once" "$2" "$(grep '^done ' "$T/$tag.out")"
}
# Callers with VM.Audit: 150 + 150, one after the other (the first uid's are the oldest).
hold a1 vmsupq-audit 150
wait_for_line "$T/a1.out" '^done ' 120
hold a2 vmsupq-other 150
wait_for_line "$T/a2.out" '^done ' 120
check_eq "300 VM.Audit callers alive, each called once (1/2)" "done 150 0 0" "$(grep '^done ' "$T/a1.out")"
check_eq "300 VM.Audit callers alive, each called once (2/2)" "done 150 0 0" "$(grep '^done ' "$T/a2.out")"
sync_monitor
held=$(rules)
diag "$held departure rules held with 300 VM.Audit callers alive"
check "with 300 callers with rights alive, at most 256 remembered (+ root)" test "$held" -le 257
check "... and near the bound (LRU eviction, not wholesale)" test "$held" -ge 250
FIRST=$(sed -n 's/^FIRST //p' "$T/a1.out")
LAST=$(sed -n 's/^LAST //p' "$T/a2.out")
hold_release a1
hold_release a2
check_eq "the first (evicted) VM.Audit caller answered again" "again ok ok" "$(grep '^again ' "$T/a1.out")"
check_eq "the last VM.Audit caller answered again" "again ok ok" "$(grep '^again ' "$T/a2.out")"
sync_monitor
check_eq "the evicted first was asked about again" 2 "$(queries "$FIRST")"
check_eq "the last, still remembered, was not" 1 "$(queries "$LAST")"
check "all departed, forgotten" departed 1
# Callers with no right: their own bound, and they evict no caller with rights.
hold a3 vmsupq-audit 10
wait_for_line "$T/a3.out" '^done ' 120
hold n1 vmsupq-none 200
wait_for_line "$T/n1.out" '^done ' 120
check_eq "200 callers with no right alive, each refused once" "done 0 200 0" "$(grep '^done ' "$T/n1.out")"
sync_monitor
held=$(rules)
diag "$held departure rules held with 10 VM.Audit and 200 refused callers alive"
check "at most 128 refused callers remembered (+ 10 + root)" test "$held" -le $((128 + 10 + 1))
FIRST=$(sed -n 's/^FIRST //p' "$T/n1.out")
AFIRST=$(sed -n 's/^FIRST //p' "$T/a3.out")
hold_release n1
hold_release a3
check_eq "the first (evicted) refused caller refused again" \
        "again org.freedesktop.DBus.Error.AccessDenied org.freedesktop.DBus.Error.AccessDenied" "$(grep '^again ' "$T/n1.out")"
check_eq "the VM.Audit callers answered again" "again ok ok" "$(grep '^again ' "$T/a3.out")"
sync_monitor
check_eq "the evicted refused caller was asked about again" 2 "$(queries "$FIRST")"
check_eq "the refused flood evicted no caller with rights" 1 "$(queries "$AFIRST")"
check "all departed, forgotten" departed 1

# --- thousands of connections opening and closing
fds() { ls "/proc/$SUP/fd" | wc -l; }
# A warm-up round first: the baseline is the supervisor having served such callers.
as vmsupq-audit $PY "$CALLERS" churn churn 300 mixed > /dev/null 2>&1
check "warm-up: departed callers forgotten" departed 1
rss0=$(proc_kb "$SUP" VmRSS)
fd0=$(fds)
peak_reset "$SUP"
CHURNERS=()
as vmsupq-audit $PY "$CALLERS" churn churn 1000 call > "$T/c1" 2>&1 & CHURNERS+=($!)
as vmsupq-none $PY "$CALLERS" churn churn 1000 call > "$T/c2" 2>&1 & CHURNERS+=($!)
as vmsupq-other $PY "$CALLERS" churn churn 1000 mixed > "$T/c3" 2>&1 & CHURNERS+=($!)
as vmsupq-none $PY "$CALLERS" churn churn 500 idle > "$T/c4" 2>&1 & CHURNERS+=($!)
# Another caller, throughout: each of its calls must be answered.
answered=0 failed=0
while :; do
        if busctl --system --timeout=10 get-property org.vmsup.VM.churn /org/vmsup/VM org.vmsup.VM1 State > /dev/null 2>&1; then
                answered=$((answered + 1))
        else
                failed=$((failed + 1))
        fi
        alive=0
        for p in "${CHURNERS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [[ $alive == 0 ]] && break
        sleep 0.2
done
wait "${CHURNERS[@]}"
diag "another caller's State answered $answered times during the churn, $failed failed"
check "another caller answered throughout the churn" test "$answered" -gt 0 -a "$failed" -eq 0
check_eq "churn: 1000 VM.Audit callers answered" "done 1000 0 0" "$(tail -1 "$T/c1")"
check_eq "churn: 1000 callers with no right refused" "done 0 1000 0" "$(tail -1 "$T/c2")"
check_eq "churn: 500 of 1000 other VM.Audit connections called" "done 500 0 0" "$(tail -1 "$T/c3")"
check_eq "churn: 500 connections that never called" "done 0 0 0" "$(tail -1 "$T/c4")"
check "churn: every departed caller forgotten" departed 1
rss1=$(proc_kb "$SUP" VmRSS)
hwm=$(proc_kb "$SUP" VmHWM)
fd1=$(fds)
diag "supervisor VmRSS ${rss0} kB before, ${rss1} kB after 3500 connections (peak ${hwm} kB); fds ${fd0} -> ${fd1}"
slack=2048
[[ $BUILD == build-san ]] && slack=$((300 * 1024))
check "churn: memory back to its baseline (within $((slack / 1024)) MiB)" test "$rss1" -le $((rss0 + slack))
check_eq "churn: descriptors as before" "$fd0" "$fd1"
check_eq "churn: the VM still runs (QEMU's state)" 's "running"' \
        "$(busctl --system get-property org.vmsup.VM.churn /org/vmsup/VM org.vmsup.VM1 State)"
check "churn: QEMU answers through the supervisor" vmcall churn VM1 GetStatus
check "the supervisor is alive" kill -0 "$SUP"

finish
