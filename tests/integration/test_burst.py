"""Bursts of new streams never wait for another stream's generation (issue 11).

Against an HTTP/1.1 provider every stream needs a connection of its own; a
transfer that waits for a connection still being set up (in case it could
multiplex) made a burst wait for a stranger's whole answer. The provider here
sends its first token at once and then one every 300 ms for 3 s, so a stream
that waited for another would see its first token after ~3 s.
"""

import json
import selectors
import threading
import time

from chatd import connect, request_bytes
from conftest import post_chat
from fakeprovider import Stream

GENERATION = Stream(tokens=[f"t{i} " for i in range(11)], delay=0.3)  # 3 s
FIRST_TOKEN_BOUND = 1.0  # far below one generation, generous for a busy machine


def first_token_times(chatd, n):
    """Connects n clients, then sends their n requests back to back, so that
    chatd reads them in the same loop turn (as a real burst arrives); returns
    each stream's delay to its first event, after reading every stream whole."""
    socks = [connect(chatd.port) for _ in range(n)]
    req = request_bytes("POST", "/chat", json.dumps({"message": "burst"}).encode())
    sel = selectors.DefaultSelector()
    bufs = {}
    t0 = time.monotonic()
    for s in socks:
        s.sendall(req)
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        bufs[s] = b""
    first = {}
    done = set()
    deadline = t0 + 30
    while len(done) < n and time.monotonic() < deadline:
        for key, _ in sel.select(0.5):
            s = key.fileobj
            data = s.recv(65536)
            bufs[s] += data
            if s not in first and b"data: " in bufs[s]:
                first[s] = time.monotonic() - t0
            if not data or b'"is_final":true' in bufs[s]:
                sel.unregister(s)
                done.add(s)
    for s in socks:
        assert b"HTTP/1.1 200" in bufs[s][:20], bufs[s][:200]
        assert b'"status":"completed"' in bufs[s], bufs[s][-300:]
        s.close()
    return [first[s] for s in socks]


def test_cold_burst_gets_every_first_token_at_once(start_chatd, provider):
    provider.always(GENERATION)
    chatd = start_chatd({"WORKERS": "1"})
    times = first_token_times(chatd, 20)
    assert max(times) < FIRST_TOKEN_BOUND, sorted(times)
    # every stream had its own connection to the provider
    assert len({r.peer for r in provider.requests}) == 20


def test_burst_while_every_pooled_connection_is_busy(start_chatd, provider):
    chatd = start_chatd({"WORKERS": "1"})
    for _ in range(3):  # leave a few idle connections in the pool
        assert post_chat(chatd, message="warm up").status == 200
    provider.always(GENERATION)
    busy = threading.Thread(target=first_token_times, args=(chatd, 5))
    busy.start()
    assert provider.wait_requests(3 + 5, timeout=10)
    times = first_token_times(chatd, 10)  # every pooled connection is in use now
    busy.join(30)
    assert max(times) < FIRST_TOKEN_BOUND, sorted(times)
