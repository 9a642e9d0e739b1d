"""/chat conversations (`history`, SYSTEM_PROMPT), MAX_REQUEST_BYTES on /chat and
/v1, GET /ready, and `provider` / `model` in /chat's final event.

Written from CONTRACT.md, independent of chatd's code. Events are read with a
lenient reader of our own (sseclient's strict key check predates `provider` and
`model`), and the final event's keys are checked here.
"""

import json
import signal

import httpx
import pytest

from chatd import SENT_MESSAGES, TEST_API_KEY, UUID4_RE, Chatd, connect, read_head, request_bytes
from fakeprovider import Hang, Status, Stream, completion, free_port
from sseclient import decode_chunked, three_parts

SECRET = "a secret conversation about walruses 5521"
SENT_MESSAGES.append(SECRET)

FINAL_COMPLETED = {"content", "sequence", "is_final", "correlation_id", "status", "finish_reason", "duration_ms",
                   "prompt_tokens", "completion_tokens", "total_tokens", "provider", "model"}
FINAL_ERROR = {"content", "sequence", "is_final", "correlation_id", "status", "error", "duration_ms",
               "provider", "model"}


class Result:
    def __init__(self, status, headers, raw):
        self.status, self.headers, self.raw = status, headers, raw

    def json(self):
        return json.loads(self.raw)

    @property
    def events(self):
        text = self.raw.decode("utf-8")
        out = []
        for block in text.split("\n\n"):
            if block.startswith("data: "):
                out.append(json.loads(block[len("data: "):]))
        return out

    @property
    def final(self):
        evs = self.events
        assert evs and evs[-1]["is_final"], evs
        assert [e["sequence"] for e in evs] == list(range(len(evs)))
        return evs[-1]


def remember(body):
    if isinstance(body, dict):
        for m in (body.get("history") or []) if isinstance(body.get("history"), list) else []:
            if isinstance(m, dict) and isinstance(m.get("content"), str):
                SENT_MESSAGES.append(m["content"])
        if isinstance(body.get("message"), str):
            SENT_MESSAGES.append(body["message"])
        for m in body.get("messages") or [] if isinstance(body.get("messages"), list) else []:
            if isinstance(m, dict) and isinstance(m.get("content"), str):
                SENT_MESSAGES.append(m["content"])


def post(c, body, path="/chat", headers=None, timeout=30):
    remember(body)
    data = json.dumps(body, ensure_ascii=False).encode() if isinstance(body, (dict, list)) else body
    h = {"Content-Type": "application/json", **(headers or {})}
    with httpx.Client(timeout=timeout) as client:
        with client.stream("POST", c.url + path, headers=h, content=data) as r:
            return Result(r.status_code, r.headers, b"".join(r.iter_raw()))


def assert_400_naming(r, field, provider):
    assert r.status == 400, r.raw[:300]
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error", "detail", "correlation_id"}, body
    assert body["error"] == "validation_error"
    assert body["correlation_id"] == r.headers["x-correlation-id"] and UUID4_RE.match(body["correlation_id"])
    assert three_parts(body["detail"]), body["detail"]
    assert field in body["detail"], body["detail"]
    assert SECRET not in body["detail"] and TEST_API_KEY not in body["detail"]
    assert provider.requests == []


def provider_messages(provider, i=0):
    assert provider.wait_requests(i + 1)
    return provider.requests[i].json["messages"]


HISTORY = [
    {"role": "user", "content": "My name is Zoë. Remember it: ✓ \"quoted\" \\ back"},
    {"role": "assistant", "content": "Nice to meet you, Zoë! 🙂\nI will."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4"},
]


# -- history -------------------------------------------------------------------------------

@pytest.mark.parametrize("history", ["absent", None, []])
def test_no_history_sends_only_the_message(chatd, provider, history):
    body = {"message": SECRET}
    if history != "absent":
        body["history"] = history
    r = post(chatd, body)
    assert r.status == 200 and r.final["status"] == "completed"
    assert provider_messages(provider) == [{"role": "user", "content": SECRET}]


def test_history_goes_before_the_message_in_order(chatd, provider):
    r = post(chatd, {"message": SECRET, "history": HISTORY})
    assert r.status == 200 and r.final["status"] == "completed"
    assert provider_messages(provider) == HISTORY + [{"role": "user", "content": SECRET}]


def test_history_of_100_items_is_accepted(chatd, provider):
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"} for i in range(100)]
    r = post(chatd, {"message": SECRET, "history": history})
    assert r.status == 200
    assert provider_messages(provider) == history + [{"role": "user", "content": SECRET}]


@pytest.mark.parametrize("ch", ["é", "🙂", "x"], ids=["two-byte", "four-byte", "ascii"])
def test_history_content_of_32000_code_points_is_accepted(chatd, provider, ch):
    content = ch * 32000  # up to 128000 bytes: counted as code points, not bytes
    r = post(chatd, {"message": SECRET, "history": [{"role": "user", "content": content}]})
    assert r.status == 200
    assert provider_messages(provider)[0]["content"] == content


def item(role="user", content="hello there"):
    return {"role": role, "content": content}


BAD_HISTORY = [
    ("a string", "previous talk"),
    ("an object", {"role": "user", "content": "hi"}),
    ("a number", 3),
    ("true", True),
    ("101 items", [item("user" if i % 2 == 0 else "assistant", f"t{i}") for i in range(101)]),
    ("item a string", ["hello"]),
    ("item null", [None]),
    ("item an array", [["user", "hi"]]),
    ("second item a number", [item(), 7]),
    ("role system", [item("system")]),
    ("role tool", [item("tool")]),
    ("role developer", [item("developer")]),
    ("role missing", [{"content": "hello there"}]),
    ("role a number", [item(1)]),
    ("role upper case", [item("User")]),
    ("content missing", [{"role": "user"}]),
    ("content null", [item(content=None)]),
    ("content a number", [item(content=42)]),
    ("content parts", [item(content=[{"type": "text", "text": "hi"}])]),
    ("content empty", [item(content="")]),
    ("content 32001 two-byte code points", [item(content="é" * 32001)]),
    ("content 32001 four-byte code points", [item(content="🙂" * 32001)]),
    ("content 32001 ascii", [item(content="x" * 32001)]),
    ("bad last item", [item(), item("assistant"), item("robot")]),
]


@pytest.mark.parametrize("name,history", BAD_HISTORY, ids=[b[0] for b in BAD_HISTORY])
def test_invalid_history_is_400_naming_the_field(chatd, provider, name, history):
    r = post(chatd, {"message": SECRET, "history": history})
    assert_400_naming(r, "history", provider)
    provider.then(Stream(tokens=["fine"]))
    assert post(chatd, {"message": "still working after that?"}).final["status"] == "completed"


# -- SYSTEM_PROMPT -------------------------------------------------------------------------

PROMPT = "You are chatd's helper. Answer in one line — «briefly», \"politely\" ✓"


def test_system_prompt_goes_first_on_chat(start_chatd, provider):
    c = start_chatd({"SYSTEM_PROMPT": PROMPT})
    post(c, {"message": SECRET, "history": HISTORY})
    post(c, {"message": SECRET})
    assert provider_messages(provider, 0) == [{"role": "system", "content": PROMPT}] + HISTORY + [
        {"role": "user", "content": SECRET}]
    assert provider_messages(provider, 1) == [{"role": "system", "content": PROMPT},
                                              {"role": "user", "content": SECRET}]


@pytest.mark.parametrize("stream", [True, False])
def test_system_prompt_does_not_apply_to_v1(start_chatd, provider, stream):
    c = start_chatd({"SYSTEM_PROMPT": PROMPT})
    provider.then(Stream(tokens=["ok"]) if stream else Status(200, completion()))
    messages = [{"role": "user", "content": SECRET}]
    r = post(c, {"messages": messages, "stream": stream}, path="/v1/chat/completions")
    assert r.status == 200
    assert provider_messages(provider) == messages


def test_no_system_prompt_by_default(chatd, provider):
    post(chatd, {"message": SECRET})
    assert [m["role"] for m in provider_messages(provider)] == ["user"]


# -- MAX_REQUEST_BYTES ---------------------------------------------------------------------

def padded(size, base):
    """A JSON object of exactly `size` bytes: `base` plus a padding field."""
    body = json.dumps({**base, "pad": ""})
    body = body[:-2] + "p" * (size - len(body)) + '"}'
    assert len(body) == size
    return body.encode()


def test_chat_body_just_under_1_mib_is_accepted(chatd, provider):
    r = post(chatd, padded((1 << 20) - 1, {"message": SECRET}))
    assert r.status == 200 and r.final["status"] == "completed"


def test_chat_body_of_exactly_1_mib_is_accepted(chatd, provider):
    r = post(chatd, padded(1 << 20, {"message": SECRET}))
    assert r.status == 200


def test_chat_body_over_1_mib_is_413(chatd, provider):
    r = post(chatd, padded((1 << 20) + 1, {"message": SECRET}))
    assert r.status == 413
    body = r.json()
    assert body["error"] == "payload_too_large" and three_parts(body["detail"])
    assert provider.requests == []


def test_large_history_within_1_mib_reaches_the_provider(chatd, provider):
    history = [item("user" if i % 2 == 0 else "assistant", "ü" * 4000 + str(i)) for i in range(100)]  # ~800 KB
    r = post(chatd, {"message": SECRET, "history": history})
    assert r.status == 200
    assert provider_messages(provider)[:-1] == history


def test_custom_max_request_bytes_on_chat_and_v1(start_chatd, provider):
    c = start_chatd({"MAX_REQUEST_BYTES": "2048"})
    r = post(c, padded(2048, {"message": SECRET}))
    assert r.status == 200
    for path, base in (("/chat", {"message": SECRET}),
                       ("/v1/chat/completions", {"messages": [{"role": "user", "content": SECRET}]})):
        r = post(c, padded(2049, base), path=path)
        assert r.status == 413, (path, r.raw)
        assert UUID4_RE.match(r.headers["x-correlation-id"])
        body = r.json()
        if path == "/chat":
            assert body["error"] == "payload_too_large" and three_parts(body["detail"])
        else:
            assert body["error"]["code"] == "payload_too_large" and three_parts(body["error"]["message"])
    assert len(provider.requests) == 1


def test_custom_max_request_bytes_by_content_length_alone(start_chatd, provider):
    """A declared Content-Length over the limit is refused before the body is read."""
    c = start_chatd({"MAX_REQUEST_BYTES": "2048"})
    for path in ("/chat", "/v1/chat/completions"):
        s = connect(c.port)
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  "Content-Length: 5000000\r\n\r\n".encode())
        status, headers, _ = read_head(s)
        s.close()
        assert status == 413, path
    assert provider.requests == []


@pytest.mark.parametrize("value", ["1023", "67108865", "abc", "-1", "1.5"])
def test_bad_max_request_bytes_exits_2(provider, tmp_path, value):
    c = Chatd({"OPENAI_BASE_URL": provider.base_url, "MAX_REQUEST_BYTES": value}, cwd=str(tmp_path), expect_exit=2)
    c.start(wait=False)
    assert c.wait_exit(10) == 2
    err = "\n".join(c.stderr)
    assert "MAX_REQUEST_BYTES" in err, err
    assert three_parts(err.split("configuration error: ", 1)[-1]), err


@pytest.mark.parametrize("value", ["1024", "67108864"])
def test_max_request_bytes_bounds_are_accepted(start_chatd, value):
    c = start_chatd({"MAX_REQUEST_BYTES": value})
    assert httpx.get(c.url + "/health").status_code == 200


# -- GET /ready ----------------------------------------------------------------------------

def test_ready_is_200_ready(start_chatd):
    c = start_chatd({"CLIENT_API_KEYS": "ready-client-key-0001"})  # no key needed
    r = httpx.get(c.url + "/ready")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"status": "ready"}
    assert UUID4_RE.match(r.headers["x-correlation-id"])


def read_response(sock):
    status, headers, rest = read_head(sock)
    n = int(headers["content-length"])
    while len(rest) < n:
        piece = sock.recv(4096)
        assert piece
        rest += piece
    return status, headers, rest[:n]


def test_ready_is_503_draining_after_sigterm(start_chatd, provider):
    c = start_chatd({"DRAIN_SECONDS": "20", "WORKERS": "1"})
    first = connect(c.port)
    first.sendall(request_bytes("GET", "/ready"))
    status, _, body = read_response(first)
    assert status == 200 and json.loads(body) == {"status": "ready"}
    # An open connection that has not carried a request yet stays open through the
    # drain (one that has is closed when the drain starts, so that a proxy sends its
    # next request to another replica).
    keep = connect(c.port)
    gate = provider.event()  # a stream that holds the drain open
    provider.then(Stream(tokens=["a", "b"], gate=lambda i: gate.wait() if i == 1 else None))
    SENT_MESSAGES.append("hold the drain for ready")
    s = connect(c.port)
    s.sendall(request_bytes("POST", "/chat", json.dumps({"message": "hold the drain for ready"})))
    status, _, rest = read_head(s)
    assert status == 200
    c.send_signal(signal.SIGTERM)
    assert c.wait_log("shutdown_started") is not None
    keep.sendall(request_bytes("GET", "/ready"))
    status, headers, body = read_response(keep)
    assert status == 503
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body) == {"status": "draining"}
    keep.close()
    assert first.recv(1) == b""  # the used idle one was closed at the drain
    provider.set_event(gate)
    s.settimeout(20)
    data = rest
    while not data.endswith(b"0\r\n\r\n"):
        piece = s.recv(65536)
        if not piece:
            break
        data += piece
    s.close()
    payload, complete = decode_chunked(data)
    assert complete and b'"status":"completed"' in payload.replace(b" ", b"")
    assert c.wait_exit(10) == 0


# -- provider and model in the final event --------------------------------------------------

def test_final_event_names_provider_and_model_when_completed(start_chatd, provider):
    c = start_chatd({"OPENAI_MODEL": "m-default", "ALLOWED_MODELS": "m-default,m-other"})
    for model, expected in ((None, "m-default"), ("m-other", "m-other"), ("m-default", "m-default")):
        body = {"message": SECRET} if model is None else {"message": SECRET, "model": model}
        final = post(c, body).final
        assert set(final) == FINAL_COMPLETED, set(final) ^ FINAL_COMPLETED
        assert final["status"] == "completed"
        assert final["provider"] == "default" and final["model"] == expected


@pytest.mark.parametrize("behaviour,status", [(Status(500), "error"), (Status(400), "error"),
                                               (Stream(tokens=["a", "b", "c"], cut_after=1), "error"),
                                               (Hang(first_tokens=["x"]), "timeout")],
                         ids=["provider-500", "provider-400", "cut-mid-stream", "idle-after-first-token"])
def test_final_event_names_provider_and_model_on_error(start_chatd, provider, behaviour, status):
    timeout = "0.5" if status == "timeout" else "10"  # retries of a 500 must fit in the time
    c = start_chatd({"OPENAI_MODEL": "m-default", "ALLOWED_MODELS": "m-default,m-other", "TIMEOUT_SECONDS": timeout})
    provider.always(behaviour)
    r = post(c, {"message": SECRET, "model": "m-other"})
    assert r.status == 200
    final = r.final
    assert set(final) == FINAL_ERROR, set(final) ^ FINAL_ERROR
    assert final["status"] == status
    assert final["provider"] == "default" and final["model"] == "m-other"


def test_final_event_names_the_target_that_answered(start_chatd, provider, tmp_path):
    """With CHATD_CONFIG: the provider's name and the target's model, after a fallback too."""
    cfg = tmp_path / "chatd.json"
    cfg.write_text(json.dumps({
        "providers": [{"name": "down", "base_url": f"http://127.0.0.1:{free_port()}/v1"},
                      {"name": "fake", "base_url": provider.base_url, "api_key_env": "OPENAI_API_KEY"}],
        "models": [{"name": "alias", "targets": [{"provider": "fake", "model": "real-model-7b"}]},
                   {"name": "fallback", "targets": [{"provider": "down", "model": "never-used"},
                                                    {"provider": "fake", "model": "backup-model"}]}],
        "default_model": "alias"}))
    c = start_chatd({"CHATD_CONFIG": str(cfg), "OPENAI_BASE_URL": None, "UPSTREAM_RETRIES": "0"})
    final = post(c, {"message": SECRET}).final
    assert (final["status"], final["provider"], final["model"]) == ("completed", "fake", "real-model-7b")
    final = post(c, {"message": SECRET, "model": "fallback"}).final
    assert (final["status"], final["provider"], final["model"]) == ("completed", "fake", "backup-model")
    assert [q.json["model"] for q in provider.requests] == ["real-model-7b", "backup-model"]
    provider.always(Status(500))
    final = post(c, {"message": SECRET}).final
    assert (final["status"], final["provider"], final["model"]) == ("error", "fake", "real-model-7b")


def test_unknown_fields_of_history_items_are_not_forwarded(chatd, provider):
    """Only role and content make a turn: extra fields (a tool call, a name) are ignored, not
    smuggled to the provider."""
    history = [{"role": "user", "content": "first question here", "name": "mallory"},
               {"role": "assistant", "content": "first answer here", "tool_calls": [
                   {"id": "x", "type": "function", "function": {"name": "rm", "arguments": "{}"}}]}]
    r = post(chatd, {"message": SECRET, "history": history})
    assert r.status == 200
    assert provider_messages(provider) == [{"role": "user", "content": "first question here"},
                                           {"role": "assistant", "content": "first answer here"},
                                           {"role": "user", "content": SECRET}]


@pytest.mark.parametrize("escape", ["\\u00e9", "\\ud83d\\ude42"], ids=["escaped-two-byte", "escaped-surrogate-pair"])
@pytest.mark.parametrize("n,ok", [(32000, True), (32001, False)])
def test_history_content_counts_escaped_characters_as_code_points(chatd, provider, escape, n, ok):
    """JSON escapes are one code point each (a surrogate pair is one), whatever their byte length."""
    body = ('{"message": "%s", "history": [{"role": "user", "content": "%s"}]}' % (SECRET, escape * n)).encode()
    r = post(chatd, body)
    if ok:
        assert r.status == 200, r.raw[:300]
        assert len(provider_messages(provider)[0]["content"]) == n
    else:
        assert_400_naming(r, "history", provider)
