#!/bin/sh
# make demo: chatd's web page with no provider and no key. Starts the bench's
# fake provider in its typing mode (canned answers, 20-60 ms between tokens,
# usage at the end) and chatd pointed at it, prints the page's URL, and stops
# both on Ctrl-C. Nothing leaves this machine. PORT (default 8000) is chatd's port.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PORT=${PORT:-8000}
DIR="$ROOT/build/demo" # logs, and chatd's working directory (so no .env is read)
FP_PID=
CHATD_PID=

stop_all() {
    trap - EXIT INT TERM
    for pid in $CHATD_PID $FP_PID; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in $CHATD_PID $FP_PID; do
        wait "$pid" 2>/dev/null || true
    done
}
trap stop_all EXIT
trap 'echo; echo "demo: stopping chatd and the fake provider."; exit 0' INT TERM

# wait_for FILE PATTERN PID: until a line of FILE matches, for up to 10 s, while PID lives.
wait_for() {
    i=0
    while ! grep -q "$2" "$1" 2>/dev/null; do
        if ! kill -0 "$3" 2>/dev/null || [ $i -ge 100 ]; then
            return 1
        fi
        sleep 0.1
        i=$((i + 1))
    done
}

make -s -C "$ROOT" build/chatd
make -s -C "$ROOT/bench" build/fakeprov
mkdir -p "$DIR"
# Emptied here, not by the redirections below: those run in the background
# children, after wait_for may already have read last run's lines.
: >"$DIR/fakeprov.log"
: >"$DIR/chatd.log"

"$ROOT/bench/build/fakeprov" --typing --port 0 2>"$DIR/fakeprov.log" &
FP_PID=$!
if ! wait_for "$DIR/fakeprov.log" '^fakeprov listening on' "$FP_PID"; then
    echo "demo: the fake provider did not start. Its log is below. Run 'make -C bench' to check it builds." >&2
    cat "$DIR/fakeprov.log" >&2
    exit 1
fi
FP_PORT=$(sed -n 's/^fakeprov listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$DIR/fakeprov.log")

# Empty values mean "the default"; they also override any of these in the caller's environment.
(cd "$DIR" && exec env OPENAI_BASE_URL="http://127.0.0.1:$FP_PORT/v1" OPENAI_API_KEY= \
    OPENAI_MODEL=demo-typist ALLOWED_MODELS=demo-typist,demo-typist-2 CLIENT_API_KEYS= \
    CHATD_CONFIG= HOST=127.0.0.1 PORT="$PORT" UI_ENABLED=true DRAIN_SECONDS=1 \
    "$ROOT/build/chatd") >"$DIR/chatd.log" 2>&1 &
CHATD_PID=$!
if ! wait_for "$DIR/chatd.log" '"server_started"' "$CHATD_PID"; then
    echo "demo: chatd did not start on 127.0.0.1:$PORT. Its output is below (is the port in use? Try PORT=8080 make demo)." >&2
    cat "$DIR/chatd.log" >&2
    exit 1
fi

cat <<MSG

  chatd demo is running. Open http://127.0.0.1:$PORT/ in your browser.

  The provider is a fake one (bench/build/fakeprov --typing on 127.0.0.1:$FP_PORT):
  canned answers, typed word by word; no key, nothing leaves this machine.
  chatd's log: build/demo/chatd.log

  Press Ctrl-C to stop both.

MSG
wait "$CHATD_PID" || true
echo "demo: chatd exited; its log is build/demo/chatd.log." >&2
