"""Every row of the contract's error tables: a clear answer, and nothing lost
for the next request."""

import json
import os
import socket
import ssl
import subprocess
import threading

import httpx
import pytest

from chatd import SENT_MESSAGES, TEST_API_KEY, UUID4_RE, connect, read_head, request_bytes
from conftest import post_chat
from fakeprovider import Hang, Raw, Status, Stream, chunk, free_port, sse
from sseclient import check_stream, three_parts

SECRET_MSG = "my secret question about zebras 0481"


def assert_error_body(r, status, code, field=None):
    assert r.status == status, r.raw
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"error", "detail", "correlation_id"}
    assert body["error"] == code
    assert body["correlation_id"] == r.headers["x-correlation-id"]
    assert UUID4_RE.match(body["correlation_id"])
    assert three_parts(body["detail"]), body["detail"]
    assert TEST_API_KEY not in body["detail"] and SECRET_MSG not in body["detail"]
    if field:
        assert f'"{field}"' in body["detail"], body["detail"]
    return body


def assert_still_streams(c, provider):
    """After any failure, the next normal request streams correctly."""
    provider.then(Stream(tokens=["still", " fine"]))
    r = post_chat(c, message="is it still working?")
    assert r.status == 200
    assert check_stream(r.events)["status"] == "completed"
    assert r.content == "still fine"


# -- 400: the request body ------------------------------------------------------------

VALIDATION = [
    ("not json", b"{not json", "body"),
    ("empty body", b"", "body"),
    ("truncated json", b'{"message": "hi"', "body"),
    ("array", [SECRET_MSG], "body"),
    ("string", json.dumps(SECRET_MSG).encode(), "body"),
    ("number", b"42", "body"),
    ("missing message", {"model": "gpt-4o-mini"}, "message"),
    ("null message", {"message": None}, "message"),
    ("number message", {"message": 42}, "message"),
    ("array message", {"message": [SECRET_MSG]}, "message"),
    ("object message", {"message": {"text": SECRET_MSG}}, "message"),
    ("bool message", {"message": True}, "message"),
    ("empty message", {"message": ""}, "message"),
    ("whitespace message", {"message": " \t\n  "}, "message"),
    ("unicode whitespace message", {"message": "\u3000\u00a0\u2003"}, "message"),
    ("8001 characters", {"message": "é" * 8001}, "message"),
    ("model not a string", {"message": SECRET_MSG, "model": 4}, "model"),
    ("model not allowed", {"message": SECRET_MSG, "model": "gpt-5-ultra"}, "model"),
    ("max_tokens a string", {"message": SECRET_MSG, "max_tokens": "100"}, "max_tokens"),
    ("max_tokens zero", {"message": SECRET_MSG, "max_tokens": 0}, "max_tokens"),
    ("max_tokens negative", {"message": SECRET_MSG, "max_tokens": -5}, "max_tokens"),
    ("max_tokens over limit", {"message": SECRET_MSG, "max_tokens": 1025}, "max_tokens"),
    ("max_tokens float", {"message": SECRET_MSG, "max_tokens": 5.5}, "max_tokens"),
    ("max_tokens float integral", {"message": SECRET_MSG, "max_tokens": 5.0}, "max_tokens"),
    ("max_tokens boolean", {"message": SECRET_MSG, "max_tokens": True}, "max_tokens"),
    ("duplicate keys", b'{"message": "a", "message": "b"}', "body"),
]


@pytest.mark.parametrize("name,body,field", VALIDATION, ids=[v[0] for v in VALIDATION])
def test_validation_error(chatd, provider, name, body, field):
    SENT_MESSAGES.append(SECRET_MSG)
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    r = post_chat(chatd, body=body)
    detail = assert_error_body(r, 400, "validation_error", None if field == "body" else field)["detail"]
    assert "8001" not in detail or field == "message"
    assert provider.requests == []  # an invalid request is never forwarded
    rec = chatd.wait_log("error_occurred", correlation_id=r.headers["x-correlation-id"])
    assert rec["error_type"] == "validation_error" and rec["level"] == "warning"
    assert rec["message"] == detail and rec["recovery_action"]
    assert_still_streams(chatd, provider)


# -- 413, 415 --------------------------------------------------------------------------

@pytest.fixture
def chatd64k(start_chatd):
    """chatd with MAX_REQUEST_BYTES at 64 KiB (the default is 1 MiB)."""
    return start_chatd({"MAX_REQUEST_BYTES": "65536"})


def test_body_over_64k_is_413_without_reading_it(chatd64k, provider):
    """Content-Length alone decides: chatd answers before the body is sent."""
    s = connect(chatd64k.port)
    s.sendall(b"POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n")
    status, headers, rest = read_head(s)
    assert status == 413
    n = int(headers["content-length"])
    while len(rest) < n:
        rest += s.recv(4096)
    body = json.loads(rest[:n])
    assert body["error"] == "payload_too_large" and three_parts(body["detail"])
    assert headers["connection"] == "close"
    s.close()
    assert provider.requests == []


def test_body_of_exactly_64k_is_not_413(chatd64k):
    body = json.dumps({"message": "x" * 10, "pad": ""})
    body = body[:-2] + "p" * (65536 - len(body)) + '"}'

    assert len(body) == 65536
    r = post_chat(chatd64k, body=body.encode())
    assert r.status == 200


def test_chunked_body_over_64k_is_413(chatd64k):
    s = connect(chatd64k.port)
    s.sendall(b"POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    piece = b"x" * 16384
    try:
        for _ in range(6):
            s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
    except OSError:
        pass
    status, headers, _ = read_head(s)
    s.close()
    assert status == 413
    assert UUID4_RE.match(headers["x-correlation-id"])


def test_large_body_sent_whole_still_gets_413(chatd64k):
    r = post_chat(chatd64k, body=b'{"message": "' + b"a" * 200000 + b'"}')
    assert_error_body(r, 413, "payload_too_large")


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/jsonx", "application/x-www-form-urlencoded"])
def test_wrong_content_type_is_415(chatd, provider, ctype):
    SENT_MESSAGES.append(SECRET_MSG)
    s = connect(chatd.port)
    s.sendall(request_bytes("POST", "/chat", json.dumps({"message": SECRET_MSG}), content_type=ctype))
    status, headers, rest = read_head(s)
    n = int(headers["content-length"])
    while len(rest) < n:
        rest += s.recv(4096)
    s.close()
    assert status == 415
    body = json.loads(rest[:n])
    assert body["error"] == "unsupported_media_type" and three_parts(body["detail"])
    assert provider.requests == []


def test_json_content_type_with_charset_is_accepted(chatd):
    r = post_chat(chatd, headers={"Content-Type": "Application/JSON; charset=utf-8"})
    assert r.status == 200


# -- limits against abuse ----------------------------------------------------------------

def _raw_status(port, data, timeout=10):
    s = connect(port, timeout)
    s.sendall(data)
    status, headers, rest = read_head(s)
    s.close()
    return status, headers


def test_uri_too_long_is_414(chatd):
    status, headers = _raw_status(chatd.port, b"GET /health?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 414 and UUID4_RE.match(headers["x-correlation-id"])


def test_headers_too_large_is_431(chatd):
    junk = b"".join(b"X-Junk-%d: %s\r\n" % (i, b"v" * 1000) for i in range(20))
    status, _ = _raw_status(chatd.port, b"GET /health HTTP/1.1\r\nHost: x\r\n" + junk + b"\r\n")
    assert status == 431


def test_malformed_request_is_400(chatd):
    status, headers = _raw_status(chatd.port, b"THIS IS NOT HTTP\r\n\r\n")
    assert status == 400 and headers["connection"] == "close"


def test_slow_client_gets_408_and_is_closed(start_chatd):
    c = start_chatd({"CLIENT_TIMEOUT_SECONDS": "0.5"})
    s = connect(c.port)
    s.sendall(b"POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{\"mes")
    status, headers, _ = read_head(s)
    assert status == 408 and headers["connection"] == "close"
    s.settimeout(5)
    while s.recv(4096):
        pass  # then chatd closes the connection
    s.close()


def test_idle_keep_alive_connection_is_closed(start_chatd):
    c = start_chatd({"CLIENT_TIMEOUT_SECONDS": "0.5"})
    s = connect(c.port)
    s.settimeout(5)
    assert s.recv(1) == b""  # closed by chatd, without a word


# -- 504: no first token ------------------------------------------------------------------

def test_no_first_token_is_504(start_chatd, provider):
    c = start_chatd({"TIMEOUT_SECONDS": "0.5"})
    provider.then(Hang(send_headers=True))
    SENT_MESSAGES.append(SECRET_MSG)
    r = post_chat(c, message=SECRET_MSG)
    assert_error_body(r, 504, "timeout")
    assert provider.wait_disconnects(1, timeout=2)  # the provider request is cancelled
    rec = c.wait_log("response_complete", correlation_id=r.headers["x-correlation-id"])
    assert rec["status"] == 504 and rec["outcome"] == "timeout"
    assert_still_streams(c, provider)


# -- after the stream was accepted: a final event -----------------------------------------

def final_error(r, code, status="error"):
    assert r.status == 200
    final = check_stream(r.events)
    assert final["status"] == status, final
    assert final["error"]["error"] == code, final
    d = final["error"]["detail"]
    assert three_parts(d), d
    assert TEST_API_KEY not in d and SECRET_MSG not in d
    return final


PROVIDER_STATUS = [
    (400, "upstream_bad_request"),
    (401, "upstream_auth_failed"),
    (403, "upstream_auth_failed"),
    (404, "upstream_bad_request"),
    (422, "upstream_bad_request"),
    (429, "upstream_rate_limited"),
    (500, "upstream_error"),
    (502, "upstream_error"),
    (503, "upstream_error"),
]


@pytest.mark.parametrize("status,code", PROVIDER_STATUS)
def test_provider_status_becomes_final_event(chatd, provider, status, code):
    """The provider's own message is summarized, without the key or the user's words."""
    SENT_MESSAGES.append(SECRET_MSG)
    provider.then(Status(status, {"error": {"message": f"Incorrect API key provided: {TEST_API_KEY}. "
                                                       f"You asked: {SECRET_MSG}", "type": "x"}}))
    r = post_chat(chatd, message=SECRET_MSG)
    final = final_error(r, code)
    assert f"HTTP {status}" in final["error"]["detail"]
    assert final["sequence"] == 0
    rec = chatd.wait_log("error_occurred", correlation_id=r.headers["x-correlation-id"])
    assert rec["error_type"] == code
    assert_still_streams(chatd, provider)


def test_provider_message_is_summarized_in_detail(chatd, provider):
    provider.then(Status(400, {"error": {"message": "This model's maximum context length is 8192 tokens.", "type": "x"}}))
    final = final_error(post_chat(chatd), "upstream_bad_request")
    assert "maximum context length is 8192 tokens" in final["error"]["detail"]


def test_429_mentions_retry_after(chatd, provider):
    provider.then(Status(429, {"error": {"message": "Rate limit reached"}}, headers={"Retry-After": "20"}))
    final = final_error(post_chat(chatd), "upstream_rate_limited")
    assert "Retry-After: 20 s" in final["error"]["detail"]


def test_connection_refused(start_chatd, provider):
    port = free_port()
    c = start_chatd({"OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1"})
    final = final_error(post_chat(c), "upstream_unreachable")
    assert "refused" in final["error"]["detail"].lower() or "connect" in final["error"]["detail"].lower()


def test_dns_failure(start_chatd):
    c = start_chatd({"OPENAI_BASE_URL": "http://chatd-test.invalid/v1", "TIMEOUT_SECONDS": "20"})
    final = final_error(post_chat(c), "upstream_unreachable")
    assert "resolve" in final["error"]["detail"].lower()


def test_tls_handshake_with_a_plain_http_server(start_chatd, provider):
    c = start_chatd({"OPENAI_BASE_URL": f"https://127.0.0.1:{provider.port}/v1"})
    final_error(post_chat(c), "upstream_unreachable")


@pytest.fixture
def tls_provider(tmp_path):
    """A TLS server with a self-signed certificate, which chatd must refuse."""
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(crt), str(key))
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            try:
                with ctx.wrap_socket(conn, server_side=True) as t:
                    t.recv(1)
            except (ssl.SSLError, OSError):
                pass

    threading.Thread(target=serve, daemon=True).start()
    yield port
    srv.close()


def test_tls_certificate_not_trusted(start_chatd, tls_provider):
    c = start_chatd({"OPENAI_BASE_URL": f"https://127.0.0.1:{tls_provider}/v1"})
    final = final_error(post_chat(c), "upstream_unreachable")
    assert "TLS" in final["error"]["detail"]


def test_body_not_sse(chatd, provider):
    provider.then(Raw([b"<html><body>Welcome to nginx!</body></html>"], content_type="text/html"))
    final_error(post_chat(chatd), "upstream_protocol_error")


def test_sse_with_invalid_json(chatd, provider):
    provider.then(Raw([sse(chunk(content="ok")), b"data: {this is not json}\n\n", sse("[DONE]")]))
    r = post_chat(chatd)
    final = final_error(r, "upstream_protocol_error")
    assert r.content == "ok" and final["sequence"] == 1


def test_event_stream_without_events(chatd, provider):
    provider.then(Raw([b"hello, I am not a stream\n"]))
    final_error(post_chat(chatd), "upstream_protocol_error")


def test_stream_cut_before_done(chatd, provider):
    provider.then(Stream(tokens=["a", "b", "c", "d"], cut_after=2))
    r = post_chat(chatd)
    final = final_error(r, "upstream_interrupted")
    assert r.content == "ab" and final["sequence"] == 2
    assert_still_streams(chatd, provider)


def test_stream_ending_without_done_or_finish_reason(chatd, provider):
    provider.then(Stream(tokens=["a"], finish_reason=None, usage=None, done=False))
    final_error(post_chat(chatd), "upstream_interrupted")


def test_finish_reason_without_done_is_complete(chatd, provider):
    provider.then(Stream(tokens=["a"], done=False, finish_reason="length"))
    r = post_chat(chatd)
    final = check_stream(r.events)
    assert final["status"] == "completed" and final["finish_reason"] == "length"


def test_error_chunk_mid_stream(chatd, provider):
    provider.then(Raw([sse(chunk(content="par")), sse({"error": {"message": "The server had an overload"}})]))
    r = post_chat(chatd)
    final = final_error(r, "upstream_error")
    assert "overload" in final["error"]["detail"]


def test_no_progress_after_first_token_is_timeout_event(start_chatd, provider):
    c = start_chatd({"TIMEOUT_SECONDS": "0.5"})
    provider.then(Hang(first_tokens=["one", " two"]))
    r = post_chat(c)
    final = final_error(r, "upstream_timeout", status="timeout")
    assert r.content == "one two" and final["sequence"] == 2
    assert provider.wait_disconnects(1, timeout=2)
    rec = c.wait_log("response_complete", correlation_id=r.headers["x-correlation-id"])
    assert rec["outcome"] == "timeout" and rec["status"] == 200
    assert_still_streams(c, provider)


def test_slow_but_steady_provider_is_not_a_timeout(start_chatd, provider):
    c = start_chatd({"TIMEOUT_SECONDS": "0.5"})
    provider.then(Stream(tokens=[str(i) for i in range(8)], delay=0.2))  # 1.6 s in all
    r = post_chat(c)
    assert check_stream(r.events)["status"] == "completed"


def test_one_failure_does_not_harm_another_stream(chatd, provider):
    """A stream that fails while another is open leaves the other untouched."""
    import concurrent.futures

    release = provider.event()
    provider.then(Stream(tokens=["long", " stream"], gate=lambda i: release.wait() if i == 1 else None),
                  Status(500))
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        long_one = ex.submit(post_chat, chatd, None, "the long one")
        assert provider.wait_requests(1)
        failed = post_chat(chatd, message="the failing one")
        final_error(failed, "upstream_error")
        provider.set_event(release)
        r = long_one.result(10)
    assert check_stream(r.events)["status"] == "completed" and r.content == "long stream"
