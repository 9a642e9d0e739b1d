"""A provider removed by a reload keeps serving the streams that started on it,
and its connections are closed once the last of them has ended (issue 13)."""

import json
import signal
import threading

from conftest import post_chat
from fakeprovider import FakeProvider, Stream


def established_to(port):
    """TCP connections in ESTABLISHED state whose remote end is 127.0.0.1:port."""
    n = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            remote, state = fields[2], fields[3]
            if state == "01" and remote == "0100007F:%04X" % port:
                n += 1
    return n


def config(*providers):
    return {
        "providers": [{"name": name, "base_url": fp.base_url} for name, fp in providers],
        "models": [{"name": "m", "targets": [{"provider": providers[0][0], "model": "m"}]}],
        "default_model": "m",
    }


def test_removed_provider_pool_closes_after_its_last_stream(start_chatd, tmp_path):
    a, b = FakeProvider().start(), FakeProvider().start()
    try:
        path = tmp_path / "chatd.json"
        path.write_text(json.dumps(config(("a", a), ("b", b))))
        c = start_chatd({"CHATD_CONFIG": str(path), "OPENAI_BASE_URL": None, "WORKERS": "1"})
        assert post_chat(c, message="warm up the pool").status == 200  # one idle connection to a
        assert established_to(a.port) >= 1
        a.then(Stream(tokens=[f"t{i} " for i in range(8)], delay=0.25))  # a 2 s stream
        result = {}
        t = threading.Thread(target=lambda: result.update(r=post_chat(c, message="slow one")))
        t.start()
        assert a.wait_requests(2)
        path.write_text(json.dumps(config(("b", b))))  # a leaves the configuration
        c.send_signal(signal.SIGHUP)
        assert c.wait_log("config_reloaded", timeout=10)
        new = post_chat(c, message="after the reload")
        assert new.status == 200 and new.final["provider"] == "b"
        assert c.logs("provider_pool_closed") == []  # a's stream is still open
        t.join(15)
        old = result["r"]
        assert old.status == 200 and old.final["status"] == "completed"
        assert old.final["provider"] == "a"
        closed = c.wait_log("provider_pool_closed", timeout=5)
        assert closed is not None and closed["pool"].startswith("a\n")
        assert a.wait_for(lambda: established_to(a.port) == 0, timeout=5)
        assert established_to(b.port) >= 1  # b's pool lives on
    finally:
        a.stop()
        b.stop()
