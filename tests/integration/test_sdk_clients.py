"""Real third-party clients against chatd's /v1 API: the official `openai` npm
package and the Vercel AI SDK, installed with exact versions from
tests/clients/package-lock.json (`make clients` runs `npm ci`).

Each case starts the fake provider and chatd, scripts the provider, runs one
test of tests/clients/*.test.mjs with `node --test`, asserts node's exit code
and that exactly that one test passed (a name that matched nothing would pass
silently), and checks the provider's side where the case needs it.
"""

import hashlib
import json
import os
import shutil
import subprocess

import pytest

from chatd import ROOT, SENT_MESSAGES
from fakeprovider import Hang, Raw, Status, Stream, completion, sse

CLIENTS = os.path.join(ROOT, "tests", "clients")
SENT_MESSAGES += ["Say hello to the SDK test, please.", "Say hello, AI SDK."]

TOKENS = ["Hello", ", ", "SDK", " 🙂 ", "wörld"]
TEXT = "".join(TOKENS)


@pytest.fixture(scope="session")
def node_modules():
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "node and npm are missing: run make deps"
    if not os.path.exists(os.path.join(CLIENTS, "node_modules", ".package-lock.json")):
        r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=CLIENTS, capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, f"npm ci failed:\n{r.stdout}\n{r.stderr}"
    return node


def run_node(node, script, name, chatd, key="no-key", **expect):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
           "CHATD_BASE_URL": chatd.url + "/v1", "CHATD_API_KEY": key, "NO_COLOR": "1"}
    env.update({k: str(v) for k, v in expect.items()})
    cmd = [node, "--test", "--test-reporter=tap", f"--test-name-pattern=^{name}$", script]
    r = subprocess.run(cmd, cwd=CLIENTS, env=env, capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    print(out)
    assert r.returncode == 0, f"node {script} {name!r} failed (exit {r.returncode}):\n{out}"
    assert "# pass 1\n" in r.stdout and "# fail 0\n" in r.stdout, f"not exactly one test ran:\n{out}"
    return out


def openai_case(node, name, chatd, **kw):
    return run_node(node, "openai_sdk.test.mjs", name, chatd, **kw)


# -- the official openai package ------------------------------------------------------------

def test_openai_stream(node_modules, chatd, provider):
    provider.then(Stream(tokens=TOKENS, usage=(9, 5)))
    openai_case(node_modules, "stream", chatd, EXPECT_TEXT=TEXT)
    assert provider.requests[0].json["stream_options"] == {"include_usage": True}


def test_openai_stream_with_usage(node_modules, chatd, provider):
    provider.then(Stream(tokens=TOKENS, usage=(9, 5)))
    openai_case(node_modules, "stream with usage", chatd, EXPECT_TEXT=TEXT, EXPECT_PROMPT_TOKENS=9,
                EXPECT_COMPLETION_TOKENS=5)


def test_openai_non_stream(node_modules, chatd, provider):
    provider.always(Status(200, completion(content=TEXT, usage=(9, 5))))
    openai_case(node_modules, "non-stream", chatd, EXPECT_TEXT=TEXT, EXPECT_TOTAL_TOKENS=14)
    assert len(provider.requests) == 2 and not provider.requests[0].json.get("stream")


def test_openai_stream_helper_with_a_tool_call(node_modules, chatd, provider):
    def ev(delta, finish=None):
        return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    provider.then(Raw([sse(ev({"role": "assistant", "content": None, "tool_calls": [
        {"index": 0, "id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]})),
        sse(ev({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": "}}]})),
        sse(ev({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]})),
        sse(ev({}, "tool_calls")), sse("[DONE]")]))
    openai_case(node_modules, "stream helper with a tool call", chatd)
    assert provider.requests[0].json["tools"][0]["function"]["name"] == "get_weather"


KEY = "sdk-client-key-0001"


def _config(tmp_path, provider):
    """A CHATD_CONFIG whose one key may use only gpt-4o-mini."""
    cfg = tmp_path / "chatd.json"
    cfg.write_text(json.dumps({
        "providers": [{"name": "fake", "base_url": provider.base_url, "api_key_env": "OPENAI_API_KEY"}],
        "models": [{"name": "gpt-4o-mini", "targets": [{"provider": "fake", "model": "gpt-4o-mini"}]},
                   {"name": "other-model", "targets": [{"provider": "fake", "model": "other-model"}]}],
        "default_model": "gpt-4o-mini",
        "keys": [{"name": "sdk", "sha256": hashlib.sha256(KEY.encode()).hexdigest(), "models": ["gpt-4o-mini"]}]}))
    return str(cfg)


ERRORS = [
    # id, error class, status, code, how
    ("400-validation", "BadRequestError", 400, "validation_error", "empty-messages"),
    ("400-provider", "BadRequestError", 400, "upstream_bad_request", "provider-400"),
    ("401", "AuthenticationError", 401, "unauthorized", "wrong-key"),
    ("403", "PermissionDeniedError", 403, "forbidden", "model-not-for-key"),
    ("404", "NotFoundError", 404, "model_not_found", "unknown-model"),
    ("429", "RateLimitError", 429, "upstream_rate_limited", "provider-429"),
    ("502", "InternalServerError", 502, "upstream_error", "provider-500"),
    ("504", "InternalServerError", 504, "timeout", "provider-silent"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
@pytest.mark.parametrize("name,cls,status,code,how", ERRORS, ids=[e[0] for e in ERRORS])
def test_openai_error_classes(node_modules, start_chatd, provider, tmp_path, name, cls, status, code, how, stream):
    env, key, request = {}, "no-key", {"stream": stream}
    expect = {}
    if how == "empty-messages":
        request["messages"] = []
    elif how == "provider-400":
        provider.always(Status(400, {"error": {"message": "context length exceeded"}}))
    elif how == "wrong-key":
        env, key = {"CLIENT_API_KEYS": KEY}, "sdk-wrong-key-9999"
    elif how == "model-not-for-key":
        env, key, request["model"] = {"CHATD_CONFIG": _config(tmp_path, provider), "OPENAI_BASE_URL": None}, KEY, \
            "other-model"
    elif how == "unknown-model":
        request["model"] = "gpt-5-ultra"
    elif how == "provider-429":
        provider.always(Status(429, {"error": {"message": "Rate limit reached"}}, headers={"Retry-After": "20"}))
        expect["EXPECT_RETRY_AFTER"] = "20"
    elif how == "provider-500":
        provider.always(Status(500))
    elif how == "provider-silent":
        env = {"TIMEOUT_SECONDS": "0.5"}
        provider.always(Hang(send_headers=stream))
    c = start_chatd(env)
    openai_case(node_modules, "error class", c, key=key, EXPECT_ERROR=cls, EXPECT_STATUS=status, EXPECT_CODE=code,
                REQUEST_JSON=json.dumps(request), **expect)


def test_openai_error_mid_stream(node_modules, chatd, provider):
    provider.then(Stream(tokens=["par", "tial", "never"], cut_after=2))
    openai_case(node_modules, "error mid-stream", chatd, EXPECT_TEXT="partial", EXPECT_CODE="upstream_interrupted")


def test_openai_abort_mid_stream_cancels_the_provider(node_modules, chatd, provider):
    provider.then(Stream(tokens=[f"t{i} " for i in range(100000)], delay=0.01))
    out = openai_case(node_modules, "abort mid-stream", chatd)
    assert "ABORTED" in out
    assert provider.wait_disconnects(1, timeout=3), "the provider's connection is still open after the abort"
    assert chatd.wait_log("response_complete", outcome="client_disconnected") is not None


def test_openai_models_list(node_modules, start_chatd):
    c = start_chatd({"OPENAI_MODEL": "m-one", "ALLOWED_MODELS": "m-one,m-two,llama3.1:8b"})
    openai_case(node_modules, "models.list", c, EXPECT_MODELS="m-one,m-two,llama3.1:8b")


# -- the Vercel AI SDK ---------------------------------------------------------------------

def test_ai_sdk_stream_text(node_modules, chatd, provider):
    provider.then(Stream(tokens=TOKENS, usage=(9, 5)))
    run_node(node_modules, "ai_sdk.test.mjs", "streamText", chatd, EXPECT_TEXT=TEXT, EXPECT_PROMPT_TOKENS=9,
             EXPECT_COMPLETION_TOKENS=5)
    assert provider.requests[0].json["stream"] is True


def test_ai_sdk_generate_text(node_modules, chatd, provider):
    provider.then(Status(200, completion(content=TEXT, usage=(9, 5))))
    run_node(node_modules, "ai_sdk.test.mjs", "generateText", chatd, EXPECT_TEXT=TEXT, EXPECT_PROMPT_TOKENS=9,
             EXPECT_COMPLETION_TOKENS=5)


@pytest.mark.parametrize("case", ["404", "429", "502"])
def test_ai_sdk_errors(node_modules, chatd, provider, case):
    model, status, code, retryable = {
        "404": ("gpt-5-ultra", 404, "model_not_found", "false"),
        "429": ("gpt-4o-mini", 429, "upstream_rate_limited", "true"),
        "502": ("gpt-4o-mini", 502, "upstream_error", "true"),
    }[case]
    if case == "429":
        provider.always(Status(429, {"error": {"message": "Rate limit reached"}}, headers={"Retry-After": "20"}))
    elif case == "502":
        provider.always(Status(500))
    run_node(node_modules, "ai_sdk.test.mjs", "error", chatd, CHATD_MODEL=model, EXPECT_STATUS=status,
             EXPECT_CODE=code, EXPECT_RETRYABLE=retryable)
