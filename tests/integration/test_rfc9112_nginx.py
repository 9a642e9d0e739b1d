"""The smuggling shapes of test_rfc9112.py sent through the deploy/ nginx configuration
in front of chatd (issue 17): whatever nginx does with each (refuse it, or pass on a
normalized request), a request hidden in a body never reaches chatd as a request of its
own, and the next request through nginx is served."""

import socket
import time

import pytest

from limitkit import Nginx
from test_rfc9112 import OBFUSCATED_TE, SMUGGLED

SHAPES = {
    "CL.TE": b"POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % (5 + len(SMUGGLED)) + SMUGGLED,
    "TE.CL": b"POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\n" + SMUGGLED + b"\r\n0\r\n\r\n",
    "obs-fold": b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED,
    "bare-LF": b"GET /health HTTP/1.1\nHost: x\nContent-Length: %d\n\n" % len(SMUGGLED) + SMUGGLED,
    "space-before-colon": b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length : %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED,
    "name-with-space": b"GET /health HTTP/1.1\r\nHost: x\r\nContent Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED,
}
for i, te in enumerate(OBFUSCATED_TE):
    SHAPES[f"TE.TE-{i}"] = (b"POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            b"Content-Length: %d\r\n" % (5 + len(SMUGGLED)) + te + b"\r\n\r\n0\r\n\r\n" + SMUGGLED)


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    from chatd import Chatd
    from fakeprovider import FakeProvider

    fp = FakeProvider().start()
    c = Chatd({"OPENAI_BASE_URL": fp.base_url, "WORKERS": "1"}).start()
    ngx = Nginx(tmp_path_factory.mktemp("nginx"), [c.port, c.port]).start()
    yield c, ngx
    ngx.stop()
    c.stop()
    fp.stop()


def exchange(port, data, timeout=2.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)  # no half-close: nginx reads it as the client giving up
    got = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            piece = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            break
        if not piece:
            break
        got += piece
    s.close()
    return got


@pytest.mark.parametrize("shape", list(SHAPES), ids=list(SHAPES))
def test_smuggling_shape_through_nginx_never_smuggles(front, shape):
    c, ngx = front
    answer = exchange(ngx.port, SHAPES[shape])
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    time.sleep(0.05)
    paths = [l.get("path") for l in c.logs("request_received")]
    assert "/smuggled" not in paths, (shape, answer[:300])
    ok = exchange(ngx.port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200"), ok[:200]
