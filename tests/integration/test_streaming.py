"""POST /chat: the relay of a provider's streamed completion as SSE."""

import asyncio
import json
import socket
import time

import httpx
import pytest

from chatd import SENT_MESSAGES, TEST_API_KEY, UUID4_RE, connect, read_head, request_bytes
from conftest import post_chat
from fakeprovider import Hang, Stream
from sseclient import check_stream, decode_chunked, parse_events


def test_what_is_2_plus_2(chatd, provider, chat):
    """The spec's independent test: chunks with contiguous sequence numbers and
    exactly one is_final."""
    provider.then(Stream(tokens=["2", " +", " 2", " =", " 4"], usage=(12, 5)))
    r = chat(chatd, message="What is 2+2?")
    assert r.status == 200
    final = check_stream(r.events, r.headers["x-correlation-id"])
    assert r.content == "2 + 2 = 4"
    assert final["status"] == "completed"
    assert final["finish_reason"] == "stop"
    assert (final["prompt_tokens"], final["completion_tokens"], final["total_tokens"]) == (12, 5, 17)
    assert final["duration_ms"] >= 0
    assert UUID4_RE.match(final["correlation_id"])


def test_response_headers(chatd, chat):
    r = chat(chatd)
    assert r.headers["content-type"] == "text/event-stream"
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["x-accel-buffering"] == "no"
    assert "content-length" not in r.headers
    assert r.headers["transfer-encoding"] == "chunked"
    assert UUID4_RE.match(r.headers["x-correlation-id"])


def test_content_is_relayed_byte_for_byte(chatd, provider, chat):
    tokens = ["Grüße", " 世界", " 🙂🚀", " \"quoted\"", " back\\slash", " tab\tnew\nline", " \u2028", " é" * 3, " \x01"]
    provider.then(Stream(tokens=tokens))
    r = chat(chatd)
    check_stream(r.events)
    assert [e["content"] for e in r.events[:-1]] == tokens
    assert r.content.encode("utf-8") == "".join(tokens).encode("utf-8")


def test_provider_events_split_at_every_byte(chatd, provider, chat):
    """The provider's bytes arrive one at a time, splitting multi-byte characters."""
    from fakeprovider import Raw, chunk, sse, usage_chunk

    body = b"".join([sse(chunk(content="héllo ")), sse(chunk(content="wörld 🙂")), sse(chunk(finish_reason="stop")),
                     sse(usage_chunk(3, 2)), sse("[DONE]")])
    provider.then(Raw(parts=[body[i:i + 1] for i in range(len(body))]))
    r = chat(chatd)
    check_stream(r.events)
    assert r.content == "héllo wörld 🙂"
    assert r.final["total_tokens"] == 5


def test_usage_null_when_provider_sends_none(chatd, provider, chat):
    provider.then(Stream(tokens=["a", "b"], usage=None))
    r = chat(chatd)
    final = check_stream(r.events)
    assert final["status"] == "completed"
    assert final["prompt_tokens"] is None and final["completion_tokens"] is None and final["total_tokens"] is None


def test_empty_deltas_are_not_relayed(chatd, provider, chat):
    provider.then(Stream(tokens=["x", "", "y", ""]))
    r = chat(chatd)
    check_stream(r.events)
    assert [e["content"] for e in r.events[:-1]] == ["x", "y"]


def test_request_the_provider_receives(chatd, provider, chat):
    chat(chatd, message="What is 2+2? Ünïcode", max_tokens=42)
    assert provider.wait_requests(1)
    req = provider.requests[0]
    assert req.path == "/v1/chat/completions"
    assert req.headers["Authorization"] == f"Bearer {TEST_API_KEY}"
    assert req.headers["Content-Type"] == "application/json"
    body = req.json
    assert body["model"] == "gpt-4o-mini"
    assert body["max_tokens"] == 42
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [{"role": "user", "content": "What is 2+2? Ünïcode"}]


def test_defaults_and_nulls(start_chatd, provider, chat):
    c = start_chatd({"MAX_TOKENS": "300", "OPENAI_MODEL": "m-default", "ALLOWED_MODELS": "m-default,m-other"})
    chat(c, body={"message": "defaults please", "model": None, "max_tokens": None, "unknown": [1, 2]})
    chat(c, body={"message": "other model please", "model": "m-other", "max_tokens": 300})
    assert provider.wait_requests(2)
    a, b = provider.requests[0].json, provider.requests[1].json
    assert (a["model"], a["max_tokens"]) == ("m-default", 300)
    assert (b["model"], b["max_tokens"]) == ("m-other", 300)


def test_no_authorization_header_without_key(start_chatd, provider, chat):
    c = start_chatd({"OPENAI_API_KEY": None})
    chat(c)
    assert provider.wait_requests(1)
    assert "Authorization" not in provider.requests[0].headers


def test_message_of_8000_code_points_is_accepted(chatd, provider, chat):
    msg = "é" * 8000  # 16000 bytes, 8000 characters
    r = chat(chatd, message=msg)
    assert r.status == 200
    assert provider.requests[0].json["messages"][0]["content"] == msg


def test_each_event_is_sent_as_soon_as_it_exists(chatd, provider):
    """The provider withholds token 2 until the client has seen token 1."""
    seen_first = provider.event()

    def gate(i):
        return seen_first.wait() if i == 1 else None

    provider.then(Stream(tokens=["first", "second"], gate=gate))
    SENT_MESSAGES.append("flush test message")
    with httpx.Client(timeout=10) as client:
        with client.stream("POST", chatd.url + "/chat", json={"message": "flush test message"}) as r:
            buf = b""
            it = r.iter_raw()
            while b'"first"' not in buf:
                buf += next(it)
            provider.set_event(seen_first)
            buf += b"".join(it)
    events = parse_events(buf)
    check_stream(events)
    assert [e["content"] for e in events[:-1]] == ["first", "second"]


def test_correlation_id_from_client_is_in_every_event(chatd, chat):
    cid = "a3d2c1b0-9f8e-4d7c-8b6a-5f4e3d2c1b0a"
    r = chat(chatd, headers={"X-Correlation-Id": cid})
    check_stream(r.events, cid)
    assert r.headers["x-correlation-id"] == cid


def _start_stream(port, message):
    SENT_MESSAGES.append(message)
    s = connect(port)
    s.sendall(request_bytes("POST", "/chat", json.dumps({"message": message})))
    return s


def test_client_disconnect_mid_stream_closes_provider_connection(chatd, provider):
    provider.then(Stream(tokens=[f"t{i}" for i in range(10000)], delay=0.02))
    s = _start_stream(chatd.port, "disconnect mid stream please")
    status, _, rest = read_head(s)
    assert status == 200
    while b'"t2"' not in rest:
        rest += s.recv(4096)
    s.close()
    t0 = time.monotonic()
    assert provider.wait_disconnects(1, timeout=1.0), "provider connection still open after 1 s"
    assert provider.disconnects[0] - t0 < 1.0
    rec = chatd.wait_log("response_complete", outcome="client_disconnected")
    assert rec is not None and rec["status"] == 200


def test_client_disconnect_before_first_token_closes_provider_connection(chatd, provider):
    provider.then(Hang())
    s = _start_stream(chatd.port, "disconnect before first token")
    assert provider.wait_requests(1)
    s.close()
    t0 = time.monotonic()
    assert provider.wait_disconnects(1, timeout=1.0), "provider connection still open after 1 s"
    assert provider.disconnects[0] - t0 < 1.0
    assert chatd.wait_log("response_complete", outcome="client_disconnected")


def test_200_concurrent_streams_all_complete(start_chatd, provider):
    c = start_chatd({"LOG_LEVEL": "info"})
    provider.always(Stream(tokens=[f"w{i} " for i in range(20)], delay=0.005))
    n = 200

    async def one(client, i):
        msg = f"concurrent message number {i}"
        async with client.stream("POST", c.url + "/chat", json={"message": msg}) as r:
            raw = b"".join([x async for x in r.aiter_raw()])
            return r.status_code, raw

    async def main():
        limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            return await asyncio.gather(*(one(client, i) for i in range(n)))

    SENT_MESSAGES.extend(f"concurrent message number {i}" for i in range(n))
    results = asyncio.run(main())
    for status, raw in results:
        assert status == 200
        events = parse_events(raw)
        final = check_stream(events)
        assert final["status"] == "completed"
        assert "".join(e["content"] for e in events[:-1]) == "".join(f"w{i} " for i in range(20))
    assert provider.connections_total == n


def test_provider_connections_are_reused(start_chatd, provider, chat):
    c = start_chatd({"WORKERS": "1"})
    for _ in range(5):
        assert chat(c).status == 200
    # One worker, one request at a time: every request reuses the first connection.
    assert len(provider.requests) == 5
    assert len({r.peer for r in provider.requests}) == 1, [r.peer for r in provider.requests]


def test_slow_reader_does_not_grow_memory(start_chatd, provider):
    """A client that stops reading: chatd holds the provider back (upstream_paused)
    instead of buffering, so its memory stays flat; once the client reads again
    the stream resumes and every event arrives, in order."""
    # Under AddressSanitizer freed memory is quarantined (256 MB by default), which
    # would look like growth; a small quarantine keeps RSS meaningful.
    c = start_chatd({"WORKERS": "1", "CLIENT_TIMEOUT_SECONDS": "30",
                     "ASAN_OPTIONS": "detect_leaks=1:quarantine_size_mb=1:exitcode=99"})
    n_tokens = 4000  # ~16 MB of content: far more than the socket buffers chatd writes into
    tokens = [f"{i:08d}" + "x" * 4000 for i in range(n_tokens)]
    provider.then(Stream(tokens=tokens))
    base_rss = c.rss_kb()
    SENT_MESSAGES.append("slow reader message")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.connect(("127.0.0.1", c.port))
    s.sendall(request_bytes("POST", "/chat", json.dumps({"message": "slow reader message"})))
    paused = c.wait_log("upstream_paused", timeout=10)
    assert paused is not None, "chatd never held the provider back"
    # Let the provider push what the kernel will take; chatd must not buffer it.
    time.sleep(1.0)  # nothing signals "the socket buffers are full"; give them a second
    grown = c.rss_kb() - base_rss
    assert grown < 4096, f"chatd grew by {grown} KB for one slow stream (unpaused: ~12 MB)"
    s.settimeout(30)
    data = b""
    while not data.endswith(b"\r\n0\r\n\r\n"):
        piece = s.recv(1 << 20)
        assert piece, "connection closed before the end of the stream"
        data += piece
    s.close()
    assert c.logs("upstream_resumed", cid=paused["correlation_id"])
    head, body = data.split(b"\r\n\r\n", 1)
    events = parse_events(decode_chunked(body)[0])
    final = check_stream(events)
    assert final["status"] == "completed"
    assert [e["content"] for e in events[:-1]] == tokens
