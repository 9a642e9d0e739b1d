"""chatd's own HTTP/1.1 client (src/services/h1.c) for providers named by a host
name, resolved on the worker's loop by evdns (src/services/h1_dns.c) against a
fake DNS server (fakedns.py) named by DNS_RESOLV_CONF: which client serves
them, the Host header, one lookup per TTL (not per request), an address that
changes, shared lookups, AAAA, NXDOMAIN reported as libcurl reports it, a
silent server bounded by the connect timeout, and an unusable resolv.conf."""

import threading
import time

import pytest

from conftest import post_chat
from fakedns import FakeDNS
from fakeprovider import FakeProvider, Status


@pytest.fixture
def dns():
    d = FakeDNS().start()
    yield d
    d.stop()


@pytest.fixture
def start_named(start_chatd, provider, dns, tmp_path):
    """chatd whose provider is http://<name>:<the fake provider's port>/v1."""

    def start(name="provider.test", env=None):
        full = {
            "OPENAI_BASE_URL": f"http://{name}:{provider.port}/v1",
            "DNS_RESOLV_CONF": dns.write_resolv_conf(tmp_path / "resolv.conf"),
            "LOG_LEVEL": "debug",
            "WORKERS": "1",
        }
        full.update(env or {})
        return start_chatd(full)

    return start


@pytest.fixture
def second_provider(provider):
    """Another fake provider at the same port on 127.0.0.2."""
    fp = FakeProvider(host="127.0.0.2", port=provider.port).start()
    yield fp
    fp.stop()


def pool_client(c):
    rec = c.wait_log("provider_pool_opened")
    assert rec is not None, "no provider_pool_opened log line"
    return rec["client"]


def final_error(r):
    assert r.status == 200
    final = r.final
    assert final["status"] == "error", final
    return final["error"]


def test_a_host_name_is_served_by_h1_with_one_lookup(start_named, provider, dns):
    dns.set("provider.test", a=["127.0.0.1"], ttl=60)
    c = start_named()
    for i in range(3):
        r = post_chat(c)
        assert r.status == 200 and r.content == "Hello world", i
    assert pool_client(c) == "h1"
    assert provider.requests[0].headers["Host"] == f"provider.test:{provider.port}"
    assert len({req.peer for req in provider.requests}) == 1  # one kept-alive connection
    assert dns.count("provider.test") == 1  # reused: no lookup; then the TTL holds
    assert dns.count("provider.test", "AAAA") == 0


def test_a_new_connection_after_the_ttl_asks_again_and_follows_the_change(
    start_named, provider, second_provider, dns
):
    dns.set("provider.test", a=["127.0.0.1"], ttl=1)
    c = start_named(env={"UPSTREAM_RETRIES": "0"})
    assert post_chat(c).content == "Hello world"
    assert post_chat(c).content == "Hello world"  # the kept connection: no lookup
    assert dns.count("provider.test") == 1
    # The provider closes the connection after its answer: the next request needs a new one.
    provider.then(Status(429, headers={"Connection": "close", "Retry-After": "7"}))
    assert final_error(post_chat(c))["error"] == "upstream_rate_limited"
    dns.set("provider.test", a=["127.0.0.2"], ttl=1)  # the Service moved
    time.sleep(1.5)  # past the TTL
    r = post_chat(c)
    assert r.status == 200 and r.content == "Hello world"
    assert dns.count("provider.test") == 2
    assert len(provider.requests) == 3 and len(second_provider.requests) == 1
    assert second_provider.requests[0].headers["Host"] == f"provider.test:{provider.port}"


def test_within_the_ttl_a_new_connection_needs_no_lookup(start_named, provider, dns):
    dns.set("provider.test", a=["127.0.0.1"], ttl=300)
    c = start_named(env={"UPSTREAM_RETRIES": "0"})
    provider.then(Status(429, headers={"Connection": "close", "Retry-After": "7"}))
    assert final_error(post_chat(c))["error"] == "upstream_rate_limited"
    assert post_chat(c).content == "Hello world"
    peers = [req.peer for req in provider.requests]
    assert peers[0] != peers[1]  # two connections, one lookup
    assert dns.count("provider.test") == 1


def test_calls_waiting_for_a_name_share_one_lookup(start_named, provider, dns):
    dns.set("provider.test", a=["127.0.0.1"], ttl=60)
    dns.delay = 0.5  # every call arrives while the first lookup is under way
    c = start_named()
    results = [None] * 4

    def run(i):
        results[i] = post_chat(c)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(r is not None and r.status == 200 and r.content == "Hello world" for r in results)
    assert len({req.peer for req in provider.requests}) >= 2  # they needed connections at once
    assert dns.count("provider.test") == 1


def test_a_name_with_only_aaaa_is_reached_over_ipv6(start_named, provider, dns):
    p6 = FakeProvider(host="::1", port=provider.port).start()
    try:
        dns.set("six.test", aaaa=["::1"], ttl=60)
        c = start_named("six.test")
        r = post_chat(c)
        assert r.status == 200 and r.content == "Hello world"
        assert len(p6.requests) == 1 and not provider.requests
        assert p6.requests[0].headers["Host"] == f"six.test:{provider.port}"
        assert dns.count("six.test", "A") == 1 and dns.count("six.test", "AAAA") == 1
    finally:
        p6.stop()


def test_nxdomain_is_the_error_libcurl_gives(start_named, start_chatd, provider, dns):
    # h1 asks the fake server, which knows no name; libcurl asks the system's resolver,
    # for which a name under .invalid does not exist either (RFC 6761).
    name = "nonexistent.invalid"
    env = {"UPSTREAM_RETRIES": "0"}
    ours = start_named(name, env)
    ours_err = final_error(post_chat(ours))
    assert pool_client(ours) == "h1"
    assert dns.count(name) >= 1
    theirs = start_chatd(
        {"OPENAI_BASE_URL": f"http://{name}:{provider.port}/v1", "UPSTREAM_NATIVE_HTTP": "false", **env}
    )
    theirs_err = final_error(post_chat(theirs))
    assert ours_err["error"] == theirs_err["error"] == "upstream_unreachable"
    assert ours_err["detail"] == theirs_err["detail"]
    assert f"Could not resolve host: {name}" in ours_err["detail"]
    assert not provider.requests


def test_a_silent_name_server_is_bounded_by_the_connect_timeout(start_named, provider, dns):
    dns.silent = True  # evdns itself would wait 5 s, 3 times
    c = start_named(env={"CONNECT_TIMEOUT_SECONDS": "1", "UPSTREAM_RETRIES": "0"})
    t0 = time.monotonic()
    err = final_error(post_chat(c))
    elapsed = time.monotonic() - t0
    assert err["error"] == "upstream_unreachable"
    assert "Resolving timed out after 1000 milliseconds" in err["detail"]
    assert elapsed < 8, elapsed  # 1 s asked; generous for a busy machine
    assert dns.count("provider.test") >= 1
    # The server wakes up: the next call gets an address (the lookup may be the old one).
    dns.silent = False
    dns.set("provider.test", a=["127.0.0.1"], ttl=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = post_chat(c)
        if r.status == 200 and r.final["status"] == "completed":
            break
        time.sleep(0.5)
    assert r.content == "Hello world"


@pytest.mark.parametrize("what", ["missing", "directory", "no_nameserver"])
def test_an_unusable_resolv_conf_means_libcurl_for_host_names(start_chatd, provider, tmp_path, what):
    path = tmp_path / "resolv.conf"
    if what == "directory":
        path.mkdir()
    elif what == "no_nameserver":
        path.write_text("search example.com\n")
    c = start_chatd(
        {
            "OPENAI_BASE_URL": f"http://provider.test:{provider.port}/v1",
            "DNS_RESOLV_CONF": str(path),
            "LOG_LEVEL": "debug",
            "WORKERS": "1",
            "UPSTREAM_RETRIES": "0",
        }
    )
    err = final_error(post_chat(c))  # libcurl asks the system, which knows no provider.test
    assert err["error"] == "upstream_unreachable"
    assert pool_client(c) == "libcurl"
    warn = c.wait_log("dns_unavailable")
    assert warn is not None and warn["level"] == "warning"
    assert str(path) in warn["reason"]
    assert "DNS_RESOLV_CONF" in warn["recovery_action"]
    assert len(c.logs("dns_unavailable")) == 1
    assert post_chat(c).final["status"] == "error"
    assert len(c.logs("dns_unavailable")) == 1  # said once


def test_localhost_asks_no_name_server(start_named, provider, dns):
    c = start_named("localhost")
    assert post_chat(c).content == "Hello world"
    assert pool_client(c) == "h1"
    assert dns.queries == []


def loopback_name_in_etc_hosts():
    """(address, name): a name other than localhost that /etc/hosts maps to a
    loopback IPv4 address (Debian maps the host name to 127.0.1.1, containers to
    127.0.0.1), or None."""
    try:
        lines = open("/etc/hosts").read().splitlines()
    except OSError:
        return None
    for line in lines:
        words = line.split("#")[0].split()
        if len(words) >= 2 and words[0].startswith("127."):
            for w in words[1:]:
                if w.lower() != "localhost" and not w.lower().endswith(".localhost"):
                    return words[0], w
    return None


def test_a_name_in_etc_hosts_asks_no_name_server(start_named, provider, dns):
    # chatd reads /etc/hosts itself (the path is fixed); this machine's file must map
    # some name to a loopback address (Debian and containers map the host name there).
    found = loopback_name_in_etc_hosts()
    if found is None:
        pytest.skip("/etc/hosts maps no name but localhost to a loopback address here")
    addr, name = found
    there = provider if addr == "127.0.0.1" else FakeProvider(host=addr, port=provider.port).start()
    try:
        c = start_named(name)
        r = post_chat(c)
        assert r.status == 200 and r.content == "Hello world"
        assert pool_client(c) == "h1"
        assert there.requests[0].headers["Host"] == f"{name}:{provider.port}"
        assert dns.queries == []
    finally:
        if there is not provider:
            there.stop()
