"""A TLS front for the fake provider: a real nginx terminating TLS with a test CA.

TLSProxy(upstream_url) generates, with the openssl CLI and into a temporary
directory, a test CA and a server certificate for 127.0.0.1 and localhost signed
by it; start() writes an nginx configuration into the same directory (its own
prefix, pid file, error log and temp paths; no daemon) that listens on a free
127.0.0.1 port and proxies, unbuffered, to the upstream (SSE passes through as it
is written), and returns once the port accepts. stop() ends nginx by its PID and
waits for it. Use `.base_url` (https://127.0.0.1:PORT/v1) as a provider's
base_url and `.ca_file` as its ca_file.

    with TLSProxy(provider.base_url) as tls:
        ... tls.base_url, tls.ca_file ...

http2=True also offers HTTP/2 (ALPN) on the listener, to test multiplexing.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from urllib.parse import urlsplit

from fakeprovider import free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"

CONF = """\
daemon off;
master_process on;
worker_processes 1;
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log info;

events {{
    worker_connections 1024;
}}

http {{
    access_log off;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;

    upstream provider {{
        server {upstream};
        keepalive 16;
    }}

    server {{
        listen 127.0.0.1:{port} ssl{http2};
        server_name localhost 127.0.0.1;
        ssl_certificate {dir}/server.pem;
        ssl_certificate_key {dir}/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;

        location / {{
            proxy_pass http://provider;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
        }}
    }}
}}
"""


def _openssl(*args, cwd):
    res = subprocess.run([OPENSSL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {res.stderr.strip()}")


def make_certificates(directory):
    """Writes ca.pem/ca.key (a test CA) and server.pem/server.key (127.0.0.1, localhost)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=chatd test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1",
        cwd=directory,
    )  # fmt: skip
    with open(os.path.join(directory, "server.ext"), "w") as f:
        f.write(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\n"
        )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
        cwd=directory,
    )  # fmt: skip


class TLSProxy:
    def __init__(self, upstream_url, http2=False):
        u = urlsplit(upstream_url)
        if u.scheme != "http" or not u.hostname:
            raise ValueError(f"upstream must be http://host:port[/path], not {upstream_url!r}")
        self.upstream = f"{u.hostname}:{u.port or 80}"
        self.path = u.path.rstrip("/")  # kept: https://127.0.0.1:PORT<path>
        self.http2 = http2
        self.dir = tempfile.mkdtemp(prefix="chatd-tls-")
        self.ca_file = os.path.join(self.dir, "ca.pem")
        self.error_log = os.path.join(self.dir, "error.log")
        self.port = None
        self.proc = None

    @property
    def origin(self):
        return f"https://127.0.0.1:{self.port}"

    @property
    def base_url(self):
        return self.origin + self.path

    def start(self, timeout=10.0):
        # The workers read nothing from here but temp files; when run as root they
        # would drop to nobody, so stay the same user and keep the directory readable.
        os.chmod(self.dir, 0o755)
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        make_certificates(self.dir)
        for _ in range(3):  # a free port can be taken before nginx binds it
            self.port = free_port()
            if self._launch(timeout):
                return self
        raise RuntimeError(f"nginx did not start: {self._log_tail()}")

    def _launch(self, timeout):
        user = "user root;" if os.geteuid() == 0 else ""
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(
                CONF.format(
                    dir=self.dir,
                    user=user,
                    upstream=self.upstream,
                    port=self.port,
                    http2=" http2" if self.http2 else "",
                )
            )
        self.proc = subprocess.Popen(
            [NGINX, "-p", self.dir, "-c", conf, "-e", self.error_log],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if "Address already in use" in self._log_tail():
                    self.proc = None
                    return False
                raise RuntimeError(f"nginx exited with {self.proc.returncode}: {self._log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not accept on port {self.port} within {timeout} s")

    def _log_tail(self):
        try:
            with open(self.error_log) as f:
                return "".join(f.readlines()[-5:]).strip()
        except OSError:
            return "(no error log)"

    def pid(self):
        """The master's PID as nginx wrote it."""
        with open(os.path.join(self.dir, "nginx.pid")) as f:
            return int(f.read().strip())

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGTERM)  # fast shutdown; the master reaps its workers
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.kill(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(10)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
