#!/usr/bin/env python3
"""Draws the durability simulator's figures from its CSV files.

usage: durability_plot.py OUT_DIR   (reads summary.csv, runs.csv, timeseries.csv; writes PNGs)
"""
import csv
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def loss_vs_expansion(summary, out):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in summary:
        x = float(r["expansion"])
        lost = int(r["lost_objects"])
        y = float(r["annual_loss_pooled"]) if lost else float(r["annual_loss_hi95"])
        lo, hi = float(r["annual_loss_lo95"]), float(r["annual_loss_hi95"])
        if lost:
            ax.errorbar(x, y, yerr=[[max(y - lo, 0)], [hi - y]], fmt="o", capsize=4)
        else:
            ax.plot(x, y, "v")  # no loss seen: the 95% upper bound
        ax.annotate(r["policy"], (x, y), textcoords="offset points", xytext=(6, 4))
        if r.get("model_annual_loss"):
            ax.plot(x, max(float(r["model_annual_loss"]), 1e-30), "D", color="black", ms=5)
    ax.axhline(1e-11, color="grey", ls="--", lw=1)
    ax.text(ax.get_xlim()[0], 1.3e-11, " 11 nines", color="grey")
    ax.set_yscale("log")
    ax.set_xlabel("expansion (stored bytes per user byte)")
    ax.set_ylabel("annual object loss (share; ▼ = upper bound, none lost)")
    ax.set_title("Loss vs expansion (95% intervals; ◆ = model from measured repair waits)")
    fig.tight_layout()
    fig.savefig(out / "loss_vs_expansion.png", dpi=120)


def availability_vs_uptime(series, out):
    """Per policy, each day's read availability against that day's share of nodes online."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    by_policy = defaultdict(lambda: ([], []))
    for r in series:
        reads = int(r["reads"])
        alive = int(r["alive_nodes"])
        if reads == 0 or alive == 0:
            continue
        xs, ys = by_policy[r["policy"]]
        xs.append(int(r["online_nodes"]) / alive)
        ys.append(1 - int(r["reads_ok"]) / reads)
    for policy, (xs, ys) in sorted(by_policy.items()):
        floor = [max(y, 1e-6) for y in ys]
        ax.scatter(xs, floor, s=8, label=policy, alpha=0.6)
    ax.axhline(1e-4, color="grey", ls="--", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("share of live nodes online (daily sample)")
    ax.set_ylabel("share of reads without k online shards (1e-6 = none)")
    ax.set_title("Read unavailability vs node uptime (dashed: 99.99%)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "availability_vs_uptime.png", dpi=120)


def repair_over_time(series, out):
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for (policy, seed), rs in sorted(group(series).items()):
        days = [float(r["day"]) for r in rs]
        a1.plot(days, [float(r["repair_per_stored_byte_day"]) * 30 for r in rs], lw=0.8,
                label=f"{policy} seed {seed}")
        a2.plot(days, [int(r["tasks_in_flight"]) + int(r["dirty"]) for r in rs], lw=0.8)
    a1.set_ylabel("repair bytes per stored byte\n(daily rate x 30)")
    a2.set_ylabel("repair queue\n(dirty objects + tasks)")
    a2.set_xlabel("simulated day")
    a1.legend(fontsize=7)
    a1.set_title("Repair traffic over time")
    fig.tight_layout()
    fig.savefig(out / "repair_over_time.png", dpi=120)


def frontier(summary, out):
    """Per policy: the model's nines and the read unavailability, against expansion."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for r in summary:
        x = float(r["expansion"])
        if r.get("model_nines"):
            y = min(float(r["model_nines"]), 30.0)
            a1.plot(x, y, "o")
            a1.annotate(r["policy"], (x, y), textcoords="offset points", xytext=(5, 3), fontsize=8)
        u = max(1 - float(r["availability"]), 1e-7)
        a2.plot(x, u, "o")
        a2.annotate(r["policy"], (x, u), textcoords="offset points", xytext=(5, 3), fontsize=8)
    for ax in (a1, a2):
        ax.axvline(2.0, color="grey", ls=":", lw=1)
        ax.set_xlabel("expansion (stored bytes per user byte)")
    a1.axhline(11, color="grey", ls="--", lw=1)
    a1.set_ylabel("annual durability, nines (model; capped at 30)")
    a1.set_title("Durability: goal 11 nines at <= 2.0x")
    a2.axhline(1e-4, color="grey", ls="--", lw=1)
    a2.set_yscale("log")
    a2.set_ylabel("share of reads without k online shards (1e-7 = none)")
    a2.set_title("Read unavailability: goal <= 1e-4")
    fig.tight_layout()
    fig.savefig(out / "frontier.png", dpi=120)


def group(series):
    g = defaultdict(list)
    for r in series:
        g[(r["policy"], r["seed"])].append(r)
    return g


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    summary = rows(out / "summary.csv")
    series = rows(out / "timeseries.csv")
    loss_vs_expansion(summary, out)
    frontier(summary, out)
    availability_vs_uptime(series, out)
    repair_over_time(series, out)
    for r in summary:
        nines = r["nines"]
        model = r.get("model_nines") or "-"
        print(f'{r["policy"]:>10}  x{float(r["expansion"]):.2f}  lost {r["lost_objects"]:>6}  '
              f'nines seen {nines}  model {model}  availability {float(r["availability"]):.6f}  '
              f'repair/month {float(r["repair_per_stored_byte_month"]):.3f}')


if __name__ == "__main__":
    main()
