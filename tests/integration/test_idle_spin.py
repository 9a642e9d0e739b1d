"""IDLE_SPIN_MICROSECONDS: a worker with open streams polls for a while before it
sleeps. Streams must be relayed exactly as without it, and chatd must not burn CPU
when it has no streams, nor keep spinning while its open streams are silent.
(No timing assertions: CPU bounds are generous for a shared 2-core machine.)"""

import threading
import time

import httpx

from conftest import post_chat
from fakeprovider import Stream


def cpu_share(c, seconds):
    """The share of one core chatd used over the next `seconds`."""
    cpu0, t0 = c.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    return (c.cpu_seconds() - cpu0) / (time.monotonic() - t0)


def test_streams_are_relayed_whole_with_the_spin_on(start_chatd, provider):
    tokens = [f"w{i} " for i in range(40)]
    provider.always(Stream(tokens=tokens, delay=0.002))
    c = start_chatd({"IDLE_SPIN_MICROSECONDS": "1000", "WORKERS": "1"})
    assert c.wait_log("server_started")["idle_spin_microseconds"] == 1000
    results = []

    def one(i):
        results.append(post_chat(c, message=f"spin stream {i}"))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 8
    for r in results:
        assert r.status == 200
        assert r.content == "".join(tokens)
        assert [e["sequence"] for e in r.events] == list(range(len(tokens) + 1))
        assert r.final["status"] == "completed"
    # Tokens further apart than the spin: the worker sleeps between them and still
    # relays each one.
    provider.always(Stream(tokens=["slow", " one"], delay=0.05))
    r = post_chat(c, message="spin stream slow")
    assert r.status == 200 and r.content == "slow one"


def test_idle_chatd_with_the_longest_spin_uses_no_cpu(start_chatd):
    """No open stream: no spin, even though /health requests keep waking the worker
    (each would start a 100 ms spin if the worker spun without streams)."""
    c = start_chatd({"IDLE_SPIN_MICROSECONDS": "100000", "WORKERS": "1"})
    assert post_chat(c, message="one stream, then none").status == 200
    stop = threading.Event()

    def poll_health():
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                assert client.get(c.url + "/health").status_code == 200
                stop.wait(0.05)

    poller = threading.Thread(target=poll_health)
    poller.start()
    try:
        used = cpu_share(c, 3.0)
    finally:
        stop.set()
        poller.join(15)
    assert used < 0.05, f"chatd used {used:.0%} of a core with no open stream"


def test_a_silent_open_stream_does_not_keep_the_worker_spinning(start_chatd, provider):
    provider.then(Stream(tokens=["late"], first_delay=4.0))
    c = start_chatd({"IDLE_SPIN_MICROSECONDS": "20000", "WORKERS": "1"})
    result = []
    t = threading.Thread(target=lambda: result.append(post_chat(c, message="wait for it")))
    t.start()
    assert provider.wait_requests(1, timeout=10)
    used = cpu_share(c, 2.5)  # the stream is open; the provider sends nothing yet
    t.join(30)
    assert result and result[0].status == 200 and result[0].content == "late"
    assert used < 0.05, f"chatd used {used:.0%} of a core while its one stream was silent"
