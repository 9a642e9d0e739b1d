"""The server itself: /health, 404/405, correlation ids, logs, configuration,
start-up failures and signals."""

import json
import signal
import socket

import httpx
import pytest

from chatd import ISO_RE, TEST_API_KEY, UUID4_RE, Chatd, connect, read_head, request_bytes
from sseclient import three_parts


def test_health(chatd):
    r = httpx.get(chatd.url + "/health")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["status"] == "healthy"
    assert ISO_RE.match(body["timestamp"]), body
    assert UUID4_RE.match(r.headers["x-correlation-id"])


def test_health_head_has_no_body(chatd):
    r = httpx.head(chatd.url + "/health")
    assert r.status_code == 200
    assert r.content == b""
    assert int(r.headers["content-length"]) > 0


@pytest.mark.parametrize("path", ["/index.html", "/nope", "/chat/", "/healthz", "/chat/completions"])  # "/" is the web page
def test_unknown_path_is_404_json(chatd, path):
    r = httpx.get(chatd.url + path)
    assert r.status_code == 404
    body = r.json()
    assert body["error"] == "not_found"
    assert three_parts(body["detail"]), body["detail"]
    assert body["correlation_id"] == r.headers["x-correlation-id"]


@pytest.mark.parametrize(
    "method,path,allow",
    [("GET", "/chat", "POST, OPTIONS"), ("PUT", "/chat", "POST, OPTIONS"), ("DELETE", "/health", "GET, HEAD"),
     ("POST", "/health", "GET, HEAD"), ("POST", "/metrics", "GET, HEAD")],
)
def test_wrong_method_is_405_with_allow(chatd, method, path, allow):
    r = httpx.request(method, chatd.url + path)
    assert r.status_code == 405
    assert r.headers["allow"] == allow
    body = r.json()
    assert body["error"] == "method_not_allowed"
    assert three_parts(body["detail"])
    assert body["correlation_id"] == r.headers["x-correlation-id"]


def test_fresh_correlation_id_per_request(chatd):
    ids = {httpx.get(chatd.url + "/health").headers["x-correlation-id"] for _ in range(5)}
    assert len(ids) == 5
    assert all(UUID4_RE.match(i) for i in ids)


def test_client_correlation_id_is_reused(chatd):
    cid = "0b6f8a52-3c1d-4e7f-9a2b-5c8d7e6f1a2b"
    r = httpx.get(chatd.url + "/health", headers={"X-Correlation-Id": cid})
    assert r.headers["x-correlation-id"] == cid
    assert chatd.wait_log("response_complete", correlation_id=cid)


@pytest.mark.parametrize(
    "bad",
    ["not-a-uuid", "0b6f8a52-3c1d-4e7f-9a2b-5c8d7e6f1a2b-extra", "0b6f8a52_3c1d_4e7f_9a2b_5c8d7e6f1a2b",
     "zzzzzzzz-3c1d-4e7f-9a2b-5c8d7e6f1a2b", "x" * 400, "<script>alert(1)</script>"],
)
def test_invalid_correlation_id_is_replaced(chatd, bad):
    r = httpx.get(chatd.url + "/health", headers={"X-Correlation-Id": bad})
    got = r.headers["x-correlation-id"]
    assert got != bad and UUID4_RE.match(got)


def test_correlation_id_with_control_characters_is_replaced(chatd):
    s = connect(chatd.port)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Correlation-Id: 0b6f8a52-3c1d-4e7f-9a2b-\x015c8d7e6f1a2\r\n\r\n")
    status, headers, _ = read_head(s)
    s.close()
    assert status in (200, 400)
    assert UUID4_RE.match(headers["x-correlation-id"])


def test_every_stdout_line_is_json_with_contract_fields(chatd):
    httpx.get(chatd.url + "/health")
    httpx.get(chatd.url + "/missing")
    assert chatd.wait_log("response_complete", status=404)
    for line in chatd.stdout:
        rec = json.loads(line)
        assert ISO_RE.match(rec["timestamp"]), rec
        assert rec["level"] in ("debug", "info", "warning", "error")
        assert isinstance(rec["event"], str)
        if rec["event"] in ("request_received", "response_complete", "error_occurred"):
            assert UUID4_RE.match(rec["correlation_id"])


def test_request_lines_for_every_request(chatd):
    r = httpx.get(chatd.url + "/health")
    cid = r.headers["x-correlation-id"]
    got = chatd.wait_log("response_complete", correlation_id=cid)
    assert got["status"] == 200 and got["outcome"] == "completed"
    assert isinstance(got["duration_ms"], int) and isinstance(got["token_count"], int)
    rr = chatd.logs("request_received", cid=cid)
    assert rr and rr[0]["method"] == "GET" and rr[0]["path"] == "/health"


def test_server_started_line_shows_config_without_secrets(start_chatd):
    c = start_chatd({"CLIENT_API_KEYS": "client-key-abcdef123456"})
    rec = c.logs("server_started")[0]
    assert rec["listen"] == f"127.0.0.1:{c.port}"
    assert rec["openai_api_key_set"] is True
    assert rec["workers"] == 2 and rec["max_tokens"] == 1024
    text = "\n".join(c.stdout)
    assert TEST_API_KEY not in text and "client-key-abcdef123456" not in text


def test_missing_api_key_starts_with_one_warning(start_chatd):
    c = start_chatd({"OPENAI_API_KEY": None})
    assert c.wait_log("config_warning") is not None
    assert httpx.get(c.url + "/health").status_code == 200
    warnings = [r for r in c.logs("config_warning") if "OPENAI_API_KEY" in r["message"]]
    assert len(warnings) == 1


def test_dotenv_is_read_and_environment_wins(start_chatd, tmp_path):
    (tmp_path / ".env").write_text(
        "# settings\n\nexport MAX_TOKENS=77\nOPENAI_MODEL='dotenv-model'\nLOG_LEVEL=\"info\"  # inline\nWORKERS=3\n"
    )
    c = start_chatd({"WORKERS": "1", "LOG_LEVEL": None}, cwd=tmp_path)
    rec = c.logs("server_started")[0]
    assert rec["max_tokens"] == 77
    assert rec["openai_model"] == "dotenv-model"
    assert rec["log_level"] == "info"
    assert rec["workers"] == 1  # the real environment wins over .env


BAD_CONFIG = [
    ({"PORT": "abc"}, "PORT"),
    ({"PORT": "70000"}, "PORT"),
    ({"MAX_TOKENS": "0"}, "MAX_TOKENS"),
    ({"MAX_TOKENS": "12.5"}, "MAX_TOKENS"),
    ({"TIMEOUT_SECONDS": "-1"}, "TIMEOUT_SECONDS"),
    ({"TIMEOUT_SECONDS": "soon"}, "TIMEOUT_SECONDS"),
    ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
    ({"WORKERS": "0"}, "WORKERS"),
    ({"MAX_CONCURRENT_STREAMS": "-5"}, "MAX_CONCURRENT_STREAMS"),
    ({"DRAIN_SECONDS": "x"}, "DRAIN_SECONDS"),
    ({"OPENAI_BASE_URL": "ftp://example.com"}, "OPENAI_BASE_URL"),
    ({"OPENAI_BASE_URL": "http://"}, "OPENAI_BASE_URL"),
    ({"ALLOWED_MODELS": "a,b", "OPENAI_MODEL": "c"}, "ALLOWED_MODELS"),
    ({"CORS_ORIGINS": "example.com"}, "CORS_ORIGINS"),
    ({"CORS_ORIGINS": "https://app.example.com/path"}, "CORS_ORIGINS"),
    ({"OPENAI_API_KEY": "sk key with spaces"}, "OPENAI_API_KEY"),
]


@pytest.mark.parametrize("env,name", BAD_CONFIG)
def test_bad_config_exits_2_naming_the_variable(provider, tmp_path, env, name):
    c = Chatd({"OPENAI_BASE_URL": provider.base_url, **env}, cwd=str(tmp_path), expect_exit=2)
    c.start(wait=False)
    assert c.wait_exit(10) == 2
    c.check_sanitizers()
    err = "\n".join(c.stderr)
    assert name in err, err
    msg = err.split("configuration error: ", 1)[1]
    assert three_parts(msg), msg
    assert "sk key with spaces" not in err  # a bad key is not echoed
    assert c.stdout == []  # nothing on stdout but JSON, and nothing at all here


def test_bad_dotenv_line_exits_2_naming_the_line(provider, tmp_path):
    (tmp_path / ".env").write_text("PORT=8000\nthis is not an assignment\n")
    c = Chatd({"OPENAI_BASE_URL": provider.base_url}, cwd=str(tmp_path), expect_exit=2)
    c.start(wait=False)
    assert c.wait_exit(10) == 2
    err = "\n".join(c.stderr)
    assert ".env line 2" in err, err


def test_port_in_use_exits_2_with_message(provider, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        c = Chatd({"OPENAI_BASE_URL": provider.base_url, "PORT": str(port)}, cwd=str(tmp_path), expect_exit=2)
        c.start(wait=False)
        assert c.wait_exit(10) == 2
    err = "\n".join(c.stderr)
    assert "already in use" in err and str(port) in err
    assert three_parts(err.split("chatd: ", 1)[1])


def test_second_chatd_on_same_port_is_refused(start_chatd, provider, tmp_path):
    first = start_chatd()
    c = Chatd({"OPENAI_BASE_URL": provider.base_url, "PORT": str(first.port)}, cwd=str(tmp_path), expect_exit=2)
    c.start(wait=False)
    assert c.wait_exit(10) == 2
    assert "already in use" in "\n".join(c.stderr)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_with_exit_0(start_chatd, sig):
    c = start_chatd()
    httpx.get(c.url + "/health")
    c.stop(sig)  # asserts exit status 0 and no sanitizer report
    assert c.returncode == 0
    assert c.logs("server_stopped")


def test_keep_alive_serves_several_requests_on_one_connection(chatd):
    s = connect(chatd.port)
    for _ in range(3):
        s.sendall(request_bytes("GET", "/health"))
        status, headers, rest = read_head(s)
        assert status == 200
        n = int(headers["content-length"])
        while len(rest) < n:
            rest += s.recv(4096)
        assert json.loads(rest[:n])["status"] == "healthy"
    s.close()


def test_pipelined_requests_are_answered_in_order(chatd):
    s = connect(chatd.port)
    s.sendall(request_bytes("GET", "/health") + request_bytes("GET", "/nope") + request_bytes("GET", "/health"))
    data = b""
    while data.count(b"HTTP/1.1 ") < 3 or not data.endswith(b"}"):
        piece = s.recv(65536)
        assert piece
        data += piece
    s.close()
    statuses = [int(part.split(b" ", 1)[0]) for part in data.split(b"HTTP/1.1 ")[1:]]
    assert statuses == [200, 404, 200]
