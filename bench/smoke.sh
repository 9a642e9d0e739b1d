#!/usr/bin/env bash
# bench/smoke.sh — a self-check of the bench tools and scenarios in under 20 seconds, for CI.
#   1. build bench/build/{fakeprov,loadgen}
#   2. loadgen --selftest (canned streams split at every byte)
#   3. fakeprov + loadgen in openai mode, 8 connections for 1 s: every stream valid
#   4. the same load in chatd mode must be rejected (fakeprov speaks OpenAI, not chatd)
#   5. the scenarios of run.sh that need chatd (build/chatd, or CHATD), each short and
#      checked only for valid streams, never for timing: S4 cold burst (a fresh chatd,
#      16 streams at once), S5 /v1 streaming, S3's 50 streams at once through h1 and
#      through libcurl (UPSTREAM_NATIVE_HTTP=false), S6 fallback from a refused connect,
#      S7 a limited client key in-process (plus: a tight key's 429s count as errors)
#      and with a throwaway redis-server, S8 a 3 s soak of 200 streams with RSS read
# Prints one summary line on success; the failing step's output otherwise.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
B=$HERE/build
CHATD=${CHATD:-$(dirname "$HERE")/build/chatd}
TMP=$(mktemp -d /tmp/bench-smoke.XXXXXX)
FP=""
CD=""
RD=""
cleanup() {
    [ -n "$RD" ] && kill "$RD" 2>/dev/null && wait "$RD" 2>/dev/null
    [ -n "$CD" ] && kill "$CD" 2>/dev/null && wait "$CD" 2>/dev/null
    [ -n "$FP" ] && kill "$FP" 2>/dev/null && wait "$FP" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
    echo "bench smoke: FAILED: $1" >&2
    [ -f "$2" ] && cat "$2" >&2
    echo "bench smoke: $PASSED passed, 1 failed"
    exit 1
}
PASSED=0

timeout 60 make -s -C "$HERE" >"$TMP/make.log" 2>&1 || fail "build" "$TMP/make.log"
timeout 5 "$B/loadgen" --selftest >"$TMP/selftest.log" 2>&1 || fail "loadgen --selftest" "$TMP/selftest.log"
PASSED=$((PASSED + 1))

"$B/fakeprov" --port 0 --tokens 20 --delay-ms 1 2>"$TMP/fakeprov.log" &
FP=$!
PORT=""
for _ in $(seq 100); do
    PORT=$(sed -n 's/^fakeprov listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$TMP/fakeprov.log")
    [ -n "$PORT" ] && break
    sleep 0.02
done
[ -n "$PORT" ] || fail "fakeprov did not start" "$TMP/fakeprov.log"
URL=http://127.0.0.1:$PORT/v1/chat/completions

timeout 5 "$B/loadgen" --url "$URL" --mode openai --concurrency 8 --duration 1 --json \
    >"$TMP/openai.json" 2>"$TMP/openai.log" || fail "openai-mode load had failed streams" "$TMP/openai.log"
grep -q '"completed":[1-9]' "$TMP/openai.json" || fail "no stream completed" "$TMP/openai.json"
PASSED=$((PASSED + 1))

# fakeprov's events carry no "sequence": loadgen must call every one of them invalid.
timeout 5 "$B/loadgen" --url "$URL" --mode chatd --requests 16 --concurrency 4 --json \
    >"$TMP/chatd.json" 2>"$TMP/chatd.log" && fail "chatd-mode validator accepted OpenAI events" "$TMP/chatd.log"
grep -q '"invalid":16,' "$TMP/chatd.json" || fail "chatd-mode validator verdicts" "$TMP/chatd.json"
PASSED=$((PASSED + 1))

# ---- the chatd scenarios ----
[ -x "$CHATD" ] || fail "$CHATD is missing: build chatd first (make)" /dev/null
kill "$FP" 2>/dev/null; wait "$FP" 2>/dev/null; FP=""

start_fp() {  # fakeprov args; sets FP FP_PORT
    "$B/fakeprov" --port 0 "$@" 2>"$TMP/fakeprov.log" &
    FP=$!
    FP_PORT=""
    for _ in $(seq 100); do
        FP_PORT=$(sed -n 's/^fakeprov listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$TMP/fakeprov.log")
        [ -n "$FP_PORT" ] && return 0
        sleep 0.02
    done
    fail "fakeprov did not start" "$TMP/fakeprov.log"
}

start_chatd() {  # env assignments; sets CD CD_PORT (a fresh chatd, nothing sent to it yet)
    : >"$TMP/chatd.log"
    (cd "$TMP" && exec env -i PATH="$PATH" "$@" WORKERS=1 LOG_LEVEL=info PORT=0 HOST=127.0.0.1 \
        "$CHATD" >"$TMP/chatd.log" 2>&1) &
    CD=$!
    CD_PORT=""
    for _ in $(seq 200); do
        CD_PORT=$(sed -n 's/.*"event":"server_started","listen":"127.0.0.1:\([0-9]*\)".*/\1/p' "$TMP/chatd.log")
        [ -n "$CD_PORT" ] && return 0
        kill -0 "$CD" 2>/dev/null || break
        sleep 0.05
    done
    fail "chatd did not start ($*)" "$TMP/chatd.log"
}

stop_all() {
    kill "$CD" "$FP" 2>/dev/null
    wait "$CD" "$FP" 2>/dev/null
    CD="" FP=""
}

# S4 cold burst: first token at once, then one per 100 ms; 16 streams on a fresh chatd.
start_fp --tokens 3 --delay-ms 100 --first-delay-ms 0
start_chatd OPENAI_BASE_URL="http://127.0.0.1:$FP_PORT/v1"
timeout 20 "$B/loadgen" --url "http://127.0.0.1:$CD_PORT/chat" --mode chatd --streams 16 --timeout 15 \
    --json >"$TMP/s4.json" 2>"$TMP/s4.log" || fail "S4 cold burst had failed streams" "$TMP/s4.log"
grep -q '"completed":16,' "$TMP/s4.json" || fail "S4: not every stream completed" "$TMP/s4.json"
PASSED=$((PASSED + 1))

# S5 /v1 streaming: OpenAI events relayed, [DONE] at the end.
timeout 10 "$B/loadgen" --url "http://127.0.0.1:$CD_PORT/v1/chat/completions" --mode openai \
    --concurrency 4 --requests 16 --json >"$TMP/s5.json" 2>"$TMP/s5.log" ||
    fail "S5 /v1 streaming had failed streams" "$TMP/s5.log"
grep -q '"completed":16,' "$TMP/s5.json" || fail "S5: not every stream completed" "$TMP/s5.json"
PASSED=$((PASSED + 1))
stop_all

# S3's two clients (targets chatd and chatd-curl): 50 streams at once through h1, then
# through libcurl (UPSTREAM_NATIVE_HTTP=false).
start_fp --tokens 5 --delay-ms 20
for native in true false; do
    start_chatd OPENAI_BASE_URL="http://127.0.0.1:$FP_PORT/v1" UPSTREAM_NATIVE_HTTP=$native
    timeout 20 "$B/loadgen" --url "http://127.0.0.1:$CD_PORT/chat" --mode chatd --streams 50 \
        --timeout 15 --json >"$TMP/s3.$native.json" 2>"$TMP/s3.$native.log" ||
        fail "S3 (UPSTREAM_NATIVE_HTTP=$native) had failed streams" "$TMP/s3.$native.log"
    grep -q '"completed":50,' "$TMP/s3.$native.json" ||
        fail "S3 (UPSTREAM_NATIVE_HTTP=$native): not every stream completed" "$TMP/s3.$native.json"
    kill "$CD" 2>/dev/null; wait "$CD" 2>/dev/null; CD=""
done
PASSED=$((PASSED + 1))
stop_all

# S6 fallback: the model's first target refuses the connection, the second is fakeprov.
start_fp --tokens 3 --delay-ms 1 --first-delay-ms 0
DEAD=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$TMP/fallback.json" <<JSON
{"providers": [{"name": "dead", "base_url": "http://127.0.0.1:$DEAD/v1"},
               {"name": "fakeprov", "base_url": "http://127.0.0.1:$FP_PORT/v1"}],
 "models": [{"name": "gpt-4o-mini", "targets": [{"provider": "dead", "model": "gpt-4o-mini"},
                                                {"provider": "fakeprov", "model": "gpt-4o-mini"}]}],
 "default_model": "gpt-4o-mini"}
JSON
start_chatd CHATD_CONFIG="$TMP/fallback.json" UPSTREAM_RETRIES=0 BREAKER_FAILURES=1000
timeout 10 "$B/loadgen" --url "http://127.0.0.1:$CD_PORT/chat" --mode chatd --concurrency 2 --requests 8 \
    --json >"$TMP/s6.json" 2>"$TMP/s6.log" || fail "S6 fallback had failed streams" "$TMP/s6.log"
grep -q '"completed":8,' "$TMP/s6.json" || fail "S6: not every stream completed" "$TMP/s6.json"
# Every stream completed although the first target refuses: the fallback served them.
grep -q '"event":"upstream_attempt".*"provider":"dead"' "$TMP/chatd.log" ||
    fail "S6: no attempt on the dead target was logged" "$TMP/chatd.log"
PASSED=$((PASSED + 1))
stop_all

# S7 limited key: one provider, one model, a key with limits that 300 streams never
# reach, and a tight key (5 requests a minute) whose refusals loadgen must count.
KEY=sk-bench-smoke-key TIGHT=sk-bench-smoke-tight
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_fp --tokens 3 --delay-ms 1 --first-delay-ms 0
cat >"$TMP/limited.json" <<JSON
{"providers": [{"name": "fakeprov", "base_url": "http://127.0.0.1:$FP_PORT/v1"}],
 "models": [{"name": "gpt-4o-mini", "targets": [{"provider": "fakeprov", "model": "gpt-4o-mini"}]}],
 "default_model": "gpt-4o-mini",
 "keys": [{"name": "bench", "sha256": "$(printf %s "$KEY" | "$CHATD" hash-key)",
           "requests_per_minute": 6000000, "tokens_per_minute": 300000000, "max_concurrent_streams": 1000},
          {"name": "tight", "sha256": "$(printf %s "$TIGHT" | "$CHATD" hash-key)", "requests_per_minute": 5}]}
JSON
limited_load() {  # NAME: 300 streams with the key, all valid, and the key's limits applied
    timeout 30 "$B/loadgen" --url "http://127.0.0.1:$CD_PORT/chat" --mode chatd --concurrency 8 \
        --requests 300 --header "Authorization: Bearer $KEY" --json >"$TMP/$1.json" 2>"$TMP/$1.log" ||
        fail "$1 had failed streams" "$TMP/$1.log"
    grep -q '"completed":300,' "$TMP/$1.json" || fail "$1: not every stream completed" "$TMP/$1.json"
    curl -s -m 5 -D "$TMP/$1.hdr" -o /dev/null -H "Authorization: Bearer $KEY" \
        -H 'Content-Type: application/json' -d '{"message":"hi"}' "http://127.0.0.1:$CD_PORT/chat"
    grep -qi '^x-ratelimit-limit-requests: 6000000' "$TMP/$1.hdr" ||
        fail "$1: the key's limits were not applied (no x-ratelimit headers)" "$TMP/$1.hdr"
}
start_chatd CHATD_CONFIG="$TMP/limited.json"
limited_load S7-in-process
# A refused request must show up as an error, not vanish: 10 requests, 5 admitted.
timeout 10 "$B/loadgen" --url "http://127.0.0.1:$CD_PORT/chat" --mode chatd --concurrency 1 \
    --requests 10 --header "Authorization: Bearer $TIGHT" --json >"$TMP/s7t.json" 2>"$TMP/s7t.log" &&
    fail "S7: loadgen passed a run with refused requests" "$TMP/s7t.json"
grep -q '"completed":5,.*"err_http_status":5,' "$TMP/s7t.json" ||
    fail "S7: 5 of 10 requests with a 5-a-minute key should be refused and counted" "$TMP/s7t.json"
PASSED=$((PASSED + 1))
kill "$CD" 2>/dev/null; wait "$CD" 2>/dev/null; CD=""

command -v redis-server >/dev/null || fail "redis-server is missing: run scripts/deps.sh" /dev/null
RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no >"$TMP/redis.log" 2>&1 &
RD=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$RPORT") 2>/dev/null && break; sleep 0.05; done
start_chatd CHATD_CONFIG="$TMP/limited.json" REDIS_URL="redis://127.0.0.1:$RPORT"
limited_load S7-redis
curl -s -m 5 -H "Authorization: Bearer $KEY" "http://127.0.0.1:$CD_PORT/metrics" >"$TMP/s7r.metrics"
grep -q '^chatd_redis_round_trip_seconds_count [1-9]' "$TMP/s7r.metrics" ||
    fail "S7: chatd made no Redis round trip (REDIS_URL not used)" "$TMP/s7r.metrics"
PASSED=$((PASSED + 1))
kill "$RD" 2>/dev/null; wait "$RD" 2>/dev/null; RD=""
stop_all

# S8 soak, short: 200 streams kept open for 3 s (1 s streams); RSS read while they run.
start_fp --tokens 10 --delay-ms 100
start_chatd OPENAI_BASE_URL="http://127.0.0.1:$FP_PORT/v1"
timeout 30 "$B/loadgen" --url "http://127.0.0.1:$CD_PORT/chat" --mode chatd --concurrency 200 \
    --duration 3 --json >"$TMP/s8.json" 2>"$TMP/s8.log" &
LG=$!
sleep 1.5
RSS0=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$CD/status")
wait "$LG" || fail "S8 soak had failed streams" "$TMP/s8.log"
RSS1=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$CD/status")
grep -q '"completed":[1-9][0-9][0-9]' "$TMP/s8.json" || fail "S8: fewer than 100 streams completed" "$TMP/s8.json"
[ "${RSS0:-0}" -gt 0 ] && [ "${RSS1:-0}" -gt 0 ] || fail "S8: chatd's RSS could not be read" /dev/null
PASSED=$((PASSED + 1))
stop_all

echo "bench smoke: $PASSED passed, 0 failed"
