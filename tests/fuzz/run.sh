#!/bin/bash
# Runs every libFuzzer harness in BUILD/fuzz/ (make fuzz builds them) for FUZZ_SECONDS
# each, one after the other, over its seed corpus (tests/fuzz/corpus/NAME, read only) and
# its work corpus (BUILD/corpus/NAME, where new inputs go). Crashes land in
# BUILD/crashes/. Prints one line per harness: executions, edges covered, crashes; then
# "N passed, N failed, 0 skipped" (a harness passes when it ends without a finding).
#   FUZZ_SECONDS=N      time per harness (default 60)
#   FUZZ_HARNESSES="qmp qga"   which ones (default: all)
# One harness at a time, nice'd, so that the machine stays usable.
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build-fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-60}
status=0
n_pass=0
n_fail=0
printf '%-8s %12s %8s %8s %8s\n' harness execs edges seconds crashes
for bin in "$BUILD"/fuzz/fuzz-*; do
        [[ -x $bin ]] || continue
        name=${bin##*/fuzz-}
        if [[ -n ${FUZZ_HARNESSES:-} && " $FUZZ_HARNESSES " != *" $name "* ]]; then
                continue
        fi
        work="$BUILD/corpus/$name"
        crashes="$BUILD/crashes/$name"
        log="$BUILD/fuzz-$name.log"
        mkdir -p "$work" "$crashes"
        before=$(find "$crashes" -type f | wc -l)
        start=$(date +%s)
        nice -n 10 "$bin" -max_total_time="$SECONDS_EACH" -print_final_stats=1 -rss_limit_mb=4096 \
                -timeout=30 -artifact_prefix="$crashes/" "$work" "tests/fuzz/corpus/$name" > "$log" 2>&1
        rc=$?
        elapsed=$(($(date +%s) - start))
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        edges=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
        found=$(($(find "$crashes" -type f | wc -l) - before))
        printf '%-8s %12s %8s %8s %8s\n' "$name" "${execs:-?}" "${edges:-?}" "$elapsed" "$found"
        if [[ $rc -ne 0 || $found -gt 0 ]]; then
                status=1
                n_fail=$((n_fail + 1))
                grep -E 'ERROR|SUMMARY|assertion failed' "$log" | head -5 | sed 's/^/    /'
                echo "    log: $log; inputs: $crashes/"
        else
                n_pass=$((n_pass + 1))
        fi
done
echo "$n_pass passed, $n_fail failed, 0 skipped"
exit $status
