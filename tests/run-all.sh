#!/bin/bash
# Runs every test: the cmocka unit tests, the fuzz corpora (each harness replays
# its seeds and past crashes once), the unit-file checks, the black-box suites
# and the system suites (tests/system: vmsup under a real systemd in a
# container); ends with one line "N passed, N failed, N skipped" (exit status 1
# on any failure). A test that did not run (cmocka's skip(), a suite's "# SKIP") is
# counted as skipped, never as passed.
#   VMSUP_ONLY=unit|blackbox|system   run one kind only
#   VMSUP_TESTS="lifecycle monitor systemd"   black-box and system suites to run (default: all)
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD
passed=0
failed=0
skipped=0
failures=()

note() { printf '%s\n' "$*"; }

run_unit() {
        local t out rc n_pass n_fail n_skip
        for t in "$BUILD"/tests/test-*; do
                [[ -x $t && ! -d $t ]] || continue
                out=$("$t" 2>&1)
                rc=$?
                printf '%s\n' "$out" | grep -E '^\[ *(FAILED|PASSED|SKIPPED|ERROR) *\]|^\[==========\]' | sed "s|^|$(basename "$t"): |"
                n_pass=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' | tail -1)
                n_fail=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p' | tail -1)
                n_skip=$(printf '%s\n' "$out" | sed -n 's/^\[  SKIPPED \] \([0-9]*\) test(s), listed below:/\1/p' | tail -1)
                n_pass=${n_pass:-0}
                n_fail=${n_fail:-0}
                n_skip=${n_skip:-0}
                if [[ $rc -ne 0 && $n_fail -eq 0 ]]; then
                        n_fail=1 # crashed or aborted
                        printf '%s\n' "$out" | tail -20
                fi
                if [[ $n_fail -gt 0 ]]; then
                        printf '%s\n' "$out" | grep -E 'ERROR|FAILED|error|Failure' | head -20
                        failures+=("$(basename "$t")")
                fi
                passed=$((passed + n_pass))
                failed=$((failed + n_fail))
                skipped=$((skipped + n_skip))
        done
}

# Each fuzz harness (built without libFuzzer: it replays the files it is given)
# over its corpus and the inputs that once crashed it; one check per harness.
run_fuzz_corpora() {
        local t name out rc inputs
        for t in "$BUILD"/fuzz/fuzz-*; do
                [[ -x $t && ! -d $t ]] || continue
                name=${t##*/fuzz-}
                inputs=(tests/fuzz/corpus/"$name")
                [[ -d tests/fuzz/crashes/$name ]] && inputs+=(tests/fuzz/crashes/"$name")
                out=$("$t" "${inputs[@]}" 2>&1)
                rc=$?
                if [[ $rc -eq 0 ]]; then
                        note "ok - fuzz corpus $name: ${out##*: }"
                        passed=$((passed + 1))
                else
                        note "not ok - fuzz corpus $name (exit $rc)"
                        printf '%s\n' "$out" | tail -20
                        failed=$((failed + 1))
                        failures+=("fuzz-$name")
                fi
        done
}

run_units_check() {
        local tmp
        tmp=$(mktemp -d)
        # The unit as installed, pointing at the binary just built.
        sed "s|@SBINDIR@/vmsupd|$PWD/$BUILD/vmsupd|" units/vmsup@.service > "$tmp/vmsup@.service"
        if systemd-analyze verify --man=no "$tmp/vmsup@.service" > "$tmp/out" 2>&1 && ! grep -q . "$tmp/out"; then
                note "ok - systemd-analyze verify units/vmsup@.service"
                passed=$((passed + 1))
        else
                note "not ok - systemd-analyze verify units/vmsup@.service"
                cat "$tmp/out"
                failed=$((failed + 1))
                failures+=("units")
        fi
        # xmllint comes with libxml2-utils (make deps): without it this is a failure.
        if xmllint --noout units/org.vmsup.VM.conf > "$tmp/out" 2>&1; then
                note "ok - units/org.vmsup.VM.conf is well-formed XML"
                passed=$((passed + 1))
        else
                note "not ok - units/org.vmsup.VM.conf is not well-formed XML (or xmllint is missing: make deps)"
                cat "$tmp/out"
                failed=$((failed + 1))
                failures+=("units")
        fi
        rm -rf "$tmp"
}

# The manual pages as installed: groff and man(1) render them without a warning.
run_man_check() {
        local f out
        for f in "$BUILD"/man/*.[158]; do
                out=$( { groff -man -ww -z "$f"; LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$f" >/dev/null; } 2>&1)
                if [[ $? -eq 0 && -z $out ]]; then
                        note "ok - man page ${f##*/} renders cleanly"
                        passed=$((passed + 1))
                else
                        note "not ok - man page ${f##*/}"
                        printf '%s\n' "$out" | head -10
                        failed=$((failed + 1))
                        failures+=("man:${f##*/}")
                fi
        done
}

# run_suites KIND: the TAP suites tests/KIND/test-*.sh.
run_suites() {
        local kind=$1 s out rc n_ok n_notok n_skip
        local suites=${VMSUP_TESTS:-}
        for s in tests/"$kind"/test-*.sh; do
                local name=${s##*/test-}
                name=${name%.sh}
                if [[ -n $suites && " $suites " != *" $name "* ]]; then
                        continue
                fi
                note "== $kind: $name"
                out=$(mktemp)
                bash "$s" 2>&1 | tee "$out"
                rc=${PIPESTATUS[0]}
                # TAP: "ok N - description # SKIP why" did not run.
                n_skip=$(grep -Eic '^ok .*#[[:space:]]*skip' "$out")
                n_ok=$(($(grep -c '^ok ' "$out") - n_skip))
                n_notok=$(grep -c '^not ok ' "$out")
                if [[ $rc -ne 0 && $n_notok -eq 0 ]]; then
                        n_notok=1
                        note "not ok - suite $name exited with status $rc"
                fi
                [[ $n_notok -gt 0 ]] && failures+=("$name")
                passed=$((passed + n_ok))
                failed=$((failed + n_notok))
                skipped=$((skipped + n_skip))
                rm -f "$out"
        done
}

case ${VMSUP_ONLY:-all} in
unit) run_unit; run_fuzz_corpora; run_units_check; run_man_check ;;
blackbox) run_suites blackbox ;;
system) run_suites system ;;
*) run_unit; run_fuzz_corpora; run_units_check; run_man_check; run_suites blackbox; run_suites system ;;
esac

if [[ ${#failures[@]} -gt 0 ]]; then
        note "failing: ${failures[*]}"
fi
note "${passed} passed, ${failed} failed, ${skipped} skipped"
[[ $failed -eq 0 ]]
