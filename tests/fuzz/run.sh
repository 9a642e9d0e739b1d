#!/bin/sh
# Runs fuzz targets one after another and prints one line per target.
#   run.sh run SECONDS TARGET...    fuzz on build/fuzz/corpus-run/TARGET, which
#                                   keeps what it finds between runs
#   run.sh smoke SECONDS TARGET...  a bounded run from the seeds alone
# The checked-in seeds in tests/fuzz/corpus/TARGET are only read. Crashing
# inputs go to build/fuzz/artifacts/TARGET/, logs to build/fuzz/logs/.
# Exits 1 when any target crashed, leaked, timed out or failed a CHECK.
set -u
mode=$1 seconds=$2
shift 2
status=0
mkdir -p build/fuzz/logs
for t in "$@"; do
    seeds=tests/fuzz/corpus/$t
    log=build/fuzz/logs/$t.$mode.log
    mkdir -p "build/fuzz/artifacts/$t"
    if [ "$mode" = smoke ]; then
        work=build/fuzz/smoke/$t
        rm -rf "$work"
        dirs="$work $seeds" # new inputs go to the first directory only
    else
        work=build/fuzz/corpus-run/$t
        mkdir -p "$work"
        cp "$seeds"/* "$work"/
        dirs=$work
    fi
    mkdir -p "$work"
    dict=
    [ -f "tests/fuzz/$t.dict" ] && dict=-dict=tests/fuzz/$t.dict
    # $dict and $dirs are split on purpose: none of these paths has a space.
    if "build/fuzz/$t" -workers=1 -max_total_time="$seconds" -timeout=10 \
        -print_final_stats=1 -artifact_prefix="build/fuzz/artifacts/$t/" \
        $dict $dirs >"$log" 2>&1; then
        result=ok
    else
        result=FAILED
        status=1
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    printf '%-20s %-6s %11s execs in %ss\n' "$t" "$result" "${execs:-?}" "$seconds"
    if [ "$result" != ok ]; then
        grep -E 'CHECK failed|ERROR: |SUMMARY: |Test unit written' "$log" | sed 's/^/    /'
        echo "    full log: $log"
    fi
done
exit $status
