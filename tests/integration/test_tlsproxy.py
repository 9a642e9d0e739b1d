"""The TLS test fixture itself: nginx with a generated test CA in front of the fake
provider serves the stream to a client that trusts the CA, unbuffered, refuses a
client that does not, speaks HTTP/2 when asked, and is gone after stop()."""

import json
import os
import socket
import subprocess
import time

import httpx
import pytest

from fakeprovider import Stream
from tlsproxy import TLSProxy

BODY = json.dumps(
    {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
)


def curl(*args, timeout=30):
    return subprocess.run(
        ["curl", "-sS", "--no-progress-meter", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def tls(provider):
    proxy = TLSProxy(provider.base_url).start()
    yield proxy
    proxy.stop()


def test_stream_passes_with_the_ca(tls, provider):
    assert tls.base_url.startswith("https://127.0.0.1:") and tls.base_url.endswith("/v1")
    res = curl(
        "--cacert", tls.ca_file, "-N", "-H", "Content-Type: application/json",
        "-d", BODY, tls.base_url + "/chat/completions",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    datas = [l[len("data: ") :] for l in res.stdout.splitlines() if l.startswith("data: ")]
    assert datas[-1] == "[DONE]"
    text = "".join(
        c["choices"][0]["delta"].get("content") or ""
        for c in map(json.loads, datas[:-1])
        if c["choices"]
    )
    assert text == "Hello world"
    assert len(provider.requests) == 1
    assert provider.requests[0].path == "/v1/chat/completions"
    assert provider.requests[0].json["messages"][0]["content"] == "hi"
    # The name in the certificate is checked too: localhost is in it, another name is not.
    res = curl("--cacert", tls.ca_file, "-o", "/dev/null", "-w", "%{http_code}",
               "--resolve", f"localhost:{tls.port}:127.0.0.1",
               f"https://localhost:{tls.port}/v1/models")  # fmt: skip
    assert res.returncode == 0, res.stderr
    res = curl("--cacert", tls.ca_file, "-o", "/dev/null",
               "--resolve", f"example.com:{tls.port}:127.0.0.1",
               f"https://example.com:{tls.port}/v1/models")  # fmt: skip
    assert res.returncode == 60, (res.returncode, res.stderr)


def test_refused_without_the_ca(tls, provider):
    res = curl("-d", BODY, tls.base_url + "/chat/completions")
    assert res.returncode == 60, (res.returncode, res.stderr)  # peer certificate not trusted
    assert "certificate" in res.stderr
    assert provider.requests == []


def test_stream_is_not_buffered(tls, provider):
    """Tokens 1 s apart reach the client as they are written: the first content chunk
    arrives well before the stream ends (a buffering proxy would deliver all at once)."""
    provider.then(Stream(tokens=["a", "b", "c"], delay=1.0))
    arrivals = []
    with httpx.Client(verify=tls.ca_file, timeout=30) as client:
        with client.stream(
            "POST", tls.base_url + "/chat/completions", content=BODY,
            headers={"Content-Type": "application/json"},
        ) as resp:  # fmt: skip
            assert resp.status_code == 200
            for line in resp.iter_lines():
                line = line.rstrip("\r\n")  # some httpx versions keep the newline
                if line.startswith("data: ") and '"content": "a"' in line:
                    arrivals.append(("a", time.monotonic()))
                if line == "data: [DONE]":
                    arrivals.append(("done", time.monotonic()))
    assert [k for k, _ in arrivals] == ["a", "done"]
    assert arrivals[1][1] - arrivals[0][1] > 1.5


def test_http2_multiplexes_on_one_connection(provider):
    provider.always(Stream(tokens=["x", "y"], delay=0.3))
    with TLSProxy(provider.base_url, http2=True) as tls:
        url = tls.base_url + "/chat/completions"
        each = [
            "--cacert", tls.ca_file, "--http2", "-H", "Content-Type: application/json",
            "-d", BODY, "-o", "/dev/null",
            "-w", "%{http_version} %{response_code} %{num_connects}\\n", url,
        ]  # fmt: skip
        res = curl("--parallel", "--parallel-max", "2", *each, "--next", *each)
        assert res.returncode == 0, res.stderr
        rows = [line.split() for line in res.stdout.splitlines()]
        assert [r[:2] for r in rows] == [["2", "200"], ["2", "200"]]
        assert sum(int(r[2]) for r in rows) == 1  # both streams on one TLS connection
        assert len(provider.requests) == 2


def test_stop_ends_nginx(provider):
    tls = TLSProxy(provider.base_url).start()
    pid, port, directory = tls.pid(), tls.port, tls.dir
    assert pid == tls.proc.pid
    tls.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert not os.path.exists(directory)
