"""chatd's own HTTP/1.1 client (src/services/h1.c) against a real provider
over real TCP: which client serves which provider, the request it writes
(compared with libcurl's), keep-alive reuse, and a provider that closes its
kept connection. The other suites run through h1 too (their providers are at
127.0.0.1); make integration-tsan runs its suites with libcurl instead."""

import pytest

from conftest import post_chat
from fakeprovider import Status, Stream

CLIENTS = {"h1": "true", "libcurl": "false"}


def pool_client(c):
    rec = c.wait_log("provider_pool_opened")
    assert rec is not None, "no provider_pool_opened log line"
    return rec["client"]


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_setting_picks_the_client(start_chatd, client):
    c = start_chatd({"UPSTREAM_NATIVE_HTTP": CLIENTS[client], "LOG_LEVEL": "debug", "WORKERS": "1"})
    r = post_chat(c)
    assert r.status == 200 and r.content == "Hello world"
    assert pool_client(c) == client


def test_localhost_is_served_by_h1(start_chatd, provider):
    c = start_chatd({"OPENAI_BASE_URL": f"http://localhost:{provider.port}/v1", "WORKERS": "1"})
    r = post_chat(c)
    assert r.status == 200 and r.content == "Hello world"
    assert pool_client(c) == "h1"
    assert provider.requests[0].headers["Host"] == f"localhost:{provider.port}"


def test_a_proxy_in_the_environment_means_libcurl(start_chatd, provider):
    # libcurl applies proxies and their exceptions; here the exception lets the
    # request go straight to the provider.
    c = start_chatd({"http_proxy": "http://127.0.0.1:9", "no_proxy": "127.0.0.1", "WORKERS": "1"})
    r = post_chat(c)
    assert r.status == 200 and r.content == "Hello world"
    assert pool_client(c) == "libcurl"


def request_seen(start_chatd, provider, native):
    c = start_chatd({"UPSTREAM_NATIVE_HTTP": native, "WORKERS": "1"})
    assert post_chat(c, message="hi").status == 200
    c.stop()
    req = provider.requests[-1]
    return req, {k.lower(): v for k, v in req.headers.items()}


def test_the_request_is_the_one_libcurl_writes(start_chatd, provider):
    ours, h = request_seen(start_chatd, provider, "true")
    theirs, h_curl = request_seen(start_chatd, provider, "false")
    assert ours.path == theirs.path == "/v1/chat/completions"
    assert ours.json == theirs.json and ours.json["stream"] is True
    for name in ("host", "user-agent", "content-type", "accept", "authorization", "content-length"):
        assert h[name] == h_curl[name], name
    assert h["host"] == f"127.0.0.1:{provider.port}"
    assert h["authorization"].startswith("Bearer ")
    assert "expect" not in h and "transfer-encoding" not in h


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_one_connection_serves_requests_in_turn(start_chatd, provider, client):
    c = start_chatd({"UPSTREAM_NATIVE_HTTP": CLIENTS[client], "WORKERS": "1"})
    for i in range(4):
        r = post_chat(c)
        assert r.status == 200 and r.content == "Hello world", i
    peers = {req.peer for req in provider.requests}
    assert len(peers) == 1, peers


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_a_connection_the_provider_closes_is_not_reused(start_chatd, provider, client):
    c = start_chatd({"UPSTREAM_NATIVE_HTTP": CLIENTS[client], "WORKERS": "1"})
    provider.then(Status(429, headers={"Connection": "close", "Retry-After": "7"}))
    final = post_chat(c).final
    assert final["status"] == "error" and final["error"]["error"] == "upstream_rate_limited"
    assert "Retry-After: 7 s" in final["error"]["detail"]
    for i in range(2):
        r = post_chat(c)
        assert r.status == 200 and r.content == "Hello world", i
    peers = [req.peer for req in provider.requests]
    assert peers[0] != peers[1] and peers[1] == peers[2], peers


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_tokens_arrive_one_by_one(start_chatd, provider, client):
    c = start_chatd({"UPSTREAM_NATIVE_HTTP": CLIENTS[client], "WORKERS": "1"})
    provider.then(Stream(tokens=[f"t{i} " for i in range(30)], delay=0.01))
    r = post_chat(c)
    assert r.status == 200
    assert r.content == "".join(f"t{i} " for i in range(30))
    assert r.final["status"] == "completed"
