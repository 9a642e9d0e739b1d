"""A scripted OpenAI-compatible provider for the integration tests.

It runs aiohttp on its own event loop in a background thread, on a free port
of 127.0.0.1. Each test queues the behaviours of the next requests (a stream of
tokens, an error status, a raw body, a hang ...); the provider records every
request it received and every connection that the other side (chatd) closed,
so tests can wait for those events instead of sleeping.
"""

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

from aiohttp import web


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chunk(content=None, finish_reason=None, role=False, model="gpt-4o-mini"):
    delta = {}
    if role:
        delta["role"] = "assistant"
    if content is not None:
        delta["content"] = content
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def usage_chunk(prompt, completion):
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def completion(content="Hello world", finish_reason="stop", model="gpt-4o-mini", usage=(9, 2)):
    """A non-streamed answer: an OpenAI `chat.completion` object."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "logprobs": None,
                     "finish_reason": finish_reason}],
        "usage": None if usage is None else {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                                              "total_tokens": usage[0] + usage[1]},
    }


def sse(obj) -> bytes:
    data = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
    return b"data: " + data.encode() + b"\n\n"


@dataclass
class Received:
    """One request as the provider saw it."""

    path: str
    headers: dict
    body: bytes
    json: Optional[dict]
    at: float
    peer: tuple = ()  # the client's (address, port): one per TCP connection


@dataclass
class Stream:
    """Stream tokens the OpenAI way: a role chunk, one chunk per token, a finish
    chunk, the usage chunk, [DONE]."""

    tokens: List[str]
    delay: float = 0.0
    first_delay: float = 0.0
    usage: Optional[tuple] = (9, None)  # (prompt, completion); None completion = len(tokens)
    finish_reason: Optional[str] = "stop"
    done: bool = True
    cut_after: Optional[int] = None  # close the connection after this many tokens
    gate: Optional[Callable] = None  # called with the index; may return an awaitable to wait on

    async def respond(self, req, fp):
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(req)
        if self.first_delay:
            await asyncio.sleep(self.first_delay)
        await resp.write(sse(chunk(role=True, content="")))
        for i, tok in enumerate(self.tokens):
            if self.gate is not None:
                waiter = self.gate(i)
                if waiter is not None:
                    await waiter
            if self.cut_after is not None and i >= self.cut_after:
                req.transport.close()
                return resp
            if i and self.delay:
                await asyncio.sleep(self.delay)
            await resp.write(sse(chunk(content=tok)))
            fp.bytes_written += 1
        if self.finish_reason is not None:
            await resp.write(sse(chunk(finish_reason=self.finish_reason)))
        if self.usage is not None:
            prompt, completion = self.usage
            await resp.write(sse(usage_chunk(prompt, len(self.tokens) if completion is None else completion)))
        if self.done:
            await resp.write(sse("[DONE]"))
        await resp.write_eof()
        return resp


@dataclass
class Status:
    """Answer with a status and a body, as a failing provider does."""

    status: int
    body: object = None
    headers: dict = field(default_factory=dict)
    content_type: str = "application/json"

    async def respond(self, req, fp):
        body = self.body
        if body is None:
            body = {"error": {"message": f"error {self.status}", "type": "test"}}
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        return web.Response(status=self.status, body=body, headers={"Content-Type": self.content_type, **self.headers})


@dataclass
class Raw:
    """Send these bytes as the body of a 200 (optionally split into writes)."""

    parts: List[bytes]
    content_type: str = "text/event-stream"
    close: bool = False  # close the connection instead of ending the body
    delay: float = 0.0
    hang: bool = False  # after the parts, send nothing more (until chatd closes)

    async def respond(self, req, fp):
        resp = web.StreamResponse(headers={"Content-Type": self.content_type})
        await resp.prepare(req)
        for p in self.parts:
            await resp.write(p)
            if self.delay:
                await asyncio.sleep(self.delay)
        if self.hang:
            await asyncio.sleep(3600)
        if self.close:
            req.transport.close()
            return resp
        await resp.write_eof()
        return resp


@dataclass
class Hang:
    """Accept the request and never answer (or answer headers, then nothing)."""

    send_headers: bool = False
    first_tokens: List[str] = field(default_factory=list)

    async def respond(self, req, fp):
        if self.send_headers or self.first_tokens:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(req)
            for t in self.first_tokens:
                await resp.write(sse(chunk(content=t)))
        await asyncio.sleep(3600)


class FakeProvider:
    def __init__(self, host="127.0.0.1", port=None):
        self.host = host  # another loopback address (127.0.0.2, ::1) for DNS tests
        self.port = port or free_port()
        self.base_url = f"http://{host if ':' not in host else '[' + host + ']'}:{self.port}/v1"
        self.requests: List[Received] = []
        self.queue = []
        self.default = Stream(tokens=["Hello", " world"])
        self.disconnects: List[float] = []  # when chatd closed a connection mid-answer
        self.bytes_written = 0
        self._cond = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.connections_open = 0
        self.connections_total = 0

    # -- scripting ------------------------------------------------------------

    def then(self, *behaviours):
        """Queue behaviours for the next requests, in order."""
        with self._cond:
            self.queue.extend(behaviours)
        return self

    def always(self, behaviour):
        self.default = behaviour
        return self

    def call_soon(self, fn, *args):
        self._loop.call_soon_threadsafe(fn, *args)

    def event(self) -> asyncio.Event:
        """An asyncio.Event on the provider's loop, settable from any thread with set_event."""
        fut = asyncio.run_coroutine_threadsafe(self._make_event(), self._loop)
        return fut.result(5)

    async def _make_event(self):
        return asyncio.Event()

    def set_event(self, ev: asyncio.Event):
        self._loop.call_soon_threadsafe(ev.set)

    # -- waiting --------------------------------------------------------------

    def wait_for(self, predicate, timeout=5.0):
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def wait_requests(self, n, timeout=5.0):
        return self.wait_for(lambda: len(self.requests) >= n, timeout)

    def wait_disconnects(self, n, timeout=5.0):
        return self.wait_for(lambda: len(self.disconnects) >= n, timeout)

    # -- server ---------------------------------------------------------------

    def start(self):
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake provider did not start")
        return self

    def stop(self):
        async def shutdown():
            await self._runner.cleanup()

        fut = asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        try:
            fut.result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def _notify(self):
        with self._cond:
            self._cond.notify_all()

    def _run(self):
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=64 << 20)  # MAX_REQUEST_BYTES may reach 64 MiB
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, request: web.Request):
        body = await request.read()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        with self._cond:
            peer = request.transport.get_extra_info("peername") if request.transport else ()
            self.requests.append(Received(request.path, dict(request.headers), body, parsed, time.monotonic(), peer))
            behaviour = self.queue.pop(0) if self.queue else self.default
            self.connections_open += 1
            self.connections_total += 1
            self._cond.notify_all()
        if not request.path.endswith("/chat/completions"):
            behaviour = Status(404, {"error": {"message": "Not found"}})
        lost = self._watch_connection(request)
        task = asyncio.ensure_future(behaviour.respond(request, self))
        try:
            await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                return task.result()
            # chatd closed the connection while the answer was in progress.
            task.cancel()
            with self._cond:
                self.disconnects.append(time.monotonic())
                self._cond.notify_all()
            raise ConnectionResetError("chatd closed the connection")
        except ConnectionResetError:
            # The answer failed to write because chatd had closed the connection; the
            # loss may have been seen in the same loop turn (then it is counted here too).
            if task.done():
                with self._cond:
                    self.disconnects.append(time.monotonic())
                    self._cond.notify_all()
            raise
        finally:
            with self._cond:
                self.connections_open -= 1
                self._cond.notify_all()

    @staticmethod
    def _watch_connection(request):
        """A future that completes when the connection of this request is lost.
        aiohttp 3.8 does not cancel a handler that is not writing, so the
        transport's protocol is wrapped once per connection to hear of it."""
        lost = asyncio.get_running_loop().create_future()
        transport = request.transport
        proto = transport.get_protocol()
        if not isinstance(proto, _LossWatch):
            proto = _LossWatch(proto)
            transport.set_protocol(proto)
        proto.future = lost
        return lost


class _LossWatch(asyncio.Protocol):
    """Delegates to aiohttp's protocol and completes `future` on connection loss."""

    def __init__(self, inner):
        self.inner = inner
        self.future = None

    def connection_made(self, transport):
        self.inner.connection_made(transport)

    def data_received(self, data):
        self.inner.data_received(data)

    def eof_received(self):
        return self.inner.eof_received()

    def pause_writing(self):
        self.inner.pause_writing()

    def resume_writing(self):
        self.inner.resume_writing()

    def connection_lost(self, exc):
        if self.future is not None and not self.future.done():
            self.future.set_result(exc)
        self.inner.connection_lost(exc)
