#!/bin/bash
# VM1.GetStats against the tiny guest with an NVMe disk (the guest kernel drives
# NVMe without modules): refusals and limits, every group, and figures that move
# when the guest works (a dd through the agent raises block write bytes).
source "$(dirname "$0")/lib.sh"

[[ -r $GUEST_DIR/vmlinuz ]] || { echo "not ok 1 - tiny guest missing: run tests/guest/build-guest.sh"; exit 1; }
for u in vmsupt-none vmsupt-audit; do ensure_user "$u"; done
bus_start || exit 1
host_acl '{}'
truncate -s 32M "$T/disk.img"
chmod 0666 "$T/disk.img"
define_vm st "$(guest_kernel_def '"autostart": false, "shutdown_timeout_sec": 60, "on_poweroff": "restart",
  "acl": [ { "user": "vmsupt-audit", "privileges": [ "VM.Audit" ] } ]' | sed 's|"append"|"drives": [ { "file": "'"$T"'/disk.img", "format": "raw", "interface": "none" } ], "extra_args": [ "-device", "nvme,drive=drive0,serial=vmsupstats" ], "append"|')"

# stats [USER] GROUP...: GetStats through python3-dbus, one "key value" line each, sorted.
stats() {
        local user=root
        if [[ ${1:-} == as:* ]]; then user=${1#as:}; shift; fi
        local py='import dbus, os, sys
bus = dbus.bus.BusConnection(os.environ["DBUS_SYSTEM_BUS_ADDRESS"])
o = bus.get_object("org.vmsup.VM.st", "/org/vmsup/VM")
try:
    r = o.GetStats(dbus.Array(sys.argv[1:], signature="s"), dbus_interface="org.vmsup.VM1", timeout=120)
except dbus.exceptions.DBusException as e:
    print("Error %s: %s" % (e.get_dbus_name(), e.get_dbus_message())); sys.exit(1)
for k in sorted(r): print(k, r[k])'
        if [[ $user == root ]]; then /usr/bin/python3 -c "$py" "$@"; else as "$user" /usr/bin/python3 -c "$py" "$@"; fi
}
# stat_value KEY: from the output on stdin.
stat_value() { awk -v k="$1" '$1 == k { print $2 }'; }
cmd() { agent_cmd root st "$1"; }
# guest_sh SCRIPT: runs SCRIPT with the guest's busybox sh (guest-exec as root), returns its exit status.
guest_sh() {
        local s=$1 pid st code i
        s=${s//\"/\\\"}
        pid=$(cmd "{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"/bin/busybox\",\"arg\":[\"sh\",\"-c\",\"$s\"],\"capture-output\":true}}" |
                sed -n 's/^{"pid":\([0-9]*\)}$/\1/p')
        [[ -n $pid ]] || return 125
        for i in $(seq 1800); do
                st=$(cmd "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":$pid}}") || return 125
                if [[ $st == *'"exited":true'* ]]; then
                        printf '%s' "$st" | sed -n 's/.*"out-data":"\([^"]*\)".*/\1/p' | base64 -d
                        code=$(printf '%s' "$st" | sed -n 's/.*"exitcode":\([0-9]*\).*/\1/p')
                        return "${code:-126}"
                fi
                sleep 0.1
        done
        return 124
}

check_here "vmsupd with the tiny guest and an NVMe disk" vmsupd_start st

# --- refusals and limits, while stopped
check_fails "no ACL: GetStats refused, names VM.Audit" 'AccessDenied: VM.Audit' stats as:vmsupt-none
check_fails "no ACL: GetStats of one group refused" 'AccessDenied: VM.Audit' stats as:vmsupt-none state
check_fails "an unknown group is InvalidArgs" 'InvalidArgs: Unknown statistics group "nosuch"' stats state nosuch
many=(); for i in $(seq 10000); do many+=(state); done
check_fails "10000 groups: InvalidArgs" 'InvalidArgs: At most 16 groups' stats "${many[@]}"
long=$(head -c 100000 /dev/zero | tr '\0' g)
check_fails "a 100000-byte group name: InvalidArgs, echoed truncated" 'InvalidArgs: Unknown statistics group "gggg' stats "$long"
check_fails "GetStats with the wrong signature: InvalidArgs" 'Invalid arguments' busctl --system call org.vmsup.VM.st /org/vmsup/VM org.vmsup.VM1 GetStats s state

out=$(stats as:vmsupt-audit)
check_match "VM.Audit, stopped: state.state stopped" $'state.state stopped' "$out"
check_match "stopped: vcpu.current 0, block.count 0, agent counters present" \
        $'agent.syncs [0-9]+.*block.count 0.*vcpu.current 0' "$(printf '%s\n' "$out" | tr '\n' ' ')"
check_eq "stopped: two groups asked, only those" "state.reason state.state vcpu.current vcpu.maximum" \
        "$(stats state vcpu | awk '{ print $1 }' | xargs)"

# --- running
check "Start" vmcall st VM1 Start
check "the agent connects" wait_prop st AgentConnected true 180
out=$(stats)
check_eq "running: state.state" running "$(stat_value state.state <<< "$out")"
check_eq "running: vcpu.current 1 (one vCPU)" 1 "$(stat_value vcpu.current <<< "$out")"
check_match "running: vcpu.0.time from the vCPU thread (ns)" '^[0-9]+$' "$(stat_value vcpu.0.time <<< "$out")"
check_match "running: cpu.time > 0" '^[1-9][0-9]*$' "$(stat_value cpu.time <<< "$out")"
check_eq "running: block.count 1" 1 "$(stat_value block.count <<< "$out")"
check_eq "running: block.0.name is the drive" drive0 "$(stat_value block.0.name <<< "$out")"
check_eq "running: balloon.maximum is the memory (KiB)" $((256 * 1024)) "$(stat_value balloon.maximum <<< "$out")"
check_match "running: balloon.rss > 0" '^[1-9][0-9]*$' "$(stat_value balloon.rss <<< "$out")"
check_eq "running: agent.connected" 1 "$(stat_value agent.connected <<< "$out")"
check_match "running: agent.syncs > 0" '^[1-9][0-9]*$' "$(stat_value agent.syncs <<< "$out")"
# Two results and an error from the agent: three answers, each with its time.
an0=$(stats agent | stat_value agent.answered)
at0=$(stats agent | stat_value agent.answer-time)
cmd '{"execute":"guest-ping"}' > /dev/null
cmd '{"execute":"guest-ping"}' > /dev/null
cmd '{"execute":"guest-file-open","arguments":{"path":"/nonexistent/x","mode":"r"}}' > /dev/null 2>&1
out=$(stats agent)
diag "agent.answered $an0 -> $(stat_value agent.answered <<< "$out"), agent.answer-time $at0 -> $(stat_value agent.answer-time <<< "$out") µs"
check_eq "agent.answered counts two results and an error" 3 $(( $(stat_value agent.answered <<< "$out") - an0 ))
check "agent.answer-time rose" test "$(stat_value agent.answer-time <<< "$out")" -gt "$at0"

# --- figures that move: 8 MiB written in the guest
wr0=$(stats block | stat_value block.0.wr.bytes)
wq0=$(stats block | stat_value block.0.wr.reqs)
v0=$(stats vcpu | stat_value vcpu.0.time)
check "the guest sees its NVMe disk" guest_sh 'test -b /dev/nvme0n1'
check "dd of 8 MiB onto the disk in the guest" guest_sh 'dd if=/dev/zero of=/dev/nvme0n1 bs=1048576 count=8 conv=fsync 2>/dev/null'
out=$(stats block vcpu)
wr1=$(stat_value block.0.wr.bytes <<< "$out")
diag "block.0.wr.bytes $wr0 -> $wr1, wr.reqs $wq0 -> $(stat_value block.0.wr.reqs <<< "$out"), vcpu.0.time $v0 -> $(stat_value vcpu.0.time <<< "$out")"
check "block.0.wr.bytes rose by at least the 8 MiB written" test $((wr1 - wr0)) -ge $((8 * 1048576))
check "block.0.wr.reqs rose" test "$(stat_value block.0.wr.reqs <<< "$out")" -gt "$wq0"
check "vcpu.0.time rose while the guest worked" test "$(stat_value vcpu.0.time <<< "$out")" -gt "$v0"
rd0=$(stats block | stat_value block.0.rd.bytes)
check "dd of 4 MiB off the disk in the guest" guest_sh 'dd if=/dev/nvme0n1 of=/dev/null bs=1048576 count=4 iflag=direct 2>/dev/null || dd if=/dev/nvme0n1 of=/dev/null bs=1048576 count=4 2>/dev/null'
check "block.0.rd.bytes rose by at least 4 MiB" test $(( $(stats block | stat_value block.0.rd.bytes) - rd0 )) -ge $((4 * 1048576))

# --- vmsupctl stats and metrics
ctl() { "$VMSUPCTL" --bus "$BUS" "$@"; }
rc_of() { "$@" >/dev/null 2>&1; echo $?; }
check_match "vmsupctl stats: key value lines" $'block.0.name "drive0"' "$(ctl stats st block)"
check_eq "vmsupctl stats --json parses; state.state running" running \
        "$(ctl stats st --json | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["state.state"])')"
check_eq "vmsupctl stats with an unknown group: exit 2" 2 "$(rc_of ctl stats st nosuch)"
check_eq "vmsupctl stats without rights: exit 4" 4 "$(rc_of as vmsupt-none "$VMSUPCTL" --bus "$BUS" stats st)"
ctl metrics > "$T/all.prom"; rc=$?
check_eq "vmsupctl metrics: exit 0" 0 "$rc"
ctl metrics st > "$T/st.prom"
check_eq "metrics of every VM = metrics of the one VM" "$(cat "$T/st.prom")" "$(cat "$T/all.prom")"
if command -v promtool >/dev/null; then
        check "promtool check metrics accepts the output" bash -c "promtool check metrics < '$T/all.prom'"
else
        not_ok "promtool missing (Debian package prometheus, scripts/setup-deps.sh)"
fi
check_match "metrics: vstate is libvirt's running (1)" $'\nvmsup_domain_info_vstate\\{domain="st",state="running"\\} 1\n' "$(printf '\n%s\n' "$(cat "$T/all.prom")")"
wrm=$(sed -n 's/^vmsup_domain_block_stats_write_bytes_total{domain="st",target_device="drive0"} \([0-9]*\)$/\1/p' "$T/all.prom")
check "metrics: block write bytes count the 8 MiB written" test "${wrm:-0}" -ge $((8 * 1048576))
check "metrics: a vCPU time sample" grep -Eq '^vmsup_domain_vcpu_time_seconds_total\{domain="st",vcpu="0"\} [0-9.e+-]+$' "$T/all.prom"
as vmsupt-none "$VMSUPCTL" --bus "$BUS" metrics > "$T/none.prom" 2>"$T/none.err"; rc=$?
check_eq "metrics without rights, no names: exit 0, the VM is skipped" "0 0" "$rc $(grep -c '^vmsup_' "$T/none.prom")"
check_match "metrics without rights: stderr says why" 'access denied' "$(cat "$T/none.err")"
check "metrics without rights is still valid for promtool" bash -c "promtool check metrics < '$T/none.prom'"
check_eq "metrics NAME without rights: exit 4" 4 "$(rc_of as vmsupt-none "$VMSUPCTL" --bus "$BUS" metrics st)"
check_eq "metrics of an invalid name: exit 2" 2 "$(rc_of ctl metrics st 'a.b')"

# --- metrics --format openmetrics: checked by a strict OpenMetrics parser
# (python3-prometheus-client; promtool reads the Prometheus text format only).
# om_check FILE: every family "name type unit" and sample "name{labels}" it parses to.
om_check() {
        /usr/bin/python3 -c '
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for f in text_string_to_metric_families(open(sys.argv[1]).read()):
    print("family", f.name, f.type, f.unit or "-")
    for s in f.samples:
        print("sample", s.name + "{" + ",".join("%s=%s" % kv for kv in sorted(s.labels.items())) + "}")
' "$1"
}
ctl metrics --format openmetrics > "$T/all.om"; rc=$?
check_eq "vmsupctl metrics --format openmetrics: exit 0" 0 "$rc"
if om=$(om_check "$T/all.om" 2>&1); then
        ok "the OpenMetrics parser accepts the output"
else
        not_ok "the OpenMetrics parser accepts the output"
        printf '%s\n' "$om" | tail -3 | sed 's/^/#   /'
fi
check_eq "openmetrics: the last line is # EOF" "# EOF" "$(tail -n 1 "$T/all.om")"
check_match "openmetrics: a counter's family has no _total, its unit is seconds" \
        $'\nfamily vmsup_domain_info_cpu_time_seconds counter seconds\nsample vmsup_domain_info_cpu_time_seconds_total\\{domain=st\\}\n' "$(printf '\n%s\n' "$om")"
check_match "openmetrics: a gauge in bytes declares its unit" \
        $'\nfamily vmsup_domain_info_maximum_memory_bytes gauge bytes\n' "$(printf '\n%s\n' "$om")"
check_eq "openmetrics and prometheus name the same series" \
        "$(grep -v '^#' "$T/all.prom" | cut -d' ' -f1 | sort)" "$(grep -v '^#' "$T/all.om" | cut -d' ' -f1 | sort)"
ctl metrics --format prometheus > "$T/explicit.prom"
check_eq "--format prometheus is the default's format" \
        "$(grep '^#' "$T/all.prom")" "$(grep '^#' "$T/explicit.prom")"
wrm=$(sed -n 's/^vmsup_domain_block_stats_write_bytes_total{domain="st",target_device="drive0"} \([0-9]*\)$/\1/p' "$T/all.om")
check "openmetrics: block write bytes count the 8 MiB written" test "${wrm:-0}" -ge $((8 * 1048576))
if promtool check metrics < "$T/all.om" > "$T/promtool.om" 2>&1; then
        diag "promtool check metrics accepts the OpenMetrics output too"
else
        diag "promtool check metrics on the OpenMetrics output: $(head -1 "$T/promtool.om")"
fi
as vmsupt-none "$VMSUPCTL" --bus "$BUS" metrics --format openmetrics > "$T/none.om" 2>/dev/null; rc=$?
check_eq "openmetrics without rights: exit 0, no sample" "0 0" "$rc $(grep -c '^vmsup_' "$T/none.om")"
check "openmetrics without rights: still valid OpenMetrics" om_check "$T/none.om"
check_eq "openmetrics NAME without rights: exit 4" 4 "$(rc_of as vmsupt-none "$VMSUPCTL" --bus "$BUS" metrics st --format openmetrics)"
check_eq "--format with an unknown format: exit 2" 2 "$(rc_of ctl metrics --format json)"
check_match "... naming the choices" 'prometheus or openmetrics' "$(ctl metrics --format json 2>&1)"
check_eq "--format on another verb: exit 2" 2 "$(rc_of ctl stats st --format openmetrics)"
check_eq "--format of 100000 bytes: exit 2" 2 "$(rc_of ctl metrics --format "$(head -c 100000 /dev/zero | tr '\0' o)")"

# --- on_poweroff restart: the guest powers itself off, QEMU starts afresh
pid=$(vmprop_value st Pid)
events_start st "$T/ev" || not_ok "subscriber started"
check_eq "the guest powers off (guest-shutdown through the agent)" '{}' "$(cmd '{"execute":"guest-shutdown"}')"
check "subscriber saw stopped guest-shutdown" wait_for_line "$T/ev" '^StateChanged stopped guest-shutdown' 120
check "then a fresh start (on_poweroff restart)" wait_for_line "$T/ev" '^StateChanged running started' 60
newpid=$(vmprop_value st Pid)
check "a new QEMU ($pid -> $newpid)" test "$newpid" != 0 -a "$newpid" != "$pid"
check "Stop" vmcall st VM1 Stop
check_eq "a caller's Stop is not followed by a restart" "stopped 0" "$(vmprop_value st State) $(vmprop_value st Pid)"
finish
