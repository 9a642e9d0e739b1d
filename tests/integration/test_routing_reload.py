"""SIGHUP and routing (CONTRACT.md, "Providers and routing"): new requests take the new
CHATD_CONFIG, an open stream finishes on the providers it started with (also when it is
still walking its targets), a bad file keeps the old routing, breakers outlive reloads,
and the connections to a removed provider are closed once its last stream ends."""

import signal
import threading
import time

import httpx

from conftest import post_chat
from fakeprovider import Status, Stream
from sseclient import three_parts
from test_routing import (attempts, breaker, chat_timed, fakes, scrape, served,  # noqa: F401
                          start_routed, write_routing)


def reload(c, event="config_reloaded", timeout=10, mark=None):
    """Sends SIGHUP and waits for one more line of event. With mark (a model only the new
    file has), also until the workers serve the new file: config_reloaded is logged when
    the snapshot is handed to the workers, each takes it on its own loop a moment later,
    and nothing says when; 8 answers in a row on fresh connections (each lands on any
    worker) listing the model stand for that."""
    n = len(c.logs(event))
    c.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + timeout
    rec = None
    while time.monotonic() < deadline and rec is None:
        got = c.logs(event)
        rec = got[n] if len(got) > n else None
        time.sleep(0.02)
    assert rec is not None, f"no new {event} line: {c.stdout[-5:]}"
    in_a_row = 0
    while mark is not None and in_a_row < 8:
        assert time.monotonic() < deadline, f"the workers do not serve model {mark} after the reload"
        ids = [m["id"] for m in httpx.get(c.url + "/v1/models").json()["data"]]
        in_a_row = in_a_row + 1 if mark in ids else 0
    return rec


def in_background(c, message):
    """Starts post_chat in a thread; returns (thread, result dict)."""
    out = {}
    t = threading.Thread(target=lambda: out.update(r=post_chat(c, message=message)))
    t.start()
    return t, out


def established(port):
    """TCP connections accepted on 127.0.0.1:port that are still open."""
    n = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, state = fields[1], fields[3]
                    if int(local.rsplit(":", 1)[1], 16) == port and state == "01":
                        n += 1
        except FileNotFoundError:
            pass
    return n


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_reload_under_a_live_stream(start_chatd, tmp_path, fakes):
    a, b = fakes(2)
    gate = a.event()
    a.then(Stream(tokens=["old", " provider", " here"], gate=lambda i: gate.wait() if i == 1 else None))
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a"]})
    t, live = in_background(c, "route this long stream please")
    try:
        assert a.wait_requests(1)
        assert a.wait_for(lambda: a.bytes_written >= 1)  # its first token is out
        write_routing(tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["b"], "r1": ["b"]})
        rec = reload(c, mark="r1")
        assert rec["models"] == "m,r1"
        for _ in range(4):  # every worker has the new routing
            r, cid, _ = chat_timed(c)
            served(r)
            assert (r.final["provider"], r.final["model"]) == ("b", "m@b")
        assert len(a.requests) == 1 and len(b.requests) == 4
    finally:
        a.set_event(gate)
        t.join(15)
    served(live["r"], "old provider here")
    assert (live["r"].final["provider"], live["r"].final["model"]) == ("a", "m@a")


def test_reload_during_a_walk_keeps_the_walk_on_its_snapshot(start_chatd, tmp_path, fakes):
    a, b, d = fakes(3)
    a.then(Status(429, headers={"Retry-After": "2"}), Status(503))
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a", "b"]},
                     UPSTREAM_RETRIES=1)
    t, walking = in_background(c, "route this walk across a reload")
    try:
        assert a.wait_requests(1)
        write_routing(tmp_path, {"d": d.base_url}, {"m": ["d"], "r1": ["d"]})
        reload(c, mark="r1")
        for _ in range(4):
            r, cid, _ = chat_timed(c)
            served(r)
            assert (r.final["provider"], r.final["model"]) == ("d", "m@d")
    finally:
        t.join(15)
    r = walking["r"]
    served(r)
    assert (r.final["provider"], r.final["model"]) == ("b", "m@b")  # the old walk: a, a, b
    assert (len(a.requests), len(b.requests), len(d.requests)) == (2, 1, 4)
    cid = r.headers["x-correlation-id"]
    assert [x[:4] for x in attempts(c, cid)] == [("a", 1, "rate_limited", 429), ("a", 2, "retryable", 503),
                                                 ("b", 3, "ok", 200)]


def test_bad_reload_keeps_the_old_routing(start_chatd, tmp_path, fakes):
    a, b = fakes(2)
    path = write_routing(tmp_path, {"a": a.base_url}, {"m": ["a"]})
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url}, {"m": ["a"]})
    bad = [
        ({"a": a.base_url}, {"m": ["ghost"]}, "models[0].targets[0].provider"),
        ({"a": a.base_url, "b": {"base_url": b.base_url, "api_key_env": "NOT_SET_ANYWHERE"}},
         {"m": ["b"]}, "providers[1].api_key_env"),
        ({"a": "ftp://127.0.0.1/v1"}, {"m": ["a"]}, "providers[0].base_url"),
    ]
    for providers, models, where in bad:
        write_routing(tmp_path, providers, models)
        rec = reload(c, "config_reload_failed")
        assert rec["level"] == "error"
        assert rec["message"].startswith(f"CHATD_CONFIG {path}, {where}"), rec
        assert three_parts(rec["message"]), rec
        for _ in range(4):
            r, cid, _ = chat_timed(c)
            served(r)
            assert r.final["provider"] == "a"
    assert c.logs("config_reloaded") == []
    assert len(b.requests) == 0 and len(a.requests) == 12
    write_routing(tmp_path, {"b": b.base_url}, {"m": ["b"], "r1": ["b"]})  # fixed: now it applies
    reload(c, mark="r1")
    for _ in range(4):
        r, cid, _ = chat_timed(c)
        assert r.final["provider"] == "b"


def test_breakers_outlive_a_reload(start_chatd, tmp_path, fakes):
    a, b, d = fakes(3)
    a.always(Status(500))
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a", "b"]},
                     UPSTREAM_RETRIES=0, BREAKER_FAILURES=1, BREAKER_COOLDOWN_SECONDS=60)
    r, cid, _ = chat_timed(c)
    assert r.final["provider"] == "b" and breaker(scrape(c), "a") == 1
    write_routing(tmp_path, {"d": d.base_url, "a": a.base_url, "b": b.base_url}, {"m": ["a", "b"], "n": ["d"]})
    reload(c, mark="n")
    for _ in range(4):
        r, cid, _ = chat_timed(c)
        served(r)
        assert r.final["provider"] == "b"  # a is still out of rotation
    assert len(a.requests) == 1
    assert breaker(scrape(c), "a") == 1


def test_connections_to_a_removed_provider_close_after_its_last_stream(start_chatd, tmp_path, fakes):
    a, b = fakes(2)
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a"]}, WORKERS=1)
    for _ in range(2):
        r, cid, _ = chat_timed(c)
        served(r)
    assert established(a.port) >= 1  # kept alive for reuse
    gate = a.event()
    a.then(Stream(tokens=["last", " one"], gate=lambda i: gate.wait() if i == 1 else None))
    t, live = in_background(c, "route this last stream on a")
    try:
        assert a.wait_requests(3)
        write_routing(tmp_path, {"b": b.base_url}, {"m": ["b"], "r1": ["b"]})
        reload(c, mark="r1")
        r, cid, _ = chat_timed(c)
        assert r.final["provider"] == "b"
        assert established(a.port) >= 1  # the open stream still uses its connection
    finally:
        a.set_event(gate)
        t.join(15)
    served(live["r"], "last one")
    assert live["r"].final["provider"] == "a"
    assert wait_until(lambda: established(a.port) == 0), "chatd keeps connections to a removed provider"
