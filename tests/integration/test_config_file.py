"""CHATD_CONFIG (providers, models, client keys from a JSON file), `chatd hash-key`,
and SIGHUP reloads of .env and CHATD_CONFIG, against the real binary."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time

import httpx
import pytest

from chatd import BINARY, ROOT, TEST_API_KEY, Chatd
from sseclient import three_parts


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def config_doc(base_url, **extra):
    doc = {
        "providers": [
            {"name": "main", "base_url": base_url, "api_key_env": "OPENAI_API_KEY"},
            {"name": "spare", "base_url": "http://127.0.0.1:9/v1"},
        ],
        "models": [
            {"name": "fast", "targets": [{"provider": "main", "model": "gpt-4o-mini"}]},
            {"name": "local", "targets": [{"provider": "spare", "model": "qwen"}]},
        ],
        "default_model": "fast",
    }
    doc.update(extra)
    return doc


def write_config(tmp_path, doc, name="chatd.json"):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, indent=2))
    return str(path)


def file_env(path, **more):
    """CHATD_CONFIG without the variables it excludes (the fixture sets OPENAI_BASE_URL)."""
    return {"CHATD_CONFIG": path, "OPENAI_BASE_URL": None, **more}


def start_refused(provider, tmp_path, env):
    full = {"OPENAI_BASE_URL": provider.base_url}
    full.update(env)
    c = Chatd(full, cwd=str(tmp_path), expect_exit=2)
    c.start(wait=False)
    assert c.wait_exit(10) == 2
    deadline = time.monotonic() + 5  # wait_exit waits for stdout's pump only
    while not any("configuration error" in l for l in c.stderr) and time.monotonic() < deadline:
        time.sleep(0.01)
    c.check_sanitizers()
    assert c.stdout == []
    err = "\n".join(c.stderr)
    assert "configuration error: " in err, err
    return err.split("configuration error: ", 1)[1]


# -- a good file ----------------------------------------------------------------------


def test_file_routes_models_and_logs_them(start_chatd, provider, tmp_path, chat):
    path = write_config(tmp_path, config_doc(provider.base_url))
    c = start_chatd(file_env(path))
    rec = c.logs("server_started")[0]
    assert rec["chatd_config"] == path
    assert rec["providers"] == "main,spare"
    assert rec["models"] == "fast,local"
    assert rec["default_model"] == "fast"
    r = chat(c, message="hello there from the file test")
    assert r.status == 200, r.raw
    assert r.final["status"] == "completed"
    assert provider.requests[0].headers["Authorization"] == f"Bearer {TEST_API_KEY}"
    r = chat(c, message="hello there from the file test", model="gpt-4o")
    assert r.status == 400  # only the file's models are routed


def test_file_keys_turn_auth_on(start_chatd, provider, tmp_path, chat):
    doc = config_doc(provider.base_url, keys=[{"name": "web-app", "sha256": sha("file-key-123456789")}])
    path = write_config(tmp_path, doc)
    c = start_chatd(file_env(path, CLIENT_API_KEYS="env-key-987654321"))
    assert c.logs("server_started")[0]["client_keys"] == 2
    body = {"message": "hello there with a key"}
    assert httpx.post(c.url + "/chat", json=body).status_code == 401
    wrong = {"Authorization": "Bearer file-key-12345678"}
    assert httpx.post(c.url + "/chat", json=body, headers=wrong).status_code == 401
    for key in ("file-key-123456789", "env-key-987654321"):
        r = chat(c, message="hello there with a key", headers={"Authorization": f"Bearer {key}"})
        assert r.status == 200, r.raw
    out = "\n".join(c.stdout)
    assert "file-key-123456789" not in out and "env-key-987654321" not in out


def test_example_file_is_accepted(start_chatd, provider, tmp_path):
    """chatd.example.json as shipped, with its keys set and its CA path pointed at a
    readable file."""
    doc = json.load(open(os.path.join(ROOT, "chatd.example.json")))
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    for p in doc["providers"]:
        if "ca_file" in p:
            p["ca_file"] = str(ca)
    path = write_config(tmp_path, doc)
    c = start_chatd(file_env(path, OPENROUTER_API_KEY="sk-or-x", AZURE_OPENAI_API_KEY="az-x"))
    rec = c.logs("server_started")[0]
    assert rec["providers"] == ",".join(p["name"] for p in doc["providers"])
    assert rec["client_keys"] == len(doc["keys"])
    assert "sk-or-x" not in "\n".join(c.stdout)


# -- every mistake: exit 2, the JSON path, three parts ----------------------------------

P = {"name": "a", "base_url": "http://127.0.0.1:9/v1"}
M = {"name": "m", "targets": [{"provider": "a"}]}
H = sha("x")

BAD_FILES = [
    ('{"providers": [\n  {"name": "a",,}\n]}', "line 2, column"),
    ('{"providers": [], "providers": []}', "(file)"),
    ({"providers": [P], "models": [M], "modles": []}, 'unknown field "modles"'),
    ({"providers": [P, P], "models": [M]}, "providers[1].name"),
    ({"providers": [P], "models": [M, M]}, "models[1].name"),
    ({"providers": [P], "models": [{"name": "m", "targets": []}]}, "models[0]:"),
    ({"providers": [P], "models": [M, {"name": "n", "targets": [{"provider": "b"}]}]}, "models[1].targets[0].provider"),
    ({"providers": [{**P, "api_key_env": "CHATD_TEST_UNSET_VAR"}], "models": [M]}, "providers[0].api_key_env"),
    ({"providers": [{**P, "base_url": "ftp://h/v1"}], "models": [M]}, "providers[0].base_url"),
    ({"providers": [{**P, "ca_file": "/nonexistent/ca.pem"}], "models": [M]}, "providers[0].ca_file"),
    ({"providers": [{**P, "api_key": "sk-inline"}], "models": [M]}, 'providers[0]: unknown field "api_key"'),
    ({"providers": [P], "models": [M], "default_model": "zz"}, "default_model"),
    ({"providers": [P], "models": [M], "keys": [{"name": "k", "sha256": "abc"}]}, "keys[0].sha256"),
    ({"providers": [P], "models": [M], "keys": [{"name": "k", "sha256": H}, {"name": "k", "sha256": sha("y")}]}, "keys[1].name"),
    ({"providers": [P], "models": [M], "keys": [{"name": "k", "sha256": H, "models": ["nope"]}]}, "keys[0].models[0]"),
    ({"providers": [P], "models": [M], "keys": [{"name": "k", "sha256": H, "requests_per_minute": -1}]}, "keys[0]:"),
]


@pytest.mark.parametrize("doc,names", BAD_FILES)
def test_bad_file_exits_2_with_json_path(provider, tmp_path, doc, names):
    path = write_config(tmp_path, doc)
    msg = start_refused(provider, tmp_path, file_env(path))
    assert msg.startswith(f"CHATD_CONFIG {path}, "), msg
    assert names in msg, msg
    assert three_parts(msg), msg
    assert "sk-inline" not in msg


@pytest.mark.parametrize("name", ["OPENAI_BASE_URL", "OPENAI_MODEL", "ALLOWED_MODELS"])
def test_file_with_excluded_variable_exits_2(provider, tmp_path, name):
    path = write_config(tmp_path, config_doc(provider.base_url))
    env = {"CHATD_CONFIG": path, "OPENAI_BASE_URL": None, name: "gpt-4o-mini"}
    if name == "OPENAI_BASE_URL":
        env[name] = provider.base_url
    msg = start_refused(provider, tmp_path, env)
    assert msg.startswith(f"CHATD_CONFIG and {name} are both set"), msg
    assert three_parts(msg)


def test_missing_file_exits_2(provider, tmp_path):
    msg = start_refused(provider, tmp_path, file_env(str(tmp_path / "nope.json")))
    assert msg.startswith(f"CHATD_CONFIG={tmp_path / 'nope.json'} cannot be read"), msg
    assert three_parts(msg)


# -- chatd hash-key ----------------------------------------------------------------------


@pytest.mark.parametrize("given,key", [
    (b"sk-client-123\n", "sk-client-123"),  # one trailing newline is not part of it
    (b"sk-client-123", "sk-client-123"),
    (b"sk-client-123\n\n", "sk-client-123\n"),  # only one
    ("klé 🙂\n".encode(), "klé 🙂"),
])
def test_hash_key(given, key):
    p = subprocess.run([BINARY, "hash-key"], input=given, capture_output=True, timeout=10)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode() == sha(key) + "\n"
    assert p.stderr == b""


def test_hash_key_refuses_empty_input():
    p = subprocess.run([BINARY, "hash-key"], input=b"\n", capture_output=True, timeout=10)
    assert p.returncode == 2
    assert p.stdout == b""
    assert three_parts(p.stderr.decode().split("chatd hash-key: ", 1)[1].strip())


def test_help_lists_every_variable():
    p = subprocess.run([BINARY, "--help"], capture_output=True, timeout=10)
    assert p.returncode == 0
    out = p.stdout.decode()
    example = open(os.path.join(ROOT, ".env.example")).read().splitlines()
    names = [l.split("=", 1)[0] for l in example if l and not l.startswith("#")]
    assert len(names) >= 25
    for name in names:
        assert f"  {name} " in out, name
    assert "default: 1048576" in out and "hash-key" in out


# -- SIGHUP: reload .env and CHATD_CONFIG ------------------------------------------------


def reload(c, event="config_reloaded", n=1, timeout=10):
    """Sends SIGHUP and waits for the n-th line of event."""
    c.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = c.logs(event)
        if len(got) >= n:
            return got[n - 1]
        time.sleep(0.02)
    raise AssertionError(f"no {event} line #{n}: {c.stdout[-5:]}")


def test_sighup_reloads_dotenv_for_new_requests(start_chatd, tmp_path, chat):
    (tmp_path / ".env").write_text("ALLOWED_MODELS=gpt-4o-mini\n")
    c = start_chatd(cwd=tmp_path)
    assert chat(c, message="hello there before reload", model="gpt-4o").status == 400
    (tmp_path / ".env").write_text("ALLOWED_MODELS=gpt-4o-mini,gpt-4o\nMAX_TOKENS=50\n")
    rec = reload(c)
    assert rec["level"] == "info" and rec["models"] == "gpt-4o-mini,gpt-4o"
    assert rec["unchanged_until_restart"] == "" and rec["warning"] is None
    for _ in range(4):  # every worker has taken it (WORKERS=2; connections land on either)
        r = chat(c, message="hello there after reload", model="gpt-4o")
        assert r.status == 200, r.raw
        assert r.final["status"] == "completed"
        assert chat(c, message="hello there after reload", max_tokens=51).status == 400


def test_sighup_with_bad_dotenv_keeps_the_old_configuration(start_chatd, tmp_path, chat):
    (tmp_path / ".env").write_text("ALLOWED_MODELS=gpt-4o-mini,gpt-4o\n")
    c = start_chatd(cwd=tmp_path)
    (tmp_path / ".env").write_text("ALLOWED_MODELS=gpt-4o-mini\nMAX_TOKENS=lots\n")
    rec = reload(c, "config_reload_failed")
    assert rec["level"] == "error"
    assert rec["message"].startswith('MAX_TOKENS="lots" is not valid'), rec
    assert three_parts(rec["message"]) and rec["detail"]
    assert c.logs("config_reloaded") == []
    for _ in range(4):
        assert chat(c, message="hello there after a bad reload", model="gpt-4o").status == 200
    (tmp_path / ".env").write_text("ALLOWED_MODELS=gpt-4o-mini\n")  # fixed: now it applies
    reload(c)
    for _ in range(4):
        assert chat(c, message="hello there after a good reload", model="gpt-4o").status == 400


def test_sighup_reloads_the_config_file(start_chatd, provider, tmp_path, chat):
    path = write_config(tmp_path, config_doc(provider.base_url))
    c = start_chatd(file_env(path))
    doc = config_doc(provider.base_url)
    doc["models"][0]["name"] = "quick"
    doc["default_model"] = "quick"
    doc["keys"] = [{"name": "new-key", "sha256": sha("reloaded-key-123456")}]
    write_config(tmp_path, doc)
    rec = reload(c)
    assert rec["models"] == "quick,local" and rec["client_keys"] == 1
    auth = {"Authorization": "Bearer reloaded-key-123456"}
    for _ in range(4):
        assert httpx.post(c.url + "/chat", json={"message": "hello there no key"}).status_code == 401
        assert chat(c, message="hello there reloaded", model="quick", headers=auth).status == 200
        assert chat(c, message="hello there reloaded", model="fast", headers=auth).status == 400


BAD_RELOADS = [
    ('{"providers": [', "(file): line 1"),
    ({"providers": [P], "models": [M, {"name": "n", "targets": [{"provider": "b"}]}]}, "models[1].targets[0].provider"),
    ({"providers": [P], "models": [M], "keys": [{"name": "k", "sha256": "abc"}]}, "keys[0].sha256"),
]


@pytest.mark.parametrize("doc,names", BAD_RELOADS)
def test_sighup_with_bad_config_file_keeps_the_old_one(start_chatd, provider, tmp_path, chat, doc, names):
    path = write_config(tmp_path, config_doc(provider.base_url))
    c = start_chatd(file_env(path))
    write_config(tmp_path, doc)
    rec = reload(c, "config_reload_failed")
    assert rec["level"] == "error"
    assert rec["message"].startswith(f"CHATD_CONFIG {path}, {names}"), rec
    assert three_parts(rec["message"])
    for _ in range(4):
        assert chat(c, message="hello there old config", model="fast").status == 200


def test_settings_read_at_start_keep_their_values_with_a_warning(start_chatd, tmp_path):
    (tmp_path / ".env").write_text("CLIENT_TIMEOUT_SECONDS=30\n")
    c = start_chatd({"WORKERS": None}, cwd=tmp_path)
    workers = c.logs("server_started")[0]["workers"]
    (tmp_path / ".env").write_text(f"CLIENT_TIMEOUT_SECONDS=20\nWORKERS={workers + 1}\nMAX_REQUEST_BYTES=2048\n")
    rec = reload(c)
    assert rec["level"] == "warning"
    assert rec["unchanged_until_restart"] == "WORKERS,CLIENT_TIMEOUT_SECONDS,MAX_REQUEST_BYTES"
    assert "restart" in rec["warning"]
    assert httpx.get(c.url + "/health").status_code == 200


def test_reloaded_timeout_applies_to_new_requests(start_chatd, provider, tmp_path, chat):
    from fakeprovider import Stream

    (tmp_path / ".env").write_text("TIMEOUT_SECONDS=10\n")
    c = start_chatd({"TIMEOUT_SECONDS": None}, cwd=tmp_path)
    provider.then(Stream(tokens=["slow"], first_delay=1.0))
    assert chat(c, message="hello there, slow but in time").status == 200
    (tmp_path / ".env").write_text("TIMEOUT_SECONDS=0.3\n")
    reload(c)
    for _ in range(2):  # new connections may land on either worker
        provider.then(Stream(tokens=["slow"], first_delay=3.0))
        assert chat(c, message="hello there, now too slow").status == 504


def test_open_stream_finishes_across_reloads(start_chatd, provider, tmp_path, chat):
    from fakeprovider import Stream

    (tmp_path / ".env").write_text("ALLOWED_MODELS=gpt-4o-mini\n")
    provider.then(Stream(tokens=["a", "b", "c", "d", "e", "f"], delay=0.25))
    c = start_chatd(cwd=tmp_path)
    import threading

    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", chat(c, message="hello there long stream")))
    t.start()
    assert provider.wait_requests(1)
    for i in range(3):  # the stream's snapshot is replaced three times under it
        (tmp_path / ".env").write_text(f"ALLOWED_MODELS=gpt-4o-mini,m{i}\n")
        reload(c, n=i + 1)
    t.join(30)
    r = result["r"]
    assert r.status == 200 and r.final["status"] == "completed"
    assert r.content == "abcdef"
    assert chat(c, message="hello there", model="m2").status == 200


def sighup_blocked(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("SigBlk:"):
                return int(line.split()[1], 16) & (1 << (signal.SIGHUP - 1)) != 0
    return False


def test_sighup_during_start_is_not_fatal(provider, tmp_path):
    c = Chatd({"OPENAI_BASE_URL": provider.base_url}, cwd=str(tmp_path))
    c.start(wait=False)
    try:
        deadline = time.monotonic() + 10
        # Blocked from the constructor on; once the main thread waits for signals
        # (sigtimedwait), the kernel shows the waited signals as unblocked.
        while (not sighup_blocked(c.proc.pid) and not c.logs("server_started")
               and time.monotonic() < deadline):
            time.sleep(0.001)
        assert sighup_blocked(c.proc.pid) or c.logs("server_started")
        c.send_signal(signal.SIGHUP)  # most likely before server_started
        c.send_signal(signal.SIGHUP)
        assert c.wait_log("server_started", timeout=15) is not None, c.stderr
        c.port = int(c.logs("server_started")[0]["listen"].rsplit(":", 1)[1])
        assert httpx.get(c.url + "/health").status_code == 200
        assert c.proc.poll() is None
        # A SIGHUP that arrived before the signal wait stays pending until then.
        assert c.wait_log("config_reloaded", timeout=10) is not None
        reload(c, n=len(c.logs("config_reloaded")) + 1)  # and one more once it runs
    finally:
        c.stop()


# -- what each provider field does on the wire ------------------------------------------


def test_api_key_header_and_extra_headers_reach_the_provider(start_chatd, provider, tmp_path, chat):
    doc = config_doc(provider.base_url)
    doc["providers"][0].update(
        api_key_header="api-key", headers={"HTTP-Referer": "https://chat.example.com", "X-Title": "chatd tests"}
    )
    c = start_chatd(file_env(write_config(tmp_path, doc)))
    r = chat(c, message="hello there with headers")
    assert r.status == 200, r.raw
    h = {k.lower(): v for k, v in provider.requests[0].headers.items()}
    assert h["api-key"] == TEST_API_KEY  # the bare key, no "Bearer"
    assert "authorization" not in h
    assert h["http-referer"] == "https://chat.example.com" and h["x-title"] == "chatd tests"
    assert r.final["provider"] == "main" and r.final["model"] == "gpt-4o-mini"


def test_ca_file_trusts_a_private_ca_and_nothing_else_does(start_chatd, provider, tmp_path, chat):
    from tlsproxy import TLSProxy

    with TLSProxy(provider.base_url) as tls:
        doc = {
            "providers": [
                {"name": "private", "base_url": tls.base_url, "ca_file": tls.ca_file},
                {"name": "untrusted", "base_url": tls.base_url},
            ],
            "models": [
                {"name": "ok", "targets": [{"provider": "private", "model": "gpt-4o-mini"}]},
                {"name": "bad", "targets": [{"provider": "untrusted", "model": "gpt-4o-mini"}]},
            ],
        }
        c = start_chatd(file_env(write_config(tmp_path, doc), UPSTREAM_RETRIES="0"))
        r = chat(c, message="hello there through TLS", model="ok")
        assert r.status == 200, r.raw
        assert r.final["status"] == "completed" and r.content == "Hello world"
        assert len(provider.requests) == 1
        r = chat(c, message="hello there through TLS", model="bad")
        assert r.status == 200 and r.final["status"] == "error", r.raw
        assert r.final["error"]["error"] == "upstream_unreachable"
        assert "certificate" in r.final["error"]["detail"]
        assert len(provider.requests) == 1  # verification failed: nothing reached the provider
