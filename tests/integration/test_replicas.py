"""More than one replica, against the real binary: two chatd processes sharing one
redis-server (started on a free 127.0.0.1 port, with a password) hold a key's limits
in total; a replica killed with SIGKILL holds its stream slots only for the lease;
Redis stopped or killed is fail-open or 503 `limits_unavailable` at once, and the
limits apply again when it is back. Then nginx with deploy/nginx.conf in front of two
replicas: many concurrent streams arrive intact, and a replica that gets SIGTERM
finishes its streams while new requests go to the other one."""

import json
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from chatd import read_head, request_bytes
from fakeprovider import Hang, Stream
from limitkit import (Nginx, Redis, ask, bearer, check_refused, completed, file_env, metric, wait_until,
                      write_config)
from sseclient import parse_events

PASSWORD = "rds-pw-7c1e9a3f5b2d"
K_RPM, K_CONC, K_PROBE, K_OPS = ("sk-r-rpm-11aa22bb33cc", "sk-r-conc-44dd55ee66ff", "sk-r-probe-7788aabbccdd",
                                 "sk-r-ops-99eeff001122")
K_BURST = "sk-r-burst-3344556677aa"
SECRETS = (PASSWORD, K_RPM, K_CONC, K_PROBE, K_OPS, K_BURST)
# Generous: the deadline itself is 50 ms; the machine is shared and sanitizers slow chatd.
EXTRA_BOUND_S = 1.0


@pytest.fixture
def redis(tmp_path):
    r = Redis(tmp_path, password=PASSWORD).start()
    yield r
    r.stop()


@pytest.fixture
def replicas(start_chatd, provider, tmp_path, redis):
    """start(n, **env): n chatd processes with the same CHATD_CONFIG and REDIS_URL."""
    path = write_config(tmp_path, provider.base_url, [
        ("rpm-app", K_RPM, {"requests_per_minute": 6}),
        ("conc-app", K_CONC, {"max_concurrent_streams": 2}),
        ("probe", K_PROBE, {"requests_per_minute": 100000}),
        ("ops", K_OPS, {}),
        ("burst-app", K_BURST, {"requests_per_minute": 10}),
    ])
    started = []

    def start(n=2, **env):
        out = [start_chatd(file_env(path, REDIS_URL=redis.url, **env)) for _ in range(n)]
        for c in out:
            wait_redis_ready(c)
        started.extend(out)
        return out

    yield start
    for c in started:
        text = "\n".join(c.stdout + c.stderr)
        for secret in SECRETS:
            assert secret not in text, "a secret reached the logs"


def wait_redis_ready(c, timeout=15):
    """Until every worker answers from Redis: a probe answered with x-ratelimit-*
    headers (a fail-open answer has none; fail-closed is a 503), several in a row on
    new connections."""
    in_a_row = 0
    deadline = time.monotonic() + timeout
    while in_a_row < 6:
        assert time.monotonic() < deadline, "chatd did not reach Redis"
        a = ask(c.url, K_PROBE, "/chat")
        in_a_row = in_a_row + 1 if a.status == 200 and "x-ratelimit-limit-requests" in a.headers else 0
        if not in_a_row:
            time.sleep(0.05)


def gated(provider):
    """The next provider answer sends one token, then waits for the returned event."""
    ev = provider.event()
    provider.then(Stream(tokens=["first", " last"], gate=lambda i: ev.wait() if i == 1 else None))
    return ev


def open_stream(port, key, message="Keep this stream open."):
    """A held stream; a 503 (fail-closed, Redis slower than the deadline) is asked again."""
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", port), timeout=15)
        s.sendall(request_bytes("POST", "/chat", json.dumps({"message": message}), headers=bearer(key)))
        status, headers, rest = read_head(s)
        if status != 503:
            break
        s.close()
    assert status == 200, (status, headers, rest)
    return s


def decided(c, key):
    """ask() until Redis decided (fail-closed replicas: a 503 decided nothing)."""
    for _ in range(5):
        r = ask(c.url, key, "/chat")
        if r.status != 503:
            break
    return r


def read_to_end(s):
    data = b""
    while not data.endswith(b"0\r\n\r\n"):
        piece = s.recv(65536)
        if not piece:
            break
        data += piece
    s.close()
    return data


# -- two replicas, one Redis --------------------------------------------------------------


def test_request_limit_holds_in_total(replicas, provider):
    a, b = replicas(2, RATE_LIMIT_FAIL_OPEN="false")
    targets = [a, b] * 6

    def one(c):
        late = 0  # 503s: Redis slower than the 50 ms deadline (the admit may still count)
        for _ in range(5):
            r = ask(c.url, K_RPM, "/chat")
            if r.status != 503:
                return r, late
            check_refused(r, "/chat", code="limits_unavailable", status=503)
            late += 1
        return r, late

    with ThreadPoolExecutor(12) as ex:
        results = list(ex.map(one, targets))
    answers = [r for r, _ in results]
    late = sum(n for _, n in results)
    ok = [r for r in answers if r.status == 200]
    refused = [r for r in answers if r.status == 429]
    assert len(ok) + len(refused) == 12, [r.status for r in answers]
    # Never more than the limit in total; exactly it unless a late admit took a token.
    assert 6 - late <= len(ok) <= 6, ([r.status for r in answers], late)
    assert all(completed(r) for r in ok)
    # One bucket for both: each admitted request saw a different level of it.
    levels = sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in ok)
    assert len(set(levels)) == len(levels) and all(0 <= v < 6 for v in levels), levels
    if late == 0:
        assert levels == list(range(6))
    for r in refused:
        check_refused(r, "/chat")
        assert 1 <= int(r.headers["retry-after"]) <= 10
    # Each replica got 6 of the 12; alone, each would have admitted all of its 6.
    refused_by = [len([l for l in c.logs("limit_refused") if l.get("reason") == "requests"]) for c in (a, b)]
    assert sum(refused_by) == len(refused)


def test_concurrency_limit_holds_across_replicas(replicas, provider, redis):
    a, b = replicas(2, RATE_LIMIT_FAIL_OPEN="false")  # a late answer never admits
    g1, g2 = gated(provider), gated(provider)
    s1 = open_stream(a.port, K_CONC)
    s2 = open_stream(b.port, K_CONC)
    for c in (a, b):
        check_refused(decided(c, K_CONC), "/chat")
        assert c.wait_log("limit_refused", key="conc-app")["reason"] == "concurrency"
    provider.set_event(g1)  # the stream on a ends: its slot is free on b too
    assert b"last" in read_to_end(s1)
    assert wait_until(lambda: len(leases(redis)) == 1)  # a gives its lease back after the end
    assert completed(decided(b, K_CONC))
    g3 = gated(provider)
    s3 = open_stream(b.port, K_CONC)
    check_refused(decided(a, K_CONC), "/chat")
    for g, s in ((g2, s2), (g3, s3)):
        provider.set_event(g)
        assert b"last" in read_to_end(s)
    assert metric(a.url, K_OPS, "chatd_key_active_streams", key="conc-app") == 0


def leases(redis):
    """{lease id: seconds until it expires, by Redis's clock} of conc-app."""
    sec, usec = redis.cli("TIME").split()
    now_us = int(sec) * 1000000 + int(usec)
    raw = redis.cli("ZRANGE", "chatd:{conc-app}:streams", "0", "-1", "WITHSCORES").split()
    return {raw[i]: (int(float(raw[i + 1])) - now_us) / 1e6 for i in range(0, len(raw), 2)}


def test_killed_replica_frees_its_slots_within_the_lease(replicas, provider, redis):
    a, b = replicas(2, RATE_LIMIT_FAIL_OPEN="false")
    provider.then(Hang(first_tokens=["first"]), Hang(first_tokens=["first"]))
    held = [open_stream(a.port, K_CONC) for _ in range(2)]
    dead = leases(redis)
    assert len(dead) == 2
    assert all(0 < left <= 60 for left in dead.values()), dead  # the lease: 60 s at most
    a.expect_exit = None
    a.send_signal(signal.SIGKILL)
    assert a.wait_exit(10) == -signal.SIGKILL
    for s in held:
        s.close()
    # The dead replica's slots are still held until their leases expire ...
    check_refused(decided(b, K_CONC), "/chat")
    left = leases(redis)
    assert set(left) == set(dead) and all(0 < t <= 60 for t in left.values()), left
    # ... which Redis's clock decides. Rather than wait up to 60 s, move that clock's
    # verdict forward: each lease expires now, as it would at most 60 s later.
    sec, usec = redis.cli("TIME").split()
    for lease in dead:
        redis.cli("ZADD", "chatd:{conc-app}:streams", "XX", str(int(sec) * 1000000 + int(usec) - 1), lease)
    gates = [gated(provider), gated(provider)]
    socks = [open_stream(b.port, K_CONC) for _ in gates]
    check_refused(decided(b, K_CONC), "/chat")
    assert set(leases(redis)).isdisjoint(dead)  # b's own leases, the dead ones dropped
    for g, s in zip(gates, socks):
        provider.set_event(g)
        assert b"last" in read_to_end(s)
    assert leases(redis) == {}


# -- Redis away ---------------------------------------------------------------------------


def timed(fn, *args, **kw):
    t0 = time.monotonic()
    r = fn(*args, **kw)
    return r, time.monotonic() - t0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_redis_stopped_fail_open_then_back(replicas, provider, redis, workers):
    (c,) = replicas(1, WORKERS=workers)
    # Baseline with Redis up.
    base = max(timed(ask, c.url, K_OPS, "/chat")[1] for _ in range(3))
    first, _ = timed(ask, c.url, K_RPM, "/chat")
    assert completed(first) and first.headers["x-ratelimit-remaining-requests"] == "5"
    redis.pause()
    try:
        # Fail-open: served, without limit headers, never held longer than the deadline.
        for _ in range(16):  # more than the key's 5 left: no limit applies; both workers see it
            r, took = timed(ask, c.url, K_RPM, "/chat")
            assert completed(r), r
            assert "x-ratelimit-limit-requests" not in r.headers
            assert took < base + EXTRA_BOUND_S, (took, base)
        assert c.wait_log("redis_unavailable", timeout=5) is not None
    finally:
        redis.resume()
    assert c.wait_log("redis_recovered", timeout=15) is not None
    wait_redis_ready(c)  # every worker
    # The limits apply again: the bucket fills up and refuses.
    answers = []
    for _ in range(8):
        r = ask(c.url, K_RPM, "/chat")
        answers.append(r)
        if r.status == 429:
            break
    assert answers[-1].status == 429, [r.status for r in answers]
    assert all("x-ratelimit-limit-requests" in r.headers for r in answers)
    check_refused(answers[-1], "/chat")
    # One redis_unavailable for the outage, counted; the password in no line.
    assert len(c.logs("redis_unavailable")) == 1
    assert metric(c.url, K_OPS, "chatd_redis_unavailable_total") == 1
    assert metric(c.url, K_OPS, "chatd_redis_errors_total") >= 1
    rec = c.logs("redis_unavailable")[0]
    assert rec["fail_open"] is True and str(redis.port) in rec["address"]


@pytest.mark.parametrize("how", ["stopped", "killed"])
def test_redis_away_fail_closed_then_back(replicas, provider, redis, how):
    (c,) = replicas(1, WORKERS="1", RATE_LIMIT_FAIL_OPEN="false")
    assert completed(ask(c.url, K_RPM, "/chat"))
    sent = len(provider.requests)
    if how == "stopped":
        redis.pause()
    else:
        redis.proc.kill()
        redis.proc.wait(10)
    try:
        for route in ("/chat", "/v1/chat/completions") * 3:
            r, took = timed(ask, c.url, K_RPM, route)
            check_refused(r, route, code="limits_unavailable", status=503)
            assert took < EXTRA_BOUND_S, took
        # A key without limits does not need Redis.
        assert completed(ask(c.url, K_OPS, "/chat"))
        assert len(provider.requests) == sent + 1
        assert c.wait_log("redis_unavailable", timeout=5)["fail_open"] is False
    finally:
        if how == "stopped":
            redis.resume()
        else:
            redis.start()  # on the same port: a fresh, empty Redis
    assert c.wait_log("redis_recovered", timeout=15) is not None
    r = wait_until(lambda: (lambda a: a if a.status == 200 else None)(ask(c.url, K_RPM, "/chat")), timeout=10)
    assert r and completed(r) and "x-ratelimit-limit-requests" in r.headers, r
    assert len(c.logs("redis_unavailable")) == 1
    assert metric(c.url, K_OPS, "chatd_limit_refused_total", reason="unavailable") == 6
    assert metric(c.url, K_OPS, "chatd_redis_unavailable_total") == 1


# -- nginx in front of two replicas -------------------------------------------------------


@pytest.fixture
def fronted(start_chatd, tmp_path):
    """Two replicas (no client keys) behind nginx with deploy/nginx.conf."""
    # Held streams wait for the test, not for TIMEOUT_SECONDS of provider silence.
    reps = [start_chatd({"DRAIN_SECONDS": "20", "TIMEOUT_SECONDS": "30"}) for _ in range(2)]
    ng = Nginx(tmp_path, [c.port for c in reps]).start()
    yield ng, reps
    ng.stop()


def stream_through(base, message, timeout=30):
    with httpx.Client(timeout=timeout) as cl:
        with cl.stream("POST", base + "/chat", json={"message": message}) as r:
            raw = b"".join(r.iter_raw())
            return r.status_code, r.headers.get("x-correlation-id"), raw


def served_by(reps, cid):
    return [i for i, c in enumerate(reps) if c.logs("request_received", cid=cid)]


def test_many_streams_through_nginx(fronted, provider):
    ng, reps = fronted
    tokens = [f"t{i} " for i in range(8)]
    provider.always(Stream(tokens=tokens, delay=0.05))
    n = 40
    with ThreadPoolExecutor(n) as ex:
        results = list(ex.map(lambda i: stream_through(ng.url, f"Stream number {i} through nginx."), range(n)))
    per = [0, 0]
    for status, cid, raw in results:
        assert status == 200, raw[:300]
        events = parse_events(raw)
        assert "".join(e["content"] for e in events if not e["is_final"]) == "".join(tokens)
        assert events[-1]["status"] == "completed" and events[-1]["correlation_id"] == cid
        assert [e["sequence"] for e in events] == list(range(len(events)))
        (i,) = served_by(reps, cid)
        per[i] += 1
    assert len(provider.requests) == n
    assert min(per) >= 5, per  # least_conn spread them over both


def test_sigterm_one_replica_mid_stream(fronted, provider):
    ng, (a, b) = fronted
    provider.always(Stream(tokens=["one", " two", " three"], delay=0.1))
    # Warm up, several at once: every nginx worker keeps idle keep-alive connections
    # to both replicas, as in any deployment that has served traffic.
    with ThreadPoolExecutor(12) as ex:
        warm = list(ex.map(lambda i: stream_through(ng.url, f"Warm-up request {i} for the pool."), range(12)))
    assert all(w[0] == 200 for w in warm)
    assert all(c.logs("request_received") for c in (a, b))
    # Streams held open mid-way, some on each replica.
    gates = [gated(provider) for _ in range(6)]
    with ThreadPoolExecutor(6) as ex:
        held = [ex.submit(stream_through, ng.url, f"Held stream {i} across a drain.") for i in range(6)]
        try:
            assert provider.wait_requests(12 + 6, timeout=10)
            fresh, before_a = drain_a_while_held(ng, a, b)
        finally:  # a's streams finish: release every held stream
            for g in gates:
                provider.set_event(g)
        held_on = []
        for f in held:
            status, cid, raw = f.result(timeout=30)
            assert status == 200
            held_on += served_by([a, b], cid)
            events = parse_events(raw)
            assert events[-1]["status"] == "completed", events[-1]
            assert "".join(e["content"] for e in events) == "first last"
    assert a.wait_exit(30) == 0
    assert a.wait_log("server_stopped") is not None
    assert sorted(set(held_on)) == [0, 1], held_on  # a had streams of its own to finish
    # New requests during the drain went to b, and were all answered.
    lost = [raw[:200] for status, _, raw in fresh if status != 200]
    assert lost == [], f"{len(lost)} of 20 new requests were not served: {lost[:2]}"
    for status, cid, raw in fresh:
        assert parse_events(raw)[-1]["status"] == "completed"
        assert served_by([a, b], cid) == [1]
    assert chats_on(a) == before_a


def chats_on(c):
    return len([r for r in c.logs("request_received") if r["path"] == "/chat"])


def drain_a_while_held(ng, a, b):
    """SIGTERM to a while streams are held; its /ready on an open connection; then 20
    new requests through nginx. Returns their answers and a's /chat count before them."""
    ready = socket.create_connection(("127.0.0.1", a.port), timeout=10)  # a probe's
    assert httpx.get(a.url + "/ready", timeout=10).status_code == 200
    a.send_signal(signal.SIGTERM)
    assert a.wait_log("shutdown_started") is not None
    ready.sendall(request_bytes("GET", "/ready"))
    data = b""
    while b'"draining"' not in data:
        piece = ready.recv(65536)
        assert piece, data
        data += piece
    assert b"HTTP/1.1 503" in data, data
    ready.close()
    before_a = chats_on(a)
    with ThreadPoolExecutor(10) as ex:  # overlapping, as real traffic does
        fresh = list(ex.map(lambda i: stream_through(ng.url, f"New request {i} during the drain."), range(20)))
    return fresh, before_a


def test_draining_replica_never_leaves_a_kept_alive_connection_unanswered(start_chatd, provider):
    """What a proxy's idle keep-alive connections meet while a replica drains: a worker
    that has no stream left ends its loop at once; its connections must not stay open
    unread until the last worker ends (a request sent on one would hang, then be reset:
    nginx's 502 in the test above)."""
    c = start_chatd({"DRAIN_SECONDS": "20", "WORKERS": "2"})
    idle = []
    for _ in range(12):  # spread over both workers by the kernel
        s = socket.create_connection(("127.0.0.1", c.port), timeout=10)
        s.sendall(request_bytes("GET", "/ready"))
        status, headers, rest = read_head(s)
        assert status == 200
        while len(rest) < int(headers["content-length"]):
            rest += s.recv(4096)
        idle.append(s)
    gate = gated(provider)
    held = open_stream(c.port, "", message="Hold one worker in its drain.")
    c.send_signal(signal.SIGTERM)
    assert c.wait_log("shutdown_started") is not None
    time.sleep(0.5)  # the worker without a stream ends its loop (no event tells when)
    for s in idle:
        s.settimeout(5)
        try:
            s.sendall(request_bytes("GET", "/ready"))
            data = s.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        except socket.timeout:
            raise AssertionError("a kept-alive connection of the draining replica got no answer")
        # Either the draining answer, or the connection closed: never silence.
        assert data == b"" or data.startswith(b"HTTP/1.1 503"), data[:200]
        s.close()
    provider.set_event(gate)
    assert b"last" in read_to_end(held)
    assert c.wait_exit(30) == 0


def test_a_burst_read_in_one_turn_is_one_batch(replicas, redis):
    """30 requests on 30 connections reach a WORKERS=1 chatd while it is stopped, so
    one turn of its loop reads them all: exactly 10 pass (remaining 9..0, each once),
    20 get 429, and the admits go to Redis in far fewer EVALSHA than requests."""
    (c,) = replicas(1, WORKERS="1")
    socks = [socket.create_connection(("127.0.0.1", c.port), timeout=20) for _ in range(30)]
    body = json.dumps({"message": "burst"})
    try:
        time.sleep(0.5)  # all accepted and handed to the worker
        before = evalsha_calls(redis)
        c.proc.send_signal(signal.SIGSTOP)
        try:
            for s in socks:
                s.sendall(request_bytes("POST", "/chat", body, headers=bearer(K_BURST)))
        finally:
            c.proc.send_signal(signal.SIGCONT)
        heads = [read_head(s)[:2] for s in socks]
    finally:
        for s in socks:
            s.close()
    calls = evalsha_calls(redis) - before
    ok = [h for st, h in heads if st == 200]
    assert sorted(st for st, _ in heads) == [200] * 10 + [429] * 20
    assert sorted(int(h["x-ratelimit-remaining-requests"]) for h in ok) == list(range(10))
    assert calls <= 15, f"{calls} EVALSHA for 30 admits read in one turn"


def evalsha_calls(redis):
    n = 0
    for line in redis.cli("INFO", "commandstats").splitlines():
        if line.startswith(("cmdstat_evalsha:", "cmdstat_eval:")):
            n += int(line.split(":", 1)[1].split(",")[0].split("=")[1])
    return n
