"""Turns the JSON files that bench/run.sh leaves in its output folder into
markdown tables: one per scenario, every target beside the direct floor.

usage: report.py DIR [--charts OUTDIR [--date TEXT]]
--charts writes SVG charts (bench/charts.py) into OUTDIR instead of the tables."""
import argparse
import glob
import json
import os
import sys


def load(path):
    try:
        with open(path) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None


def order(names):
    return sorted(names, key=lambda t: (t != "direct", t))


def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "—"


def bad(r):
    return r["invalid"] + r["incomplete"]


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


THROUGHPUT_HEAD = ["target", "streams/s", "÷ direct", "first event p50 ms", "p99 ms", "errors",
                   "invalid+incomplete"]
ADDED_HEAD = ["target", "first event p50 ms", "p99 ms", "added p50 ms", "added p99 ms",
              "streams/s", "errors", "invalid+incomplete"]


def results(d, scenario):
    """The scenario's results by target name, from <d>/<scenario>.<target>.json."""
    return {os.path.basename(p).split(".")[1]: load(p) for p in glob.glob(f"{d}/{scenario}.*.json")}


def throughput_rows(res):
    """Streams/s of each target beside direct's (S1, S5)."""
    base = (res.get("direct") or {}).get("streams_per_s")
    rows = []
    for t in order(res):
        r = res[t]
        if r is None:
            rows.append([t, "no result"] + [""] * 5)
            continue
        rows.append([t, f"{r['streams_per_s']:.0f}", ratio(r["streams_per_s"], base),
                     f"{r['ttfe_p50_ms']:.2f}", f"{r['ttfe_p99_ms']:.2f}", r["errors"], bad(r)])
    return rows


def added_rows(res):
    """Time to first event of each target and what it adds to direct's (S2, S6)."""
    base = res.get("direct")
    rows = []
    for t in order(res):
        r = res[t]
        if r is None:
            rows.append([t, "no result"] + [""] * 6)
            continue
        add50 = f"{r['ttfe_p50_ms'] - base['ttfe_p50_ms']:+.2f}" if base else "—"
        add99 = f"{r['ttfe_p99_ms'] - base['ttfe_p99_ms']:+.2f}" if base else "—"
        rows.append([t, f"{r['ttfe_p50_ms']:.2f}", f"{r['ttfe_p99_ms']:.2f}", add50, add99,
                     f"{r['streams_per_s']:.0f}", r["errors"], bad(r)])
    return rows


def s1(d):
    res = results(d, "S1")
    if not res:
        return None
    return ("### S1 throughput — 20-token streams, no delay, 64 keep-alive connections\n\n" +
            table(THROUGHPUT_HEAD, throughput_rows(res)))


def s2(d):
    res = results(d, "S2")
    if not res:
        return None
    return ("### S2 added latency — open loop 200 streams/s, 20 tokens 5 ms apart\n\n" +
            table(ADDED_HEAD, added_rows(res)))


def s3(d):
    runs = {}
    for p in glob.glob(f"{d}/S3.*.res"):
        _, t, n, _ = os.path.basename(p).split(".")
        res, lg = load(p), load(p[:-4] + ".lg")
        if res:
            runs[(t, int(n))] = (res, lg)
    if not runs:
        return None
    rows = []
    for t in order({k[0] for k in runs}):
        for n in sorted(k[1] for k in runs if k[0] == t):
            res, lg = runs[(t, n)]
            kb = (res["rss_peak_kb"] - res["rss_idle_kb"]) / n
            if lg is None:
                rows.append([t, n, f"{kb:.1f}", "", "", "", "no loadgen result"] + [""] * 5)
                continue
            dlg = (runs.get(("direct", n)) or (None, None))[1]
            if lg["completed"] == 0:  # no valid stream: durations would read 0
                rows.append([t, n, f"{kb:.1f}", f"{res['rss_peak_kb'] / 1024:.1f}",
                             f"{res['target_cpu_s']:.2f}", f"{res['fakeprov_cpu_s']:.2f}",
                             "none completed", "—", "—", "—", f"{lg['elapsed_s']:.1f}",
                             lg["errors"], bad(lg)])
                continue
            p50, mx = lg["stream_p50_ms"] / 1000, lg["stream_max_ms"] / 1000
            rows.append([t, n, f"{kb:.1f}", f"{res['rss_peak_kb'] / 1024:.1f}",
                         f"{res['target_cpu_s']:.2f}", f"{res['fakeprov_cpu_s']:.2f}",
                         f"{p50:.2f}", ratio(p50, dlg and dlg["stream_p50_ms"] / 1000),
                         f"{mx:.2f}", ratio(mx, dlg and dlg["stream_max_ms"] / 1000),
                         f"{lg['elapsed_s']:.1f}", lg["errors"], bad(lg)])
    return ("### S3 concurrency — N streams at once, 100 tokens 50 ms apart (5 s streams)\n\n"
            "KB/stream = (peak RSS − idle RSS) / N; CPU = utime+stime during the run. "
            "For `direct` the target *is* fakeprov.\n\n" +
            table(["target", "N", "KB/stream", "peak RSS MB", "target CPU s", "fakeprov CPU s",
                   "stream p50 s", "÷ direct", "stream max s", "÷ direct", "all done in s",
                   "errors", "invalid+incomplete"], rows))


def s4(d):
    runs = {}
    for p in glob.glob(f"{d}/S4.*.json"):
        _, t, n, _ = os.path.basename(p).split(".")
        runs[(t, int(n))] = load(p)
    if not runs:
        return None
    rows = []
    for n in sorted({k[1] for k in runs}):
        for t in order({k[0] for k in runs if k[1] == n}):
            r = runs[(t, n)]
            if r is None or r["completed"] == 0:
                rows.append([n, t, "no result" if r is None else "none completed"] + [""] * 6)
                continue
            rows.append([n, t, f"{r['ttfe_p50_ms']:.1f}", f"{r['ttfe_p99_ms']:.1f}",
                         f"{r['ttfe_max_ms']:.1f}", f"{r['stream_p50_ms'] / 1000:.2f}",
                         f"{r['stream_max_ms'] / 1000:.2f}", r["errors"], bad(r)])
    return ("### S4 cold burst — a fresh target, N streams released at once; the provider "
            "sends its first token at once, then one every 300 ms (10 tokens, 2.7 s)\n\n"
            "A first token far below one generation (2.7 s) means no stream waited for "
            "another.\n\n" +
            table(["N", "target", "first event p50 ms", "p99 ms", "max ms", "stream p50 s",
                   "stream max s", "errors", "invalid+incomplete"], rows))


def s5(d):
    res = results(d, "S5")
    if not res:
        return None
    s1chatd = load(f"{d}/S1.chatd.json")
    rows = throughput_rows(res)
    note = ""
    if s1chatd and res.get("chatd-v1") and s1chatd["streams_per_s"]:
        note = (f"\n\n/v1 ÷ /chat (S1, same run): "
                f"{res['chatd-v1']['streams_per_s'] / s1chatd['streams_per_s']:.2f}")
    return ("### S5 /v1/chat/completions streaming — S1's load (20 tokens, no delay, 64 "
            "connections), OpenAI events relayed, ending in `data: [DONE]`\n\n" +
            table(THROUGHPUT_HEAD, rows) + note)


def s6(d):
    res = results(d, "S6")
    if not res:
        return None
    rows = added_rows(res)
    return ("### S6 fallback after a refused connect — 100 streams/s, 20 tokens 5 ms apart; "
            "`chatd-fallback`'s model tries a port where nothing listens, then fakeprov "
            "(UPSTREAM_RETRIES=0, breaker never opens)\n\n" +
            table(ADDED_HEAD, rows))


def prom(path):
    """The samples of a saved /metrics text as {"name{labels}": value}."""
    out = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and not line.startswith("#"):
                    out[parts[0]] = float(parts[1])
    except (OSError, ValueError):
        pass
    return out


S7_TARGETS = {"direct": "direct (fakeprov)", "chatd-nolimit": "chatd, no key",
              "chatd-key": "chatd, limited key, in-process", "chatd-redis": "chatd, limited key, Redis"}
S7_GOALS = {"chatd-key": 0.95, "chatd-redis": 0.7}


def s7(d):
    res = {os.path.basename(p).split(".")[1]: load(p) for p in glob.glob(f"{d}/S7.*.json")}
    if not res:
        return None
    base = (res.get("chatd-nolimit") or {}).get("streams_per_s")
    b_cpu, b_done = load(f"{d}/S7.chatd-nolimit.res"), (res.get("chatd-nolimit") or {}).get("completed")
    base_us = 1e6 * b_cpu["target_cpu_s"] / b_done if b_cpu and b_done else None
    rows = []
    for t in sorted(res, key=lambda t: list(S7_TARGETS).index(t) if t in S7_TARGETS else 9):
        r, m = res[t], prom(f"{d}/S7.{t}.metrics")
        if r is None:
            rows.append([S7_TARGETS.get(t, t), "no result"] + [""] * 8)
            continue
        q = ratio(r["streams_per_s"], base) if t != "direct" else "—"
        if t in S7_GOALS and q != "—":
            q += f" ({'met' if float(q) >= S7_GOALS[t] else 'missed'}: ≥ {S7_GOALS[t]})"
        cpu, us = load(f"{d}/S7.{t}.res"), "—"
        if cpu and r["completed"]:
            us = f"{1e6 * cpu['target_cpu_s'] / r['completed']:.0f}"
            if cpu["redis_cpu_s"]:
                us += f" + Redis {1e6 * cpu['redis_cpu_s'] / r['completed']:.0f}"
            if base_us and t != "direct":
                us += f" ({base_us / (1e6 * cpu['target_cpu_s'] / r['completed']):.2f})"
        n = m.get("chatd_redis_round_trip_seconds_count", 0)
        rtt = f"{n:.0f}, mean {1000 * m['chatd_redis_round_trip_seconds_sum'] / n:.3f} ms" if n else "—"
        refused = sum(v for k, v in m.items() if k.startswith("chatd_limit_refused_total"))
        rows.append([S7_TARGETS.get(t, t), f"{r['streams_per_s']:.0f}", q, us,
                     f"{r['ttfe_p50_ms']:.2f}", f"{r['ttfe_p99_ms']:.2f}", rtt,
                     f"{refused:.0f}" if m else "—", r["errors"], bad(r)])
    return ("### S7 limited key — S1's load (20 tokens, no delay, 64 connections) with a "
            "client key whose limits are set but never reached; Redis on loopback "
            "(fail-closed: a late answer would be a 503 error). CPU µs/stream = the "
            "target's utime+stime during the run ÷ completed streams (in brackets: no key's "
            "÷ this one, the throughput ratio if the target were alone on its core)\n\n" +
            table(["target", "streams/s", "÷ no key", "CPU µs/stream", "first event p50 ms", "p99 ms",
                   "Redis round trips", "refused", "errors", "invalid+incomplete"], rows))


def series(path):
    """S8's samples: (seconds, RSS KB, open streams or None) per line."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) == 3 and p[1].isdigit():
                    out.append((float(p[0]), int(p[1]), int(float(p[2])) if p[2] != "-" else None))
    except (OSError, ValueError):
        pass
    return out


def s8(d):
    rows = []
    for p in sorted(glob.glob(f"{d}/S8.*.res"), key=lambda p: p.split(".")[-2] != "direct"):
        t = os.path.basename(p).split(".")[1]
        res, lg, ser = load(p), load(p[:-4] + ".json"), series(p[:-4] + ".series")
        steady = [s for s in ser if res and res["start_at_s"] <= s[0] <= res["duration_s"] - 0.5]
        if not res or lg is None or len(steady) < 2:
            rows.append([t, "no result"] + [""] * 9)
            continue
        (_, r0, a0), (_, r1, a1) = steady[0], steady[-1]
        lo, hi = min(s[1] for s in steady), max(s[1] for s in steady)
        rows.append([t, res["n"], f"{r0 / 1024:.1f}", f"{r1 / 1024:.1f}",
                     f"{(r1 - r0) / 1024:+.1f} ({100 * (r1 - r0) / r0:+.1f} %)",
                     f"{lo / 1024:.1f}–{hi / 1024:.1f}", "—" if a0 is None else f"{a0} / {a1}",
                     f"{res['rss_after_kb'] / 1024:.1f}", lg["completed"], lg["errors"], bad(lg)])
    if not rows:
        return None
    return ("### S8 soak — N streams kept open (closed loop, 5 s streams of 50 tokens 100 ms "
            "apart), RSS sampled each second; start = first sample after 6 s, end = last "
            "sample before the load stops starting streams\n\n" +
            table(["target", "N", "RSS start MB", "RSS end MB", "growth", "RSS range MB",
                   "open streams start / end", "RSS after MB", "streams", "errors",
                   "invalid+incomplete"], rows))


def charts(d, outdir, date):
    """Draws the SVG charts (bench/charts.py) and prints their paths; exits 2 without matplotlib."""
    try:
        import charts as ch
    except ImportError as e:
        if not (e.name or "").startswith("matplotlib"):
            raise
        print(f"report.py: cannot draw the charts: Python module {e.name} is missing. "
              "They are drawn with Debian's python3-matplotlib. "
              "Install it: apt-get install python3-matplotlib (or make deps).", file=sys.stderr)
        sys.exit(2)
    for name, path in ch.draw(d, outdir, date).items():
        print(path if path else f"{name}: not drawn, no results for it in {d}")


def main():
    ap = argparse.ArgumentParser(description="Markdown tables of a bench/run.sh output folder, "
                                 "or with --charts its SVG charts.")
    ap.add_argument("dir", help="run.sh's output folder")
    ap.add_argument("--charts", metavar="OUTDIR", help="write SVG charts there instead of tables")
    ap.add_argument("--date", help="the run's date in the chart titles (default: the newest "
                    "result file's mtime)")
    a = ap.parse_args()
    if a.charts:
        return charts(a.dir, a.charts, a.date)
    d = a.dir
    parts = [p for p in (s1(d), s2(d), s3(d), s4(d), s5(d), s6(d), s7(d), s8(d)) if p]
    print("\n\n".join(parts) if parts else "(no results)")


if __name__ == "__main__":
    main()
