"""A provider's ca_file (CONTRACT.md, "Providers and routing"): a provider behind nginx
with a certificate signed by a test CA is served when its ca_file names that CA, and
refused (upstream_unreachable, with a TLS explanation) without it — verification is
never switched off, not by a reused handle or connection either."""

import json
import threading

import pytest

from fakeprovider import FakeProvider, Status, Stream, free_port
from test_routing import (attempts, chat_timed, fakes, post_v1, scrape, served, start_routed,  # noqa: F401
                          ttft_count, value)
from tlsproxy import TLSProxy


@pytest.fixture
def tls(provider):
    proxy = TLSProxy(provider.base_url).start()
    yield proxy
    proxy.stop()


def tls_providers(tls):
    return {"trusted": {"base_url": tls.base_url, "ca_file": tls.ca_file},
            "untrusted": {"base_url": tls.base_url}}


def refused_for_tls(r):
    assert r.status == 200 and r.final["status"] == "error", r.raw
    assert r.final["error"]["error"] == "upstream_unreachable"
    detail = r.final["error"]["detail"]
    assert "TLS" in detail and "certificate" in detail, detail


def test_served_with_ca_file(start_chatd, tmp_path, tls, provider):
    c = start_routed(start_chatd, tmp_path, tls_providers(tls), {"m": ["trusted"]}, UPSTREAM_RETRIES=0)
    r, cid, _ = chat_timed(c)
    served(r)
    assert (r.final["provider"], r.final["model"]) == ("trusted", "m@trusted")
    assert len(provider.requests) == 1 and provider.requests[0].json["model"] == "m@trusted"
    assert attempts(c, cid) == [("trusted", 1, "ok", 200, 0)]
    assert ttft_count(scrape(c), "trusted") == 1


def test_refused_without_ca_file(start_chatd, tmp_path, tls, provider):
    c = start_routed(start_chatd, tmp_path, tls_providers(tls), {"m": ["untrusted"]}, UPSTREAM_RETRIES=1)
    r, cid, _ = chat_timed(c)
    refused_for_tls(r)
    assert r.final["provider"] == "untrusted"
    assert provider.requests == []  # nothing went past the handshake
    rows = attempts(c, cid)
    assert [x[:4] for x in rows] == [("untrusted", 1, "retryable", 0), ("untrusted", 2, "retryable", 0)]
    m = scrape(c)
    assert value(m, "chatd_upstream_attempts_total", provider="untrusted", outcome="retryable") == 2


def test_tls_failure_falls_back(start_chatd, tmp_path, tls, provider, fakes):
    (plain,) = fakes(1)
    providers = {**tls_providers(tls), "plain": plain.base_url}
    c = start_routed(start_chatd, tmp_path, providers, {"m": ["untrusted", "plain"]}, UPSTREAM_RETRIES=0)
    r, cid, _ = chat_timed(c)
    served(r)
    assert r.final["provider"] == "plain"
    assert provider.requests == [] and len(plain.requests) == 1
    assert [x[:3] for x in attempts(c, cid)] == [("untrusted", 1, "retryable"), ("plain", 2, "ok")]


def test_trust_does_not_leak_to_another_provider(start_chatd, tmp_path, tls, provider):
    """One worker, so the second provider reuses the first one's transfer handle and
    could reuse its verified connection to the same host and port: neither may carry
    the trusted CA over."""
    c = start_routed(start_chatd, tmp_path, tls_providers(tls), {"good": ["trusted"], "bad": ["untrusted"]},
                     UPSTREAM_RETRIES=0, WORKERS=1)
    for _ in range(2):
        r, _, _ = chat_timed(c, model="good")
        served(r)
        r, _, _ = chat_timed(c, model="bad")
        refused_for_tls(r)
    assert len(provider.requests) == 2
    assert all(q.json["model"] == "good@trusted" for q in provider.requests)


def test_two_tls_providers_each_with_its_own_ca(start_chatd, tmp_path, tls, provider):
    other = FakeProvider().start()
    tls2 = TLSProxy(other.base_url).start()
    try:
        providers = {"one": {"base_url": tls.base_url, "ca_file": tls.ca_file},
                     "two": {"base_url": tls2.base_url, "ca_file": tls2.ca_file},
                     "crossed": {"base_url": tls2.base_url, "ca_file": tls.ca_file}}
        c = start_routed(start_chatd, tmp_path, providers, {"m1": ["one"], "m2": ["two"], "x": ["crossed"]},
                         UPSTREAM_RETRIES=0, WORKERS=1)
        for model, fp in (("m1", provider), ("m2", other), ("m1", provider)):
            r, _, _ = chat_timed(c, model=model)
            served(r)
            assert fp.requests[-1].json["model"].startswith(model + "@")
        r, _, _ = chat_timed(c, model="x")  # tls2's certificate is not signed by tls's CA
        refused_for_tls(r)
        assert len(provider.requests) == 2 and len(other.requests) == 1
    finally:
        tls2.stop()
        other.stop()


def test_v1_refused_without_ca_file_is_502(start_chatd, tmp_path, tls, provider):
    c = start_routed(start_chatd, tmp_path, tls_providers(tls), {"m": ["untrusted"]}, UPSTREAM_RETRIES=0)
    for stream in (True, False):
        status, _, raw, _ = post_v1(c, stream=stream)
        assert status == 502, raw
        err = json.loads(raw)["error"]
        assert err["code"] == "upstream_unreachable" and err["type"] == "upstream_error"
        assert "TLS" in err["message"]
    assert provider.requests == []


def test_gateway_502_in_front_of_a_dead_provider_falls_back(start_chatd, tmp_path, fakes):
    """nginx answers 502 Bad Gateway (an HTML body) when the provider behind it is down:
    retried with backoff, then the next target."""
    (b,) = fakes(1)
    with TLSProxy(f"http://127.0.0.1:{free_port()}/v1") as gw:
        c = start_routed(start_chatd, tmp_path, {"gw": {"base_url": gw.base_url, "ca_file": gw.ca_file},
                                                 "b": b.base_url}, {"m": ["gw", "b"]}, UPSTREAM_RETRIES=1)
        r, cid, _ = chat_timed(c)
        served(r)
        assert r.final["provider"] == "b" and len(b.requests) == 1
        assert [x[:4] for x in attempts(c, cid)] == [("gw", 1, "retryable", 502), ("gw", 2, "retryable", 502),
                                                     ("b", 3, "ok", 200)]


def test_retries_over_http2_multiplexed_connection(start_chatd, tmp_path, provider):
    """A provider offering HTTP/2 (ALPN): concurrent streams, some failing and retried,
    over the connection(s) chatd keeps to it; every request is served."""
    provider.always(Stream(tokens=["over", " h2"], delay=0.05))
    with TLSProxy(provider.base_url, http2=True) as h2:
        c = start_routed(start_chatd, tmp_path, {"h2": {"base_url": h2.base_url, "ca_file": h2.ca_file}},
                         {"m": ["h2"]}, WORKERS=1)
        served(chat_timed(c)[0], "over h2")  # the connection is known to speak HTTP/2 now
        provider.then(Status(503), Status(500))  # fewer than one request's 3 attempts
        results = []
        threads = [threading.Thread(target=lambda: results.append(chat_timed(c)[0])) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(results) == 4
        for r in results:
            served(r, "over h2")
            assert r.final["provider"] == "h2"
        assert len(provider.requests) == 1 + 2 + 4
