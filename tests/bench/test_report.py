"""bench/report.py on a made-up run.sh output folder: the markdown tables carry the
numbers, --charts writes valid SVG naming every target, leaves out the charts whose
scenarios did not run, and says what to do when matplotlib is missing."""
import calendar
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPORT = os.path.join(ROOT, "bench", "report.py")
SVG = "{http://www.w3.org/2000/svg}"
DATE = "2031-04-05 06:07 UTC"
CHARTS = ["throughput.svg", "latency.svg", "memory.svg", "s3_duration.svg", "soak.svg"]


def loadgen(mode="openai", **kw):
    """One line of `loadgen --json`, with every key run.sh's loadgen writes."""
    r = {"mode": mode, "shape": "closed", "url": "http://127.0.0.1:1/chat", "concurrency": 64,
         "rate": 0, "streams": 0, "elapsed_s": 10.005, "started": 1000, "completed": 1000,
         "streams_per_s": 100.0, "ttfe_p50_ms": 1.0, "ttfe_p90_ms": 1.5, "ttfe_p99_ms": 2.0,
         "ttfe_max_ms": 3.0, "stream_p50_ms": 1.0, "stream_p99_ms": 2.0, "stream_max_ms": 3.0,
         "errors": 0, "err_http_status": 0, "err_connect": 0, "err_reset": 0, "err_timeout": 0,
         "err_upstream": 0, "invalid": 0, "incomplete": 0, "events": 21000,
         "content_events": 20000, "bytes": 2900000, "conns_opened": 64, "emfile": 0,
         "eaddrnotavail": 0, "queued": 0, "dropped": 0, "stray": 0, "first_failure": ""}
    r.update(kw)
    return json.dumps(r, separators=(",", ":")) + "\n"


def write(d, name, text):
    with open(os.path.join(d, name), "w") as f:
        f.write(text)


def s1(d):
    write(d, "S1.direct.json", loadgen(streams_per_s=30000.0, ttfe_p50_ms=1.11, ttfe_p99_ms=2.22))
    write(d, "S1.chatd.json", loadgen("chatd", streams_per_s=12345.6, ttfe_p50_ms=3.33,
                                      ttfe_p99_ms=4.44))
    write(d, "S1.portkey.json", loadgen(streams_per_s=555.2, ttfe_p50_ms=90.12,
                                        ttfe_p99_ms=210.34, errors=7))


def results(d):
    """S1, S2, S3 (two N) for direct, chatd and portkey; S8 for direct and chatd, as
    run.sh writes them (S8 runs only those two)."""
    s1(d)
    write(d, "S2.direct.json", loadgen(shape="open", rate=200, ttfe_p50_ms=0.05, ttfe_p99_ms=0.20,
                                       streams_per_s=199.0))
    write(d, "S2.chatd.json", loadgen("chatd", shape="open", rate=200, ttfe_p50_ms=0.48,
                                      ttfe_p99_ms=0.61, streams_per_s=198.0))
    write(d, "S2.portkey.json", loadgen(shape="open", rate=200, ttfe_p50_ms=29.69,
                                        ttfe_p99_ms=232.38, streams_per_s=197.0))
    # S3: (idle KB, KB per stream at 1000 and 4000, stream p50 ms at 1000 and 4000)
    for t, idle, kb, p50 in (("direct", 2000, (1.1, 1.1), (5010, 6220)),
                             ("chatd", 12000, (19.8, 20.6), (5150, 7990)),
                             ("portkey", 50000, (157.7, 46.2), (9890, 27210))):
        for n, k, ms in zip((1000, 4000), kb, p50):
            write(d, f"S3.{t}.{n}.lg", loadgen(shape="hold", concurrency=0, streams=n,
                                              started=n, completed=n, stream_p50_ms=ms,
                                              stream_max_ms=ms + 99))
            write(d, f"S3.{t}.{n}.res",
                  f'{{"n":{n},"rss_idle_kb":{idle},"rss_peak_kb":{idle + round(k * n)},'
                  f'"target_cpu_s":2.76,"fakeprov_cpu_s":1.81}}\n')
    for t, rss in (("direct", 4240), ("chatd", 58163)):
        write(d, f"S8.{t}.json", loadgen(concurrency=2000, completed=4000))
        # "seconds RSS-KB open-streams" about once a second; fakeprov has no stream gauge
        write(d, f"S8.{t}.series", "".join(
            f"{1.04 * s:.2f} {rss if s else 2400} {'-' if t == 'direct' else 2000 if s else 0}\n"
            for s in range(11)))
        write(d, f"S8.{t}.res", f'{{"n":2000,"duration_s":10,"start_at_s":6,'
                                f'"rss_after_kb":{rss},"rss_peak_kb":{rss + 100}}}\n')


def report(*args, env=None):
    return subprocess.run([sys.executable, REPORT, *map(str, args)], capture_output=True,
                          text=True, timeout=60, env=env)


def texts(path):
    """The root tag and every <text> of an SVG file (svg.fonttype none keeps text as text)."""
    root = ET.parse(path).getroot()
    return root.tag, " ".join("".join(t.itertext()) for t in root.iter(SVG + "text"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    results(d)
    return d


def test_tables_carry_the_numbers(run):
    r = report(run)
    assert r.returncode == 0, r.stderr
    md = r.stdout
    assert "| direct | 30000 | 1.00 | 1.11 | 2.22 | 0 | 0 |" in md
    assert "| chatd | 12346 | 0.41 | 3.33 | 4.44 | 0 | 0 |" in md
    assert "| portkey | 555 | 0.02 | 90.12 | 210.34 | 7 | 0 |" in md
    assert "| chatd | 0.48 | 0.61 | +0.43 | +0.41 | 198 | 0 | 0 |" in md
    assert "| portkey | 29.69 | 232.38 | +29.64 | +232.18 | 197 | 0 | 0 |" in md
    assert "| chatd | 4000 | 20.6 | 92.2 | 2.76 | 1.81 | 7.99 | 1.28 |" in md
    assert "| portkey | 1000 | 157.7 |" in md
    assert "| chatd | 2000 | 56.8 | 56.8 | +0.0 (+0.0 %) |" in md
    assert md.index("### S1") < md.index("### S2") < md.index("### S3") < md.index("### S8")


def test_charts(run, tmp_path):
    out = tmp_path / "charts"
    r = report(run, "--charts", out, "--date", DATE)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out)) == sorted(CHARTS)
    want = {"throughput.svg": ["direct", "chatd", "portkey", "12,346/s", "0.41 of direct",
                               "555/s", "0.02 of direct", "30,000/s", "streams/s (log scale)"],
            "latency.svg": ["S2 chatd", "S2 portkey", "p99 +0.41 ms", "p50 +29.64 ms",
                            "p99 +232.18 ms", "< 0.5 ms"],
            "memory.svg": ["direct", "chatd", "portkey", "20.6 KB", "46.2 KB", "10 KB"],
            "s3_duration.svg": ["chatd", "portkey", "1.285", "4.375", "1.02"],
            "soak.svg": ["direct", "chatd", "56.8 MB", "4.1 MB", "2,000 streams"]}
    for name, words in want.items():
        tag, text = texts(out / name)
        assert tag == SVG + "svg", name
        assert DATE in text, name
        for w in words:
            assert w in text, f"{name}: no {w!r} in {text!r}"
    assert "portkey" not in texts(out / "soak.svg")[1]  # S8 has no portkey run
    # Deterministic: the same results draw the same bytes.
    again = tmp_path / "again"
    assert report(run, "--charts", again, "--date", DATE).returncode == 0
    for name in CHARTS:
        assert (out / name).read_bytes() == (again / name).read_bytes(), name


def test_charts_only_for_scenarios_that_ran(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    s1(d)
    r = report(d, "--charts", tmp_path / "charts")
    assert r.returncode == 0, r.stderr
    assert os.listdir(tmp_path / "charts") == ["throughput.svg"]
    for name in CHARTS[1:]:
        assert f"{name}: not drawn, no results for it in {d}" in r.stdout
    # Without --date, the title has the newest result file's time.
    when = calendar.timegm((2031, 12, 2, 0, 0, 0))
    os.utime(d / "S1.chatd.json", (when, when))
    assert report(d, "--charts", tmp_path / "dated").returncode == 0
    assert "run of 2031-12-02 00:00 UTC" in texts(tmp_path / "dated" / "throughput.svg")[1]


def test_without_matplotlib(run, tmp_path):
    fake = tmp_path / "fake" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'matplotlib'\", name='matplotlib')\n")
    env = dict(os.environ, PYTHONPATH=str(fake.parent))
    r = report(run, "--charts", tmp_path / "charts", env=env)
    assert r.returncode == 2
    assert "matplotlib is missing" in r.stderr
    assert "apt-get install python3-matplotlib" in r.stderr and "make deps" in r.stderr
    assert not (tmp_path / "charts").exists()
    # The tables need no matplotlib.
    r = report(run, env=env)
    assert r.returncode == 0 and "| chatd | 12346 |" in r.stdout
