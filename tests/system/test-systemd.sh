#!/bin/bash
# vmsup under a real systemd: boots systemd 252 as PID 1 of a systemd-nspawn
# container on a throw-away overlay of this host's root, installs the project
# there with `make install`, and drives vmsup@NAME.service through systemd and
# the container's system bus with the installed bus policy.  Needs root; where
# a container cannot boot (no systemd-nspawn, no overlay), everything is skipped.
# shellcheck source=tests/system/lib.sh
source "$(dirname "$0")/lib.sh"

trap sys_teardown EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

SUITE_T0=$(now_ms)
VM_NONE=none1
VM_GUEST=guest1
VM_ACPI=guest2
GATE=/run/vmsup-test-gate
U_POWER=vmsupt-power   # the VM's ACL: VM.Audit and VM.PowerMgmt
U_HOST=vmsupt-hostacl  # the host ACL: VM.Audit
U_NONE=vmsupt-none     # no rights anywhere
# systemd-analyze security's figure for the live unit must stay at or below
# this; --offline=true rates the unit file 2.7 (README).
SECURITY_MAX=3.0

bus_name() { echo "org.vmsup.VM.$1"; }
# vmprop NAME PROP: a property's bare value, asked as root over the system bus.
vmprop() {
        sys busctl --system get-property "$(bus_name "$1")" /org/vmsup/VM org.vmsup.VM1 "$2" |
                sed -E 's/^[a-z] //; s/^"(.*)"$/\1/'
}
# dsend USER NAME IFACE.METHOD [ARGS...]: dbus-send (it shows an AccessDenied's message).
dsend() {
        local user=$1 name=$2 method=$3
        shift 3
        local cmd=(dbus-send --system --print-reply --reply-timeout=60000 --dest="$(bus_name "$name")"
                   /org/vmsup/VM "org.vmsup.$method" "$@")
        if [[ $user == root ]]; then
                sys "${cmd[@]}"
        else
                sys_as "$user" "${cmd[@]}"
        fi
}
# request_name USER NAME: RequestName on the system bus (dbus-send shows the refusal's message).
request_name() {
        sys_as "$1" dbus-send --system --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
                org.freedesktop.DBus.RequestName string:"$2" uint32:4
}
state_is() { [[ $(vmprop "$1" State 2>/dev/null) == "$2" ]]; }
agent_up() { [[ $(vmprop "$1" AgentConnected 2>/dev/null) == true ]]; }
journal() { sys journalctl --no-pager -o cat -u "vmsup@$1.service"; }
# gone PID: no process PID in the container (PID must be a pid).
gone() {
        [[ $1 =~ ^[1-9][0-9]*$ ]] || { echo "not a pid: '$1'"; return 1; }
        ! sys kill -0 "$1" 2>/dev/null
}
name_exists() { sys busctl --system status "$(bus_name "$1")" >/dev/null 2>&1; }
# qemu_pids: QEMU processes in the container (its own PID namespace).
qemu_pids() { sys pgrep -f '^/usr/bin/qemu-system' | tr '\n' ' '; }

# guest_def AGENT: the tiny guest's definition (kernel and initramfs read from the
# host through a read-only bind mount).
guest_def() {
        cat <<JSON
{ "qemu": { "binary": "$QEMU", "machine": "q35", "accel": "tcg", "memory_mib": 256,
            "kernel": "$SYS_GUEST_DIR/vmlinuz", "initrd": "$SYS_GUEST_DIR/initrd.img",
            "append": "console=ttyS0 quiet" },
  "agent": $1,
  "agent_file_paths": [ "/tmp" ],
  "shutdown_timeout_sec": 60,
  "acl": [ { "user": "$U_POWER", "privileges": [ "VM.Audit", "VM.PowerMgmt" ] } ] }
JSON
}

# ---------------------------------------------------------------------------
# Set-up inside the container: users, definitions, the host ACL.

setup_vms() {
        local u
        for u in "$U_POWER" "$U_HOST" "$U_NONE"; do
                sys id "$u" >/dev/null 2>&1 ||
                        sys useradd --system --no-create-home --user-group --shell /usr/sbin/nologin "$u" || return 1
        done
        sys install -d -m 0755 /etc/vmsup /etc/vmsup/vms || return 1
        sys_write /etc/vmsup/acl.json 0600 <<JSON || return 1
{ "acl": [ { "user": "$U_HOST", "privileges": [ "VM.Audit" ] } ] }
JSON
        # QEMU held back until the test opens a gate, so that it can look at the unit
        # while the supervisor is up but not ready.
        sys_write /etc/vmsup/qemu-gated 0755 <<SH || return 1
#!/bin/sh
while [ ! -e $GATE ]; do sleep 0.05; done
exec $QEMU "\$@"
SH
        # QEMU without a guest, as an unprivileged user: the launcher's set-uid
        # path runs under the unit's capability bounding set. Without a guest
        # nothing answers the ACPI button: stop waits out shutdown_timeout_sec.
        sys_write "/etc/vmsup/vms/$VM_NONE.json" 0600 <<JSON || return 1
{ "qemu": { "binary": "/etc/vmsup/qemu-gated", "machine": "none", "accel": "tcg", "memory_mib": 16 },
  "run_as": { "user": "nobody", "group": "nogroup" },
  "shutdown_timeout_sec": 1,
  "acl": [ { "user": "$U_POWER", "privileges": [ "VM.Audit", "VM.PowerMgmt" ] } ] }
JSON
        # The watchdog and restart test wants seconds, not the shipped 30 s and 5 s.
        sys install -d -m 0755 "/etc/systemd/system/vmsup@$VM_NONE.service.d" || return 1
        sys_write "/etc/systemd/system/vmsup@$VM_NONE.service.d/50-test.conf" 0644 <<UNIT || return 1
[Service]
WatchdogSec=3s
RestartSec=1s
UNIT
        # A sanitizer build's LeakSanitizer stops the process with ptrace at exit, which
        # the unit's SystemCallFilter (~@debug) refuses: the supervisor would hang on
        # its way out. Memory errors are still reported.
        if [[ ${SANITIZE:-0} == 1 ]]; then
                sys install -d -m 0755 /etc/systemd/system/vmsup@.service.d || return 1
                sys_write /etc/systemd/system/vmsup@.service.d/50-sanitizer.conf 0644 <<UNIT || return 1
[Service]
Environment=ASAN_OPTIONS=detect_leaks=0
UNIT
        fi
        if [[ -r $GUEST_DIR/vmlinuz && -r $GUEST_DIR/initrd.img ]]; then
                guest_def true | sys_write "/etc/vmsup/vms/$VM_GUEST.json" 0600 || return 1
                guest_def false | sys_write "/etc/vmsup/vms/$VM_ACPI.json" 0600 || return 1
        fi
        sys systemctl daemon-reload
}

# ---------------------------------------------------------------------------

t_install() {
        check "make install: vmsupd, vmsupctl, the unit, the bus policy, the tmpfiles entry" \
                sys test -x /usr/sbin/vmsupd -a -x /usr/bin/vmsupctl \
                        -a -f /lib/systemd/system/vmsup@.service \
                        -a -f /usr/share/dbus-1/system.d/org.vmsup.VM.conf \
                        -a -f /usr/lib/tmpfiles.d/vmsup.conf
        check "the installed vmsupd is the one just built" cmp "$ROOT/$BUILD/vmsupd" "$CROOT/usr/sbin/vmsupd"
        check_match "the installed unit runs the installed binary" \
                '/usr/sbin/vmsupd' "$(sys_unit_prop "vmsup@$VM_NONE.service" ExecStart)"
        check "systemd-tmpfiles --create vmsup.conf makes /run/vmsup" \
                sys sh -c 'systemd-tmpfiles --create vmsup.conf && test "$(stat -c %a:%U /run/vmsup)" = 755:root'
        check "the installed unit passes systemd-analyze verify" \
                sys sh -c '! systemd-analyze verify vmsup@x.service 2>&1 | grep .'
}

t_start_ready() {
        local name=$VM_NONE out pid
        # Type=notify: while QEMU is held back the supervisor serves its name but is
        # not ready, and the unit must still be activating.
        sys systemctl start --no-block "vmsup@$name.service"
        # The name comes first, then (autostart) QEMU's launch: wait for both.
        if sys_wait 30 state_is "$name" starting; then
                ok "QEMU held back: the supervisor serves its name, State is starting"
                check_eq "QEMU held back: the unit is activating, not active" "activating start" \
                        "$(sys_unit_prop "vmsup@$name.service" ActiveState) $(sys_unit_prop "vmsup@$name.service" SubState)"
        else
                not_ok "QEMU held back: the supervisor serves its name, State is starting"
        fi
        sys touch "$GATE"
        # Joins the start job: returns once the unit is active (or failed).
        if ! out=$(sys systemctl start "vmsup@$name.service" 2>&1); then
                not_ok "systemctl start vmsup@$name"
                printf '%s\n' "$out" | sed 's/^/#   /'
                journal "$name" | tail -20 | sed 's/^/#   /'
                return 1
        fi
        ok "systemctl start vmsup@$name"
        # Type=notify: systemctl start returns once the unit is active, which it is
        # only after READY=1 -- by then the name is owned and QEMU runs.
        check_eq "active as soon as start returns" "active running" \
                "$(sys_unit_prop "vmsup@$name.service" ActiveState) $(sys_unit_prop "vmsup@$name.service" SubState)"
        check "the bus name $(bus_name "$name") exists when the unit is active" \
                sys busctl --system status "$(bus_name "$name")"
        check_eq "State is running when the unit is active (autostart)" running "$(vmprop "$name" State)"
        pid=$(vmprop "$name" Pid)
        check_match "QEMU $pid is in the container, seen by pgrep" "(^| )$pid " "$(qemu_pids)"
        check_match "QEMU runs as run_as (nobody)" '^nobody$' "$(sys ps -o user= -p "$pid" 2>&1)"
        check_eq "the supervisor is the unit's main process" \
                "$(sys_unit_prop "vmsup@$name.service" MainPID)" \
                "$(sys busctl --system --no-pager status "$(bus_name "$name")" | sed -n 's/^PID=//p')"
}

t_bus() {
        local name=$VM_NONE bn
        bn=$(bus_name "$name")
        check_match "root: State over the system bus" '^s "running"$' \
                "$(sys busctl --system get-property "$bn" /org/vmsup/VM org.vmsup.VM1 State 2>&1)"
        check_match "root: GetStatus answers" '"state" s "running"' \
                "$(sys busctl --system call "$bn" /org/vmsup/VM org.vmsup.VM1 GetStatus 2>&1)"
        check_match "user with VM.Audit (VM ACL): State" '^s "running"$' \
                "$(sys_as "$U_POWER" busctl --system get-property "$bn" /org/vmsup/VM org.vmsup.VM1 State 2>&1)"
        check_match "user with VM.Audit (VM ACL): GetStatus" '"qmp-status" s "running"' \
                "$(sys_as "$U_POWER" busctl --system call "$bn" /org/vmsup/VM org.vmsup.VM1 GetStatus 2>&1)"
        check_match "user with VM.Audit (host ACL file): State" '^s "running"$' \
                "$(sys_as "$U_HOST" busctl --system get-property "$bn" /org/vmsup/VM org.vmsup.VM1 State 2>&1)"
        # The bus lets the call through; the supervisor refuses it, naming the privilege.
        check_fails "user without rights: GetStatus refused by the supervisor (VM.Audit)" \
                'AccessDenied: VM.Audit privilege required' dsend "$U_NONE" "$name" VM1.GetStatus
        check_fails "user without rights: Stop refused by the supervisor (VM.PowerMgmt)" \
                'AccessDenied: VM.PowerMgmt privilege required' dsend "$U_NONE" "$name" VM1.Stop
        check_fails "host-ACL user (VM.Audit only): Stop refused (VM.PowerMgmt)" \
                'AccessDenied: VM.PowerMgmt privilege required' dsend "$U_HOST" "$name" VM1.Stop
        # The installed policy: only root may own org.vmsup.VM.*.
        check_fails "user without rights cannot own $bn" 'AccessDenied: .*not allowed to own' \
                request_name "$U_NONE" "$bn"
        check_fails "user with VM rights cannot own org.vmsup.VM.other either" 'AccessDenied: .*not allowed to own' \
                request_name "$U_POWER" org.vmsup.VM.other
        check_match "root may own org.vmsup.VM.other (the policy's positive side)" '^u 1$' \
                "$(sys busctl --system call org.freedesktop.DBus /org/freedesktop/DBus \
                        org.freedesktop.DBus RequestName su org.vmsup.VM.other 4 2>&1)"
        check_match "the name's owner is still the supervisor" "^PID=$(sys_unit_prop "vmsup@$name.service" MainPID)\$" \
                "$(sys busctl --system status "$bn" | grep '^PID=')"
}

t_journal() {
        local out
        out=$(journal "$VM_NONE")
        check_match "journal: the supervisor's lines (journalctl -u)" "VM $VM_NONE: serving $(bus_name "$VM_NONE")" "$out"
        check_match "journal: QEMU's start" "VM $VM_NONE: QEMU started, pid [0-9]+" "$out"
}

t_security() {
        local out fig
        out=$(sys systemd-analyze security --no-pager "vmsup@$VM_NONE.service" 2>&1)
        fig=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
        if [[ -z $fig ]]; then
                not_ok "systemd-analyze security vmsup@$VM_NONE.service gives a figure"
                printf '%s\n' "$out" | tail -5 | sed 's/^/#   /'
                return
        fi
        diag "systemd-analyze security vmsup@$VM_NONE.service (live): $fig"
        if awk -v f="$fig" -v m="$SECURITY_MAX" 'BEGIN { exit !(f <= m) }'; then
                ok "systemd-analyze security on the live unit: $fig <= $SECURITY_MAX"
        else
                not_ok "systemd-analyze security on the live unit: $fig > $SECURITY_MAX"
        fi
}

# check_reattached OLD_QEMU_PID WHAT: what must hold once the supervisor comes back
# after WHAT: the same QEMU process and guest, adopted by the new supervisor.
check_reattached() {
        check_eq "after $2: the new supervisor adopts QEMU $1 (same pid, StateReason reattached)" \
                "$1 running reattached" "$(vmprop "$VM_NONE" Pid) $(vmprop "$VM_NONE" State) $(vmprop "$VM_NONE" StateReason)"
        check_match "after $2: journal: the adoption" "VM $VM_NONE: reattached to QEMU pid $1" "$(journal "$VM_NONE")"
}

# check_machined NAME: the running VM registered with systemd-machined (class vm,
# leader QEMU, machine-NAME.scope under machine.slice).
machine_listed() { sys machinectl list --no-legend --no-pager 2>/dev/null | grep -Eq "^$1 +vm "; }
check_machined() {
        local pid
        pid=$(vmprop "$1" Pid)
        if sys_wait 30 machine_listed "$1"; then
                ok "vmsup@$1: the VM appears in machinectl list (class vm)"
        else
                not_ok "vmsup@$1: the VM appears in machinectl list (class vm)"
                sys machinectl list --no-pager 2>&1 | sed 's/^/#   /'
                journal "$1" | tail -5 | sed 's/^/#   /'
        fi
        check_match "vmsup@$1: machinectl status names QEMU $pid as its leader" "Leader: $pid " \
                "$(sys machinectl status --no-pager "$1" 2>&1)"
        check_match "vmsup@$1: QEMU lives in machine-$1.scope under machine.slice, not the service's cgroup" \
                "^0::/machine.slice/machine-$1.scope$" "$(sys grep "^0::" "/proc/$pid/cgroup" 2>&1)"
        check_match "vmsup@$1: the scope keeps the unit's device policy" '^DevicePolicy=closed$' \
                "$(sys systemctl show -p DevicePolicy "machine-$1.scope" 2>&1)"
}

# restart_after SIGNAL WHAT: signals the supervisor, waits for systemd to restart it,
# checks what holds today, then check_reattached.
restart_after() {
        local sig=$1 what=$2 name=$VM_NONE unit="vmsup@$VM_NONE.service"
        local main qemu n0 n1 newmain newqemu
        main=$(sys_unit_prop "$unit" MainPID)
        qemu=$(vmprop "$name" Pid)
        n0=$(sys_unit_prop "$unit" NRestarts)
        if ! sys_kill "$sig" "$main"; then
                not_ok "$what: the supervisor's pid ($main)"
                return 1
        fi
        restarted() {
                [[ $(sys_unit_prop "$unit" NRestarts) -gt $n0 && $(sys_unit_prop "$unit" ActiveState) == active ]]
        }
        if ! sys_wait 60 restarted; then
                not_ok "$what: systemd restarts the supervisor"
                journal "$name" | tail -15 | sed 's/^/#   /'
                return 1
        fi
        n1=$(sys_unit_prop "$unit" NRestarts)
        newmain=$(sys_unit_prop "$unit" MainPID)
        check_eq "$what: systemd restarted the supervisor once (NRestarts $n0 -> $n1)" $((n0 + 1)) "$n1"
        check_match "$what: a new supervisor serves the bus name" "^PID=$newmain\$" \
                "$(sys busctl --system status "$(bus_name "$name")" | grep '^PID=')"
        [[ $newmain != "$main" ]] || diag "MainPID unchanged: $main"
        sys_wait 30 state_is "$name" running
        newqemu=$(vmprop "$name" Pid)
        check_eq "$what: the VM runs again" running "$(vmprop "$name" State)"
        diag "$what: supervisor $main -> $newmain, QEMU $qemu -> $newqemu"
        check_reattached "$qemu" "$what"
}

t_watchdog() {
        restart_after STOP "kill -STOP (watchdog)"
        local out
        out=$(journal "$VM_NONE")
        check_match "journal: systemd's watchdog fired" 'Watchdog timeout' "$out"
        check_match "journal: the watchdog aborted the supervisor (SIGABRT)" \
                'Main process exited, code=(killed|dumped), status=6/ABRT' "$out"
}

t_kill9() {
        restart_after KILL "kill -9"
}
# kill -9 of the supervisor and at once systemctl stop: no supervisor comes back, and
# ExecStopPost (vmsupd --stop-orphan) ends the QEMU it left; its scope goes.
t_stop_orphan() {
        local unit="vmsup@$VM_NONE.service" qemu
        check "systemctl start vmsup@$VM_NONE again" sys systemctl start "$unit"
        if ! sys_wait 30 state_is "$VM_NONE" running; then
                not_ok "stop while down: the VM runs"
                return 1
        fi
        qemu=$(vmprop "$VM_NONE" Pid)
        check "stop while down: systemctl kill -s KILL --kill-whom=main, then systemctl stop" \
                sys sh -c "systemctl kill --kill-whom=main -s KILL $unit && systemctl stop $unit"
        # failed: systemd reports how the supervisor ended (Result=signal); no restart follows.
        check_match "stop while down: the unit is down, not restarted" '^(inactive dead|failed failed) 0$' \
                "$(sys_unit_prop "$unit" ActiveState) $(sys_unit_prop "$unit" SubState) $(sys_unit_prop "$unit" MainPID)"
        qemu_gone() { gone "$qemu"; }
        check "stop while down: QEMU $qemu is gone" sys_wait 30 qemu_gone
        scope_gone() { ! sys systemctl is-active --quiet "machine-$VM_NONE.scope" && ! machine_listed "$VM_NONE"; }
        check "stop while down: the machine and its scope are gone" sys_wait 30 scope_gone
        check_match "stop while down: journal: ExecStopPost ended QEMU" \
                "VM $VM_NONE: the unit stops while no supervisor runs: ending QEMU \\(pid $qemu\\)" "$(journal "$VM_NONE")"
        check "stop while down: no launcher left" sys sh -c '! pgrep -x vmsupd-launcher'
        check "stop while down: no run record left" sys test ! -e "/run/vmsup/$VM_NONE/run-state"
}

# systemctl reload (ExecReload: SIGHUP) applies a host ACL change at once, with the same
# supervisor and the same QEMU.
t_reload() {
        local unit="vmsup@$VM_NONE.service" main qemu t0
        main=$(sys_unit_prop "$unit" MainPID)
        qemu=$(vmprop "$VM_NONE" Pid)
        check_fails "reload: $U_NONE refused before" 'AccessDenied' dsend "$U_NONE" "$VM_NONE" VM1.GetStatus
        sys_write /etc/vmsup/acl.json 0600 <<JSON
{ "acl": [ { "user": "$U_HOST", "privileges": [ "VM.Audit" ] },
           { "user": "$U_NONE", "privileges": [ "VM.Audit" ] } ] }
JSON
        t0=$(now_ms)
        check "systemctl reload vmsup@$VM_NONE" sys systemctl reload "$unit"
        none_allowed() { dsend "$U_NONE" "$VM_NONE" VM1.GetStatus >/dev/null 2>&1; }
        if sys_wait 30 none_allowed; then
                ok "reload: $U_NONE allowed after systemctl reload"
                diag "reload: the new ACL decided a call $(($(now_ms) - t0)) ms after systemctl reload"
        else
                not_ok "reload: $U_NONE allowed after systemctl reload"
                journal "$VM_NONE" | tail -5 | sed 's/^/#   /'
        fi
        check_eq "reload: the same supervisor and the same QEMU, running" "$main $qemu running active" \
                "$(sys_unit_prop "$unit" MainPID) $(vmprop "$VM_NONE" Pid) $(vmprop "$VM_NONE" State) $(sys_unit_prop "$unit" ActiveState)"
        check_match "reload: journal: the reload" "VM $VM_NONE: reloaded /etc/vmsup/vms/$VM_NONE.json and /etc/vmsup/acl.json" \
                "$(journal "$VM_NONE")"
        sys_write /etc/vmsup/acl.json 0600 <<JSON
{ "acl": [ { "user": "$U_HOST", "privileges": [ "VM.Audit" ] } ] }
JSON
        check "systemctl reload again (the line removed)" sys systemctl reload "$unit"
        none_refused() { local out; out=$(dsend "$U_NONE" "$VM_NONE" VM1.GetStatus 2>&1); [[ $out == *AccessDenied* ]]; }
        check "reload: $U_NONE refused again" sys_wait 30 none_refused
}

# Audit records in the journal: a refused busctl call as an unprivileged user.
t_audit() {
        local uid out
        uid=$(sys id -u "$U_NONE")
        check_fails "audit: busctl Pause as $U_NONE is refused" 'Access denied' \
                sys_as "$U_NONE" busctl --system call "$(bus_name "$VM_NONE")" /org/vmsup/VM org.vmsup.VM1 Pause
        audit_entry() {
                sys journalctl --no-pager -o json MESSAGE_ID=fcfc696647aa41e7851cc823de8d258f "VMSUP_VM=$VM_NONE" \
                        "VMSUP_CALLER_UID=$uid" VMSUP_METHOD=org.vmsup.VM1.Pause | grep -q .
        }
        check "audit: journalctl MESSAGE_ID=<refusal> VMSUP_VM=$VM_NONE finds it" sys_wait 30 audit_entry
        out=$(sys journalctl --no-pager -o json MESSAGE_ID=fcfc696647aa41e7851cc823de8d258f "VMSUP_VM=$VM_NONE" \
                "VMSUP_CALLER_UID=$uid" VMSUP_METHOD=org.vmsup.VM1.Pause | tail -1)
        check_eq "audit: the structured fields" "$VM_NONE $uid org.vmsup.VM1.Pause org.freedesktop.DBus.Error.AccessDenied true 4" \
                "$(printf '%s' "$out" | jq -r '[.VMSUP_VM, .VMSUP_CALLER_UID, .VMSUP_METHOD, .VMSUP_RESULT, (.VMSUP_CALLER_PID | test("^[1-9][0-9]*$")), .PRIORITY] | join(" ")' 2>&1)"
        check "audit: a state change as root (Pause, Resume) is a call record" \
                sys sh -c "busctl --system call $(bus_name "$VM_NONE") /org/vmsup/VM org.vmsup.VM1 Pause &&
                           busctl --system call $(bus_name "$VM_NONE") /org/vmsup/VM org.vmsup.VM1 Resume"
        call_entry() {
                sys journalctl --no-pager -o json MESSAGE_ID=589a189353544c62a65c46a7637a3ea0 "VMSUP_VM=$VM_NONE" \
                        VMSUP_CALLER_UID=0 VMSUP_METHOD=org.vmsup.VM1.Resume VMSUP_RESULT=accepted | grep -q .
        }
        check "audit: journalctl MESSAGE_ID=<call> finds root's Resume" sys_wait 30 call_entry
        check "audit: the supervisor is still up (sd_journal_send under its system call filter)" \
                sys systemctl is-active --quiet "vmsup@$VM_NONE.service"
}

t_stop_none() {
        local unit="vmsup@$VM_NONE.service"
        check "systemctl stop vmsup@$VM_NONE" sys systemctl stop "$unit"
        check_eq "stopped cleanly (inactive, Result=success)" "inactive success" \
                "$(sys_unit_prop "$unit" ActiveState) $(sys_unit_prop "$unit" Result)"
        check_eq "no QEMU left in the container" "" "$(qemu_pids)"
        check_match "journal: QEMU quit on the supervisor's request" "VM $VM_NONE: .* -> stopped" "$(journal "$VM_NONE")"
        scope_gone() { ! sys systemctl is-active --quiet "machine-$VM_NONE.scope" && ! machine_listed "$VM_NONE"; }
        check "the machine and its scope are gone after the stop" sys_wait 30 scope_gone
}

# serial_has NAME REGEX: the guest's console (its log, which the supervisor keeps in
# the VM's runtime directory, root's alone) has shown a line matching REGEX.
serial_has() {
        sys cat "/run/vmsup/$1/console.log" 2>/dev/null | grep -Eq -- "$2"
}

# guest_stop NAME HOW: systemctl stop shuts the guest down gracefully (HOW: the
# transition's reason, host-qga-guest-shutdown or host-qmp-system-powerdown), and
# nothing of it is left.
guest_stop() {
        local name=$1 how=$2 unit="vmsup@$1.service" pid out t0
        pid=$(vmprop "$name" Pid)
        t0=$(now_ms)
        check "systemctl stop vmsup@$name" sys systemctl stop "$unit"
        diag "systemctl stop vmsup@$name took $(($(now_ms) - t0)) ms"
        out=$(journal "$name")
        printf '%s\n' "$out" | grep -E "VM $name: .* -> |using ACPI" | sed 's/^/# journal: /'
        check_match "$name: stop asks the guest to shut down ($how)" \
                "VM $name: running -> shutting-down \\($how\\)" "$out"
        check_match "$name: the guest shut itself down (not forced)" \
                "VM $name: shutting-down -> stopped \\(guest-shutdown\\)" "$out"
        if [[ $out == *"shutdown timed out"* ]]; then
                not_ok "$name: no forced stop"
        else
                ok "$name: no forced stop"
        fi
        check_eq "$name: stopped cleanly (inactive, Result=success)" "inactive success" \
                "$(sys_unit_prop "$unit" ActiveState) $(sys_unit_prop "$unit" Result)"
        check "$name: QEMU $pid is gone" gone "$pid"
        machine_gone() { ! machine_listed "$name" && ! sys systemctl is-active --quiet "machine-$name.scope"; }
        check "$name: its machine and machine-$name.scope are gone" sys_wait 30 machine_gone
}

# guest_survives NAME SIGNAL WHAT: a file written into the guest, the supervisor
# signalled (systemctl kill --kill-whom=main), systemd restarts it; the same QEMU and
# guest, adopted, its agent answering, the file read back.
guest_survives() {
        local name=$1 sig=$2 what=$3 unit="vmsup@$1.service" pid n0 t0 back
        pid=$(vmprop "$name" Pid)
        n0=$(sys_unit_prop "$unit" NRestarts)
        printf 'written before %s\n' "$what" | sys_write /root/payload 0600
        check "$name: write-file into the guest before $what" \
                sys vmsupctl write-file "$name" /root/payload /tmp/survivor
        t0=$(now_ms)
        check "$name: systemctl kill -s $sig --kill-whom=main" \
                sys systemctl kill --kill-whom=main -s "$sig" "$unit"
        restarted() {
                [[ $(sys_unit_prop "$unit" NRestarts) -gt $n0 && $(sys_unit_prop "$unit" ActiveState) == active ]]
        }
        if ! sys_wait 60 restarted; then
                not_ok "$name: after $what systemd restarts the supervisor"
                journal "$name" | tail -15 | sed 's/^/#   /'
                return 1
        fi
        ok "$name: after $what systemd restarts the supervisor"
        check_eq "$name: after $what the same QEMU runs, adopted" "$pid running reattached" \
                "$(vmprop "$name" Pid) $(vmprop "$name" State) $(vmprop "$name" StateReason)"
        if sys_wait 60 agent_up "$name"; then
                ok "$name: after $what the guest's agent answers"
        else
                not_ok "$name: after $what the guest's agent answers"
        fi
        diag "$name: $what: agent answering again $(($(now_ms) - t0)) ms after the signal (RestartSec included)"
        back=$(sys sh -c "vmsupctl read-file '$name' /tmp/survivor /root/back >/dev/null && cat /root/back" 2>&1)
        check_eq "$name: after $what the file written before is read back" "written before $what" "$back"
        check "$name: after $what machinectl still lists the VM" machine_listed "$name"
}

t_guest() {
        local t0
        if [[ ! -r $GUEST_DIR/vmlinuz ]]; then
                skip "the tiny guest under systemd" "no tiny guest in $GUEST_DIR (make guest)"
                return
        fi
        # Both guests boot at once: one with the agent, one without (stopped by ACPI).
        t0=$(now_ms)
        check "systemctl start vmsup@$VM_GUEST (tiny guest, agent)" sys systemctl start "vmsup@$VM_GUEST.service"
        check "systemctl start vmsup@$VM_ACPI (tiny guest, no agent)" sys systemctl start "vmsup@$VM_ACPI.service"
        if sys_wait 300 agent_up "$VM_GUEST"; then
                ok "$VM_GUEST: the guest's agent connects"
                diag "$VM_GUEST: agent up $(($(now_ms) - t0)) ms after systemctl start"
        else
                not_ok "$VM_GUEST: the guest's agent connects"
        fi
        check_match "$VM_GUEST: root: the agent answers guest-ping" '^s "\{\}"$' \
                "$(sys busctl --system call "$(bus_name "$VM_GUEST")" /org/vmsup/VM org.vmsup.Agent1 Command s \
                        '{"execute":"guest-ping"}' 2>&1)"
        guest_survives "$VM_GUEST" KILL "kill -9"
        guest_survives "$VM_GUEST" USR2 "the upgrade command (SIGUSR2)"
        guest_stop "$VM_GUEST" host-qga-guest-shutdown
        # The guest without an agent port says so once its init (and acpid) runs.
        if sys_wait 300 serial_has "$VM_ACPI" 'no agent port, idling'; then
                ok "$VM_ACPI: the guest booted (its console, through the monitor)"
        else
                not_ok "$VM_ACPI: the guest booted (its console, through the monitor)"
                diag "console: ${SERIAL[$VM_ACPI]: -300}"
        fi
        guest_stop "$VM_ACPI" host-qmp-system-powerdown
        check_eq "no QEMU left in the container" "" "$(qemu_pids)"
}

# ---------------------------------------------------------------------------

if ! sys_can_run; then
        skip "vmsup under a real systemd (systemd-nspawn)" "$SKIP_ALL"
        finish
        exit
fi
if ! sys_prepare; then
        if [[ -n $SKIP_ALL ]]; then
                skip "vmsup under a real systemd (systemd-nspawn)" "$SKIP_ALL"
                finish
                exit
        fi
        not_ok "the overlay of / with the project installed"
        finish
        exit
fi
if ! sys_boot; then
        not_ok "systemd boots in a container"
        finish
        exit
fi
ok "systemd boots in a container ($SYS_BOOT_STATE)"
diag "boot: $SYS_BOOT_MS ms to '$SYS_BOOT_STATE' ($(sys systemctl --version | head -1))"
if ! setup_vms; then
        not_ok "users, definitions and the host ACL in the container"
        finish
        exit
fi

t_install
if t_start_ready; then
        t_bus
        t_journal
        check_machined "$VM_NONE"
        t_security
        t_watchdog
        t_kill9
        t_reload
        t_audit
        t_stop_none
        t_stop_orphan
fi
t_guest

diag "suite wall time: $(($(now_ms) - SUITE_T0)) ms"
finish
