"""The Redis backend of the client-key limits against a real redis-server.

Each driver process (build/asan/tests/limits_redis_driver, see its header) is one
replica running src/services/limits*.c on a real libevent loop; redis-server is
started on a free 127.0.0.1 port (and a unix socket) and stopped by PID."""

import json
import os
import queue
import signal
import socket
import subprocess
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRIVER = os.environ.get("LIMITS_REDIS_DRIVER",
                        os.path.join(ROOT, "build/asan/tests/limits_redis_driver"))
# Generous: the machine is shared; the deadline itself is 50 ms.
ANSWER_BOUND_MS = 400


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    def __init__(self, tmp_path, extra=()):
        self.port = free_port()
        self.sock = str(tmp_path / f"redis-{self.port}.sock")
        self.dir = tmp_path
        self.extra = list(extra)
        self.proc = None
        self.password = None
        for i, a in enumerate(self.extra):
            if a == "--requirepass":
                self.password = self.extra[i + 1]

    def start(self):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--unixsocket", self.sock,
                "--unixsocketperm", "700", "--dir", str(self.dir)] + self.extra
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if "PONG" in self.cli("PING"):
                    return self
            except subprocess.CalledProcessError:
                pass
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def cli(self, *args, db=0):
        cmd = ["redis-cli", "-p", str(self.port), "-n", str(db)]
        env = dict(os.environ)
        if self.password:
            env["REDISCLI_AUTH"] = self.password
        return subprocess.run(cmd + list(args), check=True, capture_output=True, text=True,
                              timeout=10, env=env).stdout

    def commandstats(self):
        stats = {}
        for line in self.cli("INFO", "commandstats").splitlines():
            if line.startswith("cmdstat_"):
                name, rest = line[len("cmdstat_"):].split(":", 1)
                stats[name] = int(rest.split(",")[0].split("=")[1])
        return stats

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(10)


class Driver:
    """One replica: the driver process, its answers and its log lines."""

    def __init__(self):
        if not os.path.exists(DRIVER):
            raise AssertionError(f"{DRIVER} is missing: run make {os.path.relpath(DRIVER, ROOT)}")
        self.proc = subprocess.Popen([DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        self.out = queue.Queue()
        self.answers = {}
        self.stderr = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.out.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr.append),
                         daemon=True).start()
        self.next_id = 1

    @staticmethod
    def _pump(pipe, sink):
        for line in pipe:
            sink(line.rstrip("\n"))

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait_for(self, pred, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            for v in list(self.answers.values()):
                if pred(v):
                    return v
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no such answer from the driver")
            try:
                v = json.loads(self.out.get(timeout=left))
            except queue.Empty:
                continue
            key = v.get("id", json.dumps(v))
            assert key not in self.answers or "id" not in v, f"answered twice: {v}"
            self.answers[key] = v
            if pred(v):
                return v

    def new(self, inst, url, fail_open=True, timing="1000 0 0"):
        """timing: deadline, lease, first backoff (ms; 0 keeps chatd's). The deadline
        is 1 s unless a test is about it, so that a stall of the shared machine cannot
        turn an answer into a fail-open one."""
        self.send(f"new {inst} {url} {1 if fail_open else 0} {timing}")
        self.wait_for(lambda v: v.get("new") == inst)

    def admit(self, inst, key, rpm=0, tpm=0, streams=0, wait=True):
        i = self.next_id
        self.next_id += 1
        self.send(f"admit {inst} {i} {key} {rpm} {tpm} {streams}")
        return self.wait_for(lambda v: v.get("id") == i) if wait else i

    def burst(self, inst, key, n, rpm=0, tpm=0, streams=0):
        """n admits written in one write (< PIPE_BUF, so the driver reads them in one
        read, one turn of its loop); returns their answers in the order sent."""
        ids = list(range(self.next_id, self.next_id + n))
        self.next_id += n
        self.send("\n".join(f"admit {inst} {i} {key} {rpm} {tpm} {streams}" for i in ids))
        return [self.wait_for(lambda v, i=i: v.get("id") == i) for i in ids]

    def finish_all(self, inst, ids_tokens):
        """Finishes several admits in one write (one loop turn)."""
        self.send("\n".join(f"finish {inst} {i} {t}" for i, t in ids_tokens))
        for i, _ in ids_tokens:
            self.wait_for(lambda v, i=i: v.get("finished") == i)

    def wait_ready(self, inst, timeout=10.0):
        """Admits a probe until Redis answers it (not at once as unreachable)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.admit(inst, "probe", rpm=1000000)["headers"]:  # Redis answered
                return
            time.sleep(0.05)
        raise AssertionError("the driver never reached Redis")

    def finish(self, inst, admit_id, tokens=0):
        self.send(f"finish {inst} {admit_id} {tokens}")
        self.wait_for(lambda v: v.get("finished") == admit_id)

    def logs(self, event):
        return [json.loads(l) for l in self.stderr if f'"event":"{event}"' in l]

    def wait_log(self, event, count=1, timeout=10.0):
        deadline = time.monotonic() + timeout
        while len(self.logs(event)) < count:
            assert time.monotonic() < deadline, f"no {event} log line: {self.stderr[-5:]}"
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(15)
        time.sleep(0.1)
        bad = [l for l in self.stderr if "Sanitizer" in l or "runtime error" in l]
        assert not bad, bad


@pytest.fixture
def redis(tmp_path):
    r = Redis(tmp_path).start()
    yield r
    r.stop()


@pytest.fixture
def drivers():
    made = []

    def make():
        d = Driver()
        made.append(d)
        return d

    yield make
    for d in made:
        if d.proc.poll() is None or d.proc.returncode == 0:
            d.stop()


def wait_until(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"condition never became true: {pred.__doc__}"
        time.sleep(0.02)


def url(r):
    return f"redis://127.0.0.1:{r.port}"


def test_one_round_trip_per_admit(redis, drivers):
    d = drivers()
    d.new(0, url(redis))
    d.wait_ready(0)
    monitor = subprocess.Popen(["redis-cli", "-p", str(redis.port), "MONITOR"],
                               stdout=subprocess.PIPE, text=True, bufsize=1)
    try:
        assert monitor.stdout.readline().strip() == "OK"
        for _ in range(20):
            v = d.admit(0, "app", rpm=1000, tpm=100000, streams=100)
            assert v["status"] == "ok" and not v["sync"]
            assert v["headers"]["x-ratelimit-limit-requests"] == "1000"
            assert v["headers"]["x-ratelimit-limit-tokens"] == "100000"
        redis.cli("ECHO", "end-of-test")
        seen = []
        for line in monitor.stdout:
            if "end-of-test" in line:
                break
            if " lua] " not in line:  # commands a script ran are listed too
                seen.append(line.split('"')[1])
    finally:
        monitor.terminate()
        monitor.wait(5)
    assert seen == ["EVALSHA"] * 20, seen


def test_two_replicas_share_the_request_limit(redis, drivers):
    a, b = drivers(), drivers()
    for d in (a, b):
        d.new(0, url(redis))
        d.wait_ready(0)
    answers = []
    for _ in range(8):
        answers.append(a.admit(0, "shared", rpm=10))
        answers.append(b.admit(0, "shared", rpm=10))
    ok = [v for v in answers if v["status"] == "ok"]
    refused = [v for v in answers if v["status"] == "refused"]
    assert len(ok) == 10 and len(refused) == 6
    assert all(v["reason"] == "requests" and v["retry_after"] >= 1 for v in refused)
    assert all(v["headers"]["x-ratelimit-remaining-requests"] == "0" for v in refused)
    remaining = sorted(int(v["headers"]["x-ratelimit-remaining-requests"]) for v in ok)
    assert remaining == list(range(10)), remaining


def test_concurrency_limit_holds_across_replicas(redis, drivers):
    a, b = drivers(), drivers()
    for d in (a, b):
        d.new(0, url(redis))
        d.wait_ready(0)
    first = [a.admit(0, "conc", streams=3), a.admit(0, "conc", streams=3)]
    second = [b.admit(0, "conc", streams=3), b.admit(0, "conc", streams=3)]
    assert [v["status"] for v in first + second] == ["ok", "ok", "ok", "refused"]
    assert second[1]["reason"] == "concurrency" and second[1]["retry_after"] == 1
    assert all(v["ticket"] for v in first + second[:1])
    a.finish(0, first[0]["id"])
    wait_until(lambda: redis.cli("ZCARD", "chatd:{conc}:streams").strip() == "2")  # fire-and-forget
    assert b.admit(0, "conc", streams=3)["status"] == "ok"
    assert redis.cli("ZCARD", "chatd:{conc}:streams").strip() == "3"


def test_a_killed_replica_frees_its_slots_within_the_lease(redis, drivers):
    a, b = drivers(), drivers()
    a.new(0, url(redis), timing="1000 1500 100")  # lease 1.5 s, renewed every 0.5 s
    b.new(0, url(redis))
    a.wait_ready(0)
    b.wait_ready(0)
    assert a.admit(0, "crash", streams=2)["status"] == "ok"
    assert a.admit(0, "crash", streams=2)["status"] == "ok"
    # While A lives, its renewals keep the slots held well past one lease.
    t_end = time.monotonic() + 3.5
    while time.monotonic() < t_end:
        assert b.admit(0, "crash", streams=2)["reason"] == "concurrency"
        time.sleep(0.25)
    a.proc.kill()
    a.proc.wait(5)
    killed = time.monotonic()
    while b.admit(0, "crash", streams=2)["status"] != "ok":
        assert time.monotonic() - killed < 6, "the dead replica's slots were never freed"
        time.sleep(0.1)
    assert time.monotonic() - killed >= 0.5  # freed by expiry, not at once


def stopped_answers(d, inst, n):
    return [d.admit(inst, "stop", rpm=100, streams=10) for _ in range(n)]


def test_redis_stopped_fail_open_and_closed_answer_within_the_deadline(redis, drivers):
    d = drivers()
    d.new(0, url(redis), fail_open=True, timing="50 0 0")
    d.new(1, url(redis), fail_open=False, timing="50 0 0")
    d.wait_ready(0)
    d.wait_ready(1)
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        opened = stopped_answers(d, 0, 4)
        closed = stopped_answers(d, 1, 4)
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    for v in opened:
        assert v["status"] == "ok" and v["headers"] == {} and not v["ticket"], v
        assert v["ms"] < ANSWER_BOUND_MS, v
    for v in closed:
        assert v["status"] == "unavailable", v
        assert v["ms"] < ANSWER_BOUND_MS, v
    # The first ones waited for the deadline; once the outage is declared, at once.
    assert opened[0]["ms"] >= 45 and opened[-1]["sync"]
    d.wait_log("redis_recovered")
    unavailable = d.logs("redis_unavailable")
    # once per outage per process: the two connections share one limits_shared
    assert len(unavailable) == 1, unavailable
    assert all(l["level"] == "warning" and l["message"].count(". ") >= 2 for l in unavailable)
    d.wait_ready(0)
    assert d.admit(0, "after", rpm=1)["status"] == "ok"
    assert d.admit(0, "after", rpm=1)["reason"] == "requests"
    counted = stats(d, 0)
    assert counted["unavailable"] == 1 and counted["errors"] >= 2


def stats(d, inst):
    d.send(f"stats {inst}")
    v = d.out.get(timeout=5)
    return json.loads(v)


def test_redis_killed_and_restarted(tmp_path, drivers):
    r = Redis(tmp_path).start()
    try:
        d = drivers()
        d.new(0, url(r), fail_open=False, timing="1000 60000 50")
        d.wait_ready(0)
        assert d.admit(0, "k", rpm=2)["status"] == "ok"
        r.proc.kill()
        r.proc.wait(5)
        d.wait_log("redis_unavailable")
        v = d.admit(0, "k", rpm=2)
        assert v["status"] == "unavailable" and v["sync"] and v["ms"] < ANSWER_BOUND_MS
        time.sleep(1.0)  # several reconnect attempts fail meanwhile
        assert len(d.logs("redis_unavailable")) == 1
        r.start()  # same port, empty data
        d.wait_log("redis_recovered")
        d.wait_ready(0)
        assert [d.admit(0, "k", rpm=2)["status"] for _ in range(3)] == ["ok", "ok", "refused"]
    finally:
        r.stop()


def test_unix_socket_url_with_db(redis, drivers):
    d = drivers()
    d.new(0, f"unix://{redis.sock}?db=3")
    d.wait_ready(0)
    assert d.admit(0, "sock", rpm=5)["status"] == "ok"
    assert "chatd:{sock}:requests" in redis.cli("KEYS", "*", db=3)
    assert "chatd:{sock}" not in redis.cli("KEYS", "*", db=0)


def test_password_url_and_the_password_is_never_logged(tmp_path, drivers):
    secret = "pw-Xq81-very-secret"
    r = Redis(tmp_path, ["--requirepass", secret]).start()
    try:
        good, bad = drivers(), drivers()
        good.new(0, f"redis://:{secret}@127.0.0.1:{r.port}/1")
        good.wait_ready(0)
        assert good.admit(0, "pw", rpm=5)["status"] == "ok"
        assert "chatd:{pw}:requests" in r.cli("KEYS", "*", db=1)
        # An ACL user: AUTH <user> <password>, and %-escapes in the URL decoded.
        r.cli("ACL", "SETUSER", "chatd", "on", ">p@ss:" + secret, "~chatd:*", "+@all")
        acl = drivers()
        acl.new(0, f"redis://chatd:p%40ss%3A{secret}@127.0.0.1:{r.port}")
        acl.wait_ready(0)
        assert acl.admit(0, "pw", rpm=5)["status"] == "ok"
        assert acl.admit(0, "pw", rpm=5)["headers"]["x-ratelimit-remaining-requests"] == "3"
        bad.new(0, f"redis://:{secret}-wrong@127.0.0.1:{r.port}", fail_open=False)
        bad.wait_log("redis_unavailable")
        line = bad.logs("redis_unavailable")[0]
        assert "WRONGPASS" in line["message"] or "invalid password" in line["message"]
        assert bad.admit(0, "pw", rpm=5)["status"] == "unavailable"
        for d in (good, bad, acl):
            d.stop()
            assert not [l for l in d.stderr if secret in l]
    finally:
        r.stop()


def test_cancelled_admit_gives_its_lease_back(redis, drivers):
    d = drivers()
    d.new(0, url(redis))
    d.wait_ready(0)
    rtt0 = stats(d, 0)["rtt"]
    i = d.next_id
    d.send(f"admit_cancel 0 {i} gone 0 0 5")
    assert d.wait_for(lambda v: v.get("cancelled") == i)["was_pending"]
    wait_until(lambda: stats(d, 0)["rtt"] >= rtt0 + 1)  # its reply came, and was not passed on
    wait_until(lambda: redis.cli("ZCARD", "chatd:{gone}:streams").strip() == "0")
    assert i not in d.answers


def test_tokens_charged_at_finish_are_shared(redis, drivers):
    a, b = drivers(), drivers()
    for d in (a, b):
        d.new(0, url(redis))
        d.wait_ready(0)
    v = a.admit(0, "tok", tpm=1000)
    assert v["status"] == "ok" and v["headers"]["x-ratelimit-remaining-tokens"] == "1000"
    a.finish(0, v["id"], tokens=1500)
    wait_until(lambda: redis.cli("EXISTS", "chatd:{tok}:tokens").strip() == "1")  # fire-and-forget
    v = b.admit(0, "tok", tpm=1000)
    assert v["status"] == "refused" and v["reason"] == "tokens"
    assert 29 <= v["retry_after"] <= 31
    assert v["headers"]["x-ratelimit-remaining-tokens"] == "0"


def test_a_closed_connection_is_remade_quietly(redis, drivers):
    """A server that closes a working connection (idle timeout, CLIENT KILL, failover)
    is no outage: chatd reconnects at once and logs nothing."""
    d = drivers()
    d.new(0, url(redis))
    d.wait_ready(0)
    assert int(redis.cli("CLIENT", "KILL", "TYPE", "normal").strip()) >= 1
    d.wait_ready(0)
    assert d.admit(0, "quiet", rpm=1)["status"] == "ok"
    assert d.admit(0, "quiet", rpm=1)["reason"] == "requests"
    assert d.logs("redis_unavailable") == []


def test_host_names_resolve_without_blocking(redis, drivers):
    d = drivers()
    d.new(0, f"redis://localhost:{redis.port}")  # /etc/hosts, through evdns
    d.wait_ready(0)
    d.new(1, f"redis://no-such-host.invalid:{redis.port}", fail_open=False)
    d.wait_log("redis_unavailable", timeout=40)  # a resolver may take its retries
    (line,) = d.logs("redis_unavailable")
    assert "does not resolve" in line["message"] and line["address"].startswith("no-such-host")
    v = d.admit(1, "dns", rpm=5)
    assert v["status"] == "unavailable" and v["sync"]


def evalsha_calls(r):
    s = r.commandstats()
    return s.get("evalsha", 0) + s.get("eval", 0)


def test_a_burst_is_judged_in_order_as_one_by_one(redis, drivers):
    d = drivers()
    d.new(0, url(redis))
    d.wait_ready(0)
    answers = d.burst(0, "burst", 30, rpm=10)
    ok = [v for v in answers if v["status"] == "ok"]
    refused = [v for v in answers if v["status"] == "refused"]
    assert len(ok) == 10 and len(refused) == 20, answers
    assert ok == answers[:10]  # in the order sent
    remaining = [int(v["headers"]["x-ratelimit-remaining-requests"]) for v in ok]
    assert remaining == list(range(9, -1, -1)), remaining
    assert all(v["reason"] == "requests" and v["retry_after"] >= 1 for v in refused)
    assert all(v["headers"]["x-ratelimit-remaining-requests"] == "0" for v in refused)
    assert stats(d, 0)["rtt"] >= 31  # one round trip counted per request


def test_a_burst_goes_as_one_evalsha(redis, drivers):
    d = drivers()
    d.new(0, url(redis))
    d.wait_ready(0)
    before = evalsha_calls(redis)
    answers = d.burst(0, "one", 30, rpm=10)
    assert [v["status"] for v in answers].count("ok") == 10
    calls = evalsha_calls(redis) - before
    assert calls <= 5, f"{calls} EVALSHA for 30 admits read in one turn"


def test_a_burst_on_a_concurrency_limit_then_its_finishes(redis, drivers):
    d = drivers()
    d.new(0, url(redis))
    d.wait_ready(0)
    answers = d.burst(0, "held", 30, streams=5)
    ok = [v for v in answers if v["status"] == "ok"]
    assert ok == answers[:5] and all(v["ticket"] for v in ok)
    assert all(v["reason"] == "concurrency" for v in answers[5:])
    assert redis.cli("ZCARD", "chatd:{held}:streams").strip() == "5"
    assert d.admit(0, "held", streams=5)["reason"] == "concurrency"  # held, not a one-off
    before = evalsha_calls(redis)
    d.finish_all(0, [(v["id"], 0) for v in ok])
    wait_until(lambda: redis.cli("ZCARD", "chatd:{held}:streams").strip() == "0")
    assert evalsha_calls(redis) - before <= 2
    assert [v["status"] for v in d.burst(0, "held", 6, streams=5)] == ["ok"] * 5 + ["refused"]


def test_tokens_of_a_batch_of_finishes_add_up(redis, drivers):
    d = drivers()
    d.new(0, url(redis))
    d.wait_ready(0)
    answers = d.burst(0, "sum", 8, tpm=60)  # one token costs 1 s of the bucket
    assert all(v["status"] == "ok" and v["ticket"] for v in answers)
    used = list(range(10, 18))  # 108 tokens
    before = evalsha_calls(redis)
    d.finish_all(0, [(v["id"], n) for v, n in zip(answers, used)])
    wait_until(lambda: redis.cli("EXISTS", "chatd:{sum}:tokens").strip() == "1")
    tat = int(redis.cli("GET", "chatd:{sum}:tokens").strip())
    sec, usec = redis.cli("TIME").split()
    debt = tat - (int(sec) * 1000000 + int(usec))
    assert 107_000_000 < debt <= 108_000_000, debt  # sum(used) s, less the time since
    assert evalsha_calls(redis) - before <= 2
    v = d.admit(0, "sum", tpm=60)
    assert v["reason"] == "tokens" and 47 <= v["retry_after"] <= 49


def test_two_keys_in_one_turn_and_a_flushed_script_cache(redis, drivers):
    d = drivers()
    d.new(0, url(redis))
    d.wait_ready(0)
    redis.cli("SCRIPT", "FLUSH")  # the batch is answered NOSCRIPT and sent again with EVAL
    lines, ids = [], []
    for k in range(12):
        key, rpm = ("x", 3) if k % 2 == 0 else ("y", 4)
        ids.append(d.next_id)
        lines.append(f"admit 0 {d.next_id} {key} {rpm} 0 0")
        d.next_id += 1
    d.send("\n".join(lines))
    got = [d.wait_for(lambda v, i=i: v.get("id") == i) for i in ids]
    assert [v["status"] for v in got[0::2]] == ["ok"] * 3 + ["refused"] * 3
    assert [v["status"] for v in got[1::2]] == ["ok"] * 4 + ["refused"] * 2
    assert [v["headers"]["x-ratelimit-remaining-requests"] for v in got[1::2]] == \
        ["3", "2", "1", "0", "0", "0"]
    assert stats(d, 0)["errors"] == 0
