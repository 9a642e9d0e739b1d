#!/usr/bin/env bash
# scripts/container-check.sh — builds chatd's container image and checks it end to end.
#
#   scripts/container-check.sh            (from anywhere; run as root on a fresh machine)
#
# 1. Builds the Dockerfile: with `docker build` when a Docker engine answers
#    `docker info`, otherwise with podman through ../shared/container/check.sh
#    (which installs podman and makes debian:bookworm-slim locally).
# 2. Starts bench/build/fakeprov (a fake OpenAI-compatible provider) on 127.0.0.1.
# 3. Runs the image on the host network against it and checks: /health, one
#    streamed POST /chat, the JSON logs (correlation id present, API key absent),
#    the non-root user, the image's HEALTHCHECK, and a clean SIGTERM shutdown.
#
# Prints one line per check, then "container-check: N passed, N failed" and PASS or
# FAIL; exits 1 on any failure. The container and fakeprov are always removed/killed.
# Environment: CHATD_IMAGE (tag, default localhost/chatd:check),
#              KEEP_WORKDIR=1 (keep the temp folder with logs even on success).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED="$(dirname "$ROOT")/shared" # the shared folder lies beside the repo: ../shared
CHECK_SH="$SHARED/container/check.sh"
TAG=${CHATD_IMAGE:-localhost/chatd:check}
NAME="chatd-container-check-$$"
API_KEY="sk-container-check-secret" # must never show up in the container's logs
TOKENS=5                            # fakeprov sends this many content deltas
PY=/usr/bin/python3                 # the system python: no pyenv/venv surprises
WORK=$(mktemp -d /tmp/chatd-container-check.XXXXXX)
START=$SECONDS

ENGINE=""        # docker or podman
CID=""           # the running container's id
FAKEPROV_PID=""  # the fake provider's pid
FAKE_PORT=""
PORT=""          # chatd's port inside (= outside: host network)
CORR_ID=""       # X-Correlation-Id of the /chat response
PASSED=0
FAILED=0

# ---------------------------------------------------------------------------
# Reporting

ok() {
    PASSED=$((PASSED + 1))
    printf 'ok   %s\n' "$*"
}

bad() {
    FAILED=$((FAILED + 1))
    printf 'FAIL %s\n' "$*"
}

# The last lines of a file, indented, for a failure's context.
show() {
    local label=$1 file=$2
    [ -s "$file" ] || return 0
    printf '     --- %s (last 30 lines of %s)\n' "$label" "$file"
    tail -n 30 "$file" | sed 's/^/     | /'
}

finish() {
    local secs=$((SECONDS - START))
    printf 'container-check: %d passed, %d failed\n' "$PASSED" "$FAILED"
    if [ "$FAILED" -eq 0 ] && [ "$PASSED" -gt 0 ]; then
        printf 'PASS (%d s)\n' "$secs"
        exit 0
    fi
    printf 'FAIL (%d s; logs kept in %s)\n' "$secs" "$WORK"
    exit 1
}

# A failure after which nothing else can be checked (no image, no server …).
die() {
    bad "$*"
    collect_logs
    show "container logs" "$WORK/container.log"
    show "container stderr" "$WORK/container.err"
    show "fakeprov stderr" "$WORK/fakeprov.err"
    finish
}

# Runs on every exit: the container and fakeprov must not outlive the script.
# shellcheck disable=SC2317  # reached through the trap
cleanup() {
    if [ -n "$ENGINE" ]; then
        "$ENGINE" rm -f "$NAME" >/dev/null 2>&1 || true
    fi
    if [ -n "$FAKEPROV_PID" ]; then
        kill "$FAKEPROV_PID" 2>/dev/null || true
        wait "$FAKEPROV_PID" 2>/dev/null || true
    fi
    if [ "$FAILED" -eq 0 ] && [ "${KEEP_WORKDIR:-0}" != 1 ]; then
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'bad "interrupted"; finish' INT TERM

# ---------------------------------------------------------------------------
# Host side: tools the script itself runs (curl, python3) and fakeprov's build.

ensure_host_tools() {
    # fakeprov is built from bench/ on the host; these are its build deps.
    local pkgs="curl python3 build-essential pkg-config libevent-dev libjansson-dev libhttp-parser-dev"
    local missing="" p
    for p in $pkgs; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" != 0 ]; then
        die "host tools: these Debian packages are missing:$missing. Installing them needs root. Run as root, or: sudo apt-get install -y$missing"
    fi
    echo "container-check: installing:$missing" >&2
    # shellcheck disable=SC2086  # $missing is a list of package names
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends $missing; } >"$WORK/apt.log" 2>&1; then
        show "apt-get" "$WORK/apt.log"
        die "host tools: apt-get could not install$missing. The package index may be unreachable. Check the network and apt sources, then rerun."
    fi
}

# A port that is free on 127.0.0.1 right now (the kernel picks it). chatd's
# HEALTHCHECK needs a fixed PORT, so PORT=0 (chatd picking) is not an option here.
free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_fakeprov() {
    if ! make -C "$ROOT/bench" build/fakeprov >"$WORK/bench-build.log" 2>&1; then
        show "make -C bench" "$WORK/bench-build.log"
        die "fakeprov: make -C bench failed. See the compiler output above. Fix bench/ or install its build packages (bench/README.md)."
    fi
    "$ROOT/bench/build/fakeprov" --port 0 --tokens "$TOKENS" 2>"$WORK/fakeprov.err" &
    FAKEPROV_PID=$!
    # fakeprov prints "fakeprov listening on 127.0.0.1:P" once it listens: read P
    # from there, so there is no window in which another process takes the port.
    local deadline=$((SECONDS + 10)) line
    while [ "$SECONDS" -lt "$deadline" ]; do
        line=$(grep -m1 -o 'listening on 127\.0\.0\.1:[0-9]*' "$WORK/fakeprov.err" 2>/dev/null)
        if [ -n "$line" ]; then
            FAKE_PORT=${line##*:}
            ok "fakeprov listens on 127.0.0.1:$FAKE_PORT ($TOKENS tokens per stream)"
            return 0
        fi
        kill -0 "$FAKEPROV_PID" 2>/dev/null || break
        sleep 0.05
    done
    die "fakeprov: no 'listening on' line within 10 s. It exited or hung at start-up. See its stderr above."
}

# ---------------------------------------------------------------------------
# The container engine: docker when one answers, else podman via check.sh.

pick_engine() {
    if command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; then
        ENGINE=docker
    elif [ -f "$CHECK_SH" ]; then
        ENGINE=podman
    else
        die "engine: no way to build the image. No Docker engine answers 'docker info', and the podman fallback $CHECK_SH (the shared folder beside the repo) does not exist. Start a Docker daemon, or run this from a checkout that has ../shared next to it."
    fi
}

build_image() {
    local t0=$SECONDS rc
    if [ "$ENGINE" = docker ]; then
        docker build -t "$TAG" "$ROOT" >"$WORK/build.log" 2>&1
        rc=$?
    else
        # BUILDAH_FORMAT=docker: podman's default OCI format silently drops
        # HEALTHCHECK (the OCI image spec has no such field).
        BUILDAH_FORMAT=docker bash "$CHECK_SH" build "$ROOT" "$TAG" >"$WORK/build.log" 2>&1
        rc=$?
    fi
    if [ "$rc" -ne 0 ]; then
        show "build" "$WORK/build.log"
        die "image: $ENGINE build failed (exit $rc). See the build output above. Fix the Dockerfile or the code it compiles, then rerun."
    fi
    local size mb
    size=$("$ENGINE" image inspect "$TAG" --format '{{.Size}}' 2>/dev/null)
    mb=$(( ${size:-0} / 1000000 ))
    ok "image $TAG builds with $ENGINE ($((SECONDS - t0)) s, $mb MB)"
}

# The image's configuration: user, HEALTHCHECK, stop signal, port, command.
# docker keeps the healthcheck under Config.Healthcheck, podman under HealthCheck.
check_image_config() {
    "$ENGINE" image inspect "$TAG" >"$WORK/image.json" 2>&1 || die "image: inspect $TAG failed"
    local msg
    if msg=$("$PY" - "$WORK/image.json" <<'PY'
import json, sys
img = json.load(open(sys.argv[1]))[0]
cfg = img.get("Config") or {}
hc = cfg.get("Healthcheck") or img.get("HealthCheck") or img.get("Healthcheck") or {}
problems = []
user = (cfg.get("User") or "").split(":")[0]
if user in ("", "0", "root"):
    problems.append(f"runs as root (USER {user!r})")
test = hc.get("Test") or []
if not test or test[0] not in ("CMD", "CMD-SHELL"):
    problems.append(f"no HEALTHCHECK ({test!r})")
if (cfg.get("StopSignal") or "SIGTERM") not in ("SIGTERM", "15", "TERM"):
    problems.append(f"STOPSIGNAL is {cfg.get('StopSignal')}")
if "8000/tcp" not in (cfg.get("ExposedPorts") or {}):
    problems.append("port 8000 not exposed")
env = dict(e.split("=", 1) for e in cfg.get("Env") or [])
if env.get("HOST") != "0.0.0.0" or env.get("PORT") != "8000":
    problems.append(f"HOST/PORT are {env.get('HOST')}/{env.get('PORT')}")
if (cfg.get("Cmd") or []) != ["chatd"]:
    problems.append(f"CMD is {cfg.get('Cmd')}")
if problems:
    print("; ".join(problems)); sys.exit(1)
print(f"USER {cfg.get('User')}, HEALTHCHECK {test[0]}, STOPSIGNAL {cfg.get('StopSignal')}, "
      f"WORKDIR {cfg.get('WorkingDir')}, CMD {cfg.get('Cmd')}")
PY
    ); then
        ok "image config: $msg"
    else
        bad "image config: $msg"
    fi
}

run_container() {
    PORT=$(free_port)
    local env=(-e "OPENAI_BASE_URL=http://127.0.0.1:$FAKE_PORT/v1" -e "OPENAI_API_KEY=$API_KEY"
               -e "PORT=$PORT" -e "LOG_LEVEL=info")
    local rc
    if [ "$ENGINE" = docker ]; then
        docker run -d --name "$NAME" --network host --ulimit nofile=20000:20000 \
            "${env[@]}" "$TAG" >"$WORK/run.out" 2>"$WORK/run.err"
        rc=$?
    else
        bash "$CHECK_SH" run "$TAG" --name "$NAME" "${env[@]}" -- >"$WORK/run.out" 2>"$WORK/run.err"
        rc=$?
    fi
    CID=$(tail -n 1 "$WORK/run.out")
    if [ "$rc" -ne 0 ] || [ -z "$CID" ]; then
        show "run" "$WORK/run.err"
        die "container: $ENGINE run failed (exit $rc). The engine could not start the image. See its error above."
    fi
}

running() {
    [ "$("$ENGINE" inspect -f '{{.State.Running}}' "$NAME" 2>/dev/null)" = true ]
}

# Snapshot of the container's output: stdout (chatd's JSON log) and stderr apart.
collect_logs() {
    [ -n "$ENGINE" ] && [ -n "$CID" ] || return 0
    "$ENGINE" logs "$NAME" >"$WORK/container.log" 2>"$WORK/container.err" || true
}

# Polls /health until it answers 200, up to a deadline; gives up at once if the
# container exits (a config error, say) rather than waiting out the deadline.
wait_healthy() {
    local t0=$SECONDS deadline=$((SECONDS + 60)) code
    while [ "$SECONDS" -lt "$deadline" ]; do
        code=$(curl -s -o "$WORK/health.json" -w '%{http_code}' --max-time 2 \
            "http://127.0.0.1:$PORT/health" 2>/dev/null)
        if [ "$code" = 200 ]; then
            if grep -q '"status":"healthy"' "$WORK/health.json"; then
                ok "container ${CID:0:12} up; GET /health 200 healthy after $((SECONDS - t0)) s (port $PORT)"
                return 0
            fi
            die "health: GET /health answered 200 with $(head -c 200 "$WORK/health.json"). The body should be {\"status\":\"healthy\",…}. Check src/api/routes.c."
        fi
        running || die "container: exited before /health answered (exit code $("$ENGINE" inspect -f '{{.State.ExitCode}}' "$NAME" 2>/dev/null)). chatd stopped at start-up. See its logs above."
        sleep 0.2
    done
    die "health: GET /health did not answer 200 within 60 s (last: ${code:-none}). chatd is running but not serving on 127.0.0.1:$PORT. Check HOST/PORT and the logs above."
}

# ---------------------------------------------------------------------------
# Checks against the running container

check_chat_stream() {
    local rc
    curl -sS -N --max-time 30 -D "$WORK/chat.headers" -o "$WORK/chat.body" \
        -H 'Content-Type: application/json' \
        --data '{"message":"Hello from the container check"}' \
        "http://127.0.0.1:$PORT/chat" 2>"$WORK/chat.err"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        show "curl" "$WORK/chat.err"
        bad "POST /chat: curl failed (exit $rc)"
        return
    fi
    local out
    if out=$("$PY" - "$WORK/chat.headers" "$WORK/chat.body" "$TOKENS" <<'PY'
import json, sys
head = open(sys.argv[1], encoding="utf-8", errors="replace").read()
body = open(sys.argv[2], encoding="utf-8").read()
tokens = int(sys.argv[3])
# the last header block (a "100 Continue" would come first)
block = [b for b in head.replace("\r\n", "\n").split("\n\n") if b.strip()][-1].split("\n")
status = block[0].split()[1]
hdr = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in block[1:] if ":" in l)}
def fail(msg):
    print(msg); sys.exit(1)
if status != "200":
    fail(f"status {status}, body {body[:300]!r}")
if not hdr.get("content-type", "").startswith("text/event-stream"):
    fail(f"Content-Type {hdr.get('content-type')!r}")
cid = hdr.get("x-correlation-id")
if not cid:
    fail("no X-Correlation-Id header")
if not body.endswith("\n\n"):
    fail(f"body does not end with a blank line: {body[-80:]!r}")
events = []
for chunk in body.split("\n\n")[:-1]:
    lines = chunk.split("\n")
    data = [l for l in lines if not l.startswith(":")]   # SSE comments are allowed
    if not data:
        continue
    if len(data) != 1 or not data[0].startswith("data: "):
        fail(f"not one 'data: ' line: {chunk[:200]!r}")
    events.append(json.loads(data[0][6:]))
if not events:
    fail("no events")
for i, e in enumerate(events):
    if e.get("sequence") != i:
        fail(f"event {i} has sequence {e.get('sequence')}")
    if e.get("correlation_id") != cid:
        fail(f"event {i} has correlation_id {e.get('correlation_id')}, header {cid}")
finals = [e for e in events if e.get("is_final") is True]
if len(finals) != 1 or events[-1].get("is_final") is not True:
    fail(f"{len(finals)} final events, last is_final={events[-1].get('is_final')}")
last = events[-1]
if last.get("status") != "completed":
    fail(f"final status {last.get('status')!r}: {json.dumps(last)[:400]}")
content = "".join(e.get("content", "") for e in events[:-1])
if len(events) - 1 != tokens or content != "tok " * tokens:
    fail(f"{len(events) - 1} content events {content!r}, expected {tokens} x 'tok '")
if last.get("completion_tokens") != tokens:
    fail(f"completion_tokens {last.get('completion_tokens')}, expected {tokens}")
print(cid, len(events), last.get("finish_reason"))
PY
    ); then
        local n reason
        read -r CORR_ID n reason <<<"$out"
        ok "POST /chat streams $n events: sequence 0..$((n - 1)), one final, status completed ($reason), correlation id $CORR_ID"
    else
        show "response headers" "$WORK/chat.headers"
        show "response body" "$WORK/chat.body"
        bad "POST /chat: $out"
    fi
}

# Every stdout line is a JSON object with timestamp/level/event; the first is
# server_started with "listen"; the request's lines carry its correlation id;
# the API key appears nowhere (stdout or stderr).
check_logs() {
    collect_logs
    local msg
    if msg=$("$PY" - "$WORK/container.log" "$WORK/container.err" "$CORR_ID" "$API_KEY" "$PORT" <<'PY'
import json, sys
out = open(sys.argv[1], encoding="utf-8", errors="replace").read()
err = open(sys.argv[2], encoding="utf-8", errors="replace").read()
cid, key, port = sys.argv[3], sys.argv[4], sys.argv[5]
def fail(msg):
    print(msg); sys.exit(1)
if key in out or key in err:
    fail("the API key appears in the container's output")
lines = [l for l in out.split("\n") if l.strip()]
if not lines:
    fail("no log lines on stdout")
recs = []
for n, l in enumerate(lines, 1):
    try:
        r = json.loads(l)
    except ValueError:
        fail(f"line {n} is not JSON: {l[:200]!r}")
    if not isinstance(r, dict) or not all(k in r for k in ("timestamp", "level", "event")):
        fail(f"line {n} lacks timestamp/level/event: {l[:200]!r}")
    if not r["timestamp"].endswith("Z"):
        fail(f"line {n} timestamp not UTC: {r['timestamp']}")
    recs.append(r)
first = recs[0]
if first["event"] != "server_started" or not str(first.get("listen", "")).endswith(f":{port}"):
    fail(f"first line is not server_started listening on :{port}: {lines[0][:200]}")
mine = [r["event"] for r in recs if r.get("correlation_id") == cid]
for ev in ("request_received", "response_complete"):
    if ev not in mine:
        fail(f"no {ev} line with correlation_id {cid} (events with it: {mine})")
print(f"{len(recs)} JSON lines, first server_started on {first['listen']}, "
      f"{len(mine)} with the correlation id, API key absent")
PY
    ); then
        ok "logs: $msg"
    else
        show "container logs" "$WORK/container.log"
        bad "logs: $msg"
    fi
    if [ -s "$WORK/container.err" ]; then
        show "container stderr (not a failure)" "$WORK/container.err"
    fi
}

check_non_root() {
    local uid
    uid=$("$ENGINE" exec "$NAME" id -u 2>&1)
    if [ "$uid" != 0 ] && [[ "$uid" =~ ^[0-9]+$ ]]; then
        ok "process runs as non-root (id -u = $uid, $("$ENGINE" exec "$NAME" id -un 2>/dev/null))"
    else
        bad "non-root: id -u in the container printed '$uid'"
    fi
}

# Runs the image's own HEALTHCHECK command: through the engine where it can
# (podman healthcheck run), and through exec in any case; then the same command
# pointed at a closed port must fail, so the check is not vacuously true.
check_healthcheck() {
    local -a cmd
    mapfile -d '' cmd < <("$PY" - "$WORK/image.json" <<'PY'
import json, sys
img = json.load(open(sys.argv[1]))[0]
cfg = img.get("Config") or {}
test = (cfg.get("Healthcheck") or img.get("HealthCheck") or img.get("Healthcheck") or {}).get("Test") or []
argv = test[1:] if test[:1] == ["CMD"] else ["/bin/sh", "-c", test[1]] if test[:1] == ["CMD-SHELL"] else []
sys.stdout.write("".join(a + "\0" for a in argv))
PY
    )
    if [ "${#cmd[@]}" -eq 0 ]; then
        bad "HEALTHCHECK: the image has none"
        return
    fi
    local via=""
    if [ "$ENGINE" = podman ]; then
        if ! podman healthcheck run "$NAME" >"$WORK/hc.out" 2>&1; then
            show "podman healthcheck run" "$WORK/hc.out"
            bad "HEALTHCHECK: podman healthcheck run failed"
            return
        fi
        via="podman healthcheck run exit 0, "
    fi
    if ! "$ENGINE" exec "$NAME" "${cmd[@]}" >"$WORK/hc-exec.out" 2>&1; then
        show "healthcheck via exec" "$WORK/hc-exec.out"
        bad "HEALTHCHECK: its command failed when run with exec"
        return
    fi
    if "$ENGINE" exec -e PORT=1 "$NAME" "${cmd[@]}" >/dev/null 2>&1; then
        bad "HEALTHCHECK: its command also passes against a closed port (PORT=1): it checks nothing"
        return
    fi
    ok "HEALTHCHECK passes (${via}exec ok), and fails against a closed port"
}

# SIGTERM (the image's STOPSIGNAL) must end chatd cleanly: exit 0, server_stopped
# logged, well before the engine's kill timeout (which would give exit 137).
check_stop() {
    local t0=$SECONDS code
    "$ENGINE" stop -t 40 "$NAME" >/dev/null 2>"$WORK/stop.err"
    local took=$((SECONDS - t0))
    code=$("$ENGINE" inspect -f '{{.State.ExitCode}}' "$NAME" 2>/dev/null)
    collect_logs
    local last
    last=$(grep -v '^[[:space:]]*$' "$WORK/container.log" | tail -n 1)
    if [ "$code" = 0 ] && [[ "$last" == *'"event":"server_stopped"'* ]]; then
        ok "stop (SIGTERM): exited 0 in $took s, last log line server_stopped"
    else
        show "stop" "$WORK/stop.err"
        bad "stop (SIGTERM): exit code '${code}' after $took s, last log line: ${last:0:200}"
    fi
}

# ---------------------------------------------------------------------------

main() {
    cd "$ROOT" || exit 1
    ensure_host_tools
    pick_engine
    build_image
    check_image_config
    start_fakeprov
    run_container
    wait_healthy
    check_chat_stream
    check_logs
    check_non_root
    check_healthcheck
    check_stop
    finish
}

main "$@"
