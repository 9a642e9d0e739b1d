#!/usr/bin/env bash
# bench/smoke.sh — a self-check of the bench tools and scenarios in under 20 seconds, for CI.
#   1. build bench/build/{fakeprov,loadgen}
#   2. loadgen --selftest (canned streams split at every byte)
#   3. fakeprov + loadgen in openai mode, 8 connections for 1 s: every stream valid
#   4. the same load in chatd mode must be rejected (fakeprov speaks OpenAI, not chatd)
#   5. the scenarios of run.sh that need chatd (build/chatd, or CHATD), each short and
#      checked only for valid streams, never for timing: S4 cold burst (a fresh chatd,
#      16 streams at once), S5 /v1 streaming, S6 fallback from a refused connect
# Prints one summary line on success; the failing step's output otherwise.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
B=$HERE/build
CHATD=${CHATD:-$(dirname "$HERE")/build/chatd}
TMP=$(mktemp -d /tmp/bench-smoke.XXXXXX)
FP=""
CD=""
cleanup() {
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

echo "bench smoke: $PASSED passed, 0 failed"
