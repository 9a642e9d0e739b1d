"""Overload, running out of file descriptors, graceful shutdown, client keys,
CORS, and a memcheck run."""

import json
import os
import resource
import shutil
import signal
import socket
import time

import httpx
import pytest

from chatd import SENT_MESSAGES, connect, read_head, request_bytes
from conftest import post_chat
from fakeprovider import Hang, Stream
from sseclient import check_stream, decode_chunked, parse_events, three_parts


def open_stream(port, message, headers=None):
    """Starts a /chat request on a raw socket and returns it after the head."""
    SENT_MESSAGES.append(message)
    s = connect(port)
    s.sendall(request_bytes("POST", "/chat", json.dumps({"message": message}), headers=headers))
    return s


def read_to_end(s, rest=b""):
    s.settimeout(20)
    data = rest
    while not data.endswith(b"0\r\n\r\n"):
        piece = s.recv(65536)
        if not piece:
            break
        data += piece
    s.close()
    body, complete = decode_chunked(data)
    return parse_events(body, complete)


def gated_stream(provider, tokens=("a", "b")):
    """A stream that sends its first token, then waits for the returned event."""
    gate = provider.event()
    provider.then(Stream(tokens=list(tokens), gate=lambda i: gate.wait() if i == 1 else None))
    return gate


# -- overload ---------------------------------------------------------------------------

def test_over_the_stream_limit_is_503_and_open_streams_go_on(start_chatd, provider):
    c = start_chatd({"MAX_CONCURRENT_STREAMS": "2", "WORKERS": "2"})
    gates = [gated_stream(provider), gated_stream(provider)]
    socks = []
    for i in range(2):
        s = open_stream(c.port, f"open stream number {i}")
        status, _, rest = read_head(s)
        assert status == 200
        socks.append((s, rest))
    t0 = time.monotonic()
    r = post_chat(c, message="one too many")
    assert time.monotonic() - t0 < 2
    assert r.status == 503
    assert r.headers["retry-after"] == "1"
    body = r.json()
    assert body["error"] == "overloaded" and three_parts(body["detail"])
    assert len(provider.requests) == 2  # the refused one never reached the provider
    for g in gates:
        provider.set_event(g)
    for s, rest in socks:
        assert check_stream(read_to_end(s, rest))["status"] == "completed"
    assert post_chat(c).status == 200  # slots are given back


# -- file descriptors ------------------------------------------------------------------

def test_out_of_file_descriptors_pauses_accepting_without_spinning(start_chatd, provider):
    limit = 64

    def low_nofile():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    c = start_chatd({"WORKERS": "1", "LOG_LEVEL": "info"}, preexec_fn=low_nofile)
    idle = [connect(c.port) for _ in range(limit + 20)]  # more than chatd can accept
    assert c.wait_log("accept_paused", timeout=5) is not None
    cpu0, t0 = c.cpu_seconds(), time.monotonic()
    time.sleep(1.0)  # measuring idleness needs a span of time
    used = (c.cpu_seconds() - cpu0) / (time.monotonic() - t0)
    assert used < 0.3, f"chatd used {used:.0%} of a core while out of descriptors"
    for s in idle:
        s.close()
    r = httpx.get(c.url + "/health", timeout=10)  # accepted once descriptors are free
    assert r.status_code == 200
    assert c.wait_log("accept_resumed", timeout=5) is not None
    assert post_chat(c).status == 200


# -- graceful shutdown ------------------------------------------------------------------

def test_sigterm_lets_open_streams_finish(start_chatd, provider):
    c = start_chatd({"DRAIN_SECONDS": "20", "WORKERS": "1"})
    keep = connect(c.port)  # an idle keep-alive connection opened before SIGTERM
    keep.sendall(request_bytes("GET", "/health"))
    status, headers, rest = read_head(keep)
    assert status == 200
    keep.recv(65536) if len(rest) < int(headers["content-length"]) else None
    gate = gated_stream(provider, tokens=("before", " after"))
    s = open_stream(c.port, "finish me during the drain")
    status, _, rest = read_head(s)
    assert status == 200
    c.send_signal(signal.SIGTERM)
    assert c.wait_log("shutdown_started") is not None
    with pytest.raises((ConnectionRefusedError, ConnectionResetError)):
        for _ in range(50):  # the listener closes at once; give the loop a moment
            socket.create_connection(("127.0.0.1", c.port), timeout=1).close()
            time.sleep(0.02)
    provider.set_event(gate)
    events = read_to_end(s, rest)
    final = check_stream(events)
    assert final["status"] == "completed"
    assert "".join(e["content"] for e in events[:-1]) == "before after"
    assert c.wait_exit(10) == 0
    assert c.logs("server_stopped")


def test_health_is_503_while_draining(start_chatd, provider):
    c = start_chatd({"DRAIN_SECONDS": "20", "WORKERS": "1"})
    keep = connect(c.port)
    gate = gated_stream(provider)
    s = open_stream(c.port, "hold the drain open")
    read_head(s)
    c.send_signal(signal.SIGTERM)
    assert c.wait_log("shutdown_started") is not None
    keep.sendall(request_bytes("GET", "/health"))
    status, headers, rest = read_head(keep)
    assert status == 503
    assert headers["connection"] == "close"
    n = int(headers["content-length"])
    while len(rest) < n:
        rest += keep.recv(4096)
    body = json.loads(rest[:n])
    assert body["error"] == "shutting_down" and three_parts(body["detail"])
    keep.close()
    provider.set_event(gate)
    read_to_end(s)
    assert c.wait_exit(10) == 0


def test_streams_still_open_after_drain_seconds_get_a_final_event(start_chatd, provider):
    c = start_chatd({"DRAIN_SECONDS": "0.5", "WORKERS": "1"})
    provider.then(Hang(first_tokens=["partial"]), Hang())
    a = open_stream(c.port, "a stream that never ends")
    status, _, rest_a = read_head(a)
    assert status == 200
    b = open_stream(c.port, "a stream with no first token")
    assert provider.wait_requests(2)
    c.send_signal(signal.SIGTERM)
    for sock, rest, n_content in ((a, rest_a, 1), (b, b"", 0)):
        if sock is b:
            status, _, rest = read_head(b)
            assert status == 200
        events = read_to_end(sock, rest)
        final = check_stream(events)
        assert len(events) == n_content + 1
        assert final["status"] == "error" and final["error"]["error"] == "shutting_down"
        assert three_parts(final["error"]["detail"])
    assert c.wait_exit(10) == 0
    assert c.logs("server_stopped")
    assert provider.wait_disconnects(2)


def test_second_signal_ends_streams_at_once(start_chatd, provider):
    c = start_chatd({"DRAIN_SECONDS": "60", "WORKERS": "1"})
    provider.then(Hang(first_tokens=["x"]))
    s = open_stream(c.port, "interrupt me twice")
    _, _, rest = read_head(s)
    c.send_signal(signal.SIGTERM)
    assert c.wait_log("shutdown_started") is not None
    c.send_signal(signal.SIGINT)
    final = check_stream(read_to_end(s, rest))
    assert final["error"]["error"] == "shutting_down"
    assert c.wait_exit(10) == 0


# -- client keys ------------------------------------------------------------------------

KEYS = {"CLIENT_API_KEYS": "first-client-key-0001, second-client-key-0002"}


@pytest.mark.parametrize("auth", [None, "Bearer wrong-key", "Bearer first-client-key-000", "Basic Zm9vOmJhcg==",
                                  "Bearer", "first-client-key-0001", "Bearer first-client-key-00011"])
def test_chat_and_metrics_need_a_client_key(start_chatd, provider, auth):
    c = start_chatd(KEYS)
    headers = {"Authorization": auth} if auth else {}
    r = post_chat(c, headers=headers)
    assert r.status == 401
    assert r.headers["www-authenticate"] == "Bearer"
    body = r.json()
    assert body["error"] == "unauthorized" and three_parts(body["detail"])
    m = httpx.get(c.url + "/metrics", headers=headers)
    assert m.status_code == 401 and m.headers["www-authenticate"] == "Bearer"
    assert provider.requests == []


def test_valid_client_keys_are_let_in(start_chatd, provider):
    c = start_chatd(KEYS)
    for key in ("first-client-key-0001", "second-client-key-0002"):
        r = post_chat(c, headers={"Authorization": f"Bearer {key}"})
        assert r.status == 200 and check_stream(r.events)["status"] == "completed"
    assert httpx.get(c.url + "/metrics", headers={"Authorization": "bearer second-client-key-0002"}).status_code == 200
    assert httpx.get(c.url + "/health").status_code == 200  # health stays open


def test_non_loopback_without_keys_warns(start_chatd):
    c = start_chatd({"HOST": "0.0.0.0"})
    assert c.wait_log("config_warning") is not None
    assert any("anyone who can reach" in r["message"] for r in c.logs("config_warning"))
    c2 = start_chatd({"HOST": "0.0.0.0", **KEYS})
    httpx.get(f"http://127.0.0.1:{c2.port}/health")
    assert c2.wait_log("response_complete")
    assert not any("anyone who can reach" in r["message"] for r in c2.logs("config_warning"))


# -- CORS -------------------------------------------------------------------------------

ORIGINS = {"CORS_ORIGINS": "https://app.example.com,http://localhost:3000"}


def test_cors_echoes_only_listed_origins(start_chatd):
    c = start_chatd(ORIGINS)
    ok = httpx.get(c.url + "/health", headers={"Origin": "http://localhost:3000"})
    assert ok.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert ok.headers["vary"] == "Origin"
    assert "X-Correlation-Id" in ok.headers["access-control-expose-headers"]
    bad = httpx.get(c.url + "/health", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in bad.headers
    assert bad.headers["vary"] == "Origin"


def test_cors_on_streams_and_errors(start_chatd):
    c = start_chatd(ORIGINS)
    r = post_chat(c, headers={"Origin": "https://app.example.com"})
    assert r.headers["access-control-allow-origin"] == "https://app.example.com"
    e = post_chat(c, body={"message": ""}, headers={"Origin": "https://app.example.com"})
    assert e.status == 400 and e.headers["access-control-allow-origin"] == "https://app.example.com"


def test_cors_preflight(start_chatd):
    c = start_chatd(ORIGINS)
    h = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
         "Access-Control-Request-Headers": "content-type,authorization"}
    r = httpx.options(c.url + "/chat", headers=h)
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "POST" in r.headers["access-control-allow-methods"]
    allowed = r.headers["access-control-allow-headers"].lower()
    assert "content-type" in allowed and "authorization" in allowed
    denied = httpx.options(c.url + "/chat", headers={**h, "Origin": "https://evil.example.com"})
    assert denied.status_code == 204 and "access-control-allow-origin" not in denied.headers


def test_cors_wildcard_and_off(start_chatd):
    star = start_chatd({"CORS_ORIGINS": "*"})
    r = httpx.get(star.url + "/health", headers={"Origin": "https://anything.example"})
    assert r.headers["access-control-allow-origin"] == "*"
    off = start_chatd()
    r = httpx.get(off.url + "/health", headers={"Origin": "https://anything.example"})
    assert not any(k.startswith("access-control") for k in r.headers) and "vary" not in r.headers


# -- memcheck ---------------------------------------------------------------------------

def test_stream_and_disconnect_under_valgrind(start_chatd, provider):
    """Runs with the normal build (make integration); the ASan run leaves it out
    (make integration-asan), since the sanitizer already checks that build."""
    assert shutil.which("valgrind"), "valgrind is missing: run make deps"
    wrapper = ["valgrind", "--quiet", "--leak-check=full", "--errors-for-leak-kinds=definite",
               "--error-exitcode=42", "--trace-children=no"]
    c = start_chatd({"WORKERS": "1", "TIMEOUT_SECONDS": "30"}, wrapper=wrapper)
    provider.then(Stream(tokens=["memcheck", " stream"]), Stream(tokens=[str(i) for i in range(1000)], delay=0.01))
    r = post_chat(c, message="a stream under memcheck")
    assert check_stream(r.events)["status"] == "completed"
    s = open_stream(c.port, "a disconnect under memcheck")
    _, _, rest = read_head(s)
    s.close()
    assert c.wait_log("response_complete", timeout=20, outcome="client_disconnected") is not None
    c.stop()  # exit status 0 required: valgrind exits 42 on any error or definite leak
    assert not [l for l in c.stderr if "definitely lost" in l], c.stderr
