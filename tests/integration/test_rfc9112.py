"""RFC 9112's rules for an origin server, one test per rule of the README's
"HTTP conformance (RFC 9112)" table, over raw sockets.

One chatd serves the whole module, so every case also proves that what came
before did not hurt it: after each test a fresh connection must still get
`GET /health` 200 (the autouse fixture), and chatd must stop cleanly at the end
with no sanitizer report. Framing errors must be answered with the contract's
JSON error and `Connection: close`, and the connection must then end with
nothing more answered — which is what defeats request smuggling: the bytes
after a request chatd cannot frame are never read as another request.
"""

import json
import os
import socket
import time

import pytest

from chatd import UUID4_RE, Chatd, connect
from fakeprovider import FakeProvider
from sseclient import three_parts


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    fp = FakeProvider().start()
    c = Chatd({"OPENAI_BASE_URL": fp.base_url}, cwd=str(tmp_path_factory.mktemp("rfc9112")))
    c.start()
    yield c
    c.stop()  # exit status 0 and no sanitizer report
    fp.stop()


@pytest.fixture(autouse=True)
def still_serves(srv):
    yield
    r = Raw(srv.port)
    r.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    resp = r.response()
    r.close()
    assert resp.status == 200 and json.loads(resp.body)["status"] == "healthy"


class Response:
    def __init__(self, version, status, headers, body):
        self.version = version
        self.status = status
        self.headers = headers  # lower-case name -> list of values
        self.body = body

    def h(self, name):
        v = self.headers.get(name)
        return v[0] if v else None

    def json(self):
        return json.loads(self.body)


class Raw:
    """One client connection that reads responses as RFC 9112 frames them."""

    def __init__(self, port, timeout=10.0):
        self.s = connect(port, timeout)
        self.buf = b""

    def send(self, data: bytes):
        self.s.sendall(data)

    def close(self):
        self.s.close()

    def _fill(self):
        piece = self.s.recv(65536)
        if not piece:
            raise ConnectionError(f"closed; unread: {self.buf[:200]!r}")
        self.buf += piece

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def response(self, head_request=False) -> Response:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        version, status = lines[0].split(" ", 2)[:2]
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers.setdefault(k.strip().lower(), []).append(v.strip())
        status = int(status)
        body = b""
        if head_request or status < 200 or status in (204, 304):
            pass
        elif headers.get("transfer-encoding") == ["chunked"]:
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    assert self._line() == b""
                    break
                body += self._take(size)
                assert self._take(2) == b"\r\n"
        elif "content-length" in headers:
            body = self._take(int(headers["content-length"][0]))
        return Response(version, status, headers, body)

    def final_response(self) -> Response:
        """The next final response, after any 1xx."""
        while True:
            r = self.response()
            if r.status >= 200:
                return r

    def at_eof(self, timeout=5.0) -> bool:
        """True when the server closed the connection with nothing more to say."""
        self.s.settimeout(timeout)
        try:
            while True:
                piece = self.s.recv(65536)
                if not piece:
                    return self.buf == b""
                self.buf += piece
        except socket.timeout:
            return False
        except ConnectionResetError:
            return self.buf == b""


def one(srv, data: bytes) -> Response:
    r = Raw(srv.port)
    r.send(data)
    resp = r.final_response()
    r.close()
    return resp


def assert_error(resp, status, code="bad_request"):
    assert resp.status == status, resp.body
    assert resp.h("content-type") == "application/json"
    body = resp.json()
    assert body["error"] == code
    assert three_parts(body["detail"]), body["detail"]
    assert UUID4_RE.match(body["correlation_id"]) and body["correlation_id"] == resp.h("x-correlation-id")


def refused(srv, data: bytes, status=400, code="bad_request", send_more=b""):
    """Sends data (then send_more, as a client would that goes on), expects the
    error, `Connection: close`, and the end of the connection with no other answer."""
    r = Raw(srv.port)
    r.send(data)
    try:
        if send_more:
            r.send(send_more)
    except OSError:
        pass  # the server may have closed already
    resp = r.final_response()
    assert_error(resp, status, code)
    assert resp.h("connection") == "close"
    assert r.at_eof(), f"more after the error: {r.buf[:200]!r}"
    r.close()
    return resp


def health_request(version="HTTP/1.1", host=b"Host: x\r\n", target=b"/health", extra=b""):
    return b"GET " + target + b" " + version.encode() + b"\r\n" + host + extra + b"\r\n"


def assert_healthy(resp):
    assert resp.status == 200, resp.body
    assert resp.json()["status"] == "healthy"


GET_OK = health_request()

# -- §2.3, §2.6 version ---------------------------------------------------------------


@pytest.mark.parametrize("version", ["HTTP/2.0", "HTTP/3.0", "HTTP/0.9", "HTTP/2.1"])
def test_major_version_other_than_1_is_505(srv, version):
    refused(srv, health_request(version), 505, "http_version_not_supported")


def test_higher_minor_version_is_served_as_http_1_1(srv):
    r = Raw(srv.port)
    r.send(health_request("HTTP/1.2") + health_request("HTTP/1.9"))
    for _ in range(2):  # persistent, as HTTP/1.1
        resp = r.response()
        assert_healthy(resp)
        assert resp.version == "HTTP/1.1" and resp.h("connection") is None
    r.close()


@pytest.mark.parametrize("version", ["HTTP/10.1", "HTTP/1.10", "HTTP/1", "http/1.1", "HTTP/1.x"])
def test_malformed_version_is_400(srv, version):
    refused(srv, health_request(version))


def test_http_1_0_is_answered_and_closed(srv):
    r = Raw(srv.port)
    r.send(b"GET /health HTTP/1.0\r\n\r\n")
    resp = r.response()
    assert_healthy(resp)
    assert resp.version == "HTTP/1.1" and resp.h("connection") == "close"
    assert r.at_eof()


# -- §2.2 message parsing --------------------------------------------------------------


def test_empty_lines_before_the_request_line_are_ignored(srv):
    assert_healthy(one(srv, b"\r\n\r\n" + GET_OK))


@pytest.mark.parametrize(
    "data",
    [
        b"GET /health HTTP/1.1\nHost: x\r\n\r\n",  # request line
        b"GET /health HTTP/1.1\r\nHost: x\n\r\n",  # field line
        b"GET /health HTTP/1.1\r\nHost: x\r\n\n",  # end of the header section
        b"GET /health HTTP/1.1\nHost: x\n\n",
        b"\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["request-line", "field-line", "section-end", "all", "leading"],
)
def test_bare_lf_is_400(srv, data):
    refused(srv, data)


@pytest.mark.parametrize(
    "data",
    [
        b"GET /health HTTP/1.1\rHost: x\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\r\n",
    ],
    ids=["request-line", "field-value", "section-end"],
)
def test_bare_cr_is_400(srv, data):
    refused(srv, data)


def test_whitespace_before_the_first_field_is_400(srv):
    refused(srv, b"GET /health HTTP/1.1\r\n Host: x\r\n\r\n")


@pytest.mark.parametrize(
    "line",
    [b"GET /health\tHTTP/1.1", b"GET /he\x00alth HTTP/1.1", b"GET /h\xe9alth HTTP/1.1", b" GET /health HTTP/1.1"],
    ids=["tab", "nul", "obs-text", "leading-space"],
)
def test_control_or_non_ascii_in_request_line_is_400(srv, line):
    refused(srv, line + b"\r\nHost: x\r\n\r\n")


# -- §3.2 request target ----------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [b"http://127.0.0.1/health", b"http://x:8000/health?probe=1", b"HTTP://X/health", b"https://x/health"],
)
def test_absolute_form_is_routed_by_its_path(srv, target):
    assert_healthy(one(srv, health_request(target=target)))


def test_absolute_form_without_path_means_slash(srv):
    r = one(srv, health_request(target=b"http://x"))  # "/" is the web chat page
    assert r.status == 200 and r.h("content-type").startswith("text/html")


@pytest.mark.parametrize("target", [b"ftp://x/health", b"http://user@x/health", b"http:///health"])
def test_absolute_form_other_scheme_userinfo_or_no_host_is_400(srv, target):
    refused(srv, health_request(target=target))


def test_asterisk_form_only_for_options(srv):
    refused(srv, health_request(target=b"*"))
    r = Raw(srv.port)
    r.send(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n" + GET_OK)
    resp = r.response()
    assert resp.status == 204 and resp.h("connection") is None  # the server as a whole
    assert resp.h("allow") == "GET, HEAD, POST, OPTIONS"
    assert_healthy(r.response())
    r.close()


def test_authority_form_only_for_connect(srv):
    refused(srv, health_request(target=b"127.0.0.1:80"))
    refused(srv, health_request(target=b"x:80"))


def test_connect_is_501(srv):
    refused(srv, b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n", 501, "not_implemented")


def test_fragment_in_target_is_400(srv):
    refused(srv, health_request(target=b"/health#top"))


def test_origin_form_query_is_not_part_of_the_path(srv):
    assert_healthy(one(srv, health_request(target=b"/health?x=1&y=%20")))


# -- §3.2 Host --------------------------------------------------------------------------


def test_http_1_1_without_host_is_400(srv):
    refused(srv, health_request(host=b""))


def test_two_host_lines_are_400(srv):
    refused(srv, health_request(host=b"Host: x\r\nHost: x\r\n"))
    refused(srv, health_request(host=b"Host: a\r\nHost: b\r\n"))


@pytest.mark.parametrize(
    "value",
    [b"a b", b"x:80a", b"x/y", b"[::1", b"[]:80", b"u@x", b"x:80:80", b"%zz", b"x?", b'"x"'],
)
def test_invalid_host_is_400(srv, value):
    refused(srv, health_request(host=b"Host: " + value + b"\r\n"))


@pytest.mark.parametrize(
    "value", [b"x", b"127.0.0.1:8000", b"[::1]:8000", b"[::1]", b"api.example.com", b"ex%41mple.com", b"", b"x:"]
)
def test_valid_host_is_accepted(srv, value):
    assert_healthy(one(srv, health_request(host=b"Host: " + value + b"\r\n")))


def test_http_1_0_needs_no_host(srv):
    assert_healthy(one(srv, health_request("HTTP/1.0", host=b"")))


def test_host_is_checked_for_absolute_form_too(srv):
    refused(srv, health_request(target=b"http://x/health", host=b""))


# -- §5 field syntax ----------------------------------------------------------------------


@pytest.mark.parametrize("name", [b"Host :", b"Host\t:", b"X-Junk :", b"Content-Length :"])
def test_whitespace_between_field_name_and_colon_is_400(srv, name):
    refused(srv, b"GET /health HTTP/1.1\r\n" + (b"Host: x\r\n" if not name.startswith(b"Host") else b"") + name + b" 0\r\n\r\n")


def test_obs_fold_is_400(srv):
    refused(srv, health_request(extra=b"X-A: a\r\n b\r\n"))
    refused(srv, health_request(extra=b"X-A: a\r\n\tb\r\n"))


@pytest.mark.parametrize("name", [b"X Junk", b"X@Junk", b"", b"X\x00J", b"\xe9"])
def test_invalid_field_name_is_400(srv, name):
    refused(srv, health_request(extra=name + b": 1\r\n"))


@pytest.mark.parametrize("value", [b"a\x00b", b"a\x01b", b"a\x7fb", b"a\x0bb"])
def test_control_character_in_field_value_is_400(srv, value):
    refused(srv, health_request(extra=b"X-A: " + value + b"\r\n"))


def test_field_value_with_tab_and_obs_text_is_accepted(srv):
    assert_healthy(one(srv, health_request(extra=b"X-A: a\tb \xe9\r\n")))


# -- §6 message body length and smuggling shapes ----------------------------------------

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


def test_cl_te_is_400_and_closed(srv):
    # A front end that framed by Content-Length would pass "0\r\n\r\nG..." as body.
    body = b"0\r\n\r\n" + SMUGGLED
    refused(
        srv,
        b"POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % len(body) + body,
    )


def test_bytes_sent_after_a_framing_error_are_never_answered(srv):
    # The client goes on pipelining after a request chatd refused: none of it is
    # read as a request (chatd half-closes, reads and drops, then closes).
    refused(
        srv,
        b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        send_more=b"0\r\n\r\n" + GET_OK * 20,
    )


def test_te_cl_is_400_and_closed(srv):
    refused(
        srv,
        b"POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
        b"5c\r\n" + SMUGGLED + b"\r\n0\r\n\r\n",
    )


OBFUSCATED_TE = [
    b"Transfer-Encoding: xchunked",
    b"Transfer-Encoding: chunked, identity",
    b"Transfer-Encoding: identity",
    b"Transfer-Encoding: chunked;q=1",
    b'Transfer-Encoding: "chunked"',
    b"Transfer-Encoding: chunked, chunked",
    b"Transfer-Encoding: ,",
    b"Transfer-Encoding: , chunked",  # valid list, but http-parser would not read it as chunked
    b"Transfer-Encoding:",
    b"Transfer-Encoding : chunked",
    b"Transfer-Encoding\t: chunked",
    b"Transfer-Encoding: \x0bchunked",
    b"Transfer-Encoding: chunked\x00",
    b"Transfer-Encoding:\r\n chunked",
    b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
    b"Transfer-Encoding: chunked\r\nTransfer-Encoding: x",
    b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
    b"Transfer-Encoding: chunked\nX: y",
    b"Transfer-Encoding: chunked\rX: y",
    b" Transfer-Encoding: chunked",
    b"Transfer_Encoding: chunked\r\nTransfer-Encoding: x",
]


@pytest.mark.parametrize("te", OBFUSCATED_TE, ids=[repr(t)[2:-1] for t in OBFUSCATED_TE])
def test_te_te_obfuscated_transfer_encoding_is_400(srv, te):
    # The body is chunked; a server that did not read it so would see SMUGGLED.
    chunked = b"0\r\n\r\n" + SMUGGLED
    refused(srv, b"GET /health HTTP/1.1\r\nHost: x\r\n" + te + b"\r\n\r\n" + chunked)
    # and with a Content-Length too (the TE.TE shape)
    refused(srv, b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n" + te + b"\r\n\r\n" + chunked)


@pytest.mark.parametrize(
    "te",
    [b"Transfer-Encoding: chunked", b"Transfer-Encoding: CHUNKED", b"Transfer-Encoding: chunked ",
     b"Transfer-Encoding:\tchunked"],
    ids=["plain", "upper", "trailing-space", "leading-tab"],
)
def test_chunked_spellings_that_rfc_allows_are_read_as_chunked(srv, te):
    """OWS around a field value is not part of it (RFC 9110 §5.5) and codings are
    case-insensitive: these are chunked, and the body is read as such — the next
    request on the connection is the one after the last chunk."""
    r = Raw(srv.port)
    r.send(b"GET /health HTTP/1.1\r\nHost: x\r\n" + te + b"\r\n\r\n4\r\nabcd\r\n0\r\n\r\n" + GET_OK)
    assert_healthy(r.response())
    assert_healthy(r.response())
    r.close()


@pytest.mark.parametrize("te", [b"gzip, chunked", b"deflate, chunked", b"x-custom, chunked"])
def test_other_coding_before_chunked_is_501(srv, te):
    refused(srv, b"GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + te + b"\r\n\r\n0\r\n\r\n",
            501, "not_implemented")


def test_transfer_encoding_in_http_1_0_is_400(srv):
    refused(srv, b"GET /health HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")


@pytest.mark.parametrize(
    "cl",
    [b"Content-Length: 1\r\nContent-Length: 2", b"Content-Length: 2\r\nContent-Length: 2",
     b"Content-Length: 2, 2", b"Content-Length: 1, 2"],
    ids=["different", "same-twice", "list-same", "list-different"],
)
def test_more_than_one_content_length_is_400(srv, cl):
    refused(srv, b"GET /health HTTP/1.1\r\nHost: x\r\n" + cl + b"\r\n\r\nab" + SMUGGLED)


@pytest.mark.parametrize(
    "value", [b"-1", b"+2", b"0x2", b"2 2", b"", b"2a", b"99999999999999999999999", b"\xb2"]
)
def test_invalid_content_length_is_400(srv, value):
    refused(srv, b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: " + value + b"\r\n\r\nab")


def test_content_length_frames_the_body_exactly(srv):
    r = Raw(srv.port)
    r.send(b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" + GET_OK)
    assert_healthy(r.response())
    assert_healthy(r.response())
    r.close()


def test_no_length_and_no_coding_means_no_body(srv):
    r = Raw(srv.port)
    r.send(GET_OK + GET_OK)  # the second request is not the first one's body
    assert_healthy(r.response())
    assert_healthy(r.response())
    r.close()


# -- §7 chunked coding and trailers -----------------------------------------------------

CHUNKED_HEAD = b"GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    "body",
    [
        b"5\r\nhelloXY0\r\n\r\n",  # data not followed by CRLF
        b"5\r\nhello\n0\r\n\r\n",
        b"5;a\nb\r\nhello\r\n0\r\n\r\n",  # bare LF in a chunk extension
        b"5\nhello\r\n0\r\n\r\n",
        b"5\rhello\r\n0\r\n\r\n",
        b"fffffffffffffffffff\r\nx\r\n",  # size overflow
        b"zz\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"5 \r\nhello\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"5;a=\x00\r\nhello\r\n0\r\n\r\n",
        b"0\r\n\n",
        b"0\r\nX: y\n\r\n",
    ],
)
def test_malformed_chunked_body_is_400(srv, body):
    refused(srv, CHUNKED_HEAD + body + SMUGGLED)


def test_chunk_extensions_are_accepted_and_ignored(srv):
    r = Raw(srv.port)
    r.send(CHUNKED_HEAD + b'5;a=b;c="d e"\r\nhello\r\n3 ;x\r\nabc\r\n000\r\n\r\n' + GET_OK)
    assert_healthy(r.response())
    assert_healthy(r.response())
    r.close()


def test_trailer_fields_are_read_and_dropped(srv):
    r = Raw(srv.port)
    r.send(CHUNKED_HEAD + b"1\r\na\r\n0\r\nX-Checksum: 1\r\nHost: other\r\n\r\n" + GET_OK)
    assert_healthy(r.response())  # a second Host, in the trailer, is not merged
    assert_healthy(r.response())
    r.close()


@pytest.mark.parametrize("trailer", [b"X-A : 1", b" folded", b"X A: 1", b"X-A: a\x01"])
def test_malformed_trailer_is_400(srv, trailer):
    refused(srv, CHUNKED_HEAD + b"0\r\n" + trailer + b"\r\n\r\n" + SMUGGLED)


def test_chunked_body_split_across_packets(srv):
    r = Raw(srv.port)
    data = CHUNKED_HEAD + b"5;e=1\r\nhello\r\n0\r\nT: v\r\n\r\n" + GET_OK
    for i in range(len(data)):
        r.send(data[i:i + 1])
    assert_healthy(r.response())
    assert_healthy(r.response())
    r.close()


# -- Expect (RFC 9110 §10.1.1, RFC 9112 §9.x) ------------------------------------------------


def chat_head(length, expect=b"Expect: 100-continue\r\n", ctype=b"application/json", version=b"HTTP/1.1"):
    return (b"POST /chat " + version + b"\r\nHost: x\r\nContent-Type: " + ctype + b"\r\n"
            b"Content-Length: %d\r\n" % length + expect + b"\r\n")


def test_100_continue_is_sent_before_the_body_is_read(srv):
    body = json.dumps({"message": "hello there"}).encode()
    r = Raw(srv.port)
    r.send(chat_head(len(body)))
    first = r.response()
    assert first.status == 100 and first.body == b""
    r.send(body)
    resp = r.response()
    assert resp.status == 200 and b'"is_final":true' in resp.body
    r.close()


@pytest.mark.parametrize(
    "head,status",
    [(chat_head(10, ctype=b"text/plain"), 415), (chat_head(10 << 20), 413),
     (b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n", 404)],
    ids=["415", "413", "404"],
)
def test_no_100_continue_when_the_body_will_not_be_read(srv, head, status):
    r = Raw(srv.port)
    r.send(head)
    resp = r.response()  # the final answer comes first, without waiting for the body
    assert resp.status == status
    assert resp.h("connection") == "close"
    assert r.at_eof()


@pytest.mark.parametrize("value", [b"fly", b"100-continue, fly", b"200-ok", b""])
def test_unknown_expectation_is_417(srv, value):
    refused(srv, chat_head(2, expect=b"Expect: " + value + b"\r\n") + b"{}", 417, "expectation_failed")


def test_expect_is_ignored_in_http_1_0(srv):
    r = Raw(srv.port)
    r.send(b"GET /health HTTP/1.0\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n{}")
    resp = r.response()
    assert_healthy(resp)  # no 100 Continue before it
    r.close()


def test_100_continue_without_body_is_not_sent(srv):
    r = Raw(srv.port)
    r.send(health_request(extra=b"Expect: 100-continue\r\n"))
    assert_healthy(r.response())
    r.close()


# -- §9 connection management -----------------------------------------------------------


def test_connection_close_is_honoured_and_later_requests_are_not_read(srv):
    r = Raw(srv.port)
    r.send(health_request(extra=b"Connection: close\r\n") + GET_OK)
    resp = r.response()
    assert_healthy(resp)
    assert resp.h("connection") == "close"
    assert r.at_eof()


def test_http_1_0_keep_alive(srv):
    r = Raw(srv.port)
    req = b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    r.send(req + req)
    for _ in range(2):
        resp = r.response()
        assert_healthy(resp)
        assert resp.h("connection") == "keep-alive"
    r.close()


def test_pipelined_requests_with_bodies_are_answered_in_order(srv):
    r = Raw(srv.port)
    r.send(
        b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nGET "
        + CHUNKED_HEAD + b"3\r\nGET\r\n0\r\n\r\n"
        + b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
        + GET_OK
    )
    assert [r.response().status for _ in range(4)] == [200, 200, 404, 200]
    r.close()


def test_framing_error_in_a_pipeline_ends_it(srv):
    r = Raw(srv.port)
    r.send(GET_OK + b"GET /health HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n" + GET_OK + GET_OK)
    assert_healthy(r.response())
    resp = r.response()
    assert_error(resp, 400)
    assert r.at_eof()


# -- responses (RFC 9110 §8.6, §9.3.2) --------------------------------------------------------


def test_204_has_no_content_length_or_body(srv):
    r = Raw(srv.port)
    r.send(b"OPTIONS /chat HTTP/1.1\r\nHost: x\r\n\r\n" + GET_OK)
    resp = r.response()
    assert resp.status == 204 and "content-length" not in resp.headers
    assert_healthy(r.response())  # nothing was left between the two
    r.close()


def test_every_response_has_date_and_version_1_1(srv):
    resp = one(srv, GET_OK)
    assert resp.version == "HTTP/1.1"
    assert time.strptime(resp.h("date"), "%a, %d %b %Y %H:%M:%S GMT")
