#!/usr/bin/python3
"""Draws the benchmark plots from the JSON Lines in docs/plots/data/.

    /usr/bin/python3 docs/plots/plot.py            # every plot whose data is there
    /usr/bin/python3 docs/plots/plot.py chord      # only chord_path_length.png

Reads docs/plots/data/<bench>.jsonl (written by docs/plots/collect.sh; the
format is bench/support/bench.hpp's) and writes docs/plots/<plot>.png. Needs
only Debian's python3-matplotlib. The output depends on nothing but the data
and the matplotlib version: fixed size and dpi, fixed fonts, and no creation
time or software tag in the PNG, so redrawing unchanged data leaves the files
byte for byte as they were.
"""

import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")

WIDTH, HEIGHT, DPI = 9.0, 5.0, 100  # 900 x 500 pixels: readable at README width
REDRAW = "/usr/bin/python3 docs/plots/plot.py"

# One colour per series across every plot; the reference (paper, jump hash,
# memcached) is always black.
DHTKIT = "#1f77b4"
OTHER = "#ff7f0e"
THIRD = "#2ca02c"
FOURTH = "#9467bd"
REFERENCE = "black"

matplotlib.rcParams.update(
    {
        "font.family": "DejaVu Sans",
        "font.size": 10,
        "axes.titlesize": 11,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "legend.fontsize": 9,
        "legend.framealpha": 0.9,
        "savefig.dpi": DPI,
        "svg.hashsalt": "dhtkit",
        "path.simplify": False,
    }
)


def load(bench):
    """Every line of data/<bench>.jsonl as a dict, or None if the file is missing."""
    path = os.path.join(DATA, bench + ".jsonl")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def pick(rows, name, **params):
    """Rows named `name` whose params contain every given key with that value."""
    return [
        r
        for r in rows
        if r["name"] == name and all(r["params"].get(k) == v for k, v in params.items())
    ]


def one(rows, name, **params):
    found = pick(rows, name, **params)
    if len(found) != 1:
        raise SystemExit(f"plot.py: expected one '{name}' {params}, found {len(found)}")
    return found[0]


def finish(fig, name, title, command, bottom=0.04):
    """Title, a footnote naming the commands that remake the plot, and the PNG."""
    fig.suptitle(title, fontsize=12, fontweight="bold")
    fig.text(
        0.01,
        0.01,
        f"data: {command}    plot: {REDRAW}",
        fontsize=7.5,
        color="0.35",
        family="DejaVu Sans Mono",
    )
    fig.tight_layout(rect=(0, bottom, 1, 0.95))
    path = os.path.join(HERE, name + ".png")
    # No Software/creation tags: the bytes depend on the data only.
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    print(f"plot.py: wrote {os.path.relpath(path, os.path.dirname(os.path.dirname(HERE)))}")


def chord(rows):
    """Mean path length (p1-p99 band) against the paper's (1/2) log2 N."""
    fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT))
    for built_by, colour, marker in (("oracle", DHTKIT, "o"), ("protocol", OTHER, "s")):
        mean = sorted(pick(rows, "path_length/mean", built_by=built_by), key=lambda r: r["params"]["nodes"])
        if not mean:
            continue
        n = [r["params"]["nodes"] for r in mean]
        p1 = [one(rows, "path_length/p1", nodes=x, built_by=built_by)["value"] for x in n]
        p99 = [one(rows, "path_length/p99", nodes=x, built_by=built_by)["value"] for x in n]
        lookups = mean[0]["params"]["lookups"] // mean[0]["params"]["nodes"]
        if built_by == "oracle":
            ax.fill_between(n, p1, p99, color=colour, alpha=0.15, step=None, label="oracle-built ring: p1 to p99")
            ax.plot(n, [r["value"] for r in mean], marker=marker, color=colour, label="oracle-built ring: mean")
        else:
            ax.plot(
                n,
                [r["value"] for r in mean],
                marker=marker,
                linestyle="none",
                markerfacecolor="none",
                markersize=9,
                color=colour,
                label="protocol-built ring (joins + stabilization): mean",
            )
    n_all = sorted({r["params"]["nodes"] for r in pick(rows, "path_length/mean")})
    paper = [0.5 * math.log2(x) for x in n_all]
    ax.plot(n_all, paper, color=REFERENCE, linestyle="--", label="Chord paper: ½·log₂ N")
    ax.plot(n_all, [p + 0.5 for p in paper], color=REFERENCE, linestyle=":", label="goal: ½·log₂ N + 0.5")
    ax.set_xscale("log", base=2)
    ax.set_xticks(n_all)
    ax.set_xticklabels([f"{x:,}" for x in n_all])
    ax.set_xlabel("ring size N (nodes)")
    ax.set_ylabel("path length (hops per lookup)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left")
    ax.text(
        0.99,
        0.02,
        f"{lookups}·N lookups of random keys from random nodes per ring, simulated network;\n"
        "a hop is a node that answered a routing request (the owner check is not counted)",
        transform=ax.transAxes,
        ha="right",
        fontsize=8,
        color="0.3",
    )
    finish(fig, "chord_path_length", "Chord: lookup path length against the paper",
           "bash docs/plots/collect.sh chord  (build/release/bench/bench_chord)")


def ecdf(values):
    xs = sorted(values)
    ys = [(i + 1) / len(xs) for i in range(len(xs))]
    return xs, ys


def swim_detection(rows):
    """Distribution of detection times per group size (one crash per trial)."""
    sizes = sorted({r["params"]["n"] for r in pick(rows, "detect/all_dead/trial")})
    if not sizes:
        return
    colours = dict(zip(sizes, (DHTKIT, OTHER, THIRD, FOURTH)))
    panels = (
        ("detect/first_probe/trial", "first probe of the crashed member"),
        ("detect/first_suspect/trial", "first member suspects it"),
        ("detect/all_dead/trial", "every live member marks it dead"),
    )
    fig, axes = plt.subplots(1, 3, figsize=(WIDTH, HEIGHT), sharey=True)
    for ax, (name, label) in zip(axes, panels):
        top = 0.0
        for n in sizes:
            values = [r["value"] for r in pick(rows, name, n=n)]
            xs, ys = ecdf(values)
            top = max(top, xs[-1])
            ax.step([0] + xs, [0] + ys, where="post", color=colours[n], label=f"N = {n:,} ({len(xs)} crashes)")
        if name == "detect/first_probe/trial":
            # Every other member probes one target per period, so the crashed
            # member escapes a whole period with probability ~1/e.
            ts = [i * 0.05 for i in range(int(top / 0.05) + 2)]
            ax.plot(ts, [1 - math.exp(-t) for t in ts], color=REFERENCE, linestyle="--",
                    label="random probe targets: 1 − e^(−t)")
        ax.set_title(label)
        ax.set_xlabel("time since the crash (protocol periods)")
        ax.set_xlim(left=0)
        ax.set_ylim(0, 1.02)
    axes[0].set_ylabel("fraction of crashes (cumulative)")
    axes[0].legend(loc="lower right")
    finish(
        fig,
        "swim_detection",
        "SWIM + Lifeguard: how long a crash takes to detect (LAN preset, 1 s period)",
        "bash docs/plots/collect.sh membership  (build/release/bench/bench_membership)",
    )


def swim_false_dead(rows):
    """False DEAD declarations per member-period, plain SWIM against Lifeguard."""
    scenarios = (
        ("false_dead/loss_1pct", "1 % loss"),
        ("false_dead/loss_5pct", "5 % loss"),
        ("false_dead/loss_10pct", "10 % loss"),
        ("false_dead/slow_10pct", "10 % of members\nslowed ≤ 1.5 s"),
    )
    present = [(name, label) for name, label in scenarios if pick(rows, name)]
    if not present:
        return
    fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT))
    width = 0.36
    floor = 1e-7  # log axis: bars start here
    any_zero = False
    for i, (name, _) in enumerate(present):
        for k, (mode, colour, label) in enumerate(
            (("swim", OTHER, "plain SWIM (with suspicion)"), ("lifeguard", DHTKIT, "SWIM + Lifeguard"))
        ):
            r = one(rows, name, mode=mode)
            x = i + (k - 0.5) * width
            events = r["params"]["false_dead"]
            if events > 0:
                ax.bar(x, r["value"] - floor, width, bottom=floor, color=colour)
                ax.annotate(f"{events} event{'s' if events != 1 else ''}", (x, r["value"]), ha="center",
                            va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
            else:
                any_zero = True
                # No event: the rate is only bounded; draw the 95 % upper bound as a hatched outline.
                ax.bar(x, r["params"]["upper95"] - floor, width, bottom=floor, facecolor="none", edgecolor=colour,
                       hatch="///")
                ax.annotate("0 events", (x, r["params"]["upper95"]), ha="center", va="bottom", fontsize=8,
                            xytext=(0, 2), textcoords="offset points")
        paper = pick(rows, name, mode="swim")[0].get("baseline_value")
        if paper:
            ax.plot([i - width, i + width], [paper, paper], color=REFERENCE, linewidth=2.5)
    ax.set_yscale("log")
    ax.set_ylim(floor, 0.1)
    ax.set_xticks(range(len(present)))
    ax.set_xticklabels([label for _, label in present])
    ax.set_ylabel("false DEAD declarations per member-period")
    ax.set_xlabel("network condition")
    r0 = pick(rows, present[0][0], mode="swim")[0]["params"]
    note = f"N = {r0['n']}, {r0['member_periods']:,} member-periods per bar"
    ax.text(0.99, 0.97, note, transform=ax.transAxes, ha="right", va="top", fontsize=8, color="0.3")
    handles = [
        Patch(facecolor=OTHER, label="plain SWIM (with its suspicion mechanism)"),
        Patch(facecolor=DHTKIT, label="SWIM + Lifeguard"),
        Line2D([], [], color=REFERENCE, linewidth=2.5, label="SWIM paper, no suspicion (k = 3)"),
    ]
    if any_zero:
        handles.append(Patch(facecolor="none", edgecolor="0.3", hatch="///", label="no event seen: 95 % upper bound"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0, 0.93))
    finish(
        fig,
        "swim_false_dead",
        "SWIM against SWIM + Lifeguard: live members wrongly declared dead",
        "bash docs/plots/collect.sh membership  (build/release/bench/bench_membership)",
    )


def ring_balance(rows):
    """Load spread of the ring's placements against jump consistent hash."""
    series = (
        ("balance/ring_keys", {}, DHTKIT, "o", "-", "ring, 160 vnodes: keys per node"),
        ("balance/partition_table", {}, OTHER, "s", "-", "partition table (2¹⁶ partitions)"),
        ("balance/bounded_partition_table", {"epsilon": 0.25}, FOURTH, "v", "-", "bounded loads, ε = 0.25"),
        ("balance/bounded_partition_table", {"epsilon": 0.1}, THIRD, "^", "-", "bounded loads, ε = 0.1"),
        ("balance/jump_hash_keys", {}, REFERENCE, "D", "--", "jump hash: keys per node"),
    )
    if not pick(rows, "balance/ring_keys"):
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(WIDTH, HEIGHT), gridspec_kw={"width_ratios": [1, 1.25]})
    sizes = sorted({r["params"]["nodes"] for r in pick(rows, "balance/ring_keys")})
    largest = sizes[-1]
    for name, params, colour, marker, style, label in series:
        found = sorted(pick(rows, name, **params), key=lambda r: r["params"]["nodes"])
        left.plot([r["params"]["nodes"] for r in found], [r["value"] for r in found], marker=marker,
                  linestyle=style, color=colour, label=label)
        q = sorted(pick(rows, name + "/quantile", nodes=largest, **params), key=lambda r: r["params"]["q"])
        right.plot([100 * r["params"]["q"] for r in q], [r["value"] for r in q], linestyle=style, color=colour,
                   label=label)
    keys = one(rows, "balance/ring_keys", nodes=largest)["params"]["keys"]
    left.set_xscale("log")
    left.set_xticks(sizes)
    left.set_xticklabels([f"{x:,}" for x in sizes])
    left.set_xlabel("nodes N")
    left.set_ylabel("most loaded node (load / mean load)")
    left.set_title("worst node, by ring size")
    left.legend(loc="upper left", fontsize=8)
    right.axhline(1.0, color="0.6", linewidth=0.8)
    right.set_xlabel("nodes, least to most loaded (percentile)")
    right.set_ylabel("load / mean load")
    right.set_title(f"every node's load at N = {largest:,}")
    right.text(0.02, 0.97, f"{keys:,} keys; jump hash's spread is\nthat sample's binomial noise",
               transform=right.transAxes,
               va="top", fontsize=8, color="0.3")
    finish(fig, "ring_balance", "Consistent-hash ring: load balance against jump hash",
           "bash docs/plots/collect.sh ring  (build/release/bench/bench_ring)")


def cache(rows):
    """dhtkit-cache against memcached, by pipeline depth (medians of interleaved rounds)."""
    tput = sorted(pick(rows, "get_set/throughput"), key=lambda r: r["params"]["depth"])
    if not tput:
        return
    depths = [r["params"]["depth"] for r in tput]
    ticks = [f"depth {d}\n" + ("(no pipelining)" if d == 1 else "(pipelined)") for d in depths]
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(WIDTH, HEIGHT))
    width = 0.36
    dot = {"linestyle": "none", "marker": "o", "markersize": 3.5, "markerfacecolor": "white", "markeredgecolor": "0.15"}

    def side_by_side(ax, name, scale):
        for i, d in enumerate(depths):
            r = one(rows, name, depth=d)
            for k, (value, rounds, face, label) in enumerate(
                (
                    (r["baseline_value"], r.get("rounds_baseline", []), "0.55", "memcached"),
                    (r["value"], r.get("rounds_value", []), DHTKIT, "dhtkit-cache"),
                )
            ):
                x = i + (k - 0.5) * width
                ax.bar(x, value * scale, width, color=face, edgecolor="black" if k == 0 else DHTKIT,
                       label=label if i == 0 else None)
                if rounds:
                    ax.plot([x] * len(rounds), [v * scale for v in rounds],
                            label="each round" if i == 0 and k else None, **dot)
        ax.set_xticks(range(len(depths)))
        ax.set_xticklabels(ticks)

    side_by_side(left, "get_set/throughput", 1e-3)
    left.set_ylabel("thousand requests/s (higher is better)")
    left.set_title("throughput")
    left.set_ylim(0, left.get_ylim()[1] * 1.25)
    handles, labels = left.get_legend_handles_labels()
    order = [labels.index(x) for x in ("memcached", "dhtkit-cache", "each round") if x in labels]
    left.legend([handles[i] for i in order], [labels[i] for i in order], loc="upper left")

    # The rounds are interleaved pairs (both servers loaded back to back), so
    # each round's own ratio is a fair sample of the spread.
    for i, r in enumerate(tput):
        middle.bar(i, r["ratio"], 0.5, color=DHTKIT)
        pairs = list(zip(r.get("rounds_value", []), r.get("rounds_baseline", [])))
        if pairs:
            middle.plot([i] * len(pairs), [a / b for a, b in pairs], **dot)
        middle.annotate(f"{r['ratio']:.2f}×", (i, max([r["ratio"]] + [a / b for a, b in pairs])), ha="center",
                        va="bottom", xytext=(0, 8), textcoords="offset points", fontsize=9, fontweight="bold", zorder=5)
    middle.axhline(1.0, color=REFERENCE, linestyle="--", label="memcached = 1")
    middle.set_xticks(range(len(depths)))
    middle.set_xticklabels(ticks)
    middle.set_xlim(-0.6, len(depths) - 0.4)
    middle.set_ylim(0, middle.get_ylim()[1] * 1.1)
    middle.set_ylabel("dhtkit-cache / memcached (median)")
    middle.set_title("throughput ratio")
    middle.legend(loc="center left")

    side_by_side(right, "get_set/p99", 1.0)
    right.set_yscale("log")
    right.set_ylabel("p99 latency, µs (log scale; lower is better)")
    right.set_title("p99 latency")
    for i, d in enumerate(depths):
        r = one(rows, "get_set/p99", depth=d)
        top = max([r["value"], r["baseline_value"]] + r.get("rounds_value", []) + r.get("rounds_baseline", []))
        right.annotate(f"{r['ratio']:.2f}×", (i, top), ha="center", va="bottom", xytext=(0, 4),
                       textcoords="offset points", fontsize=9, fontweight="bold")
    # Bars on a log axis start at the decade below the smallest value, not at
    # an arbitrary autoscaled floor.
    low = min(v for d in depths for r in [one(rows, "get_set/p99", depth=d)]
              for v in [r["value"], r["baseline_value"]] + r.get("rounds_value", []) + r.get("rounds_baseline", []))
    right.set_ylim(10 ** math.floor(math.log10(low)), right.get_ylim()[1] * 2)

    p = tput[0]["params"]
    note = (f"{p['get_set']} get:set on {p['keys']:,} keys of {p['value_bytes']} B, {p['connections']} connections, "
            f"{p['server_threads']} server threads each; median of {p['rounds']} interleaved rounds of "
            f"{p['seconds']:g} s; n× = dhtkit-cache / memcached")
    fig.text(0.5, 0.045, note, ha="center", fontsize=8, color="0.3")
    finish(fig, "cache_vs_memcached", "dhtkit-cache against memcached on the same machine, by pipeline depth",
           "bash docs/plots/collect.sh cache  (bench_cache_load, as bench/cache/run.sh)", bottom=0.08)


PLOTS = {
    "chord": (("chord", chord),),
    "membership": (("membership", swim_detection), ("membership", swim_false_dead)),
    "ring": (("ring", ring_balance),),
    "cache": (("cache", cache),),
}


def main(argv):
    wanted = argv[1:] or list(PLOTS)
    for w in wanted:
        if w not in PLOTS:
            raise SystemExit(f"usage: {argv[0]} [{' | '.join(PLOTS)} ...]")
        for bench, draw in PLOTS[w]:
            rows = load(bench)
            if rows is None:
                print(f"plot.py: no data/{bench}.jsonl (bash docs/plots/collect.sh {bench}); skipped", file=sys.stderr)
                continue
            draw(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
