"""deploy/ is checked like code: the compose file and every Kubernetes manifest
parse as YAML and carry what running more than one replica needs; deploy/nginx.conf
passes `nginx -t` and, run for real in front of two upstream processes, streams SSE
unbuffered, keeps upstream connections alive, moves to the other replica only on a
connection error; the Prometheus rules pass `promtool check rules` and their unit
tests (`promtool test rules`)."""

import json
import glob
import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(ROOT, "deploy")
K8S = os.path.join(DEPLOY, "k8s")
DRAIN_DEFAULT = 30


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def k8s_objects():
    objs = []
    for name in sorted(os.listdir(K8S)):
        if name.endswith(".yaml") and name != "kustomization.yaml":
            objs += [(name, d) for d in load_all(os.path.join(K8S, name))]
    return objs


def find(kind, name):
    hits = [d for _, d in k8s_objects() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(hits) == 1, f"{kind}/{name}: {len(hits)} found"
    return hits[0]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- compose -------------------------------------------------------------------------


def test_compose_has_two_replicas_redis_and_nginx():
    c = load_all(os.path.join(DEPLOY, "compose.yaml"))[0]
    s = c["services"]
    assert {"chatd-1", "chatd-2", "redis", "nginx"} <= set(s)
    for name in ("chatd-1", "chatd-2"):
        r = s[name]
        ctx = os.path.normpath(os.path.join(DEPLOY, r["build"]["context"]))
        assert os.path.exists(os.path.join(ctx, r["build"].get("dockerfile", "Dockerfile")))
        assert ctx == ROOT
        env = r["environment"]
        assert env["REDIS_URL"].startswith("redis://") and "@redis:6379" in env["REDIS_URL"]
        assert env["HOST"] == "0.0.0.0"
        assert "/ready" in " ".join(r["healthcheck"]["test"])
        assert r["depends_on"]["redis"]["condition"] == "service_healthy"
        grace = int(r["stop_grace_period"].rstrip("s"))
        assert grace > int(env.get("DRAIN_SECONDS", DRAIN_DEFAULT))
        assert "ports" not in r  # only nginx is published
    assert "ping" in " ".join(s["redis"]["healthcheck"]["test"])
    assert "--requirepass" in " ".join(s["redis"]["command"])
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in s["nginx"]["volumes"]
    assert s["nginx"]["depends_on"]["chatd-1"]["condition"] == "service_healthy"


# --- Kubernetes ----------------------------------------------------------------------


def test_every_manifest_parses_and_names_its_kind():
    objs = k8s_objects()
    kinds = sorted(d["kind"] for _, d in objs)
    for want in ("ConfigMap", "Secret", "Deployment", "Service", "HorizontalPodAutoscaler"):
        assert want in kinds, kinds
    for name, d in objs:
        assert d.get("apiVersion") and d["metadata"].get("name"), name
    kust = load_all(os.path.join(K8S, "kustomization.yaml"))[0]
    listed = set(kust["resources"])
    on_disk = {n for n in os.listdir(K8S) if n.endswith(".yaml") and n != "kustomization.yaml"}
    assert listed == on_disk


def test_chatd_deployment():
    d = find("Deployment", "chatd")
    assert d["spec"]["replicas"] == 2
    pod = d["spec"]["template"]["spec"]
    labels = d["spec"]["template"]["metadata"]["labels"]
    assert d["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (c,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["port"] in ports
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    assert env["HOST"] == "0.0.0.0" and int(env["PORT"]) == ports["http"]
    # Grace period > preStop sleep + DRAIN_SECONDS: streams finish before SIGKILL.
    cm = find("ConfigMap", "chatd")["data"]
    drain = int(cm.get("DRAIN_SECONDS", DRAIN_DEFAULT))
    pre = c["lifecycle"]["preStop"]["exec"]["command"]
    assert pre[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > drain + int(pre[1])
    # Settings from the ConfigMap, secrets from the Secret, the file mounted.
    refs = {(list(r)[0], list(r.values())[0]["name"]) for r in c["envFrom"]}
    assert refs == {("configMapRef", "chatd"), ("secretRef", "chatd")}
    mount = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    vol = {v["name"]: v for v in pod["volumes"]}
    (vname,) = [n for n, v in vol.items() if "configMap" in v]
    files = find("ConfigMap", vol[vname]["configMap"]["name"])["data"]
    assert os.path.join(mount[vname], "config.json") == cm["CHATD_CONFIG"]
    cfg = json.loads(files["config.json"])
    for k in cfg["keys"]:
        assert re.fullmatch(r"[0-9a-f]{64}", k["sha256"])
    assert all(re.fullmatch(r"[A-Z_][A-Z0-9_]*", k) for k in cm), "ConfigMap keys become env vars"
    assert c["resources"]["requests"]["cpu"]  # the HPA needs a CPU request


def test_secret_holds_the_secrets_and_nothing_else_does():
    sec = find("Secret", "chatd")["stringData"]
    assert {"OPENAI_API_KEY", "REDIS_URL", "REDIS_PASSWORD"} <= set(sec)
    assert sec["REDIS_URL"].startswith("redis://:") and "@chatd-redis:6379" in sec["REDIS_URL"]
    for name, d in k8s_objects():
        if d["kind"] != "Secret":
            text = yaml.safe_dump(d)
            assert sec["OPENAI_API_KEY"] not in text and sec["REDIS_PASSWORD"] not in text, name


def test_service_hpa_and_redis():
    dep = find("Deployment", "chatd")
    svc = find("Service", "chatd")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    hpa = find("HorizontalPodAutoscaler", "chatd")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "chatd"}
    assert hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["maxReplicas"] > 2
    rd = find("Deployment", "chatd-redis")
    rs = find("Service", "chatd-redis")
    rlabels = rd["spec"]["template"]["metadata"]["labels"]
    assert rs["spec"]["selector"].items() <= rlabels.items()
    assert rs["spec"]["ports"][0]["port"] == 6379
    (rc,) = rd["spec"]["template"]["spec"]["containers"]
    assert rc["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "chatd"
    assert "--requirepass" in " ".join(rc["args"])


# --- nginx ---------------------------------------------------------------------------


def nginx_copy(tmp_path, listen, upstreams):
    """deploy/nginx.conf with the upstream names and the port made local, and the
    log and temp paths moved under tmp_path; nothing else changes."""
    with open(os.path.join(DEPLOY, "nginx.conf")) as f:
        text = f.read()
    text = text.replace("chatd-1:8000", f"127.0.0.1:{upstreams[0]}")
    text = text.replace("chatd-2:8000", f"127.0.0.1:{upstreams[1]}")
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
    text = text.replace("access_log /dev/stdout upstream;", f"access_log {tmp_path}/access.log upstream;")
    temps = "".join(f"    {d}_temp_path {tmp_path}/{d};\n"
                    for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    text = text.replace("http {\n", "http {\n" + temps, 1)
    path = tmp_path / "nginx.conf"
    path.write_text(text)
    return str(path)


def nginx_args(tmp_path, conf):
    return ["nginx", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", conf,
            "-g", f"pid {tmp_path}/nginx.pid; daemon off;"]


def test_nginx_config_passes_nginx_t(tmp_path):
    conf = nginx_copy(tmp_path, free_port(), (8001, 8002))
    r = subprocess.run(nginx_args(tmp_path, conf)[:-2] + ["-t"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert "test is successful" in r.stderr


def test_nginx_directives_for_sse():
    """What the live tests below cannot tell apart on a small stream (nginx 1.22 also
    forwards tiny chunks promptly with buffering on): the directives themselves."""
    with open(os.path.join(DEPLOY, "nginx.conf")) as f:
        code = "\n".join(l.split("#", 1)[0] for l in f)
    loc = code[code.index("location / {"):]
    for d in ("proxy_buffering off;", "proxy_cache off;", "proxy_http_version 1.1;",
              'proxy_set_header Connection "";', "proxy_pass http://chatd;"):
        assert d in loc, d
    assert int(re.search(r"proxy_read_timeout (\d+)s;", loc).group(1)) >= 600
    nxt = re.search(r"proxy_next_upstream ([^;]*);", loc).group(1).split()
    assert sorted(nxt) == ["error", "timeout"]  # never non_idempotent, never http_5xx
    up = code[code.index("upstream chatd {"):]
    up = up[:up.index("}")]
    assert re.search(r"keepalive \d+;", up)
    assert len(re.findall(r"server chatd-\d:8000 max_fails=\d+ fail_timeout=\d+s;", up)) == 2


UPSTREAM = r'''
import socket, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME, PORT = sys.argv[1], int(sys.argv[2])

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def note(self):
        print(f"{NAME} {self.command} {self.path} {self.client_address[1]}", flush=True)

    def do_GET(self):
        self.note()
        body = b'{"status":"ready"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.note()
        if self.path == "/fail":
            body = b'{"error":"upstream_error"}'
            self.send_response(502)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Upstream", NAME)
        self.end_headers()
        for i in range(3):
            ev = f"data: {{\"sequence\":{i},\"from\":\"{NAME}\"}}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(ev), ev))
            self.wfile.flush()
            time.sleep(1.0)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

ThreadingHTTPServer.allow_reuse_address = True
ThreadingHTTPServer(("127.0.0.1", PORT), H).serve_forever()
'''


class Upstream:
    def __init__(self, name):
        self.name, self.port = name, free_port()
        self.proc = subprocess.Popen(["/usr/bin/python3", "-c", UPSTREAM, name, str(self.port)],
                                     stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"upstream {name} did not start"
                time.sleep(0.05)

    def seen(self):
        """(method, path, client port) of every request so far; after stop()."""
        return [tuple(l.split()[1:]) for l in self.proc.stdout.read().splitlines()]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def proxied(tmp_path):
    os.chmod(tmp_path, 0o755)  # nginx workers run as nobody
    ups = [Upstream("a"), Upstream("b")]
    port = free_port()
    conf = nginx_copy(tmp_path, port, [u.port for u in ups])
    ng = subprocess.Popen(nginx_args(tmp_path, conf), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert ng.poll() is None and time.monotonic() < deadline, ng.stderr.read()
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", ups
    ng.send_signal(signal.SIGTERM)
    ng.wait(10)
    for u in ups:
        u.stop()


def stream(base, path="/chat"):
    """POSTs through nginx; returns (status, [(seconds since start, event)], total)."""
    t0 = time.monotonic()
    events = []
    with httpx.Client(timeout=20) as c:
        with c.stream("POST", base + path, json={"message": "hi"}) as r:
            buf = b""
            for chunk in r.iter_raw():
                buf += chunk
                while b"\n\n" in buf:
                    ev, buf = buf.split(b"\n\n", 1)
                    events.append((time.monotonic() - t0, json.loads(ev[len(b"data: "):])))
            return r.status_code, events, time.monotonic() - t0


def test_nginx_streams_sse_as_it_comes(proxied):
    base, _ = proxied
    status, events, total = stream(base)
    assert status == 200
    assert [e["sequence"] for _, e in events] == [0, 1, 2]
    # The upstream takes 3 s; buffering would deliver everything at the end.
    assert total >= 2.5
    assert events[0][0] < 1.5, events


def test_nginx_moves_on_only_for_connection_errors(proxied):
    base, (a, b) = proxied
    # A 502 that a replica answered is the client's answer: no second attempt.
    with httpx.Client(timeout=10) as c:
        assert c.post(base + "/fail", json={}).status_code == 502
        a.stop()  # refuses connections from now on, like a replica that closed its listener
        statuses = [c.get(base + "/ready").status_code for _ in range(10)]
    assert statuses == [200] * 10  # the refused connects went to b at once
    status, events, _ = stream(base)
    assert status == 200 and {e["from"] for _, e in events} == {"b"}
    b.stop()
    seen_a, seen_b = a.seen(), b.seen()
    assert len([s for s in seen_a + seen_b if s[1] == "/fail"]) == 1, seen_a + seen_b
    # Keep-alive to the upstreams: b served its requests on fewer connections.
    ready_b = [s for s in seen_b if s[1] == "/ready"]
    assert len(ready_b) >= 10
    assert len({s[2] for s in ready_b}) < len(ready_b), ready_b


# --- Prometheus ----------------------------------------------------------------------


def test_promtool_check_rules():
    r = subprocess.run(["promtool", "check", "rules", "prometheus/chatd-rules.yaml"],
                       cwd=DEPLOY, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 6 rules found" in r.stdout + r.stderr


def test_promtool_test_rules():
    r = subprocess.run(["promtool", "test", "rules", "prometheus/chatd-rules.test.yaml"],
                       cwd=DEPLOY, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout + r.stderr


def test_rules_name_only_metrics_chatd_exposes():
    exposed = set()
    for path in glob.glob(os.path.join(ROOT, "src/core/metrics*.c")):
        with open(path) as f:
            exposed |= set(re.findall(r'"(chatd_[a-z_]+)', f.read()))
    rules = load_all(os.path.join(DEPLOY, "prometheus/chatd-rules.yaml"))[0]
    for g in rules["groups"]:
        for rule in g["rules"]:
            for m in re.findall(r"\bchatd_[a-z_]+", rule["expr"]):
                base = re.sub(r"_(bucket|sum|count)$", "", m)
                assert m in exposed or base in exposed, f"{rule['alert']}: {m}"
