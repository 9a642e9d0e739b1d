"""Following a request through the logs by its correlation id, and /metrics."""

import json
import socket
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from chatd import ISO_RE, SENT_MESSAGES, TEST_API_KEY, connect, read_head, request_bytes
from conftest import post_chat
from fakeprovider import Hang, Status, Stream
from sseclient import check_stream


def lifecycle(c, cid):
    return [r for r in c.logs(cid=cid)]


def test_streamed_request_story_in_the_logs(chatd, provider):
    provider.then(Stream(tokens=["a", "b", "c"], usage=(4, 3)))
    r = post_chat(chatd, message="tell the whole story please")
    cid = r.headers["x-correlation-id"]
    done = chatd.wait_log("response_complete", correlation_id=cid)
    assert done["status"] == 200 and done["outcome"] == "completed"
    assert done["token_count"] == 3 and isinstance(done["duration_ms"], int)
    events = [rec["event"] for rec in lifecycle(chatd, cid)]
    assert events[0] == "request_received" and events[-1] == "response_complete"
    chunks = [rec for rec in lifecycle(chatd, cid) if rec["event"] == "chunk_sent"]
    assert [c["sequence"] for c in chunks] == [0, 1, 2]
    for c in chunks:
        assert c["level"] == "debug" and isinstance(c["elapsed_ms"], int)
        assert set(c) == {"timestamp", "level", "event", "correlation_id", "sequence", "elapsed_ms"}
    for rec in lifecycle(chatd, cid):
        assert ISO_RE.match(rec["timestamp"])


def test_error_request_story_in_the_logs(chatd, provider):
    provider.then(Status(503))
    r = post_chat(chatd, message="this one will fail upstream")
    cid = r.headers["x-correlation-id"]
    done = chatd.wait_log("response_complete", correlation_id=cid)
    assert done["outcome"] == "error"
    err = chatd.logs("error_occurred", cid=cid)
    assert len(err) == 1
    assert err[0]["error_type"] == "upstream_error" and err[0]["level"] == "error"
    assert err[0]["message"] == r.final["error"]["detail"]
    assert err[0]["recovery_action"]
    assert chatd.logs("request_received", cid=cid)


def test_validation_error_story_in_the_logs(chatd):
    r = post_chat(chatd, body={"message": ""})
    cid = r.headers["x-correlation-id"]
    assert r.json()["correlation_id"] == cid
    done = chatd.wait_log("response_complete", correlation_id=cid)
    assert done["status"] == 400 and done["outcome"] == "error"
    assert chatd.logs("error_occurred", cid=cid)[0]["error_type"] == "validation_error"


def test_response_complete_exactly_once_whatever_the_end(start_chatd, provider):
    c = start_chatd({"TIMEOUT_SECONDS": "0.5"})
    provider.then(Stream(tokens=["ok"]), Status(500), Hang(), Hang(first_tokens=["x"]),
                  Stream(tokens=[str(i) for i in range(1000)], delay=0.01))
    cids = [post_chat(c, message=f"ending number {i}").headers["x-correlation-id"] for i in range(4)]
    SENT_MESSAGES.append("a client that leaves")
    s = connect(c.port)
    s.sendall(request_bytes("POST", "/chat", json.dumps({"message": "a client that leaves"})))
    _, headers, _ = read_head(s)
    cids.append(headers["x-correlation-id"])
    s.close()
    # Each one waited for: with two workers, a stream's line may follow the next
    # request's (its final event reached the client before its worker logged).
    for cid in cids:
        assert c.wait_log("response_complete", correlation_id=cid) is not None
    outcomes = []
    for cid in cids:
        recs = c.logs("response_complete", cid=cid)
        assert len(recs) == 1, (cid, recs)
        outcomes.append(recs[0]["outcome"])
    assert outcomes == ["completed", "error", "timeout", "timeout", "client_disconnected"]


def test_debug_lines_absent_at_info(start_chatd, provider):
    c = start_chatd({"LOG_LEVEL": "info"})
    post_chat(c)
    assert c.wait_log("response_complete")
    assert not c.logs("chunk_sent")
    assert all(r["level"] != "debug" for r in c.logs())


def test_content_never_logged(chatd, provider):
    provider.then(Stream(tokens=["SECRET-OUTPUT-TOKEN-ALPHA", " SECRET-OUTPUT-TOKEN-BETA"]))
    post_chat(chatd)
    assert chatd.wait_log("response_complete")
    text = "\n".join(chatd.stdout)
    assert "SECRET-OUTPUT-TOKEN" not in text


def test_authorization_header_never_logged(start_chatd):
    c = start_chatd({"CLIENT_API_KEYS": "client-secret-key-123456"})
    httpx.get(c.url + "/metrics", headers={"Authorization": "Bearer client-secret-key-123456"})
    httpx.get(c.url + "/metrics", headers={"Authorization": "Bearer wrong-key-999999999"})
    assert c.wait_log("response_complete", status=401)
    text = "\n".join(c.stdout + c.stderr)
    assert "client-secret-key-123456" not in text and "wrong-key-999999999" not in text


# -- metrics ------------------------------------------------------------------------------

def scrape(c):
    r = httpx.get(c.url + "/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    out = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(m, name, **labels):
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_parse_and_move(chatd, provider):
    before = scrape(chatd)
    provider.then(Stream(tokens=["a", "b"], usage=(7, 2)), Status(429))
    post_chat(chatd)
    post_chat(chatd)
    post_chat(chatd, body={"message": ""})
    httpx.get(chatd.url + "/nope")
    assert chatd.wait_log("response_complete", status=404)
    after = scrape(chatd)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("chatd_http_requests_total", route="/chat", status="200") == 2
    assert delta("chatd_http_requests_total", route="/chat", status="400") == 1
    assert delta("chatd_http_requests_total", route="other", status="404") == 1
    assert delta("chatd_streams_total", outcome="completed") == 1
    assert delta("chatd_streams_total", outcome="error") == 1
    assert delta("chatd_tokens_total", type="prompt") == 7
    assert delta("chatd_tokens_total", type="completion") == 2
    assert delta("chatd_upstream_errors_total", code="upstream_rate_limited") == 1
    assert delta("chatd_time_to_first_token_seconds_count") == 1
    assert delta("chatd_stream_duration_seconds_count") == 2
    assert value(after, "chatd_stream_duration_seconds_bucket", le="+Inf") == value(
        after, "chatd_stream_duration_seconds_count")
    assert value(after, "chatd_active_streams") == 0


def test_active_streams_gauge_and_disconnects(chatd, provider):
    gate = provider.event()
    provider.then(Stream(tokens=["a", "b"], gate=lambda i: gate.wait() if i == 1 else None))
    SENT_MESSAGES.append("keep me open for the gauge")
    s = connect(chatd.port)
    s.sendall(request_bytes("POST", "/chat", json.dumps({"message": "keep me open for the gauge"})))
    read_head(s)
    assert value(scrape(chatd), "chatd_active_streams") == 1
    before = value(scrape(chatd), "chatd_client_disconnects_total")
    s.close()
    assert chatd.wait_log("response_complete", outcome="client_disconnected")
    m = scrape(chatd)
    assert value(m, "chatd_active_streams") == 0
    assert value(m, "chatd_client_disconnects_total") == before + 1
    provider.set_event(gate)
