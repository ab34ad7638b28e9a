#!/bin/bash
# make bench: the supervisor against raw QMP / QGA, on a private system-type bus
# with the shipped policy (tests/blackbox/lib.sh), as root.
#
# Prints one table (every vmsupd figure beside its baseline from the same run)
# and writes $BUILD/bench/results.json. Everything it starts is stopped on exit,
# on failure and on Ctrl-C: the harness kills its children, and every child
# (vmsupd, QEMU) also dies with its parent (PR_SET_PDEATHSIG).
#
# Environment (all optional):
#   VMSUP_BENCH_QUICK=1           a fast smoke run (smaller counts and file, 20 VMs)
#   VMSUP_BENCH_STRICT=1          exit 3 when a goal is missed (a failed measurement always exits 1)
#   VMSUP_BENCH_ONLY=a,b          sections: state hmp getstatus nonroot flood clients direct memory start fleet agent
#                                 readfile readfile-command writefile migrate, and stress (only when named:
#                                 make stress); e.g. VMSUP_BENCH_ONLY=readfile,writefile for the agent file rows
#   VMSUP_BENCH_ITERATIONS=N      timed calls per side per latency row (5000)
#   VMSUP_BENCH_WARMUP=N          untimed calls per side first (300)
#   VMSUP_BENCH_BATCH=N           calls per side before switching sides (100)
#   VMSUP_BENCH_CLIENTS=N         concurrent clients (16)
#   VMSUP_BENCH_SECONDS=N         measured seconds of the concurrent-clients row (5)
#   VMSUP_BENCH_STARTS=N          timed starts per side (30)
#   VMSUP_BENCH_FLEET=N           supervisors in the fleet rows (100; make bench-fleet: 500)
#   VMSUP_BENCH_FLEET_ROUNDS=N    listing rounds per variant (20)
#   VMSUP_BENCH_STRESS_ROUNDS=N   stress: rounds of VMSUP_BENCH_FLEET concurrent starts and stops (50)
#   VMSUP_BENCH_AGENT_ITERATIONS=N  timed agent commands per side per agent row (1000)
#   VMSUP_BENCH_READFILE_RUNS=N   ReadFile transfers per side (3)
#   VMSUP_BENCH_READFILE_MIB=N    size of the guest file (200)
#   VMSUP_BENCH_GUEST_MIB=N       guest RAM (768; the file lives in the guest's tmpfs)
#   VMSUP_BENCH_MIGRATIONS=N      live migrations per side (6), each moving the 256 MiB tiny guest
#   VMSUP_BENCH_KEEP=1            keep the scratch directory (logs, sockets) for inspection
#   VMSUP_BENCH_VMSUPD=PATH       another vmsupd binary (compare a change against this tree's)
#   VMSUP_BENCH_LOG_LEVEL=LEVEL   the supervisors' --log-level (warning)
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../blackbox/lib.sh
source "$here/../blackbox/lib.sh"

BENCH_BIN=$ROOT/$BUILD/bench/vmsup-bench
VMSUPD=${VMSUP_BENCH_VMSUPD:-$VMSUPD}
OUT_DIR=$ROOT/$BUILD/bench
HARNESS_PID=

for f in "$VMSUPD" "$BENCH_BIN"; do
        [[ -x $f ]] || { echo "run.sh: $f missing (make bench builds it)" >&2; exit 1; }
done
# Only the ReadFile, WriteFile, agent and migration rows boot the guest.
if [[ -z ${VMSUP_BENCH_ONLY:-} || ${VMSUP_BENCH_ONLY} == *readfile* || ${VMSUP_BENCH_ONLY} == *writefile* ||
      ${VMSUP_BENCH_ONLY} == *agent* || ${VMSUP_BENCH_ONLY} == *migrate* ]]; then
        [[ -s $GUEST_DIR/vmlinuz && -s $GUEST_DIR/initrd.img ]] ||
                { echo "run.sh: no test guest in $GUEST_DIR (make guest)" >&2; exit 1; }
fi
[[ $(id -u) -eq 0 ]] || { echo "run.sh: the benchmark runs supervisors as root" >&2; exit 1; }

bench_cleanup() {
        if [[ -n $HARNESS_PID ]] && kill -0 "$HARNESS_PID" 2>/dev/null; then
                kill -TERM "$HARNESS_PID" 2>/dev/null
                wait "$HARNESS_PID" 2>/dev/null
        fi
        mkdir -p "$OUT_DIR/logs"
        rm -f "$OUT_DIR"/logs/*.log
        cp "$T"/logs/*.log "$OUT_DIR/logs/" 2>/dev/null
        if [[ ${VMSUP_BENCH_KEEP:-0} == 1 ]]; then
                echo "run.sh: scratch directory kept: $T" >&2
                T=$(mktemp -d /tmp/vmsup-bench-empty.XXXXXX) # lib.sh's cleanup removes this one instead
        fi
        cleanup # lib.sh: stops the bus, removes $T
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM HUP

ensure_user vmsupbench # a caller that is not root, known to the bench VM's ACL
ensure_user vmsupflood # another one, with the same rights, flooding in the flood rows
ensure_user vmsupnone  # one with no right at all, flooding in the flood rows
# dbus-daemon's defaults allow a uid 256 connections: the fleet rows run 500 supervisors as root.
BUS_EXTRA_CONF='<limit name="max_connections_per_user">4096</limit>
  <limit name="max_completed_connections">4096</limit>
  <limit name="max_incomplete_connections">1024</limit>'
bus_start || exit 1
mkdir -p "$OUT_DIR"

VMSUP_BENCH_DIR=$T VMSUP_BENCH_BUS=$BUS VMSUP_BENCH_VMSUPD=$VMSUPD VMSUP_BENCH_QEMU=$QEMU \
VMSUP_BENCH_USER=vmsupbench VMSUP_BENCH_FLOOD_USER=vmsupflood VMSUP_BENCH_NONE_USER=vmsupnone VMSUP_BENCH_GUEST_DIR=$GUEST_DIR VMSUP_BENCH_OUT=$OUT_DIR/results.json VMSUP_BENCH_DBUS_PID=$BUS_PID \
        "$BENCH_BIN" &
HARNESS_PID=$!
wait "$HARNESS_PID"
rc=$?
HARNESS_PID=
exit $rc
