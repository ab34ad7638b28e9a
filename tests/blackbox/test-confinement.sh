#!/bin/bash
# Confinement as the kernel reports it (/proc/PID/status and /proc/PID/fd) for the three
# processes: vmsupd (seccomp filter, CAP_KILL at most), its launcher (no filter, only what
# run_as needs, not dumpable) and QEMU (run_as, by default the system user vmsup-qemu, no
# capabilities, its own -sandbox, exactly the descriptors passed). Then what the confinement
# is for: QEMU as run_as cannot read a root-only file, spawn=deny stops a helper program,
# QEMU never carries the supervisor's filter, nothing of the same uid writes the launcher's
# memory, and the launcher lives and dies with the supervisor.
source "$(dirname "$0")/lib.sh"

ensure_user vmsupt-qemu
ensure_group vmsupg-qextra
Q_UID=$(uid_of vmsupt-qemu)
D_UID=$(uid_of vmsup-qemu)
D_GID=$(gid_of vmsup-qemu)
Q_GID=$(gid_of vmsupt-qemu)
X_GID=$(getent group vmsupg-qextra | cut -d: -f3)
bus_start || exit 1
host_acl '{ "acl": [] }'

# status PID KEY: the value of KEY in /proc/PID/status, white space squeezed.
status() {
        awk -v k="$2:" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }' "/proc/$1/status" 2>/dev/null
}
# fds PID: "FD TARGET" per descriptor.
fds() {
        local f
        for f in /proc/"$1"/fd/*; do
                printf '%s %s\n' "${f##*/}" "$(readlink "$f")"
        done | sort -n
}
launcher_of() {
        pgrep -P "$1" -x vmsupd-launcher
}

# none_def [RUN_AS] [SANDBOX] [EXTRA_ARGS_JSON]
none_def() {
        local run_as=${1:-} sandbox=${2:-true} extra=${3:-[]}
        cat <<DEF
{ "qemu": { "binary": "$QEMU", "machine": "none", "accel": "tcg", "memory_mib": 32, "extra_args": $extra },
  ${run_as:+\"run_as\": $run_as,} "sandbox": $sandbox, "autostart": false, "shutdown_timeout_sec": 2 }
DEF
}
RUN_AS="{ \"user\": \"vmsupt-qemu\", \"groups\": [ \"vmsupg-qextra\" ] }"
ROOT_AS='{ "user": "root" }' 
# Files named in extra_args live outside $T: its name contains "vmsup-", which extra_args may
# not (reserved ids).
F=$(mktemp -d /tmp/confinement.XXXXXX)
chmod 0755 "$F"
trap 'rm -rf "$F"; cleanup' EXIT

# --- the supervisor, with run_as
define_vm conf "$(none_def "$RUN_AS")"
check_here "vmsupd with run_as starts" vmsupd_start conf
sup=${VMSUPD_PID[conf]}
check_eq "vmsupd: Seccomp 2 (filter)" 2 "$(status "$sup" Seccomp)"
check_eq "vmsupd: NoNewPrivs 1" 1 "$(status "$sup" NoNewPrivs)"
check_eq "vmsupd: CapEff is CAP_KILL only" 0000000000000020 "$(status "$sup" CapEff)"
check_eq "vmsupd: CapPrm is CAP_KILL only" 0000000000000020 "$(status "$sup" CapPrm)"
check_eq "vmsupd: CapBnd is CAP_KILL only" 0000000000000020 "$(status "$sup" CapBnd)"
check_eq "vmsupd: CapInh and CapAmb empty" "0000000000000000 0000000000000000" \
        "$(status "$sup" CapInh) $(status "$sup" CapAmb)"
diag "vmsupd: Seccomp_filters $(status "$sup" Seccomp_filters), Uid $(status "$sup" Uid)"
odd=$(fds "$sup" | awk '$1 > 2 && $2 ~ /^\// && $2 != "/dev/null"')
check_eq "vmsupd: no file or directory open beyond 0-2 (definitions are closed)" "" "$odd"

lau=$(launcher_of "$sup")
check_match "the launcher is vmsupd's child" '^[0-9]+$' "$lau"
check_eq "launcher: Seccomp 0 (QEMU must not inherit a filter)" 0 "$(status "$lau" Seccomp)"
check_eq "launcher: NoNewPrivs 1" 1 "$(status "$lau" NoNewPrivs)"
check_eq "launcher: CapEff is CAP_KILL|CAP_SETGID|CAP_SETUID|CAP_SETPCAP" 00000000000001e0 "$(status "$lau" CapEff)"
check_eq "launcher: CapBnd is CAP_KILL|CAP_SETGID|CAP_SETUID|CAP_SETPCAP" 00000000000001e0 "$(status "$lau" CapBnd)"
check_eq "launcher: descriptors 0-2 and its socket" "0 1 2 3" "$(fds "$lau" | cut -d' ' -f1 | xargs)"
check_match "launcher: fd 3 is a socket" '^socket:' "$(fds "$lau" | awk '$1 == 3 { print $2 }')"

# --- QEMU as run_as
check "Start (run_as)" vmcall conf VM1 Start
qpid=$(vmprop_value conf Pid)
check_eq "QEMU's parent is the launcher" "$lau" "$(status "$qpid" PPid)"
check_eq "QEMU: Uid is run_as" "$Q_UID $Q_UID $Q_UID $Q_UID" "$(status "$qpid" Uid | xargs)"
check_eq "QEMU: Gid is run_as's group" "$Q_GID $Q_GID $Q_GID $Q_GID" "$(status "$qpid" Gid | xargs)"
check_eq "QEMU: Groups are exactly the configured ones" "$X_GID" "$(status "$qpid" Groups | xargs)"
for set in CapEff CapPrm CapBnd CapInh CapAmb; do
        check_eq "QEMU: $set empty" 0000000000000000 "$(status "$qpid" $set)"
done
check_eq "QEMU: NoNewPrivs 1" 1 "$(status "$qpid" NoNewPrivs)"
check_eq "QEMU: Seccomp 2 (its own -sandbox)" 2 "$(status "$qpid" Seccomp)"
check_eq "QEMU: one filter, its own (not the supervisor's too)" 1 "$(status "$qpid" Seccomp_filters)"
qfds=$(fds "$qpid")
check_eq "QEMU: fd 0 is /dev/null" /dev/null "$(awk '$1 == 0 { print $2 }' <<< "$qfds")"
pipe=$(awk '$1 == 1 { print $2 }' <<< "$qfds")
check_match "QEMU: fd 1 is the stderr pipe" '^pipe:' "$pipe"
check_eq "QEMU: fd 2 is the same pipe" "$pipe" "$(awk '$1 == 2 { print $2 }' <<< "$qfds")"
check_match "QEMU: fd 3 is the QMP socket" '^socket:' "$(awk '$1 == 3 { print $2 }' <<< "$qfds")"
# Whatever else QEMU holds, it opened itself: nothing it shares with the supervisor or the
# launcher but the stderr pipe.
shared=$(comm -12 <(awk '{ print $2 }' <<< "$qfds" | grep -E '^(socket|pipe):' | sort -u) \
                  <( (fds "$sup"; fds "$lau") | awk '{ print $2 }' | grep -E '^(socket|pipe):' | sort -u) | xargs)
check_eq "QEMU shares no descriptor with vmsupd or the launcher but its stderr pipe" "$pipe" "$shared"
diag "QEMU descriptors: $(xargs <<< "$qfds")"

# Start after Stop: the same launcher starts the next QEMU, confined the same way.
check "Stop" vmcall conf VM1 Stop
check "Start after Stop" vmcall conf VM1 Start
qpid2=$(vmprop_value conf Pid)
check_match "a new QEMU" '^[0-9]+$' "$qpid2"
check_eq "the same launcher started it" "$lau" "$(status "$qpid2" PPid)"
check_eq "the new QEMU: Uid run_as, no capabilities, one filter" "$Q_UID 0000000000000000 1" \
        "$(status "$qpid2" Uid | awk '{ print $1 }') $(status "$qpid2" CapBnd) $(status "$qpid2" Seccomp_filters)"
check "Stop again" vmcall conf VM1 Stop

# --- files QEMU opens itself must be readable by run_as
truncate -s 1M "$F/root-only.img"
chmod 0600 "$F/root-only.img"
drive="[ \"-drive\", \"file=$F/root-only.img,format=raw,if=none,id=d0\" ]"
define_vm rootfile "$(none_def "$RUN_AS" true "$drive")"
check_here "supervisor for run_as + a root-only drive" vmsupd_start rootfile
check_fails "Start fails with QEMU's permission error" \
        "start-failed: .*root-only\.img.*Permission denied" vmcall rootfile VM1 Start
check_match "StateReason names QEMU's permission error" \
        "^start-failed: .*root-only\.img.*Permission denied" "$(vmprop_value rootfile StateReason)"
check_eq "stopped after the failed start" stopped "$(vmprop_value rootfile State)"
define_vm rootdef "$(none_def "" true "$drive")"
check_here "supervisor for the same drive without run_as" vmsupd_start rootdef
check_fails "without run_as QEMU runs as vmsup-qemu: it cannot open root's file either" \
        "start-failed: .*root-only\.img.*Permission denied" vmcall rootdef VM1 Start
define_vm rootfile2 "$(none_def "$ROOT_AS" true "$drive")"
check_here "supervisor for the same drive with run_as root" vmsupd_start rootfile2
check "with run_as root QEMU (uid 0, no capabilities) opens its own root's file" vmcall rootfile2 VM1 Start
check "Stop" vmcall rootfile2 VM1 Stop

# --- spawn=deny: a bridge netdev would run a helper program
mkdir -m 1777 "$F/helper"
cat > "$F/helper/helper" <<SH
#!/bin/sh
touch "$F/helper/ran"
exit 1
SH
chmod 0755 "$F/helper/helper"
bridge="[ \"-netdev\", \"bridge,id=n0,br=vmsupbr0,helper=$F/helper/helper\" ]"
define_vm spawn "$(none_def "$RUN_AS" true "$bridge")"
check_here "supervisor for a VM with a bridge netdev" vmsupd_start spawn
check_fails "Start fails: QEMU's sandbox refuses to fork the helper" \
        "start-failed: .*killed-by-signal-31" vmcall spawn VM1 Start
check "no helper process ran" test ! -e "$F/helper/ran"
define_vm spawn2 "$(none_def "$RUN_AS" false "$bridge")"
check_here "the same VM with sandbox false" vmsupd_start spawn2
check_fails "Start fails there too (the helper is a fake)" "start-failed: .*bridge helper failed" \
        vmcall spawn2 VM1 Start
check "without -sandbox the helper did run (so the check above could see it)" test -e "$F/helper/ran"

# --- without run_as: QEMU is the system user vmsup-qemu, with its own group only
define_vm dflt "$(none_def)"
check_here "supervisor without run_as" vmsupd_start dflt
sup=${VMSUPD_PID[dflt]}
lau=$(launcher_of "$sup")
check_eq "vmsupd without run_as: CAP_KILL only (QEMU is another uid)" "0000000000000020 0000000000000020 2" \
        "$(status "$sup" CapEff) $(status "$sup" CapBnd) $(status "$sup" Seccomp)"
check_eq "launcher without run_as: CAP_KILL|CAP_SETGID|CAP_SETUID|CAP_SETPCAP" "00000000000001e0 00000000000001e0" \
        "$(status "$lau" CapEff) $(status "$lau" CapBnd)"
check "Start" vmcall dflt VM1 Start
qpid=$(vmprop_value dflt Pid)
check_eq "QEMU without run_as: Uid is vmsup-qemu" "$D_UID $D_UID $D_UID $D_UID" "$(status "$qpid" Uid | xargs)"
check_eq "QEMU without run_as: Gid is vmsup-qemu's group, no other group" "$D_GID $D_GID $D_GID $D_GID|" \
        "$(status "$qpid" Gid | xargs)|$(status "$qpid" Groups | xargs)"
check_eq "QEMU without run_as: no capabilities, NoNewPrivs" "0000000000000000 0000000000000000 1" \
        "$(status "$qpid" CapEff) $(status "$qpid" CapBnd) $(status "$qpid" NoNewPrivs)"
# Its parent-death signal survives the change of ids, and the launcher may send it.
kill -KILL "$lau"
gone=no
for i in $(seq 100); do kill -0 "$qpid" 2>/dev/null || { gone=yes; break; }; sleep 0.05; done
check_eq "QEMU as vmsup-qemu dies with the launcher too" yes "$gone"
{ wait "$sup"; } 2>/dev/null
unset "VMSUPD_PID[dflt]"

# --- run_as root, sandbox false: QEMU carries no filter at all, so none is inherited from the supervisor
define_vm nosb "$(none_def "$ROOT_AS" false)"
check_here "supervisor with run_as root, sandbox false" vmsupd_start nosb
sup=${VMSUPD_PID[nosb]}
lau=$(launcher_of "$sup")
check_eq "vmsupd with run_as root: no capabilities at all" "0000000000000000 0000000000000000 2" \
        "$(status "$sup" CapEff) $(status "$sup" CapBnd) $(status "$sup" Seccomp)"
check_eq "launcher with run_as root: no capabilities" "0000000000000000 0000000000000000" \
        "$(status "$lau" CapEff) $(status "$lau" CapBnd)"
check "Start" vmcall nosb VM1 Start
qpid=$(vmprop_value nosb Pid)
check_eq "QEMU without -sandbox: Seccomp 0, no filters" "0 0" \
        "$(status "$qpid" Seccomp) $(status "$qpid" Seccomp_filters)"
check_eq "QEMU with run_as root: uid 0 but no capabilities, NoNewPrivs" "0 0000000000000000 0000000000000000 1" \
        "$(status "$qpid" Uid | awk '{ print $1 }') $(status "$qpid" CapEff) $(status "$qpid" CapBnd) $(status "$qpid" NoNewPrivs)"

# --- the launcher is not dumpable: a process of its uid (root here, the supervisor's) without
# CAP_SYS_PTRACE cannot open its memory, while it can open that of a dumpable process alike.
NOCAPS=(setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all --)
nocaps() { "${NOCAPS[@]}" "$@"; }
"${NOCAPS[@]}" sleep 60 & # the pid is setpriv's (with root's capabilities), then sleep's
peer=$!
for i in $(seq 200); do [[ $(cat /proc/"$peer"/comm 2>/dev/null) == sleep ]] && break; sleep 0.05; done
check "control: a root process without capabilities opens another one's memory" \
        nocaps bash -c "exec 3< /proc/$peer/mem"
check_fails "the launcher's memory stays closed to it" "Permission denied" \
        nocaps bash -c "exec 3< /proc/$lau/mem"
kill "$peer" 2>/dev/null; wait "$peer" 2>/dev/null

# --- the launcher lives and dies with the supervisor
kill -KILL "$lau"
gone=no
for i in $(seq 100); do kill -0 "$qpid" 2>/dev/null || { gone=yes; break; }; sleep 0.05; done
check_eq "killing the launcher kills QEMU" yes "$gone"
rc=none
for i in $(seq 100); do
        if ! kill -0 "$sup" 2>/dev/null; then wait "$sup"; rc=$?; break; fi
        sleep 0.05
done
unset "VMSUPD_PID[nosb]"
check_eq "and the supervisor, unable to start anything, exits with failure" 1 "$rc"

check_here "supervisor restarted" vmsupd_start nosb
sup=${VMSUPD_PID[nosb]}
lau=$(launcher_of "$sup")
check "Start" vmcall nosb VM1 Start
qpid=$(vmprop_value nosb Pid)
kill -KILL "$sup"
wait "$sup" 2>/dev/null
unset "VMSUPD_PID[nosb]"
gone=no
for i in $(seq 100); do
        if ! kill -0 "$qpid" 2>/dev/null && ! kill -0 "$lau" 2>/dev/null; then gone=yes; break; fi
        sleep 0.05
done
check_eq "SIGKILL of vmsupd: the launcher and QEMU die with it" yes "$gone"

# --- the debug switch
out=$("$VMSUPD" --seccomp=bogus x 2>&1); rc=$?
check_eq "--seccomp=bogus exits 2" 2 "$rc"
check_match "and names the modes" 'unknown seccomp mode.*kill, log' "$out"
define_vm conf2 "$(none_def)"
check_here "vmsupd --seccomp=log starts" vmsupd_start conf2 --seccomp=log
check_eq "with --seccomp=log the filter is still installed" 2 "$(status "${VMSUPD_PID[conf2]}" Seccomp)"
check "and it says so in its log" grep -q 'logged, not refused' "$T/logs/conf2.log"

finish
