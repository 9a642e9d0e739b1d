"""Fixtures: a fake provider and the real chatd binary, per test."""

import os
import sys

import httpx
import pytest

sys.path.insert(0, os.path.dirname(__file__))

from chatd import ALL_OUTPUT, BINARY, SENT_MESSAGES, TEST_API_KEY, Chatd  # noqa: E402
from fakeprovider import FakeProvider  # noqa: E402
from sseclient import decode_chunked, parse_events  # noqa: E402


def pytest_sessionstart(session):
    if not os.path.exists(BINARY):
        raise pytest.UsageError(f"{BINARY} is missing: run make first")


@pytest.fixture(scope="session", autouse=True)
def no_secrets_in_any_output():
    """Across the whole session, no line chatd printed contains the provider key
    or any message text a test sent (every test contributes)."""
    yield
    leaks = [l for l in ALL_OUTPUT if TEST_API_KEY in l]
    assert not leaks, f"the API key reached the output: {leaks[:3]}"
    for msg in set(SENT_MESSAGES):
        if len(msg.strip()) >= 8:
            hits = [l for l in ALL_OUTPUT if msg in l]
            assert not hits, f"a message text reached the output: {hits[:3]}"


@pytest.fixture
def provider():
    fp = FakeProvider().start()
    yield fp
    fp.stop()


@pytest.fixture
def start_chatd(provider, tmp_path):
    started = []

    def start(env=None, wait=True, cwd=None, expect_exit=0, wrapper=None, **kw):
        full = {"OPENAI_BASE_URL": provider.base_url}
        full.update(env or {})
        c = Chatd(full, cwd=str(cwd or tmp_path), expect_exit=expect_exit, wrapper=wrapper)
        started.append(c)
        return c.start(wait=wait, **kw)

    yield start
    for c in started:
        c.stop()


@pytest.fixture
def chatd(start_chatd):
    return start_chatd()


class ChatResult:
    def __init__(self, status, headers, raw, events):
        self.status = status
        self.headers = headers
        self.raw = raw
        self.events = events

    @property
    def final(self):
        return self.events[-1]

    @property
    def content(self):
        return "".join(e["content"] for e in self.events if not e["is_final"])

    def json(self):
        import json

        return json.loads(self.raw)


def post_chat(c: Chatd, body=None, message=None, headers=None, timeout=30, **fields) -> ChatResult:
    """POST /chat and read the whole answer; events parsed strictly when 200."""
    if body is None:
        body = {"message": message if message is not None else "What is 2+2?", **fields}
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        SENT_MESSAGES.append(body["message"])
    kw = {"json": body} if isinstance(body, (dict, list)) else {"content": body}
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    with httpx.Client(timeout=timeout) as client:
        with client.stream("POST", c.url + "/chat", headers=h, **kw) as r:
            raw = b"".join(r.iter_raw())
            events = parse_events(raw) if r.status_code == 200 else []
            return ChatResult(r.status_code, r.headers, raw, events)


@pytest.fixture
def chat():
    return post_chat
