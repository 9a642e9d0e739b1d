#!/usr/bin/env bash
# bench/smoke.sh — a self-check of the bench tools in under 10 seconds, for CI.
#   1. build bench/build/{fakeprov,loadgen}
#   2. loadgen --selftest (canned streams split at every byte)
#   3. fakeprov + loadgen in openai mode, 8 connections for 1 s: every stream valid
#   4. the same load in chatd mode must be rejected (fakeprov speaks OpenAI, not chatd)
# Prints one summary line on success; the failing step's output otherwise.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
B=$HERE/build
TMP=$(mktemp -d /tmp/bench-smoke.XXXXXX)
FP=""
cleanup() {
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

echo "bench smoke: $PASSED passed, 0 failed"
