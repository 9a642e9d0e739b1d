"""Providers and routing (CONTRACT.md, "Providers and routing (CHATD_CONFIG)"), against
the real binary with two and three scripted fake providers: every row of the routing
table (which provider served, how many requests each saw, elapsed time, the final
event, the upstream_attempt log lines, /metrics), both endpoints, and per-provider
headers. Also: test_routing_budget.py (TIMEOUT_SECONDS, CONNECT_TIMEOUT_SECONDS),
test_routing_breaker.py, test_routing_tls.py (ca_file), test_routing_reload.py (SIGHUP);
they share the helpers here."""

import email.utils
import json
import socket
import struct
import threading
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from chatd import SENT_MESSAGES, TEST_API_KEY
from conftest import post_chat
from fakeprovider import FakeProvider, Hang, Raw, Status, Stream, chunk, free_port, sse

OTHER_KEY = "sk-other-7d3e1f0a9b8c7d6e5f4a3b2c1d0e9f8a"
ATTEMPT_KEYS = {"timestamp", "level", "event", "correlation_id", "provider", "model", "attempt",
                "outcome", "status", "delay_ms"}
RETRYABLE = [500, 502, 503, 504, 408]


# -- fixtures and helpers -----------------------------------------------------------------


@pytest.fixture
def fakes():
    """fakes(n): n more started FakeProviders, stopped after the test."""
    started = []

    def make(n):
        out = [FakeProvider().start() for _ in range(n)]
        started.extend(out)
        return out

    yield make
    for fp in started:
        fp.stop()


class Blackhole:
    """A loopback port where connect() hangs: a listener with backlog 0 whose accept
    queue is full (one connection never accepted), so the kernel drops further SYNs."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.filler = socket.create_connection(("127.0.0.1", self.port), timeout=2)
        probe = socket.socket()
        probe.settimeout(0.3)
        try:  # the trick works on this kernel: a further connect does not complete
            with pytest.raises(OSError):
                probe.connect(("127.0.0.1", self.port))
        finally:
            probe.close()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def close(self):
        self.filler.close()
        self.listener.close()


class Slammer:
    """A loopback port that accepts each connection, reads the request, and closes it
    without an answer: with an RST (reset=True) or a FIN (an empty reply)."""

    def __init__(self, reset):
        self.reset = reset
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.accepted = 0
        self.listener.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:  # a timeout: look at the stop flag again
                continue
            self.accepted += 1
            conn.settimeout(2)
            try:
                conn.recv(65536)
            except OSError:
                pass
            if self.reset:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self.listener.close()


def dead_url():
    """A loopback port with nothing listening: connect is refused."""
    return f"http://127.0.0.1:{free_port()}/v1"


def prov(name, url, **extra):
    return {"name": name, "base_url": url, **extra}


def write_routing(tmp_path, providers, models):
    """Writes tmp_path/routing.json with these providers and models (first model: the
    default). providers: name -> base_url or provider object (api_key_env defaults to
    OPENAI_API_KEY; None: no key); models: name -> [provider names] (each target's model
    is "<model>@<provider>"). Returns its path."""
    plist = []
    for name, p in providers.items():
        obj = prov(name, p) if isinstance(p, str) else {"name": name, **p}
        obj.setdefault("api_key_env", "OPENAI_API_KEY")
        if obj["api_key_env"] is None:  # a provider without a key
            del obj["api_key_env"]
        plist.append(obj)
    doc = {
        "providers": plist,
        "models": [{"name": m, "targets": [{"provider": p, "model": f"{m}@{p}"} for p in targets]}
                   for m, targets in models.items()],
        "default_model": next(iter(models)),
    }
    path = tmp_path / "routing.json"
    path.write_text(json.dumps(doc, indent=2))
    return str(path)


def start_routed(start_chatd, tmp_path, providers, models, **env):
    """chatd with the CHATD_CONFIG of write_routing, room for retries and breakers that do
    not open unless a test asks."""
    path = write_routing(tmp_path, providers, models)
    full = {"CHATD_CONFIG": path, "OPENAI_BASE_URL": None, "UPSTREAM_RETRIES": "2",
            "BREAKER_FAILURES": "1000", "TIMEOUT_SECONDS": "10"}
    full.update({k: str(v) for k, v in env.items()})
    return start_chatd(full)


def chat_timed(c, message="route this request please", **fields):
    t0 = time.monotonic()
    r = post_chat(c, message=message, **fields)
    elapsed = time.monotonic() - t0
    assert r.status in (200, 504), r.raw
    cid = r.headers["x-correlation-id"]
    assert c.wait_log("response_complete", timeout=10, correlation_id=cid) is not None
    return r, cid, elapsed


def post_v1(c, stream, message="route this one on v1", timeout=30, **fields):
    """POST /v1/chat/completions; returns (status, headers, raw body, elapsed)."""
    SENT_MESSAGES.append(message)
    body = {"model": fields.pop("model", "m"), "stream": stream,
            "messages": [{"role": "user", "content": message}], **fields}
    t0 = time.monotonic()
    with httpx.Client(timeout=timeout) as client:
        with client.stream("POST", c.url + "/v1/chat/completions", json=body) as r:
            raw = b"".join(r.iter_raw())
    return r.status_code, r.headers, raw, time.monotonic() - t0


def v1_datas(raw):
    """The data payloads of a /v1 event stream, [DONE] kept as the string."""
    out = []
    for line in raw.decode().split("\n"):
        if line.startswith("data: "):
            d = line[len("data: "):]
            out.append(d if d == "[DONE]" else json.loads(d))
    return out


def v1_text(datas):
    return "".join((d["choices"][0]["delta"].get("content") or "")
                   for d in datas if isinstance(d, dict) and d.get("choices"))


def attempts(c, cid):
    """The upstream_attempt lines of one request as (provider, attempt, outcome, status,
    delay_ms), after checking each carries exactly the contract's fields."""
    recs = c.logs("upstream_attempt", cid=cid)
    for r in recs:
        assert set(r) == ATTEMPT_KEYS, r
        assert r["model"] == f"{r['model'].split('@')[0]}@{r['provider']}", r
        assert r["level"] in ("info", "warning"), r
    text = json.dumps(recs)
    assert TEST_API_KEY not in text and OTHER_KEY not in text
    assert "route this" not in text  # no message text
    return [(r["provider"], r["attempt"], r["outcome"], r["status"], r["delay_ms"]) for r in recs]


def scrape(c):
    r = httpx.get(c.url + "/metrics")
    assert r.status_code == 200
    out = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(m, name, **labels):
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


def attempts_metric(m, provider, outcome):
    return value(m, "chatd_upstream_attempts_total", provider=provider, outcome=outcome)


def retries_metric(m, provider):
    return value(m, "chatd_upstream_retries_total", provider=provider)


def fallbacks_metric(m, provider):
    return value(m, "chatd_upstream_fallbacks_total", provider=provider)


def ttft_count(m, provider):
    return value(m, "chatd_provider_time_to_first_token_seconds_count", provider=provider)


def breaker(m, provider):
    return value(m, "chatd_breaker_state", provider=provider)


def wait_count(c, event, n, timeout=5.0, **match):
    """Waits until chatd logged at least n lines of event (with these fields)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recs = [r for r in c.logs(event) if all(r.get(k) == v for k, v in match.items())]
        if len(recs) >= n:
            return True
        time.sleep(0.02)
    return False


def check_backoff(fp, logged, first_retry=0):
    """The delays of consecutive retries of one target: logged delay_ms within the
    full-jitter bounds (retry n: 0..100 ms * 2^n), and really waited (the provider saw
    the next request no sooner)."""
    for n, d in enumerate(logged):
        cap = 100 * 2 ** (first_retry + n)
        assert 0 <= d <= cap, (n, d, cap)
        gap = fp.requests[n + 1].at - fp.requests[n].at
        assert gap >= d / 1000 - 0.0002, (n, d, gap)  # precise timers: never early
    assert sum(logged) > 0  # all zero: no backoff at all (chance below 1e-4 with two retries)


def served(r, text="Hello world"):
    assert r.status == 200, r.raw
    assert r.final["status"] == "completed", r.final
    assert r.content == text


# -- connect refused, 5xx, 408: retried with backoff, then the next target -----------------


def test_connect_refused_is_retried_then_next_target(start_chatd, tmp_path, fakes):
    (b,) = fakes(1)
    c = start_routed(start_chatd, tmp_path, {"dead": dead_url(), "b": b.base_url}, {"m": ["dead", "b"]})
    r, cid, elapsed = chat_timed(c)
    served(r)
    assert (r.final["provider"], r.final["model"]) == ("b", "m@b")
    assert len(b.requests) == 1 and b.requests[0].json["model"] == "m@b"
    rows = attempts(c, cid)
    assert [x[:4] for x in rows] == [("dead", 1, "retryable", 0), ("dead", 2, "retryable", 0),
                                     ("dead", 3, "retryable", 0), ("b", 4, "ok", 200)]
    delays = [x[4] for x in rows]
    assert 0 <= delays[0] <= 100 and 0 <= delays[1] <= 200 and delays[0] + delays[1] > 0
    assert delays[2] == 0 and delays[3] == 0  # the next target at once
    assert elapsed < 3.0  # refused connects cost nothing; the backoff at most 300 ms
    m = scrape(c)
    assert attempts_metric(m, "dead", "retryable") == 3
    assert attempts_metric(m, "b", "ok") == 1
    assert retries_metric(m, "dead") == 2 and retries_metric(m, "b") == 0
    assert fallbacks_metric(m, "dead") == 1 and fallbacks_metric(m, "b") == 0
    assert ttft_count(m, "b") == 1 and ttft_count(m, "dead") == 0
    assert breaker(m, "dead") == 0 and breaker(m, "b") == 0


@pytest.mark.parametrize("status", RETRYABLE)
def test_server_errors_retried_with_backoff_then_next_target(start_chatd, tmp_path, fakes, status):
    a, b = fakes(2)
    a.always(Status(status))
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a", "b"]})
    r, cid, elapsed = chat_timed(c)
    served(r)
    assert (r.final["provider"], r.final["model"]) == ("b", "m@b")
    assert len(a.requests) == 3 and len(b.requests) == 1
    assert all(q.json["model"] == "m@a" for q in a.requests)
    rows = attempts(c, cid)
    assert [x[:4] for x in rows] == [("a", 1, "retryable", status), ("a", 2, "retryable", status),
                                     ("a", 3, "retryable", status), ("b", 4, "ok", 200)]
    check_backoff(a, [rows[0][4], rows[1][4]])
    assert rows[2][4] == 0
    assert b.requests[0].at - a.requests[2].at < 1.0  # no wait before the next target
    assert elapsed < 3.0
    m = scrape(c)
    assert attempts_metric(m, "a", "retryable") == 3 and attempts_metric(m, "b", "ok") == 1
    assert retries_metric(m, "a") == 2 and fallbacks_metric(m, "a") == 1
    assert ttft_count(m, "b") == 1


def test_three_providers_all_failing_give_the_last_failure(start_chatd, tmp_path, fakes):
    a, b, d = fakes(3)
    a.always(Status(500))
    b.always(Status(503))
    d.always(Status(401))
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url, "d": d.base_url},
                     {"m": ["a", "b", "d"]}, UPSTREAM_RETRIES=1)
    r, cid, elapsed = chat_timed(c)
    assert r.status == 200 and r.final["status"] == "error"
    assert r.final["error"]["error"] == "upstream_auth_failed"  # d's answer, the last one
    assert "401" in r.final["error"]["detail"]
    assert (r.final["provider"], r.final["model"]) == ("d", "m@d")
    assert (len(a.requests), len(b.requests), len(d.requests)) == (2, 2, 1)
    rows = attempts(c, cid)
    assert [x[:4] for x in rows] == [("a", 1, "retryable", 500), ("a", 2, "retryable", 500),
                                     ("b", 3, "retryable", 503), ("b", 4, "retryable", 503),
                                     ("d", 5, "misconfigured", 401)]
    assert rows[-1][4] == -1  # nothing after it
    m = scrape(c)
    assert fallbacks_metric(m, "a") == 1 and fallbacks_metric(m, "b") == 1
    assert retries_metric(m, "a") == 1 and retries_metric(m, "b") == 1
    assert attempts_metric(m, "d", "misconfigured") == 1
    assert value(m, "chatd_upstream_errors_total", code="upstream_auth_failed") == 1
    assert sum(ttft_count(m, p) for p in "abd") == 0


def test_cut_or_error_before_first_token_is_retried(start_chatd, tmp_path, fakes):
    a, b = fakes(2)
    role_only = sse(chunk(role=True, content=""))
    a.then(Raw([role_only], close=True),  # a 200 that ends before any token
           Raw([role_only, sse({"error": {"message": "overloaded", "type": "server_error"}})]),
           Stream(tokens=["from", " a"]))
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a", "b"]})
    r, cid, elapsed = chat_timed(c)
    served(r, "from a")
    assert (r.final["provider"], r.final["model"]) == ("a", "m@a")
    assert len(a.requests) == 3 and len(b.requests) == 0
    rows = attempts(c, cid)
    assert [x[:3] for x in rows] == [("a", 1, "retryable"), ("a", 2, "retryable"), ("a", 3, "ok")]
    check_backoff(a, [rows[0][4], rows[1][4]])
    assert elapsed < 3.0
    m = scrape(c)
    assert attempts_metric(m, "a", "retryable") == 2 and attempts_metric(m, "a", "ok") == 1
    assert retries_metric(m, "a") == 2 and fallbacks_metric(m, "a") == 0
    assert ttft_count(m, "a") == 1


@pytest.mark.parametrize("answer", ["html", "not-json", "empty", "json-for-a-stream"])
def test_unreadable_2xx_before_the_first_token_is_retried(start_chatd, tmp_path, fakes, answer):
    a, b = fakes(2)
    a.always({
        "html": Raw([b"<html>Sign in to the Wi-Fi</html>"], content_type="text/html"),
        "not-json": Raw([b"data: this is not json\n\n"]),
        "empty": Raw([]),
        "json-for-a-stream": Status(200, {"id": "x", "object": "chat.completion", "choices": []}),
    }[answer])
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url},
                     {"m": ["a", "b"], "only": ["a"]}, UPSTREAM_RETRIES=1)
    r, cid, elapsed = chat_timed(c)
    served(r)
    assert r.final["provider"] == "b"
    assert len(a.requests) == 2 and len(b.requests) == 1
    assert [x[:4] for x in attempts(c, cid)] == [("a", 1, "retryable", 200), ("a", 2, "retryable", 200),
                                                 ("b", 3, "ok", 200)]
    r, cid, _ = chat_timed(c, model="only")  # no fallback: the client hears of a's failure
    assert r.final["status"] == "error" and r.final["error"]["error"] == "upstream_protocol_error"
    assert (r.final["provider"], r.final["model"]) == ("a", "only@a")
    assert len(a.requests) == 4


def test_dns_failure_is_retried_then_next_target(start_chatd, tmp_path, fakes):
    (b,) = fakes(1)
    c = start_routed(start_chatd, tmp_path, {"nowhere": "http://chatd-test-host.invalid/v1", "b": b.base_url},
                     {"m": ["nowhere", "b"]}, UPSTREAM_RETRIES=1, CONNECT_TIMEOUT_SECONDS=2)
    r, cid, elapsed = chat_timed(c)
    served(r)
    assert r.final["provider"] == "b" and len(b.requests) == 1
    assert [x[:4] for x in attempts(c, cid)] == [("nowhere", 1, "retryable", 0), ("nowhere", 2, "retryable", 0),
                                                 ("b", 3, "ok", 200)]
    assert elapsed < 6.0  # at most two connect timeouts


def test_v1_stream_cut_before_first_token_sends_one_role_chunk(start_chatd, tmp_path, fakes):
    """A role-only chunk held back from an attempt that then failed is not relayed: the
    client sees the serving provider's stream only."""
    a, b = fakes(2)
    a.always(Raw([sse(chunk(role=True, content=""))], close=True))
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a", "b"]},
                     UPSTREAM_RETRIES=1)
    status, headers, raw, _ = post_v1(c, stream=True)
    assert status == 200, raw
    datas = v1_datas(raw)
    assert datas[-1] == "[DONE]" and v1_text(datas) == "Hello world"
    roles = [d for d in datas if isinstance(d, dict) and d.get("choices")
             and d["choices"][0]["delta"].get("role")]
    assert len(roles) == 1, datas
    assert (len(a.requests), len(b.requests)) == (2, 1)


@pytest.mark.parametrize("reset", [True, False], ids=["reset", "empty-reply"])
def test_connection_reset_or_empty_reply_is_retried_then_next_target(start_chatd, tmp_path, fakes, reset):
    (b,) = fakes(1)
    slam = Slammer(reset)
    try:
        c = start_routed(start_chatd, tmp_path, {"slam": slam.base_url, "b": b.base_url}, {"m": ["slam", "b"]})
        r, cid, elapsed = chat_timed(c)
        served(r)
        assert r.final["provider"] == "b" and len(b.requests) == 1
        assert slam.accepted == 3
        assert [x[:4] for x in attempts(c, cid)] == [("slam", 1, "retryable", 0), ("slam", 2, "retryable", 0),
                                                     ("slam", 3, "retryable", 0), ("b", 4, "ok", 200)]
        m = scrape(c)
        assert value(m, "chatd_upstream_errors_total", code="upstream_unreachable") == 0  # not the stream's end
        assert value(m, "chatd_streams_total", outcome="completed") == 1
    finally:
        slam.close()


# -- 429 ------------------------------------------------------------------------------------


def test_429_retry_after_waited_when_it_fits(start_chatd, tmp_path, fakes):
    a, b = fakes(2)
    a.then(Status(429, headers={"Retry-After": "1"}), Stream(tokens=["after", " waiting"]))
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a", "b"]},
                     TIMEOUT_SECONDS=5)
    r, cid, elapsed = chat_timed(c)
    served(r, "after waiting")
    assert r.final["provider"] == "a"
    assert len(a.requests) == 2 and len(b.requests) == 0
    assert a.requests[1].at - a.requests[0].at >= 0.999
    assert 1.0 <= elapsed < 4.0
    rows = attempts(c, cid)
    assert rows == [("a", 1, "rate_limited", 429, 1000), ("a", 2, "ok", 200, 0)]
    m = scrape(c)
    assert attempts_metric(m, "a", "rate_limited") == 1 and attempts_metric(m, "a", "ok") == 1
    assert retries_metric(m, "a") == 1 and fallbacks_metric(m, "a") == 0
    # Time to first token by provider counts from the request: the wait is in it.
    assert ttft_count(m, "a") == 1
    assert 1.0 <= value(m, "chatd_provider_time_to_first_token_seconds_sum", provider="a") < 4.0
    assert value(m, "chatd_provider_time_to_first_token_seconds_bucket", provider="a", le="0.5") == 0
    assert value(m, "chatd_provider_time_to_first_token_seconds_bucket", provider="a", le="+Inf") == 1


def test_429_retry_after_http_date_is_waited(start_chatd, tmp_path, fakes):
    (a,) = fakes(1)
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url}, {"m": ["a"]}, TIMEOUT_SECONDS=8)
    a.then(Status(429, headers={"Retry-After": email.utils.formatdate(time.time() + 2, usegmt=True)}))
    r, cid, elapsed = chat_timed(c)
    served(r)
    rows = attempts(c, cid)
    assert [x[:4] for x in rows] == [("a", 1, "rate_limited", 429), ("a", 2, "ok", 200)]
    assert 1000 <= rows[0][4] <= 2000, rows
    assert a.requests[1].at - a.requests[0].at >= rows[0][4] / 1000 - 0.002


@pytest.mark.parametrize("retry_after", ["30", "99999999999999999999", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_429_retry_after_that_does_not_fit_goes_to_next_target_at_once(start_chatd, tmp_path, fakes,
                                                                       retry_after):
    a, b = fakes(2)
    a.always(Status(429, headers={"Retry-After": retry_after}))
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a", "b"]},
                     TIMEOUT_SECONDS=5)
    r, cid, elapsed = chat_timed(c)
    served(r)
    assert r.final["provider"] == "b"
    assert len(a.requests) == 1 and len(b.requests) == 1
    assert elapsed < 2.5
    rows = attempts(c, cid)
    assert rows == [("a", 1, "rate_limited", 429, 0), ("b", 2, "ok", 200, 0)]
    m = scrape(c)
    assert fallbacks_metric(m, "a") == 1 and retries_metric(m, "a") == 0


def test_429_wait_counts_as_one_of_the_retries(start_chatd, tmp_path, fakes):
    a, b = fakes(2)
    a.always(Status(429, headers={"Retry-After": "1"}))
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a", "b"]},
                     TIMEOUT_SECONDS=8, UPSTREAM_RETRIES=1)
    r, cid, elapsed = chat_timed(c)
    served(r)
    assert r.final["provider"] == "b"
    assert len(a.requests) == 2 and len(b.requests) == 1
    assert 1.0 <= elapsed < 5.0
    rows = attempts(c, cid)
    assert rows == [("a", 1, "rate_limited", 429, 1000), ("a", 2, "rate_limited", 429, 0),
                    ("b", 3, "ok", 200, 0)]


@pytest.mark.parametrize("retry_after", [None, "soon", "-5", "1.5"])
def test_429_without_retry_after_is_as_503(start_chatd, tmp_path, fakes, retry_after):
    """No Retry-After, or one that is neither delta-seconds nor an HTTP-date."""
    a, b = fakes(2)
    a.always(Status(429, headers={"Retry-After": retry_after} if retry_after else {}))
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a", "b"]})
    r, cid, elapsed = chat_timed(c)
    served(r)
    assert r.final["provider"] == "b"
    assert len(a.requests) == 3 and len(b.requests) == 1
    rows = attempts(c, cid)
    assert [x[:4] for x in rows] == [("a", 1, "retryable", 429), ("a", 2, "retryable", 429),
                                     ("a", 3, "retryable", 429), ("b", 4, "ok", 200)]
    check_backoff(a, [rows[0][4], rows[1][4]])
    assert elapsed < 3.0
    m = scrape(c)
    assert attempts_metric(m, "a", "retryable") == 3 and attempts_metric(m, "a", "rate_limited") == 0


def test_429_everywhere_reaches_the_client(start_chatd, tmp_path, fakes):
    a, b = fakes(2)
    a.always(Status(429, headers={"Retry-After": "60"}))
    b.always(Status(429, headers={"Retry-After": "60"}))
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a", "b"]},
                     TIMEOUT_SECONDS=5)
    r, cid, elapsed = chat_timed(c)
    assert r.final["status"] == "error" and r.final["error"]["error"] == "upstream_rate_limited"
    assert r.final["provider"] == "b" and elapsed < 2.5
    status, headers, raw, _ = post_v1(c, stream=True)
    assert status == 429, raw
    assert headers["retry-after"] == "60"
    assert json.loads(raw)["error"]["code"] == "upstream_rate_limited"
    assert (len(a.requests), len(b.requests)) == (2, 2)


# -- 401/403/404: the next target at once --------------------------------------------------


@pytest.mark.parametrize("status", [401, 403, 404])
def test_misconfigured_target_is_left_at_once(start_chatd, tmp_path, fakes, status):
    a, b = fakes(2)
    a.always(Status(status))
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a", "b"]})
    r, cid, elapsed = chat_timed(c)
    served(r)
    assert (r.final["provider"], r.final["model"]) == ("b", "m@b")
    assert len(a.requests) == 1 and len(b.requests) == 1
    assert b.requests[0].at - a.requests[0].at < 1.0
    assert elapsed < 3.0
    rows = attempts(c, cid)
    assert rows == [("a", 1, "misconfigured", status, 0), ("b", 2, "ok", 200, 0)]
    m = scrape(c)
    assert attempts_metric(m, "a", "misconfigured") == 1 and attempts_metric(m, "b", "ok") == 1
    assert retries_metric(m, "a") == 0 and fallbacks_metric(m, "a") == 1


# -- 400/413/422: no retry, no fallback ----------------------------------------------------


@pytest.mark.parametrize("status", [400, 413, 422])
def test_client_error_is_neither_retried_nor_fallen_back(start_chatd, tmp_path, fakes, status):
    a, b = fakes(2)
    a.always(Status(status, {"error": {"message": "max_tokens is too large", "type": "invalid_request_error"}}))
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a", "b"]},
                     BREAKER_FAILURES=2, BREAKER_COOLDOWN_SECONDS=30)
    r, cid, elapsed = chat_timed(c)
    assert r.status == 200 and r.final["status"] == "error"
    assert r.final["error"]["error"] == "upstream_bad_request"
    assert f"HTTP {status}" in r.final["error"]["detail"]
    assert "max_tokens is too large" in r.final["error"]["detail"]  # the provider's reason
    assert (r.final["provider"], r.final["model"]) == ("a", "m@a")
    assert elapsed < 3.0
    assert attempts(c, cid) == [("a", 1, "client_error", status, -1)]
    for stream in (True, False):
        code, _, raw, _ = post_v1(c, stream=stream)
        assert code == 400, raw
        err = json.loads(raw)["error"]
        assert err["code"] == "upstream_bad_request" and err["type"] == "invalid_request_error"
    assert len(a.requests) == 3 and len(b.requests) == 0
    assert [q.json["stream"] for q in a.requests] == [True, True, False]
    m = scrape(c)
    assert attempts_metric(m, "a", "client_error") == 3
    assert retries_metric(m, "a") == 0 and fallbacks_metric(m, "a") == 0
    assert breaker(m, "a") == 0  # the request was wrong, not the provider: no failure counted


# -- never after the first token -----------------------------------------------------------


def test_no_retry_after_the_first_token(start_chatd, tmp_path, fakes):
    a, b = fakes(2)
    a.then(Stream(tokens=["half", " an", " answer"], cut_after=1),
           Stream(tokens=["half", " an", " answer"], cut_after=1))
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a", "b"]})
    r, cid, elapsed = chat_timed(c)
    assert r.status == 200
    assert [e["content"] for e in r.events[:-1]] == ["half"]
    assert r.final["status"] == "error" and r.final["error"]["error"] == "upstream_interrupted"
    assert (r.final["provider"], r.final["model"]) == ("a", "m@a")
    assert attempts(c, cid) == [("a", 1, "ok", 200, 0)]
    # /v1 streamed: the same, the error inside the stream.
    status, _, raw, _ = post_v1(c, stream=True)
    assert status == 200
    datas = v1_datas(raw)
    assert v1_text(datas) == "half"
    assert datas[-1]["error"]["code"] == "upstream_interrupted"
    assert len(a.requests) == 2 and len(b.requests) == 0
    m = scrape(c)
    assert attempts_metric(m, "a", "ok") == 2 and fallbacks_metric(m, "a") == 0
    assert retries_metric(m, "a") == 0


def test_no_retry_after_the_first_token_when_the_provider_stalls(start_chatd, tmp_path, fakes):
    a, b = fakes(2)
    a.then(Hang(first_tokens=["only"]))
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a", "b"]},
                     TIMEOUT_SECONDS=1.5)
    r, cid, elapsed = chat_timed(c)
    assert r.content == "only"
    assert r.final["status"] == "timeout" and r.final["error"]["error"] == "upstream_timeout"
    assert r.final["provider"] == "a"
    assert 1.4 <= elapsed < 5.0
    assert len(a.requests) == 1 and len(b.requests) == 0


# -- both endpoints go through the router --------------------------------------------------


COMPLETION = {
    "id": "chatcmpl-json", "object": "chat.completion", "created": 1700000000, "model": "x",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "json from b"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
}


@pytest.mark.parametrize("endpoint", ["chat", "v1-stream", "v1-json"])
def test_both_endpoints_walk_the_targets(start_chatd, tmp_path, fakes, endpoint):
    a, b, d = fakes(3)
    a.always(Status(503))
    b.always(Status(404))
    if endpoint == "v1-json":
        d.always(Status(200, COMPLETION))
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url, "d": d.base_url},
                     {"m": ["a", "b", "d"]}, UPSTREAM_RETRIES=1)
    if endpoint == "chat":
        r, cid, _ = chat_timed(c)
        served(r)
        assert (r.final["provider"], r.final["model"]) == ("d", "m@d")
    else:
        status, headers, raw, _ = post_v1(c, stream=endpoint == "v1-stream")
        assert status == 200, raw
        cid = headers["x-request-id"]
        if endpoint == "v1-stream":
            datas = v1_datas(raw)
            assert datas[-1] == "[DONE]" and v1_text(datas) == "Hello world"
        else:
            assert json.loads(raw) == COMPLETION  # the provider's object, unchanged
        assert c.wait_log("response_complete", correlation_id=cid)
    assert (len(a.requests), len(b.requests), len(d.requests)) == (2, 1, 1)
    stream = endpoint != "v1-json"
    for fp, model in ((a, "m@a"), (b, "m@b"), (d, "m@d")):
        assert all(q.json["model"] == model and q.json["stream"] is stream for q in fp.requests)
    assert [x[:4] for x in attempts(c, cid)] == [
        ("a", 1, "retryable", 503), ("a", 2, "retryable", 503), ("b", 3, "misconfigured", 404),
        ("d", 4, "ok", 200)]
    m = scrape(c)
    assert fallbacks_metric(m, "a") == 1 and fallbacks_metric(m, "b") == 1
    assert retries_metric(m, "a") == 1 and ttft_count(m, "d") == 1


def test_v1_gets_the_last_failure_as_its_status(start_chatd, tmp_path, fakes):
    a, b = fakes(2)
    a.always(Status(500))
    b.always(Status(503))
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a", "b"]},
                     UPSTREAM_RETRIES=0)
    for stream in (True, False):
        status, _, raw, _ = post_v1(c, stream=stream)
        assert status == 502, raw
        assert json.loads(raw)["error"]["code"] == "upstream_error"
    assert (len(a.requests), len(b.requests)) == (2, 2)


# -- per-provider key header and extra headers ---------------------------------------------


def test_key_header_and_extra_headers_per_provider(start_chatd, tmp_path, fakes):
    a, b, d = fakes(3)
    a.always(Status(503))
    b.always(Status(401))
    providers = {
        "azure": {"base_url": a.base_url, "api_key_env": "AZURE_KEY", "api_key_header": "api-key",
                  "headers": {"HTTP-Referer": "https://chat.example.com", "X-Title": "chatd"}},
        "nokey": {"base_url": b.base_url, "api_key_env": None},
        "plain": {"base_url": d.base_url},
    }
    c = start_routed(start_chatd, tmp_path, providers, {"m": ["azure", "nokey", "plain"]},
                     AZURE_KEY=OTHER_KEY, UPSTREAM_RETRIES=0)
    r, cid, _ = chat_timed(c)
    served(r)
    assert r.final["provider"] == "plain"
    ha, hb, hd = (fp.requests[0].headers for fp in (a, b, d))
    assert ha["api-key"] == OTHER_KEY  # the bare key, under its own header
    assert "Authorization" not in ha
    assert ha["HTTP-Referer"] == "https://chat.example.com" and ha["X-Title"] == "chatd"
    assert "Authorization" not in hb and "api-key" not in hb  # a provider without a key
    assert "HTTP-Referer" not in hb and "X-Title" not in hb
    assert hd["Authorization"] == f"Bearer {TEST_API_KEY}"
    assert "api-key" not in hd and "HTTP-Referer" not in hd and "X-Title" not in hd
    out = "\n".join(c.stdout + c.stderr)
    assert OTHER_KEY not in out and TEST_API_KEY not in out
    # The same again (reused handles and connections keep each provider's headers).
    a.always(Stream(tokens=["via", " azure"]))
    r, cid, _ = chat_timed(c)
    served(r, "via azure")
    assert a.requests[1].headers["api-key"] == OTHER_KEY and "Authorization" not in a.requests[1].headers


def test_authorization_named_as_key_header_keeps_bearer(start_chatd, tmp_path, fakes):
    (a,) = fakes(1)
    c = start_routed(start_chatd, tmp_path, {"a": {"base_url": a.base_url, "api_key_header": "authorization"}},
                     {"m": ["a"]})
    r, cid, _ = chat_timed(c)
    served(r)
    assert a.requests[0].headers["Authorization"] == f"Bearer {TEST_API_KEY}"


def test_v1_tool_call_is_a_first_token(start_chatd, tmp_path, fakes):
    """On /v1 a tool-call chunk goes out like content: after it, no retry and no fallback."""
    a, b = fakes(2)
    call = chunk(role=True)
    call["choices"][0]["delta"]["tool_calls"] = [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": ""}}]
    a.always(Raw([sse(call)], close=True))
    c = start_routed(start_chatd, tmp_path, {"a": a.base_url, "b": b.base_url}, {"m": ["a", "b"]})
    status, headers, raw, _ = post_v1(c, stream=True)
    assert status == 200, raw
    datas = v1_datas(raw)
    assert datas[0]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "lookup"
    assert datas[-1]["error"]["code"] == "upstream_interrupted"
    assert (len(a.requests), len(b.requests)) == (1, 0)
    assert attempts(c, headers["x-request-id"]) == [("a", 1, "ok", 200, 0)]


@pytest.mark.parametrize("failure", ["refused", "401", "404", "html"])
def test_failure_detail_names_the_configured_provider(start_chatd, tmp_path, fakes, failure):
    """With CHATD_CONFIG, OPENAI_BASE_URL/OPENAI_API_KEY/ALLOWED_MODELS are not in use (they
    may not even be set): the 'what to do' of a provider failure names the provider of the
    file instead of telling the operator to check those variables."""
    (a,) = fakes(1)
    url = dead_url() if failure == "refused" else a.base_url
    a.always({"401": Status(401), "404": Status(404), "html": Raw([b"<html></html>"], content_type="text/html")}
             .get(failure, Status(500)))
    c = start_routed(start_chatd, tmp_path, {"acme": {"base_url": url, "api_key_env": "ACME_KEY"}},
                     {"m": ["acme"]}, UPSTREAM_RETRIES=0, ACME_KEY=OTHER_KEY)
    r, cid, _ = chat_timed(c)
    assert r.final["status"] == "error" and r.final["provider"] == "acme"
    detail = r.final["error"]["detail"]
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "ALLOWED_MODELS"):
        assert name not in detail, detail
    assert "acme" in detail, detail


def test_a_model_with_many_targets_walks_them_all(start_chatd, tmp_path, fakes):
    """The contract sets no limit on a model's targets: the ninth is tried like the first."""
    (b,) = fakes(1)
    providers = {f"dead{i}": dead_url() for i in range(1, 9)}
    providers["b"] = b.base_url
    c = start_routed(start_chatd, tmp_path, providers, {"m": list(providers)}, UPSTREAM_RETRIES=0)
    r, cid, _ = chat_timed(c)
    served(r)
    assert r.final["provider"] == "b" and len(b.requests) == 1
    assert [x[:3] for x in attempts(c, cid)] == [(f"dead{i}", i, "retryable") for i in range(1, 9)] + [
        ("b", 9, "ok")]
