"""Providers and routing: the circuit breaker per provider (BREAKER_FAILURES,
BREAKER_COOLDOWN_SECONDS): it opens, the provider is skipped (sees no request), one probe
after the cooldown, a probe without a verdict frees its slot, every target skipped tries
the first anyway, and a burst shares the breakers of both workers."""

import json
import threading
import time

import httpx
import pytest

from conftest import post_chat
from fakeprovider import Hang, Status, Stream
from test_routing import (attempts, attempts_metric, breaker, chat_timed, dead_url, fakes,  # noqa: F401
                          fallbacks_metric, retries_metric, scrape, served, start_routed, wait_count)


# -- circuit breaker -----------------------------------------------------------------------


def wait_breaker(c, provider, state, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if breaker(scrape(c), provider) == state:
            return True
        time.sleep(0.05)
    return False


def test_breaker_opens_skips_and_half_opens_with_one_probe(start_chatd, tmp_path, fakes):
    a, b = fakes(2)
    a.always(Status(500))
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a", "b"]},
                     UPSTREAM_RETRIES=1, BREAKER_FAILURES=2, BREAKER_COOLDOWN_SECONDS=1)
    # Two failures in a row open a's breaker (the second one, the retry, opens it).
    r, cid, _ = chat_timed(c)
    served(r)
    assert r.final["provider"] == "b" and len(a.requests) == 2
    opened = a.requests[1].at  # (just before) the failure that opened it
    m = scrape(c)
    assert breaker(m, "a") == 1 and breaker(m, "b") == 0
    # Open: a is skipped, it sees nothing; b serves at once.
    r, cid, _ = chat_timed(c)
    assert time.monotonic() - opened < 0.9, "too slow to observe the open breaker"
    served(r)
    assert r.final["provider"] == "b" and len(a.requests) == 2
    assert attempts(c, cid) == [("b", 1, "ok", 200, 0)]
    # After the cooldown: half-open, one probe. It fails: open again at once (one
    # failure is enough), and this request's retry of a is not allowed: b serves.
    assert wait_breaker(c, "a", 2)
    r, cid, _ = chat_timed(c)
    served(r)
    assert len(a.requests) == 3 and r.final["provider"] == "b"
    reopened = a.requests[2].at
    assert [x[:3] for x in attempts(c, cid)] == [("a", 1, "retryable"), ("b", 2, "ok")]
    assert breaker(scrape(c), "a") == 1
    r, cid, _ = chat_timed(c)
    assert time.monotonic() - reopened < 0.9, "too slow to observe the open breaker"
    assert len(a.requests) == 3 and r.final["provider"] == "b"
    # Half-open again: the probe now waits before its first token; meanwhile another
    # request does not reach a (the probe holds its slot for up to one cooldown, so
    # that request must come within it); the probe's success closes the breaker.
    assert wait_breaker(c, "a", 2)
    gate = a.event()
    a.then(Stream(tokens=["probe", " ok"], gate=lambda i: gate.wait() if i == 0 else None))
    a.always(Stream(tokens=["closed", " again"]))
    probe = {}
    t = threading.Thread(target=lambda: probe.update(r=post_chat(c, message="route this probe please")))
    t.start()
    try:
        assert a.wait_requests(4)
        probing = a.requests[3].at
        r, cid, _ = chat_timed(c)
        assert time.monotonic() - probing < 0.9, "too slow to observe the probe's slot"
        served(r)
        assert r.final["provider"] == "b"
        assert len(a.requests) == 4
    finally:
        a.set_event(gate)
        t.join(15)
    served(probe["r"], "probe ok")
    assert probe["r"].final["provider"] == "a"
    assert wait_breaker(c, "a", 0, timeout=1)
    r, cid, _ = chat_timed(c)
    served(r, "closed again")
    assert r.final["provider"] == "a" and len(a.requests) == 5
    m = scrape(c)
    assert attempts_metric(m, "a", "retryable") == 3 and attempts_metric(m, "a", "ok") == 2
    assert attempts_metric(m, "b", "ok") == 5


def test_probe_slot_freed_when_its_client_leaves(start_chatd, tmp_path, fakes):
    a, b = fakes(2)
    a.then(Status(500), Hang())
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a", "b"]},
                     UPSTREAM_RETRIES=0, BREAKER_FAILURES=1, BREAKER_COOLDOWN_SECONDS=1)
    r, cid, _ = chat_timed(c)
    assert r.final["provider"] == "b" and breaker(scrape(c), "a") == 1
    assert wait_breaker(c, "a", 2)
    # The probe's client leaves before a answers: no verdict, the probe slot is free.
    with pytest.raises(httpx.ReadTimeout):
        post_chat(c, message="route this probe and leave", timeout=0.5)
    assert len(a.requests) == 2
    assert wait_count(c, "response_complete", 2)
    r, cid, _ = chat_timed(c)
    served(r)
    assert r.final["provider"] == "a" and len(a.requests) == 3  # the next request probed
    assert breaker(scrape(c), "a") == 0


def test_probe_answered_400_leaves_the_breaker_half_open(start_chatd, tmp_path, fakes):
    """A 400 says nothing about the provider: the probe slot is freed without a verdict,
    so the next request probes again."""
    a, b = fakes(2)
    a.then(Status(500), Status(400))
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a", "b"]},
                     UPSTREAM_RETRIES=0, BREAKER_FAILURES=1, BREAKER_COOLDOWN_SECONDS=1)
    r, cid, _ = chat_timed(c)
    assert r.final["provider"] == "b"
    assert wait_breaker(c, "a", 2)
    r, cid, _ = chat_timed(c)
    assert r.final["error"]["error"] == "upstream_bad_request" and r.final["provider"] == "a"
    assert attempts(c, cid) == [("a", 1, "client_error", 400, -1)]
    assert breaker(scrape(c), "a") == 2  # still half-open
    r, cid, _ = chat_timed(c)
    served(r)
    assert r.final["provider"] == "a" and len(a.requests) == 3 and len(b.requests) == 1
    assert breaker(scrape(c), "a") == 0


def test_every_target_skipped_tries_the_first_anyway(start_chatd, tmp_path, fakes):
    a, b = fakes(2)
    a.always(Status(500))
    b.always(Status(502))
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a", "b"]},
                     UPSTREAM_RETRIES=0, BREAKER_FAILURES=2, BREAKER_COOLDOWN_SECONDS=60)
    for _ in range(2):
        r, cid, _ = chat_timed(c)
        assert r.final["status"] == "error" and r.final["provider"] == "b"
    assert (len(a.requests), len(b.requests)) == (2, 2)
    m = scrape(c)
    assert breaker(m, "a") == 1 and breaker(m, "b") == 1
    a.then(Stream(tokens=["still", " here"]))
    r, cid, _ = chat_timed(c)
    served(r, "still here")
    assert r.final["provider"] == "a"
    assert (len(a.requests), len(b.requests)) == (3, 2)
    assert attempts(c, cid) == [("a", 1, "ok", 200, 0)]
    assert breaker(scrape(c), "a") == 0  # its success closed it
    # With a open again and b open, a failure of the forced attempt ends the walk.
    for _ in range(2):
        chat_timed(c)  # a: fails twice (b skipped: open)
    r, cid, _ = chat_timed(c)
    assert r.final["status"] == "error" and r.final["provider"] == "a"
    assert [x[:3] for x in attempts(c, cid)] == [("a", 1, "retryable")]
    assert len(b.requests) == 2


def test_burst_while_the_first_target_refuses(start_chatd, tmp_path, fakes):
    """24 concurrent requests while the first target refuses connections: every one is
    served by the second; the breaker (shared by both workers) opens on the way, so the
    dead target sees far fewer attempts than 24 x 3."""
    (b,) = fakes(1)
    c = start_routed(start_chatd, tmp_path, {"dead": dead_url(), "b": b.base_url}, {"m": ["dead", "b"]},
                     BREAKER_FAILURES=3, BREAKER_COOLDOWN_SECONDS=60)
    results = []
    lock = threading.Lock()

    def one(i):
        r = post_chat(c, message=f"route this burst request {i}")
        with lock:
            results.append(r)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 24
    for r in results:
        served(r)
        assert r.final["provider"] == "b"
    assert len(b.requests) == 24
    m = scrape(c)
    dead = attempts_metric(m, "dead", "retryable")
    assert 3 <= dead < 24 * 3
    assert attempts_metric(m, "b", "ok") == 24
    assert breaker(m, "dead") == 1
    assert retries_metric(m, "dead") + fallbacks_metric(m, "dead") == dead


def test_half_open_admits_exactly_one_probe_among_concurrent_requests(start_chatd, tmp_path, fakes):
    a, b = fakes(2)
    a.then(Status(500))
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a", "b"]},
                     UPSTREAM_RETRIES=0, BREAKER_FAILURES=1, BREAKER_COOLDOWN_SECONDS=2)
    r, cid, _ = chat_timed(c)
    assert r.final["provider"] == "b" and breaker(scrape(c), "a") == 1
    assert wait_breaker(c, "a", 2, timeout=8)
    gate = a.event()
    a.always(Stream(tokens=["probe"], gate=lambda i: gate.wait()))
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(post_chat(c, message=f"route this racer {i}")))
               for i in range(6)]
    for t in threads:
        t.start()
    try:
        assert a.wait_requests(2, timeout=10)  # one is a's probe, held ...
        assert b.wait_requests(1 + 5, timeout=10)  # ... five went to b at once ...
        assert len(a.requests) == 2  # ... and no other reached a
    finally:
        a.set_event(gate)
        for t in threads:
            t.join(15)
    assert len(results) == 6
    assert sorted(r.final["provider"] for r in results) == ["a"] + ["b"] * 5
    assert breaker(scrape(c), "a") == 0


class ByModel:
    """Answers by the model the request names (one provider serving several models)."""

    def __init__(self, answers):
        self.answers = answers

    async def respond(self, req, fp):
        body = json.loads(await req.read())
        return await self.answers[body["model"]].respond(req, fp)


def test_a_missing_model_does_not_take_its_providers_other_models_down(start_chatd, tmp_path, fakes):
    """A model whose first target names a model the provider no longer has (404) and whose
    second target is another model on the same provider: every request is served by the
    second, also after a burst. (When a burst's 404s come in a row they count as failures
    of the whole provider and open its breaker; the second target, on the same provider,
    is then skipped, and each probe after a cooldown goes to the 404 first and re-opens
    it: the model never recovers while its provider is healthy.)"""
    (a,) = fakes(1)
    a.always(ByModel({"retired": Status(404), "current": Stream(tokens=["still", " served"], first_delay=0.3)}))
    doc = {"providers": [{"name": "a", "base_url": a.base_url, "api_key_env": "OPENAI_API_KEY"}],
           "models": [{"name": "m", "targets": [{"provider": "a", "model": "retired"},
                                                {"provider": "a", "model": "current"}]}],
           "default_model": "m"}
    path = tmp_path / "same-provider.json"
    path.write_text(json.dumps(doc))
    c = start_chatd({"CHATD_CONFIG": str(path), "OPENAI_BASE_URL": None, "UPSTREAM_RETRIES": "2",
                     "BREAKER_FAILURES": "3", "BREAKER_COOLDOWN_SECONDS": "1"})
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(post_chat(c, message=f"route this burst {i}")))
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 8
    for i in range(4):
        if i == 2:
            time.sleep(1.2)  # past a cooldown too
        r, cid, _ = chat_timed(c)
        results.append(r)
    outcomes = [(r.final["status"], r.final["provider"], r.final["model"]) for r in results]
    assert outcomes == [("completed", "a", "current")] * 12, "\n".join(map(str, outcomes))
