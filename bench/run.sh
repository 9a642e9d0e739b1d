#!/usr/bin/env bash
# bench/run.sh — runs the benchmark scenarios against chatd (and optional peers)
# and against fakeprov directly (the floor), then prints a markdown table.
#
# usage: bench/run.sh [--only "S1 S2 S3 cold v1 fallback limited soak"] [--quick]
#                     [--n "1000 4000 8000"] [--cold-n "20 200"] [--peers]
#                     [--targets "direct chatd chatd-curl seed-fastapi portkey"] [--out DIR]
#
# Scenarios: S1 throughput, S2 added latency, S3 concurrency, S4 (cold) cold burst,
# S5 (v1) /v1/chat/completions streaming, S6 (fallback) fallback after a refused
# connect, S7 (limited) S1 with a limited client key, in-process and with Redis,
# S8 (soak) 2,000 streams for 30 s, RSS at start and end (SOAK_N, SOAK_S change them).
# --only takes names or numbers, several separated by spaces.
#
# Pinning: the target server runs on CPU 0; loadgen, fakeprov and redis-server on
# CPU 1 (GW_CPUS and LOAD_CPUS change them: taskset -c lists, e.g. GW_CPUS=1 puts the
# target on the load's core). Every process this script starts is killed on exit.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BUILD=$HERE/build
PY=/usr/bin/python3            # Debian's python: the peers' packages live there
CHATD=${CHATD:-$ROOT/build/chatd}
PEERS=/tmp/peers
PEERS_SRC=${PEERS_SRC:-$ROOT/../shared/peers}

ONLY="" QUICK=0 NS="1000 4000 8000" COLD_NS="20 200" WITH_PEERS=0 TARGETS="" OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --only) ONLY=$2; shift 2 ;;
        --quick) QUICK=1; shift ;;
        --n) NS=$2; shift 2 ;;
        --cold-n) COLD_NS=$2; shift 2 ;;
        --peers) WITH_PEERS=1; shift ;;
        --targets) TARGETS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
ONLY=$(echo " $ONLY " | sed 's/ cold / S4 /g; s/ v1 / S5 /g; s/ fallback / S6 /g; s/ limited / S7 /g; s/ soak / S8 /g')
ONLY=$(echo $ONLY) # without the padding: empty means every scenario
for s in $ONLY; do
    case $s in S[1-8]) ;; *) echo "run.sh: unknown scenario '$s' (see --help)" >&2; exit 2 ;; esac
done
[ -n "$TARGETS" ] || { TARGETS="direct chatd chatd-curl"; [ $WITH_PEERS = 1 ] && TARGETS="$TARGETS seed-fastapi portkey"; }
DUR=10; S3_TOKENS=100; S3_DELAY=50; S3_TIMEOUT=${S3_TIMEOUT:-300}
SOAK_N=${SOAK_N:-2000}
GW_CPUS=${GW_CPUS:-0} LOAD_CPUS=${LOAD_CPUS:-1}
if [ $QUICK = 1 ]; then DUR=3; SOAK_S=${SOAK_S:-10}; [ "$NS" = "1000 4000 8000" ] && NS="500 2000"; fi
SOAK_S=${SOAK_S:-30}
OUT=${OUT:-$(mktemp -d /tmp/chatd-bench.XXXXXX)}
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ "$(nproc)" -ge 2 ] || echo "run.sh: only $(nproc) CPU; pinning to CPU $GW_CPUS/$LOAD_CPUS may fail" >&2

PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "== $*" >&2; }

make -s -C "$HERE" >&2 || { echo "run.sh: build failed" >&2; exit 1; }

# Both CPUs are used; anything else running skews every figure. Warn, don't refuse.
busy=$(awk '/^cpu /{print $2+$3+$4+$7+$8, $5+$6}' /proc/stat; sleep 1; awk '/^cpu /{print $2+$3+$4+$7+$8, $5+$6}' /proc/stat)
busy=$(echo "$busy" | awk 'NR==1{b=$1; i=$2} NR==2{t=($1-b)+($2-i); printf "%d", t ? 100*($1-b)/t : 0}')
echo "CPU busy in the second before the run: ${busy}%" >"$OUT/notes.txt"
echo "pinning: the target on CPU $GW_CPUS; loadgen, fakeprov, redis-server on CPU $LOAD_CPUS" >>"$OUT/notes.txt"
[ "$busy" -lt 10 ] || echo "run.sh: warning: the machine is ${busy}% busy before the run; results will be skewed" |
    tee -a "$OUT/notes.txt" >&2

# ---------- processes ----------

stop() {  # PID: TERM, then KILL after 5 s
    local p=$1 i
    kill "$p" 2>/dev/null || return 0
    for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    return 0
}

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() {  # PORT PID: until it accepts, or the process died / 30 s passed
    local i
    for i in $(seq 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

start_fakeprov() {  # fakeprov args; sets FP_PID FP_PORT
    local log="$OUT/fakeprov.log"
    taskset -c "$LOAD_CPUS" "$BUILD/fakeprov" --port 0 "$@" 2>"$log" &
    FP_PID=$!; PIDS+=("$FP_PID")
    local i
    for i in $(seq 100); do
        FP_PORT=$(sed -n 's/^fakeprov listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$log")
        [ -n "$FP_PORT" ] && return 0
        sleep 0.05
    done
    echo "run.sh: fakeprov did not start: $(cat "$log")" >&2; exit 1
}

# Why a target cannot run, or nothing when it can.
target_missing() {
    case "$1" in
        direct) ;;
        chatd|chatd-curl) [ -x "$CHATD" ] || echo "$CHATD is not built yet (make it, or set CHATD=path)" ;;
        seed-fastapi)
            $PY -c 'import fastapi, uvicorn, httpx, uvloop, httptools, pydantic' 2>/dev/null ||
                echo "python deps missing: apt-get install -y python3-fastapi uvicorn python3-httpx python3-uvloop python3-httptools python3-pydantic" ;;
        portkey)
            command -v node >/dev/null || { echo "node is not installed"; return; }
            [ -f "$PEERS/portkey/node_modules/@portkey-ai/gateway/build/start-server.js" ] ||
                echo "npm install failed or was not run in $PEERS/portkey (see $OUT/npm.log)" ;;
        *) echo "unknown target" ;;
    esac
}

prepare_peers() {
    [ -d "$PEERS" ] || { cp -r "$PEERS_SRC" "$PEERS" 2>/dev/null && chmod -R u+w "$PEERS"; }
    if [[ " $TARGETS " == *" portkey "* ]] && [ -d "$PEERS/portkey" ] &&
       [ ! -d "$PEERS/portkey/node_modules" ] && command -v npm >/dev/null; then
        say "npm install in $PEERS/portkey"
        (cd "$PEERS/portkey" && timeout 300 npm install --no-audit --no-fund) >"$OUT/npm.log" 2>&1
    fi
}

# A CHATD_CONFIG whose model's first target is a port where nothing listens and
# whose second is the running fakeprov (S6); prints its path.
fallback_config() {
    local f="$OUT/fallback.json" dead
    dead=$(free_port)  # bound and closed at once: nothing listens there
    cat >"$f" <<JSON
{"providers": [{"name": "dead", "base_url": "http://127.0.0.1:$dead/v1"},
               {"name": "fakeprov", "base_url": "http://127.0.0.1:$FP_PORT/v1"}],
 "models": [{"name": "gpt-4o-mini", "targets": [{"provider": "dead", "model": "gpt-4o-mini"},
                                                {"provider": "fakeprov", "model": "gpt-4o-mini"}]}],
 "default_model": "gpt-4o-mini"}
JSON
    echo "$f"
}

# S7's client key, sent as "Authorization: Bearer"; the file holds only its SHA-256.
BENCH_KEY=sk-bench-limited-key
R_PID=""

# A CHATD_CONFIG with fakeprov as the one provider of the one model; with "key", one
# client key with every limit set but never reached in S7 (S7); prints its path.
# 6,000,000 requests a minute: a burst of 6 M (S1 makes < 0.5 M in 10 s), refilled at
# 100,000/s; 300 M tokens a minute (29 a stream); 1,000 streams (the load keeps 64 open).
limited_config() {
    local f="$OUT/limited-$1.json" keys="" hash
    if [ "$1" = key ]; then
        hash=$(printf %s "$BENCH_KEY" | "$CHATD" hash-key) || return 1
        keys=",
 \"keys\": [{\"name\": \"bench\", \"sha256\": \"$hash\", \"models\": [\"gpt-4o-mini\"],
           \"requests_per_minute\": 6000000, \"tokens_per_minute\": 300000000,
           \"max_concurrent_streams\": 1000}]"
    fi
    cat >"$f" <<JSON
{"providers": [{"name": "fakeprov", "base_url": "http://127.0.0.1:$FP_PORT/v1"}],
 "models": [{"name": "gpt-4o-mini", "targets": [{"provider": "fakeprov", "model": "gpt-4o-mini"}]}],
 "default_model": "gpt-4o-mini"$keys}
JSON
    echo "$f"
}

start_redis() {  # a throwaway redis-server on a free loopback port; sets R_PID R_PORT
    R_PORT=$(free_port)
    taskset -c "$LOAD_CPUS" redis-server --port "$R_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        >"$OUT/redis.log" 2>&1 &
    R_PID=$!; PIDS+=("$R_PID")
    wait_port "$R_PORT" "$R_PID" && return 0
    echo "run.sh: redis-server did not start: $(tail -3 "$OUT/redis.log")" >&2
    return 1
}

metrics() {  # the running chatd's /metrics (with the key: S7's key guards it too)
    curl -s -m 5 -H "Authorization: Bearer $BENCH_KEY" "http://127.0.0.1:$T_PORT/metrics"
}

# Starts target NAME against the running fakeprov; sets T_PID T_URL T_MODE T_HDRS.
# chatd-curl is chatd with UPSTREAM_NATIVE_HTTP=false (libcurl, not h1, talks to
# fakeprov); chatd-v1 is chatd's /v1/chat/completions; chatd-fallback is chatd whose model
# falls back from a refused connect to fakeprov. chatd-nolimit, chatd-key and
# chatd-redis (S7) read limited_config: without keys; with the limited key, limits in
# the process; the same with REDIS_URL on a fresh redis-server, fail-closed so that a
# Redis answer later than its 50 ms deadline is a 503, not a silently unlimited
# request. NO_WARMUP=1: measure it cold.
start_target() {
    local name=$1 port up="http://127.0.0.1:$FP_PORT/v1" cfg
    T_HDRS=() T_PID="" T_PORT=""
    case "$name" in
    direct) T_PID=$FP_PID; T_URL="$up/chat/completions"; T_MODE=openai; return 0 ;;
    chatd|chatd-curl|chatd-v1|chatd-fallback|chatd-nolimit|chatd-key|chatd-redis)
        port=$(free_port)
        local route=(OPENAI_BASE_URL="$up") path=/chat
        T_MODE=chatd
        [ "$name" = chatd-v1 ] && { path=/v1/chat/completions; T_MODE=openai; }
        # chatd-curl: libcurl for the provider too, as before chatd had its own client.
        [ "$name" = chatd-curl ] && route+=(UPSTREAM_NATIVE_HTTP=false)
        # Retries off and a breaker that never opens: every request pays the
        # refused connect and the move to the next target.
        [ "$name" = chatd-fallback ] &&
            route=(CHATD_CONFIG="$(fallback_config)" UPSTREAM_RETRIES=0 BREAKER_FAILURES=1000)
        case $name in
        chatd-nolimit) cfg=$(limited_config none) && route=(CHATD_CONFIG="$cfg") ;;
        chatd-key|chatd-redis)
            cfg=$(limited_config key) || return 1
            route=(CHATD_CONFIG="$cfg")
            T_HDRS=(--header "Authorization: Bearer $BENCH_KEY") ;;
        esac
        if [ "$name" = chatd-redis ]; then
            start_redis || return 1
            route+=(REDIS_URL="redis://127.0.0.1:$R_PORT" RATE_LIMIT_FAIL_OPEN=false)
        fi
        # An empty cwd: chatd reads .env there, and a developer's .env must not leak in.
        mkdir -p "$OUT/chatd-cwd"
        (cd "$OUT/chatd-cwd" && exec env -i PATH="$PATH" "${route[@]}" OPENAI_API_KEY=sk-bench \
            WORKERS=1 LOG_LEVEL=warning PORT="$port" HOST=127.0.0.1 MAX_CONCURRENT_STREAMS=20000 \
            taskset -c "$GW_CPUS" "$CHATD" >/dev/null 2>>"$OUT/chatd.log") &
        T_PID=$!; T_PORT=$port; T_URL="http://127.0.0.1:$port$path" ;;
    seed-fastapi)
        port=$(free_port)
        taskset -c "$GW_CPUS" "$PEERS/seed-fastapi/start.sh" "$port" "$up" >/dev/null 2>>"$OUT/seed.log" &
        T_PID=$!; T_URL="http://127.0.0.1:$port/chat"; T_MODE=chatd ;;
    portkey)
        port=$(free_port)
        taskset -c "$GW_CPUS" "$PEERS/portkey/start.sh" "$port" "$up" >/dev/null 2>>"$OUT/portkey.log" &
        T_PID=$!; T_URL="http://127.0.0.1:$port/v1/chat/completions"; T_MODE=openai
        T_HDRS=(--header "x-portkey-provider: openai" --header "x-portkey-custom-host: $up"
                --header "Authorization: Bearer sk-bench") ;;
    esac
    PIDS+=("$T_PID")
    wait_port "$port" "$T_PID" || { echo "run.sh: $name did not start (logs in $OUT)" >&2; return 1; }
    [ "${NO_WARMUP:-0}" = 1 ] && return 0
    # Warm-up: connection pools, JITs and lazy allocations, before anything is
    # measured. One round of 16 streams: S3's streams last 5 s each.
    loadgen --requests 16 --concurrency 16 --quiet >/dev/null 2>&1
    return 0
}

loadgen() {  # extra loadgen args; JSON on stdout
    # In the background and waited for, so a TERM to run.sh is handled at once
    # (bash runs traps only between foreground commands).
    taskset -c "$LOAD_CPUS" "$BUILD/loadgen" --url "$T_URL" --mode "$T_MODE" "${T_HDRS[@]}" --json "$@" &
    local p=$!
    PIDS+=("$p")
    wait "$p"
}

cpu_s() { awk -v t="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / t}' "/proc/$1/stat" 2>/dev/null || echo 0; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a - b}'; }
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# ---------- scenarios ----------

s1() {  # throughput: 20-token streams, no delay, 64 connections
    local t=$1
    start_fakeprov --tokens 20
    if start_target "$t"; then
        say "S1 $t: 64 connections, $DUR s"
        loadgen --concurrency 64 --duration "$DUR" --quiet >"$OUT/S1.$t.json"
    fi
    [ "$t" = direct ] || stop "$T_PID"
    stop "$FP_PID"
}

s2() {  # added latency: 200 streams/s open loop
    local t=$1
    start_fakeprov --tokens 20 --delay-ms 5 --first-delay-ms 0
    if start_target "$t"; then
        say "S2 $t: 200 streams/s, $DUR s"
        loadgen --rate 200 --duration "$DUR" --quiet >"$OUT/S2.$t.json"
    fi
    [ "$t" = direct ] || stop "$T_PID"
    stop "$FP_PID"
}

s3() {  # concurrency: N streams of 100 tokens 50 ms apart, fresh processes per N
    local t=$1 n
    for n in $NS; do
        start_fakeprov --tokens "$S3_TOKENS" --delay-ms "$S3_DELAY"
        if start_target "$t"; then
            say "S3 $t: $n concurrent streams"
            local idle c0 f0
            idle=$(status_kb "$T_PID" VmRSS); c0=$(cpu_s "$T_PID"); f0=$(cpu_s "$FP_PID")
            loadgen --streams "$n" --timeout "$S3_TIMEOUT" --quiet >"$OUT/S3.$t.$n.lg"
            printf '{"n":%s,"rss_idle_kb":%s,"rss_peak_kb":%s,"target_cpu_s":%s,"fakeprov_cpu_s":%s}\n' \
                "$n" "${idle:-0}" "$(status_kb "$T_PID" VmHWM)" \
                "$(minus "$(cpu_s "$T_PID")" "$c0")" "$(minus "$(cpu_s "$FP_PID")" "$f0")" \
                >"$OUT/S3.$t.$n.res"
        fi
        [ "$t" = direct ] || stop "$T_PID"
        stop "$FP_PID"
    done
}

s4() {  # cold burst: a fresh target, N streams at once; first token at once, then one per 300 ms
    local t=$1 n
    for n in $COLD_NS; do
        start_fakeprov --tokens 10 --delay-ms 300 --first-delay-ms 0
        if NO_WARMUP=1 start_target "$t"; then
            say "S4 $t: cold burst of $n streams"
            loadgen --streams "$n" --timeout 60 --quiet >"$OUT/S4.$t.$n.json"
        fi
        [ "$t" = direct ] || stop "$T_PID"
        stop "$FP_PID"
    done
}

s5() {  # /v1/chat/completions streaming: S1's load, OpenAI events relayed, ending in [DONE]
    local t=$1
    start_fakeprov --tokens 20
    if start_target "$t"; then
        say "S5 $t: 64 connections, $DUR s"
        loadgen --concurrency 64 --duration "$DUR" --quiet >"$OUT/S5.$t.json"
    fi
    [ "$t" = direct ] || stop "$T_PID"
    stop "$FP_PID"
}

s6() {  # fallback after a refused connect: S2's streams at 100 streams/s
    local t=$1
    start_fakeprov --tokens 20 --delay-ms 5 --first-delay-ms 0
    if start_target "$t"; then
        say "S6 $t: 100 streams/s, $DUR s"
        loadgen --rate 100 --duration "$DUR" --quiet >"$OUT/S6.$t.json"
    fi
    [ "$t" = direct ] || stop "$T_PID"
    stop "$FP_PID"
}

s7() {  # S1's load (20 tokens, no delay, 64 connections) with and without a limited key
    local t=$1
    if [ "$t" = chatd-redis ] && ! command -v redis-server >/dev/null; then
        echo "chatd-redis: skipped: redis-server is not installed (scripts/deps.sh)" |
            tee -a "$OUT/skipped.txt" >&2
        return 0
    fi
    start_fakeprov --tokens 20
    if start_target "$t"; then
        say "S7 $t: 64 connections, $DUR s"
        local c0 r0=0
        c0=$(cpu_s "$T_PID"); [ -n "$R_PID" ] && r0=$(cpu_s "$R_PID")
        loadgen --concurrency 64 --duration "$DUR" --quiet >"$OUT/S7.$t.json"
        # CPU seconds the target (and redis-server) spent: per stream, a figure that
        # other work on a shared machine skews far less than streams/s.
        printf '{"target_cpu_s":%s,"redis_cpu_s":%s}\n' "$(minus "$(cpu_s "$T_PID")" "$c0")" \
            "$([ -n "$R_PID" ] && minus "$(cpu_s "$R_PID")" "$r0" || echo 0)" >"$OUT/S7.$t.res"
        # Refusals by reason and Redis round trips: proof of which path was measured.
        [ "$t" = direct ] ||
            metrics | grep -E '^chatd_(limit_refused_total|redis_)' | grep -v _bucket >"$OUT/S7.$t.metrics"
    fi
    [ "$t" = direct ] || stop "$T_PID"
    [ -n "$R_PID" ] && { stop "$R_PID"; R_PID=""; }
    stop "$FP_PID"
}

active_streams() {  # chatd's open streams right now ("-" for direct: fakeprov has no gauge)
    [ "$1" = direct ] && { echo -; return; }
    metrics | awk '$1 == "chatd_active_streams" {print $2; found = 1} END {if (!found) print "-"}'
}

# Soak: SOAK_N streams kept open for SOAK_S s (closed loop: each connection starts its
# next 5 s stream, 50 tokens 100 ms apart, when one ends), the target's RSS and open
# streams sampled about once a second. The report takes "start" at 6 s (every stream
# open, each connection through one whole stream) and "end" at the last sample
# before the load stops starting streams.
s8() {
    local t=$1 lg t0 el
    start_fakeprov --tokens 50 --delay-ms 100
    if start_target "$t"; then
        say "S8 $t: $SOAK_N streams for $SOAK_S s"
        taskset -c "$LOAD_CPUS" "$BUILD/loadgen" --url "$T_URL" --mode "$T_MODE" "${T_HDRS[@]}" --json --quiet \
            --concurrency "$SOAK_N" --duration "$SOAK_S" --timeout 60 >"$OUT/S8.$t.json" &
        lg=$!; PIDS+=("$lg")
        t0=$(date +%s.%N)
        : >"$OUT/S8.$t.series"
        while kill -0 "$lg" 2>/dev/null; do
            el=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN {printf "%.2f", a - b}')
            echo "$el $(status_kb "$T_PID" VmRSS) $(active_streams "$t")" >>"$OUT/S8.$t.series"
            sleep 1
        done
        wait "$lg"
        sleep 1  # the last streams' state freed
        printf '{"n":%s,"duration_s":%s,"start_at_s":6,"rss_after_kb":%s,"rss_peak_kb":%s}\n' \
            "$SOAK_N" "$SOAK_S" "$(status_kb "$T_PID" VmRSS)" "$(status_kb "$T_PID" VmHWM)" \
            >"$OUT/S8.$t.res"
    fi
    [ "$t" = direct ] || stop "$T_PID"
    stop "$FP_PID"
}

# ---------- main ----------

[ $WITH_PEERS = 1 ] || [[ "$TARGETS" == *seed* || "$TARGETS" == *portkey* ]] && prepare_peers
RUN=()
for t in $TARGETS; do
    why=$(target_missing "$t")
    if [ -n "$why" ]; then
        echo "$t: skipped: $why" | tee -a "$OUT/skipped.txt" >&2
    else
        RUN+=("$t")
    fi
done
for s in S1 S2 S3 S4 S5 S6 S7 S8; do
    [ -z "$ONLY" ] || [[ " $ONLY " == *" $s "* ]] || continue
    for t in "${RUN[@]}"; do
        case $s in
        S1) s1 "$t" ;; S2) s2 "$t" ;; S3) s3 "$t" ;;
        S4) case $t in chatd-curl) ;; *) s4 "$t" ;; esac ;;
        S5) case $t in direct) s5 direct ;; chatd) s5 chatd-v1 ;; esac ;;
        S6) case $t in direct) s6 direct ;; chatd) s6 chatd; s6 chatd-fallback ;; esac ;;
        S7) case $t in direct) s7 direct ;; chatd) s7 chatd-nolimit; s7 chatd-key; s7 chatd-redis ;; esac ;;
        S8) case $t in direct | chatd) s8 "$t" ;; esac ;;
        esac
    done
done

echo "load average at the end (1/5/15 min): $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/notes.txt"
{
    echo "# chatd bench — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
    echo
    $PY "$HERE/report.py" "$OUT"
    echo
    cat "$OUT/skipped.txt" "$OUT/notes.txt" 2>/dev/null | sed 's/^/- /'
} | tee "$OUT/results.md"
# The same results as SVG charts; without python3-matplotlib, a warning (report.py's reason).
$PY "$HERE/report.py" "$OUT" --charts "$OUT/charts" >/dev/null ||
    echo "run.sh: warning: no charts drawn (see above); results.md is complete" >&2
echo "(raw results in $OUT)" >&2
