"""Providers and routing: the limits of a walk over the targets (CONTRACT.md, "Providers
and routing"): TIMEOUT_SECONDS for all attempts together (a stalled provider costs one
budget, then 504, and counts as its provider's failure), CONNECT_TIMEOUT_SECONDS for one
connection (a loopback port whose SYNs are dropped), the client leaving or SIGTERM during
a wait."""

import signal
import threading
import time

import httpx
import pytest

from conftest import post_chat
from fakeprovider import Hang, Status
from test_routing import (Blackhole, attempts, attempts_metric, breaker, chat_timed, fakes,  # noqa: F401
                          fallbacks_metric, post_v1, retries_metric, scrape, served, start_routed, wait_count)


# -- TIMEOUT_SECONDS bounds the whole walk -------------------------------------------------


def test_stalled_provider_costs_one_budget_not_several(start_chatd, tmp_path, fakes):
    a, b = fakes(2)
    a.always(Hang())
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a", "b"]},
                     TIMEOUT_SECONDS=2)
    r, cid, elapsed = chat_timed(c)
    assert r.status == 504 and r.json()["error"] == "timeout"
    assert 1.9 <= elapsed < 3.9  # one budget, not one per attempt or per target
    assert len(a.requests) == 1 and len(b.requests) == 0
    assert a.wait_disconnects(1)  # the stalled attempt was closed
    # Every attempt is logged, the stalled one too: no answer in time is a failure.
    assert attempts(c, cid) == [("a", 1, "retryable", 0, -1)]
    status, _, raw, elapsed = post_v1(c, stream=False)
    assert status == 504, raw
    assert 1.9 <= elapsed < 3.9
    assert len(a.requests) == 2 and len(b.requests) == 0


def test_failure_then_stall_stays_within_one_budget(start_chatd, tmp_path, fakes):
    a, b, d = fakes(3)
    a.always(Status(503))
    b.always(Hang(send_headers=True))
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url, "d": d.base_url},
                     {"m": ["a", "b", "d"]}, TIMEOUT_SECONDS=2, UPSTREAM_RETRIES=1)
    r, cid, elapsed = chat_timed(c)
    assert r.status == 504
    assert 1.9 <= elapsed < 3.9  # b did not get a budget of its own
    assert (len(a.requests), len(b.requests), len(d.requests)) == (2, 1, 0)
    assert [x[:3] for x in attempts(c, cid)] == [("a", 1, "retryable"), ("a", 2, "retryable"),
                                                 ("b", 3, "retryable")]
    m = scrape(c)
    assert attempts_metric(m, "b", "retryable") == 1 and fallbacks_metric(m, "a") == 1


def test_stalled_provider_trips_its_breaker(start_chatd, tmp_path, fakes):
    """A provider that accepts and never answers fails every request it gets: after
    BREAKER_FAILURES such requests it is skipped, and the next target serves at once."""
    a, b = fakes(2)
    a.always(Hang())
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a", "b"]},
                     TIMEOUT_SECONDS=1, BREAKER_FAILURES=2, BREAKER_COOLDOWN_SECONDS=60)
    for _ in range(2):
        r, cid, elapsed = chat_timed(c)
        assert r.status == 504
    assert breaker(scrape(c), "a") == 1
    r, cid, elapsed = chat_timed(c)
    served(r)
    assert r.final["provider"] == "b"  # at once: a (TIMEOUT_SECONDS=1) would have meant a 504
    assert len(a.requests) == 2 and len(b.requests) == 1
    m = scrape(c)
    assert attempts_metric(m, "a", "retryable") == 2 and attempts_metric(m, "b", "ok") == 1


def test_backoff_that_would_pass_the_budget_is_not_waited(start_chatd, tmp_path, fakes):
    """A Retry-After that fits when asked but not the remaining budget after the first
    wait: the next target at once, served within TIMEOUT_SECONDS."""
    a, b = fakes(2)
    a.always(Status(429, headers={"Retry-After": "2"}))
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a", "b"]},
                     TIMEOUT_SECONDS=3, UPSTREAM_RETRIES=5)
    r, cid, elapsed = chat_timed(c)
    served(r)
    assert r.final["provider"] == "b"
    assert len(a.requests) == 2 and len(b.requests) == 1
    assert 2.0 <= elapsed < 3.0
    assert attempts(c, cid) == [("a", 1, "rate_limited", 429, 2000), ("a", 2, "rate_limited", 429, 0),
                                ("b", 3, "ok", 200, 0)]


def test_client_leaving_during_a_wait_ends_the_walk(start_chatd, tmp_path, fakes):
    a, b = fakes(2)
    a.then(Status(429, headers={"Retry-After": "2"}))
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a", "b"]},
                     TIMEOUT_SECONDS=8, WORKERS=1)
    with pytest.raises(httpx.ReadTimeout):
        post_chat(c, message="route this and leave during the wait", timeout=0.5)
    rec = c.wait_log("response_complete", timeout=5)
    assert rec["status"] == 499 and rec["outcome"] == "client_disconnected"
    time.sleep(2.5)  # past the Retry-After: nothing may be sent for the client who left
    assert len(a.requests) == 1 and len(b.requests) == 0
    assert attempts(c, rec["correlation_id"]) == [("a", 1, "rate_limited", 429, 2000)]
    r, cid, _ = chat_timed(c)  # the worker is fine
    served(r)
    assert len(a.requests) == 2 and r.final["provider"] == "a"


# -- CONNECT_TIMEOUT_SECONDS bounds one attempt --------------------------------------------


def test_connect_timeout_bounds_one_attempt(start_chatd, tmp_path, fakes):
    (b,) = fakes(1)
    hole = Blackhole()
    try:
        c = start_routed(start_chatd, tmp_path, {"hole": hole.base_url, "b": b.base_url},
                         {"m": ["hole", "b"], "only": ["hole"]},
                         CONNECT_TIMEOUT_SECONDS=0.5, UPSTREAM_RETRIES=1, WORKERS=1)
        r, cid, elapsed = chat_timed(c)
        served(r)
        assert r.final["provider"] == "b" and len(b.requests) == 1
        assert 1.0 <= elapsed < 4.0  # two attempts of 0.5 s each (plus at most 100 ms)
        rows = attempts(c, cid)
        assert [x[:4] for x in rows] == [("hole", 1, "retryable", 0), ("hole", 2, "retryable", 0),
                                         ("b", 3, "ok", 200)]
        for _ in range(2):  # one worker: the descriptor numbers of the timed-out sockets recur
            r, cid, elapsed = chat_timed(c, model="only")
            assert r.final["status"] == "error" and r.final["error"]["error"] == "upstream_unreachable"
            assert "onnect" in r.final["error"]["detail"]  # curl's words: connection timed out
            assert r.final["provider"] == "hole"
            assert 1.0 <= elapsed < 4.0
        m = scrape(c)
        assert attempts_metric(m, "hole", "retryable") == 6 and retries_metric(m, "hole") == 3
    finally:
        hole.close()


def test_budget_ends_while_connecting(start_chatd, tmp_path, fakes):
    """TIMEOUT_SECONDS shorter than CONNECT_TIMEOUT_SECONDS: the walk ends at the budget
    (504) with the connection still being set up; the client leaving while chatd connects
    ends it too. One worker, so descriptor numbers recur."""
    (b,) = fakes(1)
    hole = Blackhole()
    try:
        c = start_routed(start_chatd, tmp_path, {"hole": hole.base_url, "b": b.base_url},
                         {"m": ["hole", "b"]}, CONNECT_TIMEOUT_SECONDS=30, TIMEOUT_SECONDS=1, WORKERS=1)
        for _ in range(3):
            r, cid, elapsed = chat_timed(c)
            assert r.status == 504 and 0.9 <= elapsed < 3.0
        for i in range(3):
            with pytest.raises(httpx.ReadTimeout):
                post_chat(c, message="route this and leave", timeout=0.3)
            assert wait_count(c, "client_disconnected", i + 1)
            assert wait_count(c, "response_complete", i + 1, status=499)
        assert len(c.logs("response_complete")) == 6
        assert len(b.requests) == 0
        r = httpx.get(c.url + "/health")
        assert r.status_code == 200
    finally:
        hole.close()


def test_sigterm_during_a_wait_ends_the_stream_without_another_attempt(start_chatd, tmp_path, fakes):
    a, b = fakes(2)
    a.always(Status(429, headers={"Retry-After": "5"}))
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a", "b"]},
                     TIMEOUT_SECONDS=20, DRAIN_SECONDS=1)
    t0 = time.monotonic()
    out = {}
    th = threading.Thread(target=lambda: out.update(r=post_chat(c, message="route this into shutdown")))
    th.start()
    assert a.wait_requests(1)
    assert c.wait_log("upstream_attempt", outcome="rate_limited") is not None
    c.send_signal(signal.SIGTERM)
    assert c.wait_exit(15) == 0
    th.join(15)
    r = out["r"]
    assert r.status == 200 and r.final["status"] == "error"
    assert r.final["error"]["error"] == "shutting_down" and r.final["provider"] == "a"
    assert time.monotonic() - t0 < 4.5  # the 5 s wait was not sat out
    assert (len(a.requests), len(b.requests)) == (1, 0)
