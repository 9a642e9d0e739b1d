"""POST /v1/chat/completions and GET /v1/models: the OpenAI-compatible API.

Written from CONTRACT.md ("OpenAI-compatible API"), independent of chatd's code:
the fake provider sends hand-written bytes and records what it received, and
every assertion compares against those bytes or the contract's rules.
"""

import asyncio
import hashlib
import json
import signal
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from chatd import SENT_MESSAGES, TEST_API_KEY, UUID4_RE, connect, read_head, request_bytes
from fakeprovider import Hang, Raw, Status, Stream, chunk, completion, free_port, sse, usage_chunk
from sseclient import three_parts

SECRET = "my v1 secret question about otters 7719"
SENT_MESSAGES.append(SECRET)
PATH = "/v1/chat/completions"


class Resp:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw

    def json(self):
        return json.loads(self.raw)


def remember(body):
    """Every message text a test sends must stay out of chatd's output."""
    if isinstance(body, dict) and isinstance(body.get("messages"), list):
        for m in body["messages"]:
            if isinstance(m, dict) and isinstance(m.get("content"), str):
                SENT_MESSAGES.append(m["content"])


def post(c, body=None, headers=None, path=PATH, timeout=30, method="POST", **fields):
    if body is None:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": SECRET}], **fields}
    remember(body)
    kw = {"content": json.dumps(body).encode() if isinstance(body, (dict, list)) else body}
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    with httpx.Client(timeout=timeout) as client:
        with client.stream(method, c.url + path, headers=h, **kw) as r:
            return Resp(r.status_code, r.headers, b"".join(r.iter_raw()))


def get(c, path, headers=None):
    r = httpx.get(c.url + path, headers=headers or {}, timeout=30)
    return Resp(r.status_code, r.headers, r.content)


def data_lines(raw):
    """The payloads of a /v1 stream, in order; comment blocks are skipped."""
    text = raw.decode("utf-8")
    assert text.endswith("\n\n"), f"stream does not end with a blank line: {text[-80:]!r}"
    out = []
    for block in text.split("\n\n")[:-1]:
        if block.startswith(":"):
            continue
        assert block.startswith("data: ") and "\n" not in block and "\r" not in block, repr(block)
        out.append(block[len("data: "):])
    return out


def check_ids(r):
    cid = r.headers["x-correlation-id"]
    assert UUID4_RE.match(cid), cid
    assert r.headers["x-request-id"] == cid
    return cid


def assert_openai_error(r, status, code=None, type_=None, param="<any>"):
    assert r.status == status, (r.status, r.raw[:500])
    assert r.headers["content-type"].startswith("application/json"), r.headers["content-type"]
    check_ids(r)
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and three_parts(err["message"]), err["message"]
    assert isinstance(err["type"], str) and err["type"]
    assert TEST_API_KEY not in r.raw.decode() and SECRET not in r.raw.decode()
    if code is not None:
        assert err["code"] == code, err
    if type_ is not None:
        assert err["type"] == type_, err
    if param != "<any>":
        if param is None:
            assert err["param"] is None, err
        else:
            assert isinstance(err["param"], str) and err["param"].startswith(param), err
    return err


# -- hand-written provider bytes: spacing, key order, escapes and vendor fields that a
#    re-encoder would change -------------------------------------------------------------

EV_ROLE = '{"id":"chatcmpl-7x","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}'
EV_A = '{"id":"chatcmpl-7x", "object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"content":"Gr\\u00fc\\u00dfe, "},"logprobs":null,"finish_reason":null}],"usage":null,"x_vendor":{"b":2,"a":1}}'
EV_B = '{"choices":[{"delta":{"content":"世界 🙂 \\"q\\" \\\\ \\n"},"index":0,"finish_reason":null}],"id":"chatcmpl-7x","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini-2024-07-18","usage":null ,"n":1.50}'
EV_FIN = '{"id":"chatcmpl-7x","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}'
EV_USAGE = '{"id":"chatcmpl-7x","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":3,"total_tokens":14,"prompt_tokens_details":{"cached_tokens":0}}}'
EVENTS = [EV_ROLE, EV_A, EV_B, EV_FIN]


def provider_bytes(events, done=True):
    return b"".join(b"data: " + e.encode() + b"\n\n" for e in events) + (b"data: [DONE]\n\n" if done else b"")


@pytest.mark.parametrize("split", ["whole", "bytewise"])
@pytest.mark.parametrize("include_usage", [True, False, None])
def test_stream_relays_each_event_byte_for_byte(chatd, provider, split, include_usage):
    body = provider_bytes(EVENTS + [EV_USAGE])
    parts = [body] if split == "whole" else [body[i:i + 1] for i in range(len(body))]
    provider.then(Raw(parts))
    fields = {"stream": True}
    if include_usage is not None:
        fields["stream_options"] = {"include_usage": include_usage}
    r = post(chatd, **fields)
    assert r.status == 200
    assert r.headers["content-type"] == "text/event-stream"
    check_ids(r)
    expected = EVENTS + ([EV_USAGE] if include_usage else [])
    assert data_lines(r.raw) == expected + ["[DONE]"]
    got = provider.requests[0].json
    assert got["stream"] is True
    assert got["stream_options"]["include_usage"] is True  # always asked, whatever the client said


def test_stream_events_with_crlf_and_no_space_are_relayed_as_json(chatd, provider):
    """SSE allows `data:` without a space and CRLF line ends; the JSON stays byte for byte."""
    body = b"".join(b"data:" + e.encode() + b"\r\n\r\n" for e in EVENTS) + b"data: [DONE]\r\n\r\n"
    provider.then(Raw([body]))
    r = post(chatd, stream=True)
    assert r.status == 200
    assert data_lines(r.raw) == EVENTS + ["[DONE]"]


def test_stream_with_generated_tokens_and_usage(chatd, provider):
    provider.then(Stream(tokens=["2", " + 2", " = 4"], usage=(12, 3)))
    r = post(chatd, stream=True, stream_options={"include_usage": True})
    lines = data_lines(r.raw)
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(x) for x in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "2 + 2 = 4"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 15


def test_stream_tool_call_chunks_are_relayed(chatd, provider):
    """A tool call is an answer: headers go out with it, and its chunks reach the client unchanged."""
    tc1 = '{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_abc","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}'
    tc2 = '{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\\"city\\": \\"Paris\\"}"}}]},"finish_reason":null}]}'
    fin = '{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}'
    provider.then(Raw([provider_bytes([tc1, tc2, fin])]))
    r = post(chatd, stream=True)
    assert r.status == 200
    assert data_lines(r.raw) == [tc1, tc2, fin, "[DONE]"]


def test_usage_on_a_chunk_with_choices_is_not_stripped(chatd, provider):
    """Some providers (vLLM, Ollama) put usage on the finish chunk; only a chunk with no
    choices is the usage-only chunk."""
    fin_usage = ('{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
                 '"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}')
    provider.then(Raw([provider_bytes([EV_ROLE, EV_A, fin_usage])]))
    r = post(chatd, stream=True)
    assert data_lines(r.raw) == [EV_ROLE, EV_A, fin_usage, "[DONE]"]


AZURE_FILTER = ('{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,'
                '"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}]}')


@pytest.mark.parametrize("include_usage", [True, False])
def test_a_chunk_without_choices_and_without_usage_is_relayed(chatd, provider, include_usage):
    """Azure OpenAI's first chunk has no choices and no usage (prompt_filter_results): it is
    not the usage-only chunk, so it is relayed — after the headers, which it does not trigger."""
    provider.then(Raw([provider_bytes([AZURE_FILTER, EV_ROLE, EV_A, EV_FIN, EV_USAGE])]))
    r = post(chatd, stream=True, stream_options={"include_usage": include_usage})
    assert r.status == 200
    assert data_lines(r.raw) == [AZURE_FILTER, EV_ROLE, EV_A, EV_FIN] + ([EV_USAGE] if include_usage else []) + [
        "[DONE]"]


def test_finish_reason_without_done_still_ends_with_done(chatd, provider):
    provider.then(Raw([provider_bytes([EV_ROLE, EV_A, EV_FIN], done=False)]))
    r = post(chatd, stream=True)
    assert data_lines(r.raw) == [EV_ROLE, EV_A, EV_FIN, "[DONE]"]


def test_provider_comments_and_keep_alives_do_not_break_the_stream(chatd, provider):
    """OpenRouter sends `: OPENROUTER PROCESSING` comments; SSE `event:`/`id:` fields may appear."""
    body = (b": OPENROUTER PROCESSING\n\n" + b"data: " + EV_ROLE.encode() + b"\n\n" + b": keep-alive\n\n"
            + b"id: 7\ndata: " + EV_A.encode() + b"\n\n" + b"data: " + EV_FIN.encode() + b"\n\n" + b"data: [DONE]\n\n")
    provider.then(Raw([body]))
    r = post(chatd, stream=True)
    assert r.status == 200
    assert data_lines(r.raw) == [EV_ROLE, EV_A, EV_FIN, "[DONE]"]


def test_many_chunks_are_all_relayed_in_order(chatd, provider):
    events = [json.dumps(chunk(content=f"w{i} "), separators=(",", ":")) for i in range(3000)]
    events.append(json.dumps(chunk(finish_reason="stop")))
    provider.then(Raw([provider_bytes(events)[i:i + 1000] for i in range(0, len(provider_bytes(events)), 1000)]))
    r = post(chatd, stream=True)
    assert data_lines(r.raw) == events + ["[DONE]"]


def test_two_streams_and_a_completion_on_one_keep_alive_connection(chatd, provider):
    provider.then(Stream(tokens=["one"]), Stream(tokens=["two"]), Status(200, COMPLETION_BYTES))
    s = connect(chatd.port)
    for stream in (True, True, False):
        s.sendall(request_bytes("POST", PATH, json.dumps({"messages": MSG, "stream": stream})))
        status, headers, rest = read_head(s)
        assert status == 200
        if stream:
            assert headers["transfer-encoding"] == "chunked"
            while not rest.endswith(b"0\r\n\r\n"):
                piece = s.recv(65536)
                assert piece, rest
                rest += piece
            assert b"data: [DONE]" in rest
        else:
            n = int(headers["content-length"])
            while len(rest) < n:
                rest += s.recv(65536)
            assert rest[:n].rstrip(b"\n") == COMPLETION_BYTES.rstrip(b"\n")
    s.close()
    assert len(provider.requests) == 3


def test_cors_preflight_and_headers_on_v1(start_chatd, provider):
    """Browser apps call /v1 cross-origin (the openai SDK's dangerouslyAllowBrowser)."""
    c = start_chatd({"CORS_ORIGINS": "https://app.example.com"})
    h = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
         "Access-Control-Request-Headers": "content-type,authorization,x-stainless-os"}
    r = httpx.options(c.url + PATH, headers=h)
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "POST" in r.headers["access-control-allow-methods"]
    provider.then(Stream(tokens=["x"]))
    p = post(c, headers={"Origin": "https://app.example.com"}, stream=True)
    assert p.status == 200 and p.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "x-request-id" in p.headers["access-control-expose-headers"].lower()


# -- what the provider receives ----------------------------------------------------------

MESSAGES = [
    {"role": "developer", "content": "You answer in French. Ünïcode ✓"},
    {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
    {"role": "user", "name": "alice", "content": [
        {"type": "text", "text": "What is in this image, and the weather in Paris?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}]},
    {"role": "assistant", "content": None, "refusal": None, "tool_calls": [
        {"id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
    {"role": "tool", "tool_call_id": "call_abc", "content": "{\"temp_c\": 21.5, \"sky\": \"clear\"}"},
    {"role": "assistant", "content": "Un chat. Il fait 21,5 °C à Paris."},
    {"role": "user", "content": SECRET},
]

OTHER_FIELDS = {
    "temperature": 0.25,
    "top_p": 0.9,
    "stop": ["\n\n", "END"],
    "presence_penalty": -0.5,
    "frequency_penalty": 1.25,
    "logit_bias": {"50256": -100},
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather now",
                                                "parameters": {"type": "object", "properties": {
                                                    "city": {"type": "string"}}, "required": ["city"]},
                                                "strict": True}}],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "parallel_tool_calls": False,
    "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}},
    "seed": 42,
    "user": "user-1234",
    "logprobs": True,
    "top_logprobs": 2,
    "metadata": {"k": "v"},
    "x_unknown_vendor_field": {"nested": [1, 2.5, "three", None, True]},
}


@pytest.mark.parametrize("stream", [True, False])
def test_every_other_field_and_message_reaches_the_provider_unchanged(start_chatd, provider, stream):
    c = start_chatd({"OPENAI_MODEL": "m-default", "ALLOWED_MODELS": "m-default,m-other"})
    provider.then(Stream(tokens=["ok"]) if stream else Status(200, completion()))
    sent = {"model": "m-other", "messages": MESSAGES, "stream": stream, **OTHER_FIELDS}
    r = post(c, sent)
    assert r.status == 200, r.raw
    got = dict(provider.requests[0].json)
    assert provider.requests[0].path == "/v1/chat/completions"
    assert provider.requests[0].headers["Authorization"] == f"Bearer {TEST_API_KEY}"
    assert got.pop("model") == "m-other"
    if stream:
        assert got.pop("stream_options") == {"include_usage": True}
    else:
        assert "stream_options" not in got  # providers refuse stream_options without stream
    assert "max_tokens" not in got and "max_completion_tokens" not in got  # none added
    assert bool(got.pop("stream", False)) is stream
    expected = {k: v for k, v in sent.items() if k not in ("model", "stream")}
    assert got == expected


@pytest.mark.parametrize("stream", [True, False])
def test_client_authorization_never_reaches_the_provider(start_chatd, provider, stream):
    """The provider sees chatd's key (or none), never the client's key or headers."""
    c = start_chatd(KEYS)
    provider.then(Stream(tokens=["ok"]) if stream else Status(200, completion()))
    r = post(c, headers={"Authorization": "Bearer v1-client-key-0001", "OpenAI-Organization": "org-client"},
             stream=stream)
    assert r.status == 200
    h = provider.requests[0].headers
    assert h["Authorization"] == f"Bearer {TEST_API_KEY}"
    assert "v1-client-key-0001" not in json.dumps(h) and "OpenAI-Organization" not in h
    c2 = start_chatd({"OPENAI_API_KEY": None})
    provider.then(Stream(tokens=["ok"]) if stream else Status(200, completion()))
    assert post(c2, headers={"Authorization": "Bearer sk-client-own-key-123"}, stream=stream).status == 200
    assert provider.wait_requests(2)
    assert "Authorization" not in provider.requests[1].headers
    assert "sk-client-own-key-123" not in json.dumps(provider.requests[1].headers)


def test_query_string_is_ignored_for_routing(chatd, provider):
    """Azure-style clients add ?api-version=…; the path still routes."""
    provider.then(Stream(tokens=["ok"]))
    r = post(chatd, path=PATH + "?api-version=2024-10-21", stream=True)
    assert r.status == 200 and data_lines(r.raw)[-1] == "[DONE]"
    assert get(chatd, "/v1/models?limit=5").status == 200


def test_absent_model_is_the_default_and_no_max_tokens_is_added(start_chatd, provider):
    c = start_chatd({"OPENAI_MODEL": "m-default", "ALLOWED_MODELS": "m-default,m-other", "MAX_TOKENS": "300"})
    provider.then(Stream(tokens=["ok"]), Status(200, completion()))
    post(c, {"messages": [{"role": "user", "content": SECRET}], "stream": True})
    post(c, {"messages": [{"role": "user", "content": SECRET}]})
    assert provider.wait_requests(2)
    a, b = provider.requests[0].json, provider.requests[1].json
    assert a["model"] == "m-default" and b["model"] == "m-default"
    for got in (a, b):
        assert "max_tokens" not in got and "max_completion_tokens" not in got
    assert not b.get("stream")


def test_client_stream_options_are_kept_and_usage_is_forced(chatd, provider):
    provider.then(Stream(tokens=["ok"]), Stream(tokens=["ok"]))
    post(chatd, stream=True, stream_options={"include_usage": False})
    assert provider.requests[0].json["stream_options"]["include_usage"] is True
    post(chatd, stream=True, stream_options={"include_obfuscation": False, "include_usage": False})
    assert provider.wait_requests(2)
    assert provider.requests[1].json["stream_options"] == {"include_obfuscation": False, "include_usage": True}


def test_token_limits_at_the_bounds_pass_unchanged(start_chatd, provider):
    c = start_chatd({"MAX_TOKENS": "500"})
    provider.then(Stream(tokens=["a"]), Stream(tokens=["b"]), Status(200, completion()))
    assert post(c, stream=True, max_tokens=500).status == 200
    assert post(c, stream=True, max_completion_tokens=1).status == 200
    assert post(c, n=1, max_tokens=1).status == 200
    assert provider.wait_requests(3)
    assert provider.requests[0].json["max_tokens"] == 500
    assert provider.requests[1].json["max_completion_tokens"] == 1
    assert "max_tokens" not in provider.requests[1].json
    assert provider.requests[2].json["max_tokens"] == 1 and provider.requests[2].json["n"] == 1


def test_model_is_replaced_by_the_routed_provider_model(start_chatd, provider, tmp_path):
    """With CHATD_CONFIG, the client's model name maps to the target's model."""
    cfg = tmp_path / "chatd.json"
    cfg.write_text(json.dumps({
        "providers": [{"name": "fake", "base_url": provider.base_url, "api_key_env": "OPENAI_API_KEY"}],
        "models": [{"name": "alias-model", "targets": [{"provider": "fake", "model": "real-model-7b"}]}],
        "default_model": "alias-model"}))
    c = start_chatd({"CHATD_CONFIG": str(cfg), "OPENAI_BASE_URL": None})
    provider.then(Stream(tokens=["ok"]), Status(200, completion()))
    assert post(c, model="alias-model", stream=True).status == 200
    assert post(c, model="alias-model").status == 200
    assert [q.json["model"] for q in provider.requests] == ["real-model-7b", "real-model-7b"]
    m = get(c, "/v1/models").json()
    assert [(d["id"], d["owned_by"]) for d in m["data"]] == [("alias-model", "fake")]


@pytest.mark.parametrize("stream", [True, False])
def test_only_the_top_level_model_is_replaced(start_chatd, provider, tmp_path, stream):
    """A `model` key nested in messages, tools or vendor fields is content, not the model."""
    cfg = tmp_path / "chatd.json"
    cfg.write_text(json.dumps({
        "providers": [{"name": "fake", "base_url": provider.base_url, "api_key_env": "OPENAI_API_KEY"}],
        "models": [{"name": "alias-model", "targets": [{"provider": "fake", "model": "real-model-7b"}]}],
        "default_model": "alias-model"}))
    c = start_chatd({"CHATD_CONFIG": str(cfg), "OPENAI_BASE_URL": None})
    nested = {"messages": [{"role": "user", "content": '{"model": "alias-model"} is what I typed'}],
              "tools": [{"type": "function", "function": {"name": "pick", "parameters": {
                  "type": "object", "properties": {"model": {"type": "string", "enum": ["alias-model"]}}}}}],
              "metadata": {"model": "alias-model"}, "x_vendor": {"model": "alias-model"}, "stream": stream}
    for body in ({**nested, "model": "alias-model"}, nested):  # model last, then absent
        provider.then(Stream(tokens=["ok"]) if stream else Status(200, completion()))
        raw = json.dumps(body).encode()
        r = post(c, raw)
        assert r.status == 200, r.raw
    for q in provider.requests:
        got = q.json
        assert got["model"] == "real-model-7b"
        assert got["messages"] == nested["messages"] and got["tools"] == nested["tools"]
        assert got["metadata"] == {"model": "alias-model"} and got["x_vendor"] == {"model": "alias-model"}
    assert len(provider.requests) == 2


# -- non-streamed -------------------------------------------------------------------------

COMPLETION_BYTES = ('{"id":"chatcmpl-9z",  "object":"chat.completion","created":1700000001,'
                    '"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant",'
                    '"content":"Bonjour \\u00e9 — 世界 🙂","refusal":null,"annotations":[]},"logprobs":null,'
                    '"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12},'
                    '"service_tier":"default","system_fingerprint":"fp_x","x_vendor":[1.0e2]}\n').encode()


@pytest.mark.parametrize("stream_field", ["absent", False])
def test_non_streamed_completion_is_relayed_unchanged(chatd, provider, stream_field):
    provider.then(Status(200, COMPLETION_BYTES))
    fields = {} if stream_field == "absent" else {"stream": False}
    r = post(chatd, **fields)
    assert r.status == 200
    assert r.headers["content-type"].startswith("application/json")
    check_ids(r)
    assert r.raw == COMPLETION_BYTES or r.raw == COMPLETION_BYTES.rstrip(b"\n")
    got = provider.requests[0].json
    assert not got.get("stream") and "stream_options" not in got


def test_large_non_streamed_answer_is_relayed_unchanged(chatd, provider):
    raw = json.dumps(completion(content="ü🙂 " * 300000), ensure_ascii=False).encode()  # about 2.4 MB
    provider.then(Status(200, raw))
    r = post(chatd)
    assert r.status == 200 and r.raw.rstrip(b"\n") == raw


def test_concurrent_streams_and_completions_do_not_mix(start_chatd, provider):
    """100 requests at once, half streamed, each answer tagged with its own request's words."""
    c = start_chatd({"LOG_LEVEL": "info"})

    class Echo:
        async def respond(self, req, fp):
            tag = req_tag(fp, req)
            if json.loads(fp_body(fp, req)).get("stream"):
                return await Stream(tokens=[tag, " a", " b"], delay=0.005).respond(req, fp)
            return await Status(200, completion(content=tag)).respond(req, fp)

    def fp_body(fp, req):
        return next(q.body for q in reversed(fp.requests) if q.peer == req.transport.get_extra_info("peername"))

    def req_tag(fp, req):
        return json.loads(fp_body(fp, req))["messages"][0]["content"]

    provider.always(Echo())
    n = 100
    tags = [f"concurrent v1 request number {i}" for i in range(n)]
    SENT_MESSAGES.extend(tags)

    async def one(client, i):
        body = {"messages": [{"role": "user", "content": tags[i]}], "stream": i % 2 == 0}
        r = await client.post(c.url + PATH, json=body)
        return r.status_code, r.content

    async def main():
        limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            return await asyncio.gather(*(one(client, i) for i in range(n)))

    for i, (status, raw) in enumerate(asyncio.run(main())):
        assert status == 200, raw
        if i % 2 == 0:
            lines = data_lines(raw)
            text = "".join(json.loads(x)["choices"][0]["delta"].get("content", "")
                           for x in lines[:-1] if json.loads(x)["choices"])
            assert text == tags[i] + " a b" and lines[-1] == "[DONE]"
        else:
            assert json.loads(raw)["choices"][0]["message"]["content"] == tags[i]


def test_non_streamed_tool_call_answer(chatd, provider):
    answer = completion(content=None, finish_reason="tool_calls")
    answer["choices"][0]["message"]["tool_calls"] = [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    raw = json.dumps(answer, separators=(",", ":")).encode()
    provider.then(Status(200, raw))
    r = post(chatd, tools=OTHER_FIELDS["tools"])
    assert r.status == 200 and r.raw.rstrip(b"\n") == raw


def test_non_streamed_provider_answer_not_json_is_502(chatd, provider):
    provider.always(Status(200, b"<html>Welcome to nginx!</html>", content_type="text/html"))
    r = post(chatd)
    err = assert_openai_error(r, 502, type_="upstream_error")
    assert err["code"].startswith("upstream_")


# -- headers wait for the first real chunk ---------------------------------------------------

ROLE_ONLY = '{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}'


def test_role_only_chunk_then_provider_cut_is_an_http_error(chatd, provider):
    provider.always(Raw([b"data: " + ROLE_ONLY.encode() + b"\n\n"], close=True))
    r = post(chatd, stream=True)
    err = assert_openai_error(r, 502, type_="upstream_error")
    assert err["code"].startswith("upstream_")


def test_role_only_chunk_then_silence_is_504(start_chatd, provider):
    c = start_chatd({"TIMEOUT_SECONDS": "1"})
    provider.always(Raw([b"data: " + ROLE_ONLY.encode() + b"\n\n"], hang=True))
    r = post(c, stream=True)
    assert_openai_error(r, 504, code="timeout")
    assert provider.wait_disconnects(1, timeout=3)


def test_role_only_chunk_then_cut_is_retried_and_only_the_retry_is_relayed(start_chatd, provider):
    """Before the headers, a failed attempt leaves nothing behind: its held role chunk is dropped.
    (The harness sets UPSTREAM_RETRIES=0; this test turns one retry on.)"""
    chatd = start_chatd({"UPSTREAM_RETRIES": "1"})
    first_role = ROLE_ONLY.replace('"id":"c"', '"id":"first-attempt"')
    provider.then(Raw([b"data: " + first_role.encode() + b"\n\n"], close=True),
                  Raw([provider_bytes(EVENTS)]))
    r = post(chatd, stream=True)
    assert r.status == 200
    assert data_lines(r.raw) == EVENTS + ["[DONE]"]
    assert len(provider.requests) == 2


def test_non_streamed_provider_500_is_retried(start_chatd, provider):
    chatd = start_chatd({"UPSTREAM_RETRIES": "1"})
    provider.then(Status(500), Status(200, COMPLETION_BYTES))
    r = post(chatd)
    assert r.status == 200 and r.raw.rstrip(b"\n") == COMPLETION_BYTES.rstrip(b"\n")
    assert len(provider.requests) == 2


def test_role_only_chunk_waits_for_the_content_chunk(chatd, provider):
    """The role-only chunk is still relayed, first, once a real chunk exists."""
    fin = chunk(content="hi", finish_reason=None)
    provider.then(Raw([b"data: " + ROLE_ONLY.encode() + b"\n\n", sse(fin), sse(chunk(finish_reason="stop")),
                       sse("[DONE]")], delay=0.2))
    r = post(chatd, stream=True)
    assert r.status == 200
    lines = data_lines(r.raw)
    assert lines[0] == ROLE_ONLY and json.loads(lines[1]) == fin and lines[-1] == "[DONE]"


# -- failures after the first byte: one error event, no [DONE] ------------------------------

def error_event(r, code_prefix="upstream_"):
    assert r.status == 200
    lines = data_lines(r.raw)
    assert "[DONE]" not in lines
    last = json.loads(lines[-1])
    assert set(last) == {"error"}, last
    err = last["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert three_parts(err["message"]), err["message"]
    assert err["code"].startswith(code_prefix), err
    assert TEST_API_KEY not in r.raw.decode() and SECRET not in r.raw.decode()
    assert sum(1 for x in lines if '"error"' in x) == 1
    return lines, err


def test_provider_cut_mid_stream_is_one_error_event(chatd, provider):
    provider.then(Stream(tokens=["a", "b", "c", "d"], cut_after=2))
    r = post(chatd, stream=True)
    lines, err = error_event(r)
    contents = [json.loads(x)["choices"][0]["delta"].get("content") for x in lines[:-1]]
    assert contents == ["", "a", "b"]
    assert err["code"] == "upstream_interrupted"


def test_no_progress_after_first_token_is_one_error_event(start_chatd, provider):
    c = start_chatd({"TIMEOUT_SECONDS": "0.5"})
    provider.then(Hang(first_tokens=["one", " two"]))
    r = post(c, stream=True)
    lines, err = error_event(r)
    assert err["code"] == "upstream_timeout"
    assert len(lines) == 3
    assert provider.wait_disconnects(1, timeout=3)


def test_provider_error_event_mid_stream(chatd, provider):
    provider.then(Raw([sse(chunk(content="par")),
                       sse({"error": {"message": f"Overloaded. key {TEST_API_KEY}", "type": "server_error"}})]))
    r = post(chatd, stream=True)
    lines, err = error_event(r)
    assert json.loads(lines[0])["choices"][0]["delta"]["content"] == "par"


def read_all(s, rest=b""):
    s.settimeout(20)
    while not rest.endswith(b"0\r\n\r\n"):
        piece = s.recv(65536)
        if not piece:
            break
        rest += piece
    s.close()
    return rest


def test_shutdown_ends_open_v1_streams_with_an_error_event(start_chatd, provider):
    c = start_chatd({"DRAIN_SECONDS": "0.5", "WORKERS": "1"})
    provider.then(Hang(first_tokens=["partial"]), Hang())
    keep = connect(c.port)
    a = connect(c.port)
    a.sendall(request_bytes("POST", PATH, json.dumps({"messages": MSG, "stream": True})))
    status, _, rest_a = read_head(a)
    assert status == 200
    b = connect(c.port)
    b.sendall(request_bytes("POST", PATH, json.dumps({"messages": MSG, "stream": True})))
    assert provider.wait_requests(2)
    c.send_signal(signal.SIGTERM)
    assert c.wait_log("shutdown_started") is not None
    keep.sendall(request_bytes("POST", PATH, json.dumps({"messages": MSG, "stream": True})))
    status, headers, rest = read_head(keep)
    n = int(headers["content-length"])
    while len(rest) < n:
        rest += keep.recv(65536)
    keep.close()
    assert_openai_error(Resp(status, httpx.Headers(headers), rest[:n]), 503, code="shutting_down")
    from sseclient import decode_chunked
    body, complete = decode_chunked(read_all(a, rest_a))
    assert complete
    lines = data_lines(body)
    assert "[DONE]" not in lines and json.loads(lines[0])["choices"][0]["delta"]["content"] == "partial"
    assert json.loads(lines[-1])["error"]["code"] == "shutting_down"
    status, headers, rest = read_head(b)  # no first byte yet: an HTTP error, not a 200
    assert status == 503, (status, rest)
    assert c.wait_exit(10) == 0
    assert provider.wait_disconnects(2)


# -- errors before the first byte: OpenAI's shape ------------------------------------------

MSG = [{"role": "user", "content": SECRET}]
INVALID = [
    ("not json", b"{not json", None),
    ("truncated json", b'{"messages": [', None),
    ("empty body", b"", None),
    ("array body", json.dumps([SECRET]).encode(), None),
    ("missing messages", {"model": "gpt-4o-mini"}, "messages"),
    ("null messages", {"messages": None}, "messages"),
    ("messages a string", {"messages": SECRET}, "messages"),
    ("messages an object", {"messages": {"role": "user", "content": SECRET}}, "messages"),
    ("empty messages", {"messages": []}, "messages"),
    ("message not an object", {"messages": [SECRET]}, "messages"),
    ("message without role", {"messages": [{"content": SECRET}]}, "messages"),
    ("bad role", {"messages": [{"role": "robot", "content": SECRET}]}, "messages"),
    ("role not a string", {"messages": [{"role": 1, "content": SECRET}]}, "messages"),
    ("bad role in the second message", {"messages": MSG + [{"role": "function_call", "content": "x"}]}, "messages"),
    ("n 2", {"messages": MSG, "n": 2}, "n"),
    ("n 0", {"messages": MSG, "n": 0}, "n"),
    ("stream a string", {"messages": MSG, "stream": "true"}, "stream"),
    ("stream a number", {"messages": MSG, "stream": 1}, "stream"),
    ("max_tokens 0", {"messages": MSG, "max_tokens": 0}, "max_tokens"),
    ("max_tokens negative", {"messages": MSG, "max_tokens": -1}, "max_tokens"),
    ("max_tokens over MAX_TOKENS", {"messages": MSG, "max_tokens": 1025}, "max_tokens"),
    ("max_tokens a string", {"messages": MSG, "max_tokens": "10"}, "max_tokens"),
    ("max_tokens a float", {"messages": MSG, "max_tokens": 10.5}, "max_tokens"),
    ("max_completion_tokens 0", {"messages": MSG, "max_completion_tokens": 0}, "max_completion_tokens"),
    ("max_completion_tokens over MAX_TOKENS", {"messages": MSG, "max_completion_tokens": 1025},
     "max_completion_tokens"),
    ("model not a string", {"messages": MSG, "model": 4}, "model"),
]


@pytest.mark.parametrize("name,body,param", INVALID, ids=[v[0] for v in INVALID])
def test_invalid_request_is_400(chatd, provider, name, body, param):
    if isinstance(body, (dict, list)):
        remember(body)
        body = json.dumps(body).encode()
    r = post(chatd, body)
    assert_openai_error(r, 400, code="validation_error", type_="invalid_request_error", param=param)
    assert provider.requests == []  # never forwarded
    provider.then(Stream(tokens=["still fine"]))
    assert data_lines(post(chatd, stream=True).raw)[-1] == "[DONE]"


def test_unrouted_model_is_404_model_not_found(chatd, provider):
    r = post(chatd, model="gpt-5-ultra", stream=True)
    assert_openai_error(r, 404, code="model_not_found", type_="invalid_request_error")
    assert provider.requests == []


@pytest.mark.parametrize("method,path", [("GET", "/v1/nope"), ("POST", "/v1/completions"),
                                         ("POST", "/v1/embeddings"), ("GET", "/v1/")])
def test_unknown_v1_path_is_404_in_openai_shape(chatd, provider, method, path):
    body = {"model": "gpt-4o-mini", "input": "x"} if method == "POST" else b""
    r = post(chatd, body, path=path, method=method)
    assert_openai_error(r, 404, code="not_found")
    assert provider.requests == []


def test_wrong_method_is_405_in_openai_shape(chatd):
    r = get(chatd, PATH)
    assert_openai_error(r, 405)
    assert "POST" in r.headers["allow"]


KEYS = {"CLIENT_API_KEYS": "v1-client-key-0001,v1-client-key-0002"}


@pytest.mark.parametrize("auth", [None, "Bearer wrong-key", "Bearer v1-client-key-000", "v1-client-key-0001"])
def test_client_key_required_on_v1(start_chatd, provider, auth):
    c = start_chatd(KEYS)
    h = {"Authorization": auth} if auth else {}
    for r in (post(c, headers=h, stream=True), post(c, headers=h), get(c, "/v1/models", headers=h)):
        assert_openai_error(r, 401, code="unauthorized", type_="authentication_error")
        assert r.headers["www-authenticate"] == "Bearer"
    assert provider.requests == []
    ok = {"Authorization": "Bearer v1-client-key-0002"}
    provider.then(Stream(tokens=["in"]), Status(200, completion()))
    assert post(c, headers=ok, stream=True).status == 200
    assert post(c, headers=ok).status == 200
    assert get(c, "/v1/models", headers=ok).status == 200


def test_body_over_max_request_bytes_is_413(chatd, provider):
    pad = "p" * (1 << 20)
    r = post(chatd, json.dumps({"messages": MSG, "pad": pad}).encode())
    assert_openai_error(r, 413, code="payload_too_large")
    assert provider.requests == []


def test_body_of_exactly_max_request_bytes_is_accepted(chatd, provider):
    provider.then(Stream(tokens=["big"]))
    body = json.dumps({"messages": MSG, "stream": True, "pad": ""})
    body = body[:-2] + "p" * ((1 << 20) - len(body)) + '"}'
    assert len(body) == 1 << 20
    r = post(chatd, body.encode())
    assert r.status == 200
    assert provider.wait_requests(1) and len(provider.requests[0].json["pad"]) > 1000000


def raw_response(port, data):
    s = connect(port)
    s.sendall(data)
    status, headers, rest = read_head(s)
    n = int(headers.get("content-length", "0"))
    s.settimeout(10)
    while len(rest) < n:
        piece = s.recv(65536)
        if not piece:
            break
        rest += piece
    s.close()
    return Resp(status, httpx.Headers(headers), rest[:n])


def test_413_from_content_length_alone_is_openai_shaped(chatd, provider):
    r = raw_response(chatd.port, f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                 "Content-Length: 5000000\r\n\r\n".encode())
    assert_openai_error(r, 413, code="payload_too_large")
    assert provider.requests == []


def test_request_id_on_protocol_level_errors(chatd):
    junk = b"".join(b"X-Junk-%d: %s\r\n" % (i, b"v" * 1000) for i in range(20))
    for data in (b"GET /v1/models HTTP/1.1\r\nHost: x\r\n" + junk + b"\r\n",
                 b"GET /v1/models?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"):
        r = raw_response(chatd.port, data)
        assert r.status in (414, 431)
        check_ids(r)


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_415(chatd, provider, ctype):
    s = connect(chatd.port)
    s.sendall(request_bytes("POST", PATH, json.dumps({"messages": MSG}), content_type=ctype))
    status, headers, rest = read_head(s)
    n = int(headers["content-length"])
    while len(rest) < n:
        rest += s.recv(65536)
    s.close()
    r = Resp(status, httpx.Headers(headers), rest[:n])
    assert_openai_error(r, 415, code="unsupported_media_type")
    assert provider.requests == []


def test_overloaded_is_503_with_retry_after(start_chatd, provider):
    c = start_chatd({"MAX_CONCURRENT_STREAMS": "1"})
    gate = provider.event()
    provider.then(Stream(tokens=["a", "b"], gate=lambda i: gate.wait() if i == 1 else None))
    s = connect(c.port)
    s.sendall(request_bytes("POST", PATH, json.dumps({"messages": MSG, "stream": True})))
    status, _, rest = read_head(s)
    assert status == 200
    r = post(c, stream=True)
    assert_openai_error(r, 503, code="overloaded")
    assert int(r.headers["retry-after"]) >= 1
    assert len(provider.requests) == 1
    provider.set_event(gate)
    s.settimeout(10)
    while b"[DONE]" not in rest:
        piece = s.recv(65536)
        assert piece, rest
        rest += piece
    s.close()


PROVIDER_FAILURES = [
    (401, 502, "upstream_auth_failed"),
    (403, 502, "upstream_auth_failed"),
    (404, 502, None),
    (500, 502, "upstream_error"),
    (502, 502, "upstream_error"),
    (503, 502, "upstream_error"),
]


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("pstatus,status,code", PROVIDER_FAILURES)
def test_provider_failure_before_first_byte_is_502(chatd, provider, pstatus, status, code, stream):
    provider.always(Status(pstatus, {"error": {"message": f"bad key {TEST_API_KEY}; you said {SECRET}"}}))
    r = post(chatd, stream=stream)
    err = assert_openai_error(r, status, code=code, type_="upstream_error")
    assert err["code"].startswith("upstream_")


@pytest.mark.parametrize("stream", [True, False])
def test_provider_unreachable_is_502(start_chatd, stream):
    c = start_chatd({"OPENAI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1"})
    assert_openai_error(post(c, stream=stream), 502, code="upstream_unreachable", type_="upstream_error")


def test_provider_body_not_a_stream_is_502(chatd, provider):
    provider.always(Raw([b"<html><body>Welcome to nginx!</body></html>"], content_type="text/html"))
    err = assert_openai_error(post(chatd, stream=True), 502, type_="upstream_error")
    assert err["code"] == "upstream_protocol_error"


@pytest.mark.parametrize("stream", [True, False])
def test_provider_429_is_429_with_its_retry_after(chatd, provider, stream):
    provider.always(Status(429, {"error": {"message": "Rate limit reached"}}, headers={"Retry-After": "20"}))
    r = post(chatd, stream=stream)
    assert_openai_error(r, 429, code="upstream_rate_limited")
    assert r.headers["retry-after"] == "20"


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("pstatus", [400, 422])
def test_provider_400_and_422_are_400(chatd, provider, pstatus, stream):
    provider.always(Status(pstatus, {"error": {"message": f"context too long for key {TEST_API_KEY}: {SECRET}"}}))
    r = post(chatd, stream=stream)
    assert_openai_error(r, 400, code="upstream_bad_request")
    assert len(provider.requests) == 1  # the request itself is wrong: no retry


@pytest.mark.parametrize("stream", [True, False])
def test_no_first_token_within_timeout_is_504(start_chatd, provider, stream):
    c = start_chatd({"TIMEOUT_SECONDS": "0.5"})
    provider.always(Hang(send_headers=stream))
    t0 = time.monotonic()
    r = post(c, stream=stream)
    assert time.monotonic() - t0 < 4
    assert_openai_error(r, 504, code="timeout")
    assert provider.wait_disconnects(1, timeout=3)  # the provider request is cancelled
    rec = c.wait_log("response_complete", correlation_id=r.headers["x-correlation-id"])
    assert rec["status"] == 504 and rec["outcome"] == "timeout"


def test_slow_non_streamed_answer_within_timeout_is_fine(start_chatd, provider):
    c = start_chatd({"TIMEOUT_SECONDS": "2"})
    provider.then(Raw([COMPLETION_BYTES], content_type="application/json", delay=0.3))
    r = post(c)
    assert r.status == 200 and r.raw.rstrip(b"\n") == COMPLETION_BYTES.rstrip(b"\n")


def test_non_streamed_answer_that_stalls_midway_is_504(start_chatd, provider):
    c = start_chatd({"TIMEOUT_SECONDS": "0.5"})
    provider.always(Raw([COMPLETION_BYTES[:40]], content_type="application/json", hang=True))
    r = post(c)
    assert_openai_error(r, 504, code="timeout")
    assert provider.wait_disconnects(1, timeout=3)


# -- client keys from CHATD_CONFIG: 403 and the models a key may use -------------------------

LIMITED_KEY = "v1-limited-key-0001"


def limited_config(tmp_path, provider):
    cfg = tmp_path / "keys.json"
    cfg.write_text(json.dumps({
        "providers": [{"name": "fake", "base_url": provider.base_url, "api_key_env": "OPENAI_API_KEY"}],
        "models": [{"name": "gpt-4o-mini", "targets": [{"provider": "fake", "model": "gpt-4o-mini"}]},
                   {"name": "big-model", "targets": [{"provider": "fake", "model": "big-model"}]}],
        "default_model": "gpt-4o-mini",
        "keys": [{"name": "limited", "sha256": hashlib.sha256(LIMITED_KEY.encode()).hexdigest(),
                  "models": ["gpt-4o-mini"]}]}))
    return {"CHATD_CONFIG": str(cfg), "OPENAI_BASE_URL": None}


@pytest.mark.parametrize("stream", [True, False])
def test_model_not_allowed_for_the_key_is_403(start_chatd, provider, tmp_path, stream):
    c = start_chatd(limited_config(tmp_path, provider))
    h = {"Authorization": f"Bearer {LIMITED_KEY}"}
    r = post(c, headers=h, model="big-model", stream=stream)
    assert_openai_error(r, 403, code="forbidden", type_="permission_error")
    assert provider.requests == []
    provider.then(Stream(tokens=["ok"]) if stream else Status(200, completion()))
    assert post(c, headers=h, model="gpt-4o-mini", stream=stream).status == 200


def test_models_lists_only_what_the_key_may_use(start_chatd, provider, tmp_path):
    c = start_chatd(limited_config(tmp_path, provider))
    r = get(c, "/v1/models", headers={"Authorization": f"Bearer {LIMITED_KEY}"})
    assert r.status == 200
    assert r.json() == {"object": "list", "data": [
        {"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "fake"}]}


@pytest.mark.parametrize("stream", [True, False])
def test_client_key_over_its_limit_is_429_rate_limit_error(start_chatd, provider, tmp_path, stream):
    cfg = tmp_path / "limits.json"
    cfg.write_text(json.dumps({
        "providers": [{"name": "fake", "base_url": provider.base_url, "api_key_env": "OPENAI_API_KEY"}],
        "models": [{"name": "gpt-4o-mini", "targets": [{"provider": "fake", "model": "gpt-4o-mini"}]}],
        "default_model": "gpt-4o-mini",
        "keys": [{"name": "slow", "sha256": hashlib.sha256(LIMITED_KEY.encode()).hexdigest(),
                  "requests_per_minute": 1}]}))
    c = start_chatd({"CHATD_CONFIG": str(cfg), "OPENAI_BASE_URL": None})
    h = {"Authorization": f"Bearer {LIMITED_KEY}"}
    provider.then(Stream(tokens=["ok"]) if stream else Status(200, completion()))
    first = post(c, headers=h, stream=stream)
    assert first.status == 200
    assert first.headers["x-ratelimit-limit-requests"] == "1"
    assert first.headers["x-ratelimit-remaining-requests"] == "0"
    r = post(c, headers=h, stream=stream)
    assert_openai_error(r, 429, code="rate_limited", type_="rate_limit_error")
    assert int(r.headers["retry-after"]) >= 1
    assert len(provider.requests) == 1


# -- correlation ids -----------------------------------------------------------------------

def test_request_id_equals_correlation_id_everywhere(start_chatd, provider):
    c = start_chatd(KEYS)
    ok = {"Authorization": "Bearer v1-client-key-0001"}
    provider.then(Stream(tokens=["a"]), Status(200, completion()))
    for r in (post(c, headers=ok, stream=True), post(c, headers=ok), post(c, headers=ok, n=3),
              post(c, stream=True), get(c, "/v1/models", headers=ok), get(c, "/v1/models"),
              get(c, "/v1/nope", headers=ok), get(c, "/health"), get(c, "/ready")):
        check_ids(r)


def test_client_correlation_id_is_reused_as_request_id(chatd, provider):
    cid = "a3d2c1b0-9f8e-4d7c-8b6a-5f4e3d2c1b0a"
    r = post(chatd, headers={"X-Correlation-Id": cid}, stream=True)
    assert r.headers["x-correlation-id"] == cid and r.headers["x-request-id"] == cid
    e = post(chatd, {"messages": []}, headers={"X-Correlation-Id": cid})
    assert e.headers["x-request-id"] == cid


# -- client disconnects ----------------------------------------------------------------------

def test_client_disconnect_mid_stream_cancels_the_provider(chatd, provider):
    provider.then(Stream(tokens=[f"t{i}" for i in range(10000)], delay=0.02))
    s = connect(chatd.port)
    s.sendall(request_bytes("POST", PATH, json.dumps({"messages": MSG, "stream": True})))
    status, _, rest = read_head(s)
    assert status == 200
    while b'"t2"' not in rest:
        rest += s.recv(4096)
    s.close()
    assert provider.wait_disconnects(1, timeout=2), "provider connection still open 2 s after the client left"
    assert chatd.wait_log("response_complete", outcome="client_disconnected") is not None


@pytest.mark.parametrize("stream", [True, False])
def test_client_disconnect_before_the_answer_cancels_the_provider(chatd, provider, stream):
    provider.then(Hang())
    s = connect(chatd.port)
    s.sendall(request_bytes("POST", PATH, json.dumps({"messages": MSG, "stream": stream})))
    assert provider.wait_requests(1)
    s.close()
    assert provider.wait_disconnects(1, timeout=2), "provider connection still open 2 s after the client left"
    assert chatd.wait_log("response_complete", outcome="client_disconnected") is not None


# -- GET /v1/models --------------------------------------------------------------------------

def test_models_lists_allowed_models(start_chatd):
    c = start_chatd({"OPENAI_MODEL": "m-one", "ALLOWED_MODELS": "m-one,m-two,llama3.1:8b"})
    r = get(c, "/v1/models")
    assert r.status == 200 and r.headers["content-type"].startswith("application/json")
    check_ids(r)
    assert r.json() == {"object": "list", "data": [
        {"id": m, "object": "model", "created": 0, "owned_by": "default"} for m in ("m-one", "m-two", "llama3.1:8b")]}


def test_models_default_is_the_default_model(chatd):
    r = get(chatd, "/v1/models")
    assert r.json() == {"object": "list", "data": [
        {"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "default"}]}


# -- logs and metrics --------------------------------------------------------------------------

def test_logs_for_v1_requests_without_content(chatd, provider):
    provider.then(Stream(tokens=["SECRET-V1-OUTPUT-ALPHA", " SECRET-V1-OUTPUT-BETA"]),
                  Status(200, completion(content="SECRET-V1-OUTPUT-GAMMA")))
    cids = []
    for stream in (True, False):
        r = post(chatd, stream=stream)
        assert r.status == 200
        cids.append(r.headers["x-correlation-id"])
    m = get(chatd, "/v1/models")
    cids.append(m.headers["x-correlation-id"])
    for cid, path, method in zip(cids, (PATH, PATH, "/v1/models"), ("POST", "POST", "GET")):
        done = chatd.wait_log("response_complete", correlation_id=cid)
        assert done is not None and done["status"] == 200
        rec = chatd.logs("request_received", cid=cid)
        assert len(rec) == 1 and rec[0]["path"] == path and rec[0]["method"] == method
    assert chatd.logs("response_complete", cid=cids[0])[0]["outcome"] == "completed"
    text = "\n".join(chatd.stdout + chatd.stderr)
    assert "SECRET-V1-OUTPUT" not in text and SECRET not in text


def scrape(c):
    r = httpx.get(c.url + "/metrics")
    assert r.status_code == 200
    out = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_route_labels_for_v1(chatd, provider):
    def count(m, route, status):
        return m.get(("chatd_http_requests_total", (("route", route), ("status", status))), 0.0)

    before = scrape(chatd)
    provider.then(Stream(tokens=["a"]), Status(200, completion()))
    rs = [post(chatd, stream=True), post(chatd), post(chatd, {"messages": []}), get(chatd, "/v1/models")]
    for r in rs:
        assert chatd.wait_log("response_complete", correlation_id=r.headers["x-correlation-id"]) is not None
    after = scrape(chatd)
    assert count(after, "/v1/chat/completions", "200") - count(before, "/v1/chat/completions", "200") == 2
    assert count(after, "/v1/chat/completions", "400") - count(before, "/v1/chat/completions", "400") == 1
    assert count(after, "/v1/models", "200") - count(before, "/v1/models", "200") == 1


def test_metrics_count_v1_streams_and_tokens_even_when_usage_is_not_relayed(chatd, provider):
    """chatd always asks for usage: its token metrics (and tokens_per_minute) see it even when
    the client did not ask and the usage chunk is not relayed; a non-streamed answer's usage too."""
    def v(m, name, **labels):
        return m.get((name, tuple(sorted(labels.items()))), 0.0)

    before = scrape(chatd)
    provider.then(Stream(tokens=["a", "b"], usage=(7, 2)), Status(200, completion(usage=(5, 3))), Status(503))
    rs = [post(chatd, stream=True), post(chatd), post(chatd, stream=True)]
    assert [r.status for r in rs] == [200, 200, 502]
    for r in rs:
        assert chatd.wait_log("response_complete", correlation_id=r.headers["x-correlation-id"]) is not None
    after = scrape(chatd)

    def delta(name, **labels):
        return v(after, name, **labels) - v(before, name, **labels)

    assert delta("chatd_tokens_total", type="prompt") == 12
    assert delta("chatd_tokens_total", type="completion") == 5
    assert delta("chatd_streams_total", outcome="completed") == 2
    assert delta("chatd_streams_total", outcome="error") == 1
    assert delta("chatd_http_requests_total", route="/v1/chat/completions", status="502") == 1


# -- bodies that could smuggle a value past the checks -------------------------------------------

def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), f"duplicate keys reached the provider: {keys}"
    return dict(pairs)


@pytest.mark.parametrize("body", [
    b'{"model": "gpt-4o-mini", "model": "gpt-5-ultra", "messages": [{"role": "user", "content": "dup model"}]}',
    b'{"model": "gpt-5-ultra", "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "dup model"}]}',
    b'{"max_tokens": 10, "max_tokens": 999999, "messages": [{"role": "user", "content": "dup max"}]}',
    b'{"n": 1, "n": 5, "messages": [{"role": "user", "content": "dup n"}]}',
    b'{"messages": [{"role": "user", "content": "dup stream"}], "stream": false, "stream": true}',
], ids=["model-allowed-first", "model-allowed-last", "max_tokens", "n", "stream"])
def test_duplicate_keys_cannot_smuggle_a_value_past_the_checks(chatd, provider, body):
    """Either chatd refuses the body, or the provider gets one value of each key: the checked one."""
    provider.always(Status(200, completion()))
    r = post(chatd, body)
    if r.status == 400:
        assert_openai_error(r, 400, code="validation_error")
        assert provider.requests == []
        return
    assert r.status in (200, 404), r.raw
    for q in provider.requests:
        got = json.loads(q.body, object_pairs_hook=no_duplicates)
        assert got["model"] == "gpt-4o-mini"
        assert got.get("max_tokens", 10) <= 1024 and got.get("n", 1) == 1


def test_null_optional_fields_mean_absent(chatd, provider):
    provider.then(Status(200, completion()), Stream(tokens=["ok"]))
    r = post(chatd, {"model": None, "messages": MSG, "max_tokens": None, "max_completion_tokens": None, "n": None,
                     "stream": None})
    assert r.status == 200
    assert provider.requests[0].json["model"] == "gpt-4o-mini"
    r = post(chatd, {"messages": MSG, "stream": True, "stream_options": None})
    assert r.status == 200 and data_lines(r.raw)[-1] == "[DONE]"
    assert provider.wait_requests(2)
    assert provider.requests[1].json["stream_options"] == {"include_usage": True}
