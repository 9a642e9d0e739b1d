"""Client keys and their limits, in-process (no REDIS_URL), against the real binary:
requests per minute (a burst of N, then 429 with Retry-After), tokens per minute
(charged from the provider's usage when a stream ends), concurrent streams (freed when
a stream ends or its client leaves), OpenAI's x-ratelimit-* headers, forbidden models,
CLIENT_API_KEYS beside the file's keys, key names (never keys) in logs and /metrics,
and `chatd hash-key` output as the file's sha256."""

import json
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from chatd import BINARY, read_head, request_bytes
from fakeprovider import Hang, Status, Stream, completion
from limitkit import (RL_REQUESTS, RL_TOKENS, ask, bearer, check_refused, completed, duration_seconds,
                      file_env, metric, wait_until, write_config)

ROUTES = ["/chat", "/v1/chat/completions"]
K_RPM, K_TPM, K_CONC, K_FREE, K_ONLY = ("sk-rpm-0a1b2c3d4e5f", "sk-tpm-1b2c3d4e5f6a", "sk-conc-2c3d4e5f6a7b",
                                        "sk-free-3d4e5f6a7b8c", "sk-only-4e5f6a7b8c9d")
ENV_KEY = "sk-env-5f6a7b8c9d0e"
ALL_SECRETS = (K_RPM, K_TPM, K_CONC, K_FREE, K_ONLY, ENV_KEY)
RPM = 4  # one request token every 15 s: none comes back during a test


@pytest.fixture
def limited(start_chatd, provider, tmp_path):
    """chatd with one key of each kind, and an env key beside them."""
    path = write_config(tmp_path, provider.base_url, [
        ("rpm-app", K_RPM, {"requests_per_minute": RPM}),
        ("tpm-app", K_TPM, {"tokens_per_minute": 30}),
        ("conc-app", K_CONC, {"max_concurrent_streams": 2}),
        ("free-app", K_FREE, {}),
        ("only-fast", K_ONLY, {"models": ["fast"], "requests_per_minute": 1000}),
    ])
    c = start_chatd(file_env(path, CLIENT_API_KEYS=ENV_KEY))
    yield c
    out = "\n".join(c.stdout + c.stderr)
    for secret in ALL_SECRETS:
        assert secret not in out, "a client key reached the logs"


def burst(base, key, route, n, **kw):
    with ThreadPoolExecutor(n) as ex:
        return list(ex.map(lambda _: ask(base, key, route, **kw), range(n)))


# -- requests per minute ------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
def test_request_limit_burst_then_429(limited, provider, route):
    answers = burst(limited.url, K_RPM, route, RPM)
    assert all(completed(a, route) for a in answers), answers
    # The burst took the whole bucket: each answer saw one token fewer, down to 0.
    assert sorted(int(a.headers["x-ratelimit-remaining-requests"]) for a in answers) == list(range(RPM))
    refused = ask(limited.url, K_RPM, route)
    check_refused(refused, route)
    assert 1 <= int(refused.headers["retry-after"]) <= 60 // RPM
    assert refused.headers["x-ratelimit-limit-requests"] == str(RPM)
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert 45 <= duration_seconds(refused.headers["x-ratelimit-reset-requests"]) <= 60
    assert len(provider.requests) == RPM  # the refused one never reached the provider
    rec = limited.wait_log("limit_refused")
    assert rec["key"] == "rpm-app" and rec["reason"] == "requests"
    assert metric(limited.url, ENV_KEY, "chatd_limit_refused_total", reason="requests") == 1
    # Another key's bucket is its own; the env key has no limit.
    assert completed(ask(limited.url, K_FREE, route), route)
    assert completed(ask(limited.url, ENV_KEY, route), route)


# -- the headers --------------------------------------------------------------------------


@pytest.mark.parametrize("route,stream", [("/chat", True), ("/v1/chat/completions", True),
                                          ("/v1/chat/completions", False)])
def test_ratelimit_headers_on_every_answer(start_chatd, provider, tmp_path, route, stream):
    path = write_config(tmp_path, provider.base_url, [
        ("both", K_RPM, {"requests_per_minute": 3, "tokens_per_minute": 1000}),
        ("free-app", K_FREE, {}),
    ])
    c = start_chatd(file_env(path))
    provider.always(Stream(tokens=["Hello", " world"], usage=(9, 2)) if stream else
                    Status(200, completion(usage=(9, 2))))
    seen = []
    for i in range(3):
        a = ask(c.url, K_RPM, route, stream=stream)
        assert completed(a, route, stream), a
        seen.append(a)
    refused = ask(c.url, K_RPM, route, stream=stream)
    check_refused(refused, route)
    for i, a in enumerate(seen + [refused]):
        rl = a.rl()
        assert set(rl) == set(RL_REQUESTS + RL_TOKENS), rl
        assert rl["x-ratelimit-limit-requests"] == "3" and rl["x-ratelimit-limit-tokens"] == "1000"
        # remaining: what the bucket holds after this request; reset: until it is full.
        assert rl["x-ratelimit-remaining-requests"] == str(max(2 - i, 0)), (i, rl)
        reset = duration_seconds(rl["x-ratelimit-reset-requests"])
        assert 20 * min(i + 1, 3) - 5 <= reset <= 20 * min(i + 1, 3), (i, rl)
        # Tokens are charged when a stream ends: 11 per completed answer before this
        # one (the bucket refills 1000 a minute meanwhile).
        assert 1000 - 11 * i - 1 <= int(rl["x-ratelimit-remaining-tokens"]) <= 1000, (i, rl)
        assert 0 <= duration_seconds(rl["x-ratelimit-reset-tokens"]) <= 60 * 11 * i / 1000 + 0.01, (i, rl)
    # A key without limits gets no such headers.
    a = ask(c.url, K_FREE, route, stream=stream)
    assert completed(a, route, stream) and a.rl() == {}, a.headers


def test_only_request_headers_without_a_token_limit(limited):
    a = ask(limited.url, K_RPM, "/chat")
    assert completed(a)
    assert set(a.rl()) == set(RL_REQUESTS)
    assert 14 <= duration_seconds(a.rl()["x-ratelimit-reset-requests"]) <= 15, a.rl()


def test_refused_before_admission_counts_nothing_and_says_nothing(limited, provider):
    """README, "What a limit counts": a 400, a 403 and /v1/models take nothing from the
    key's buckets and carry no x-ratelimit-* headers; the next admitted request still
    finds the whole bucket."""
    with httpx.Client(timeout=10) as c:
        bad = c.post(limited.url + "/chat", json={"message": ""}, headers=bearer(K_RPM))
        models = c.get(limited.url + "/v1/models", headers=bearer(K_RPM))
    forbidden = ask(limited.url, K_ONLY, "/v1/chat/completions", model="smart")
    assert (bad.status_code, models.status_code, forbidden.status) == (400, 200, 403)
    for headers in (bad.headers, models.headers, forbidden.headers):
        assert not [k for k in headers if k.lower().startswith("x-ratelimit-")], headers
    first = ask(limited.url, K_RPM, "/chat")
    assert completed(first) and first.rl()["x-ratelimit-remaining-requests"] == str(RPM - 1)
    assert provider.requests and len(provider.requests) == 1


# -- tokens per minute --------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
def test_token_limit_charged_from_usage(limited, provider, route):
    # 60 tokens used against 30 a minute: the bucket is empty once this stream ends.
    gate = provider.event()
    provider.then(Stream(tokens=["a", "b"], usage=(50, 10), gate=lambda i: gate.wait() if i == 1 else None))
    with ThreadPoolExecutor(2) as ex:
        first = ex.submit(ask, limited.url, K_TPM, route)
        assert provider.wait_requests(1)
        # While the first stream runs, nothing is charged yet: the next one is admitted.
        second = ask(limited.url, K_TPM, route)
        assert completed(second, route), second
        assert second.headers["x-ratelimit-limit-tokens"] == "30"
        assert second.headers["x-ratelimit-remaining-tokens"] == "30"
        assert "x-ratelimit-limit-requests" not in second.headers
        provider.set_event(gate)
        assert completed(first.result(), route)
    # 11 + 60 tokens charged: refused now, for about a minute or more.
    refused = ask(limited.url, K_TPM, route)
    check_refused(refused, route)
    assert int(refused.headers["retry-after"]) >= 30, refused.headers
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"
    assert duration_seconds(refused.headers["x-ratelimit-reset-tokens"]) > 60
    assert limited.wait_log("limit_refused", key="tpm-app")["reason"] == "tokens"
    assert metric(limited.url, ENV_KEY, "chatd_limit_refused_total", reason="tokens") == 1
    assert len(provider.requests) == 2


def test_token_limit_without_usage_charges_nothing(limited, provider):
    provider.always(Stream(tokens=["a", "b"], usage=None))
    for _ in range(3):
        a = ask(limited.url, K_TPM, "/chat")
        assert completed(a) and a.headers["x-ratelimit-remaining-tokens"] == "30", a.headers


# -- concurrent streams -------------------------------------------------------------------


def held_stream(provider):
    """A stream that sends its first token, then waits for the returned event."""
    ev = provider.event()
    provider.then(Stream(tokens=["first", " last"], gate=lambda i: ev.wait() if i == 1 else None))
    return ev


def open_stream(port, key, route="/chat"):
    """Starts a streamed request on a raw socket; returns it once the 200 head arrived."""
    body = {"message": "Keep this stream open."} if route == "/chat" else \
        {"model": "fast", "stream": True, "messages": [{"role": "user", "content": "Keep this stream open."}]}
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(request_bytes("POST", route, json.dumps(body), headers=bearer(key)))
    status, headers, _ = read_head(s)
    assert status == 200, (status, headers)
    return s


def read_to_end(s):
    data = b""
    while True:
        piece = s.recv(65536)
        if not piece:
            break
        data += piece
        if data.endswith(b"0\r\n\r\n"):
            break
    s.close()
    return data


@pytest.mark.parametrize("route", ROUTES)
def test_concurrency_limit_frees_slot_when_stream_ends(limited, provider, route):
    gates = [held_stream(provider), held_stream(provider)]
    socks = [open_stream(limited.port, K_CONC, route) for _ in gates]
    assert metric(limited.url, ENV_KEY, "chatd_key_active_streams", key="conc-app") == 2
    refused = ask(limited.url, K_CONC, route)
    check_refused(refused, route)
    assert refused.headers["retry-after"] == "1"
    assert refused.rl() == {}  # no request or token limit on this key: no such headers
    assert limited.wait_log("limit_refused", key="conc-app")["reason"] == "concurrency"
    assert metric(limited.url, ENV_KEY, "chatd_limit_refused_total", reason="concurrency") == 1
    # Other keys are not held back by this one.
    assert completed(ask(limited.url, K_FREE, route), route)
    # One stream ends: its slot is free again.
    provider.set_event(gates[0])
    assert b"last" in read_to_end(socks[0])
    assert wait_until(lambda: metric(limited.url, ENV_KEY, "chatd_key_active_streams", key="conc-app") == 1)
    assert completed(ask(limited.url, K_CONC, route), route)
    provider.set_event(gates[1])
    assert b"last" in read_to_end(socks[1])
    assert len(provider.requests) == 4


def test_concurrency_slot_freed_when_client_leaves(limited, provider):
    provider.then(Hang(first_tokens=["first"]), Hang(first_tokens=["first"]))
    socks = [open_stream(limited.port, K_CONC) for _ in range(2)]
    check_refused(ask(limited.url, K_CONC, "/chat"), "/chat")
    socks[0].close()  # the client leaves mid-stream
    assert provider.wait_disconnects(1)
    assert wait_until(lambda: metric(limited.url, ENV_KEY, "chatd_key_active_streams", key="conc-app") == 1)
    assert completed(ask(limited.url, K_CONC, "/chat"))
    socks[1].close()
    assert provider.wait_disconnects(2)
    assert wait_until(lambda: metric(limited.url, ENV_KEY, "chatd_key_active_streams", key="conc-app") == 0)
    # Both slots are free: two held streams again, the third refused.
    gates = [held_stream(provider), held_stream(provider)]
    socks = [open_stream(limited.port, K_CONC) for _ in gates]
    check_refused(ask(limited.url, K_CONC, "/chat"), "/chat")
    for g, s in zip(gates, socks):
        provider.set_event(g)
        assert b"last" in read_to_end(s)


# -- models -------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
def test_forbidden_model(limited, provider, route):
    refused = ask(limited.url, K_ONLY, route, model="smart")
    body = check_refused(refused, route, code="forbidden", status=403)
    if route != "/chat":
        assert body["error"]["param"] == "model"
    assert provider.requests == []
    assert completed(ask(limited.url, K_ONLY, route, model="fast"), route)
    assert completed(ask(limited.url, K_FREE, route, model="smart"), route)
    assert completed(ask(limited.url, ENV_KEY, route, model="smart"), route)
    out = "\n".join(limited.stdout)
    assert "only-fast" in out  # named by its name in the log ...
    assert K_ONLY not in out  # ... never by the key


def test_models_lists_only_the_keys_models(limited):
    def ids(key):
        r = httpx.get(limited.url + "/v1/models", headers=bearer(key), timeout=10)
        assert r.status_code == 200, r.text
        return sorted(m["id"] for m in r.json()["data"])

    assert ids(K_ONLY) == ["fast"]
    assert ids(K_FREE) == ["fast", "smart"]
    assert ids(ENV_KEY) == ["fast", "smart"]
    assert httpx.get(limited.url + "/v1/models", timeout=10).status_code == 401


# -- keys, logs, metrics ------------------------------------------------------------------


def test_env_keys_beside_file_keys(limited):
    assert limited.logs("server_started")[0]["client_keys"] == 6
    for key in (ENV_KEY, K_FREE, K_RPM):
        a = ask(limited.url, key, "/chat")
        assert completed(a), a
        assert (a.rl() != {}) == (key == K_RPM)
    for route in ROUTES:
        assert ask(limited.url, None, route).status == 401
        assert ask(limited.url, "sk-not-a-key-at-all", route).status == 401
    # The env key is unlimited: more than the rpm key's burst.
    assert all(completed(a) for a in burst(limited.url, ENV_KEY, "/chat", RPM + 2))


def test_logs_and_metrics_name_keys_by_name_only(limited, provider):
    gate = held_stream(provider)
    s = open_stream(limited.port, K_CONC)
    for _ in range(RPM + 1):
        ask(limited.url, K_RPM, "/chat")
    text = httpx.get(limited.url + "/metrics", headers=bearer(K_FREE), timeout=10).text
    assert 'chatd_key_active_streams{key="conc-app"} 1' in text
    assert 'chatd_limit_refused_total{reason="requests"} 1' in text
    provider.set_event(gate)
    read_to_end(s)
    # /metrics scrapes are not rate-limited, even with a limited key.
    for _ in range(3):
        assert httpx.get(limited.url + "/metrics", headers=bearer(K_RPM), timeout=10).status_code == 200
    keyed = [json.loads(l) for l in limited.stdout if '"key"' in l]
    assert {r["key"] for r in keyed} >= {"rpm-app"}, keyed
    for secret in ALL_SECRETS:
        assert secret not in text
        assert secret not in "\n".join(limited.stdout + limited.stderr)


# -- chatd hash-key -----------------------------------------------------------------------


def test_hash_key_output_is_accepted_by_the_file(start_chatd, provider, tmp_path):
    key = "sk-hashed-6a7b8c9d0e1f"
    p = subprocess.run([BINARY, "hash-key"], input=(key + "\n").encode(), capture_output=True, timeout=10)
    assert p.returncode == 0, p.stderr
    digest = p.stdout.decode().strip()
    doc = {
        "providers": [{"name": "main", "base_url": provider.base_url, "api_key_env": "OPENAI_API_KEY"}],
        "models": [{"name": "fast", "targets": [{"provider": "main", "model": "gpt-4o-mini"}]}],
        "keys": [{"name": "hashed", "sha256": digest, "requests_per_minute": 2}],
    }
    path = tmp_path / "chatd.json"
    path.write_text(json.dumps(doc))
    c = start_chatd(file_env(str(path)))
    a = ask(c.url, key, "/chat")
    assert completed(a) and a.headers["x-ratelimit-limit-requests"] == "2"
    assert ask(c.url, key + "x", "/chat").status == 401
    assert key not in "\n".join(c.stdout + c.stderr)
