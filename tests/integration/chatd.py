"""Start the real build/chatd and talk to it over real TCP.

`Chatd` runs the binary on a free port (PORT=0: chatd picks one and names it in
its server_started line, so there is no race for the port), collects every
stdout and stderr line in threads, and on stop checks the exit status and that
no sanitizer report appeared.
"""

import fcntl
import json
import os
import re
import select
import signal
import socket
import subprocess
import termios
import threading
import time
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.path.join(ROOT, os.environ.get("CHATD_BIN", "build/chatd"))
TEST_API_KEY = "sk-test-4f1c9b2e8a7d6c5b4a3f2e1d0c9b8a7f"

# Every line any chatd printed in this session, for the session-wide secret check.
ALL_OUTPUT: List[str] = []
# Every message text a test sent, which must never reach the logs.
SENT_MESSAGES: List[str] = []

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer",
                     "WARNING: ThreadSanitizer", "ERROR: ThreadSanitizer", "FATAL: ThreadSanitizer")
# CHATD_WORKERS replaces the default WORKERS (2) of every chatd a test starts
# (make integration-tsan: 4); a test that asks for a number of its own keeps it.
DEFAULT_WORKERS = os.environ.get("CHATD_WORKERS") or "2"
# CHATD_NATIVE_HTTP=false runs every chatd with UPSTREAM_NATIVE_HTTP=false (libcurl
# for the providers that chatd's own client would serve; make integration-tsan).
NATIVE_HTTP = os.environ.get("CHATD_NATIVE_HTTP")


class Chatd:
    def __init__(self, env: Optional[Dict[str, str]] = None, cwd: Optional[str] = None, expect_exit: Optional[int] = 0,
                 wrapper: Optional[List[str]] = None, binary: Optional[str] = None):
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOST": "127.0.0.1",
            "PORT": "0",
            "WORKERS": DEFAULT_WORKERS,
            "LOG_LEVEL": "debug",
            "OPENAI_API_KEY": TEST_API_KEY,
            "TIMEOUT_SECONDS": "5",
            # One attempt per request unless a test asks for retries: most suites
            # script one provider answer per request (test_routing.py sets its own).
            "UPSTREAM_RETRIES": "0",
            **({"UPSTREAM_NATIVE_HTTP": NATIVE_HTTP} if NATIVE_HTTP else {}),
            "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=99",
            "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
            "TSAN_OPTIONS": "halt_on_error=0:second_deadlock_stack=1",
        }
        if env:
            for k, v in env.items():
                if v is None:
                    self.env.pop(k, None)
                else:
                    self.env[k] = v
        self.binary = binary or BINARY
        self.cwd = cwd
        self.wrapper = wrapper or []  # e.g. valgrind and its options
        self.expect_exit = expect_exit
        self.stdout: List[str] = []
        self.stderr: List[str] = []
        self._cond = threading.Condition()
        self._stdout_taken = 0  # bytes of stdout read so far (under _cond)
        self.proc: Optional[subprocess.Popen] = None
        self.port: Optional[int] = None
        self.returncode: Optional[int] = None

    # -- process --------------------------------------------------------------

    def start(self, wait=True, preexec_fn=None):
        self.proc = subprocess.Popen(
            self.wrapper + [self.binary],
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=preexec_fn,
        )
        self._pumps = [threading.Thread(target=self._pump, args=(pipe, sink), daemon=True)
                       for pipe, sink in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr))]
        for t in self._pumps:
            t.start()
        if wait:
            started = self.wait_log("server_started", timeout=60 if self.wrapper else 10)
            assert started is not None, f"chatd did not start: {self.stderr}"
            self.port = int(started["listen"].rsplit(":", 1)[1])
        return self

    def _pump(self, pipe, sink):
        """Reads one pipe into sink, line by line. Each read happens under _cond, so
        _drained() can tell when every byte written before it asked has been taken."""
        fd, rest = pipe.fileno(), b""
        while True:
            select.select([fd], [], [])
            with self._cond:
                data = os.read(fd, 1 << 16)
                if sink is self.stdout:
                    self._stdout_taken += len(data)
                if data:
                    *lines, rest = (rest + data).split(b"\n")
                else:
                    lines, rest = ([rest] if rest else []), b""
                    pipe.close()
                for raw in lines:
                    line = raw.decode("utf-8", "replace")
                    sink.append(line)
                    ALL_OUTPUT.append(line)
                self._cond.notify_all()
            if not data:
                return

    def _drained(self, timeout=5.0):
        """Waits until every stdout byte chatd wrote before this call is in self.stdout:
        a test that got its answer then sees each line chatd logged before sending it."""
        with self._cond:
            if self.proc is None or self.proc.stdout.closed:
                return
            try:
                pending = int.from_bytes(fcntl.ioctl(self.proc.stdout.fileno(), termios.FIONREAD, b"\0" * 4),
                                         "little")
            except OSError:  # the pump closed the pipe meanwhile
                return
            goal = self._stdout_taken + pending
            self._cond.wait_for(lambda: self._stdout_taken >= goal or self.proc.stdout.closed, timeout)

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=15):
        self.returncode = self.proc.wait(timeout)
        for t in self._pumps:  # both pipes read to their end: every last line is in
            t.join(5)
        return self.returncode

    def stop(self, sig=signal.SIGTERM):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.wait_exit(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("chatd did not stop within 30 s of SIGTERM")
        self.check_sanitizers()
        if self.expect_exit is not None:
            assert code == self.expect_exit, f"chatd exited {code}; stderr: {self.stderr[-20:]}"

    def check_sanitizers(self):
        reports = [l for l in self.stderr if any(m in l for m in SANITIZER_MARKERS)]
        assert not reports, "sanitizer report:\n" + "\n".join(self.stderr)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    # -- logs -----------------------------------------------------------------

    def logs(self, event=None, cid=None):
        self._drained()
        out = []
        with self._cond:
            lines = list(self.stdout)
        for line in lines:
            rec = json.loads(line)
            if event is not None and rec.get("event") != event:
                continue
            if cid is not None and rec.get("correlation_id") != cid:
                continue
            out.append(rec)
        return out

    def wait_log(self, event, timeout=5.0, **match):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.stdout:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    if rec.get("event") == event and all(rec.get(k) == v for k, v in match.items()):
                        return rec
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._pump_alive()):
                    return None
                self._cond.wait(min(left, 0.1))

    def _pump_alive(self):
        return not self.proc.stdout.closed

    def cpu_seconds(self) -> float:
        """User plus system CPU time the process has used."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kb(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


# -- raw HTTP over a socket ------------------------------------------------------


def connect(port, timeout=10.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return s


def request_bytes(method, path, body=b"", headers=None, content_type="application/json"):
    if isinstance(body, str):
        body = body.encode()
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    h = dict(headers or {})
    if content_type is not None and body:
        h.setdefault("Content-Type", content_type)
    if body or method == "POST":
        h.setdefault("Content-Length", str(len(body)))
    lines += [f"{k}: {v}" for k, v in h.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_head(sock) -> (int, Dict[str, str], bytes):
    """Reads a response head; returns status, lower-cased headers, bytes read past it."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            raise ConnectionError(f"closed before the response head: {data!r}")
        data += piece
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for l in lines[1:]:
        k, v = l.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    return status, headers, rest


UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
