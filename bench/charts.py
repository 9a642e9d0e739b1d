"""SVG charts of a bench/run.sh output folder, for `report.py DIR --charts OUTDIR`:
throughput.svg (S1, S5, S7), latency.svg (S2, S6), memory.svg and s3_duration.svg
(S3), soak.svg (S8). A chart whose scenarios have no results is not written.

matplotlib (Debian's python3-matplotlib) draws them with the Agg backend; the SVG is
deterministic (fixed hash salt, no date) and keeps its text as <text> elements."""
import glob
import os
import textwrap
import time

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402  (after the backend is chosen)
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

import report as rp  # noqa: E402

matplotlib.rcParams.update({
    "svg.hashsalt": "chatd-bench", "svg.fonttype": "none", "font.size": 9,
    "font.family": "sans-serif", "axes.spines.top": False, "axes.spines.right": False,
    "axes.titlesize": 10, "axes.titleweight": "bold", "legend.fontsize": 8,
    "legend.frameon": False})

# chatd (and its variants: chatd-v1, chatd-key, ...) is the same blue in every chart.
CHATD = "#1f66b0"
COLORS = {"chatd-curl": "#7fb3e0", "direct": "#8a8a8a", "seed-fastapi": "#e07b12", "portkey": "#2e9b3e"}
OTHER = ["#8e44ad", "#b03a2e", "#16a085"]
GOAL = "#c0392b"
LABELS = {"chatd-v1": "chatd /v1", "chatd-curl": "chatd, libcurl client", **{k: v for k, v in rp.S7_TARGETS.items() if k != "direct"}}


def color(t):
    if t in COLORS:
        return COLORS[t]
    if t.startswith("chatd"):
        return CHATD
    return COLORS.get(t) or OTHER[sum(map(ord, t)) % len(OTHER)]


def label(t):
    return LABELS.get(t, t)


def run_date(d):
    """The newest result file's mtime, as "2026-12-02 01:20 UTC"."""
    files = glob.glob(f"{d}/S[1-8].*")
    if not files:
        return "unknown date"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(max(map(os.path.getmtime, files))))


def spread(values):
    """Largest ÷ smallest magnitude (nonzero), for choosing a log scale."""
    mags = [abs(v) for v in values if v]
    return max(mags) / min(mags) if mags else 1


def figure(rows, title, sub, date):
    """A figure of one axes sized for `rows` bars or points, titled in two lines."""
    fig = Figure(figsize=(8, max(3, 1.9 + 0.3 * rows)))
    ax = fig.add_subplot()
    fig.suptitle(title, x=0.01, ha="left", fontsize=11, fontweight="bold")
    ax.set_title(textwrap.fill(f"{sub} · run of {date}", 100), loc="left", fontsize=8,
                 fontweight="normal", color="#444444")
    return fig, ax


def legend(ax, handles=None):
    """The legend at the figure's bottom, out of the data's way (save() leaves room)."""
    ax.figure.legend(handles=handles or ax.get_legend_handles_labels()[0], loc="lower left",
                     bbox_to_anchor=(0.01, 0.01), ncol=4)


def save(fig, outdir, name):
    path = os.path.join(outdir, name)
    fig.tight_layout(rect=(0, 0.32 / fig.get_figheight() if fig.legends else 0, 1, 1))
    fig.savefig(path, format="svg", metadata={"Date": None})
    return path


def bold_chatd(ax, names):
    """chatd's tick labels in bold: the chart's subject stands out."""
    for tick, t in zip(ax.get_yticklabels(), names):
        if t.startswith("chatd"):
            tick.set_fontweight("bold")


THROUGHPUT = {"S1": "S1 POST /chat", "S5": "S5 POST /v1/chat/completions",
              "S7": "S7 /chat with a limited key"}


def throughput(d, outdir, date):
    rows, secs = [], []  # (scenario, target, streams/s, direct's streams/s); run lengths
    for sc in THROUGHPUT:
        res = {t: r for t, r in rp.results(d, sc).items() if r and r["streams_per_s"]}
        base = (res.get("direct") or {}).get("streams_per_s")
        names = (sorted(res, key=lambda t: list(rp.S7_TARGETS).index(t)
                        if t in rp.S7_TARGETS else 9) if sc == "S7" else rp.order(res))
        rows += [(sc, t, res[t]["streams_per_s"], base) for t in names]
        secs += [r["elapsed_s"] for r in res.values()]
    if not rows:
        return None
    top = max(r[2] for r in rows)
    fig, ax = figure(len(rows), "Throughput: streams per second (higher is better)",
                     f"20-token streams, no delay, 64 keep-alive connections, {max(secs):.0f} s "
                     "per target; the target on CPU 0, load and provider on CPU 1", date)
    y, ys, prev = 0, [], None
    for sc, t, v, base in rows:
        y += 0.6 if prev and prev != sc else 0  # a gap between scenarios
        ys.append(y)
        prev = sc
        y += 1
    ax.barh(ys, [r[2] for r in rows], color=[color(r[1]) for r in rows], height=0.75)
    log = spread([r[2] for r in rows]) > 20
    for yy, (sc, t, v, base) in zip(ys, rows):
        text = f"{v:,.0f}/s"
        if base and t != "direct":
            text += f"  ({v / base:.2f} of direct)"
        ax.text(v * 1.04 if log else v + top * 0.01, yy, text, va="center", fontsize=8)
    ax.set_yticks(ys, [f"{sc} {label(t)}" for sc, t, _, _ in rows])
    bold_chatd(ax, [r[1] for r in rows])
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
        ax.set_xlim(min(r[2] for r in rows) / 2, top * 8)
    else:
        ax.set_xlim(0, top * 1.35)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xlabel("streams/s" + (" (log scale)" if log else "") + " · " +
                  ", ".join(THROUGHPUT[sc] for sc in dict.fromkeys(r[0] for r in rows)))
    return save(fig, outdir, "throughput.svg")


LATENCY = {"S2": "S2 open loop 200 streams/s",
           "S6": "S6 100 streams/s, a model whose first target refuses the connection"}


def latency(d, outdir, date):
    rows, direct, secs = [], [], []  # (scenario, target, added p50 ms, added p99 ms)
    for sc in LATENCY:
        res = {t: r for t, r in rp.results(d, sc).items() if r and r["completed"]}
        base = res.get("direct")
        if not base:
            continue  # nothing to add to
        direct.append(f"{sc} {base['ttfe_p50_ms']:.2f} / {base['ttfe_p99_ms']:.2f}")
        secs += [r["elapsed_s"] for r in res.values()]
        rows += [(sc, t, res[t]["ttfe_p50_ms"] - base["ttfe_p50_ms"],
                  res[t]["ttfe_p99_ms"] - base["ttfe_p99_ms"])
                 for t in rp.order(res) if t != "direct"]
    if not rows:
        return None
    fig, ax = figure(2 * len(rows), "Added time to first event: target's minus direct's, ms "
                     "(lower is better)", f"20 tokens 5 ms apart, {max(secs):.0f} s per target; "
                     "time to first event p50 / p99 of direct itself, ms: " + ", ".join(direct),
                     date)
    ys = [1.2 * i for i in range(len(rows))]
    values = [v for r in rows for v in r[2:]]
    big = max(abs(v) for v in values) or 1
    log = spread(values) > 20
    for k, (name, hatch, alpha) in enumerate((("p50", "//", 0.45), ("p99", None, 1.0))):
        pos = [yy - 0.2 + 0.4 * k for yy in ys]
        vals = [r[2 + k] for r in rows]
        ax.barh(pos, vals, height=0.38, color=[color(r[1]) for r in rows], alpha=alpha,
                hatch=hatch, edgecolor="white", label=name)
        for p, v in zip(pos, vals):
            ax.text(v * 1.06 if log and v > 0 else max(v, 0) + big * 0.01, p,
                    f"{name} {v:+.2f} ms", va="center", fontsize=7.5)
    ax.axvline(0.5, color=GOAL, linestyle="--", linewidth=1,
               label="goal: chatd adds < 0.5 ms at p99 (S2)")
    ax.set_yticks(ys, [f"{sc} {label(t)}" for sc, t, _, _ in rows])
    bold_chatd(ax, [r[1] for r in rows])
    ax.invert_yaxis()
    if log:
        ax.set_xscale("symlog", linthresh=0.1)
        ax.set_xlim(min(0, min(values) * 2), big * 20)
    else:
        ax.set_xlim(min(0, min(values) * 1.2), max(big, 0.5) * 1.45)
    ax.set_xlabel("added ms" + (" (symlog scale: linear below 0.1 ms)" if log else "") + " · " +
                  ", ".join(LATENCY[sc] for sc in dict.fromkeys(r[0] for r in rows)))
    legend(ax, [Patch(facecolor="#999999", alpha=0.45, hatch="//", edgecolor="white", label="p50"),
                Patch(facecolor="#999999", label="p99"), *ax.get_lines()])
    return save(fig, outdir, "latency.svg")


def s3_runs(d):
    """S3's runs as {target: {N: (KB per stream, stream p50 ms or None)}}."""
    out = {}
    for p in glob.glob(f"{d}/S3.*.res"):
        _, t, n, _ = os.path.basename(p).split(".")
        res, lg = rp.load(p), rp.load(p[:-4] + ".lg")
        if res:
            p50 = lg["stream_p50_ms"] if lg and lg["completed"] else None
            kb = (res["rss_peak_kb"] - res["rss_idle_kb"]) / int(n)
            out.setdefault(t, {})[int(n)] = (kb, p50)
    return out


def lines(ax, series, goal, goal_label, ns, fmt, zero):
    """One line with markers per target over N, a dashed goal line; log y when needed,
    else from 0 if zero."""
    values = [v for pts in series.values() for _, v in pts]
    for t, pts in series.items():
        ax.plot([n for n, _ in pts], [v for _, v in pts], marker="o", color=color(t),
                linewidth=2.5 if t.startswith("chatd") else 1.5, label=label(t))
        n, v = pts[-1]
        ax.annotate(fmt.format(v), (n, v), xytext=(5, 0),
                    textcoords="offset points", va="center", fontsize=7.5, color=color(t))
    ax.axhline(goal, color=GOAL, linestyle="--", linewidth=1, label=goal_label)
    if spread(values + [goal]) > 20:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    elif zero:
        ax.set_ylim(bottom=0)
    ax.set_xticks(ns, [f"{n:,}" for n in ns])
    ax.set_xlabel("N streams open at once")
    legend(ax)


def memory(d, outdir, date):
    runs = s3_runs(d)
    if not runs:
        return None, None
    ns = sorted({n for r in runs.values() for n in r})
    sub = "S3: N streams at once, 100 tokens 50 ms apart; target and provider restarted for each N"
    fig, ax = figure(10, "Memory per stream: (peak RSS − idle RSS) ÷ N, KB (lower is better)",
                     sub + "; for direct the target is fakeprov", date)
    lines(ax, {t: sorted((n, v[0]) for n, v in runs[t].items()) for t in rp.order(runs)},
          10, "goal: chatd ≤ 10 KB per stream", ns, "{:.1f} KB", True)
    ax.set_ylabel("KB per stream" + (" (log scale)" if ax.get_yscale() == "log" else ""))
    mem = save(fig, outdir, "memory.svg")
    base = runs.get("direct", {})
    ratios = {t: [(n, v[1] / base[n][1]) for n, v in sorted(runs[t].items())
                  if v[1] and base.get(n, (0, None))[1]] for t in rp.order(runs) if t != "direct"}
    ratios = {t: pts for t, pts in ratios.items() if pts}
    if not ratios:
        return mem, None
    fig, ax = figure(10, "Stream duration: median stream time ÷ direct's at the same N "
                     "(lower is better)", sub, date)
    ax.axhline(1, color=color("direct"), linestyle=":", linewidth=1, label="direct = 1")
    lines(ax, ratios, 1.02, "goal: chatd within 2 % of direct (1.02)", ns, "{:.3f}", False)
    ax.set_ylabel("stream p50 ÷ direct's" + (" (log scale)" if ax.get_yscale() == "log" else ""))
    return mem, save(fig, outdir, "s3_duration.svg")


def soak(d, outdir, date):
    data = {}
    for p in sorted(glob.glob(f"{d}/S8.*.res")):
        t = os.path.basename(p).split(".")[1]
        res, ser = rp.load(p), rp.series(p[:-4] + ".series")
        if res and ser:
            data[t] = (res, ser)
    if not data:
        return None
    res = next(iter(data.values()))[0]
    fig, ax = figure(10, "Soak: the target's resident memory (RSS) over time, MB",
                     f"S8: {res['n']:,} streams kept open for {res['duration_s']} s (closed loop, "
                     "5 s streams of 50 tokens 100 ms apart), VmRSS sampled each second", date)
    for t in rp.order(data):
        ser = data[t][1]
        ax.plot([s[0] for s in ser], [s[1] / 1024 for s in ser], marker=".", color=color(t),
                linewidth=2.5 if t.startswith("chatd") else 1.5, label=label(t))
        ax.annotate(f"{ser[-1][1] / 1024:.1f} MB", (ser[-1][0], ser[-1][1] / 1024), xytext=(5, 0),
                    textcoords="offset points", va="center", fontsize=7.5, color=color(t))
    ax.axvspan(res["start_at_s"], res["duration_s"] - 0.5, color="#e6e6e6", zorder=0,
               label="start … end of the report's growth figure")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("seconds since the load started")
    ax.set_ylabel("RSS MB")
    legend(ax)
    return save(fig, outdir, "soak.svg")


def draw(d, outdir, date=None):
    """Writes every chart the results in d allow; returns {name: path or None}."""
    os.makedirs(outdir, exist_ok=True)
    date = date or run_date(d)
    mem, dur = memory(d, outdir, date)
    return {"throughput.svg": throughput(d, outdir, date), "latency.svg": latency(d, outdir, date),
            "memory.svg": mem, "s3_duration.svg": dur, "soak.svg": soak(d, outdir, date)}
