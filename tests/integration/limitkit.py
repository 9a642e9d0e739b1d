"""Shared helpers of test_limits.py and test_replicas.py: a CHATD_CONFIG with client
keys, requests on /chat and /v1/chat/completions with a key, OpenAI's duration format,
/metrics samples, and redis-server / nginx started on free 127.0.0.1 ports and stopped
by PID."""

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import time

import httpx

from chatd import SENT_MESSAGES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Go's time.Duration format, as OpenAI's x-ratelimit-reset-* headers use it.
DURATION_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)$|^(\d+)ms$")
RL_REQUESTS = ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests")
RL_TOKENS = ("x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens")


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def duration_seconds(text: str) -> float:
    """Parses "0s", "20ms", "1.5s", "6m0s", "1h0m0s"; fails on anything else."""
    m = DURATION_RE.match(text)
    assert m, f"not OpenAI's duration format: {text!r}"
    if m.group(4) is not None:
        return int(m.group(4)) / 1000
    h, mi, s = m.group(1), m.group(2), m.group(3)
    if h is not None:
        assert mi is not None, text  # Go writes 1h0m0s, never 1h0s
    return int(h or 0) * 3600 + int(mi or 0) * 60 + float(s)


def write_config(tmp_path, base_url, keys, name="chatd.json"):
    """A CHATD_CONFIG with one provider (the fake one), two models and these keys.
    keys: [(name, secret, {limits and models})]."""
    doc = {
        "providers": [{"name": "main", "base_url": base_url, "api_key_env": "OPENAI_API_KEY"}],
        "models": [
            {"name": "fast", "targets": [{"provider": "main", "model": "gpt-4o-mini"}]},
            {"name": "smart", "targets": [{"provider": "main", "model": "gpt-4o"}]},
        ],
        "default_model": "fast",
        "keys": [{"name": n, "sha256": sha(secret), **extra} for n, secret, extra in keys],
    }
    path = tmp_path / name
    path.write_text(json.dumps(doc, indent=2))
    return str(path)


def file_env(path, **more):
    """CHATD_CONFIG without OPENAI_BASE_URL, which it excludes."""
    return {"CHATD_CONFIG": path, "OPENAI_BASE_URL": None, **more}


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


class Answer:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    def rl(self):
        """The x-ratelimit-* headers of this answer."""
        return {k: v for k, v in self.headers.items() if k.startswith("x-ratelimit-")}

    def __repr__(self):
        return f"Answer({self.status}, {self.body[:300]!r})"


def ask(base, key, route="/chat", model=None, stream=True, message="Count the limits, please.", timeout=20):
    """One whole request on /chat or /v1/chat/completions with client key `key`."""
    SENT_MESSAGES.append(message)
    if route == "/chat":
        body = {"message": message}
        if model:
            body["model"] = model
    else:
        body = {"model": model or "fast", "messages": [{"role": "user", "content": message}], "stream": stream}
    with httpx.Client(timeout=timeout) as c:
        with c.stream("POST", base + route, json=body, headers=bearer(key) if key else {}) as r:
            data = b"".join(r.iter_raw())
            return Answer(r.status_code, dict(r.headers), data)


def check_refused(a: Answer, route, code="rate_limited", status=429):
    """A refusal in the route's own error shape, with a whole-seconds Retry-After."""
    assert a.status == status, a
    assert a.headers["content-type"].startswith("application/json")
    body = a.json()
    if route == "/chat":
        assert body["error"] == code, body
        assert set(body) == {"error", "detail", "correlation_id"}, body
        assert body["correlation_id"] == a.headers["x-correlation-id"]
    else:
        err = body["error"]
        assert err["code"] == code and isinstance(err["message"], str) and err["message"], body
        assert set(err) == {"message", "type", "param", "code"}, body
    if status == 429 or code == "limits_unavailable":
        ra = a.headers["retry-after"]
        assert re.fullmatch(r"[1-9][0-9]*", ra), ra
    return body


def completed(a: Answer, route="/chat", stream=True) -> bool:
    """True when the answer is a whole, successful stream or completion."""
    if a.status != 200:
        return False
    text = a.body.decode()
    if route == "/chat":
        return '"status":"completed"' in text.replace(": ", ":")
    if stream:
        return text.rstrip().endswith("data: [DONE]")
    return a.json()["object"] == "chat.completion"


def metric(base, auth, name, **labels):
    """One sample of /metrics (0 when absent)."""
    text = httpx.get(base + "/metrics", headers=bearer(auth), timeout=10).text
    return metric_in(text, name, **labels)


def metric_in(text, name, **labels):
    """The sum of the samples of `name` whose labels include all of `labels`."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+)(?:\{([^}]*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        if all(f'{k}="{v}"' in (m.group(2) or "") for k, v in labels.items()):
            total += float(m.group(3))
    return total


def wait_until(pred, timeout=10.0, step=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            return v
        time.sleep(step)


# -- redis-server -----------------------------------------------------------------------


class Redis:
    """redis-server on a free port of 127.0.0.1, no persistence, stopped by PID."""

    def __init__(self, tmp_path, password=None, port=None):
        self.port = port or free_port()
        self.dir = tmp_path
        self.password = password
        self.proc = None

    @property
    def url(self):
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}"

    def start(self):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.dir)]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_until(lambda: self.ping(), timeout=10), "redis-server did not start"
        return self

    def cli(self, *args):
        env = dict(os.environ)
        if self.password:
            env["REDISCLI_AUTH"] = self.password
        return subprocess.run(["redis-cli", "-p", str(self.port)] + list(args), check=True,
                              capture_output=True, text=True, timeout=10, env=env).stdout

    def ping(self):
        try:
            return "PONG" in self.cli("PING")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            return False

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(10)


# -- nginx with deploy/nginx.conf ---------------------------------------------------------


def nginx_conf(tmp_path, listen, upstreams):
    """deploy/nginx.conf with the upstreams and the port made local and the log and temp
    paths under tmp_path (as test_deploy.py does); nothing else changes."""
    with open(os.path.join(ROOT, "deploy", "nginx.conf")) as f:
        text = f.read()
    for old, port in (("chatd-1:8000", upstreams[0]), ("chatd-2:8000", upstreams[1])):
        assert old in text
        text = text.replace(old, f"127.0.0.1:{port}")
    assert "listen 8080;" in text
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
    text = text.replace("access_log /dev/stdout upstream;", f"access_log {tmp_path}/access.log upstream;")
    text = text.replace("error_log /dev/stderr warn;", f"error_log {tmp_path}/error.log warn;")
    temps = "".join(f"    {d}_temp_path {tmp_path}/{d};\n" for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    text = text.replace("http {\n", "http {\n" + temps, 1)
    path = tmp_path / "nginx.conf"
    path.write_text(text)
    return str(path)


class Nginx:
    def __init__(self, tmp_path, upstreams):
        os.chmod(tmp_path, 0o755)  # nginx workers run as nobody
        self.tmp = tmp_path
        self.port = free_port()
        self.conf = nginx_conf(tmp_path, self.port, upstreams)
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        args = ["nginx", "-p", str(self.tmp), "-e", str(self.tmp / "error.log"), "-c", self.conf,
                "-g", f"pid {self.tmp}/nginx.pid; daemon off;"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

        def up():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                assert self.proc.poll() is None, self.proc.stderr.read()
                return False

        assert wait_until(up, timeout=10), "nginx did not start"
        return self

    def access_log(self):
        try:
            with open(self.tmp / "access.log") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
