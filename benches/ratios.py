#!/usr/bin/env python3
"""Prints the benchmark ratios from criterion's last run (target/criterion).

Run `cargo bench` first. Each ratio is of medians, with a spread from the
bounds of criterion's 95% confidence intervals on those medians.
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"


def median(bench):
    path = ROOT / bench / "new" / "estimates.json"
    estimate = json.loads(path.read_text())["median"]
    bounds = estimate["confidence_interval"]
    return estimate["point_estimate"], bounds["lower_bound"], bounds["upper_bound"]


def ratio(name, top, bottom, target=""):
    try:
        (a, a_lo, a_hi), (b, b_lo, b_hi) = median(top), median(bottom)
    except FileNotFoundError as missing:
        print(f"{name:<40} not measured ({missing.filename})")
        return
    print(f"{name:<40} {a / b:6.2f}  [{a_lo / b_hi:.2f}-{a_hi / b_lo:.2f}]  {target}")


def absolute(name, bench, scale, unit):
    try:
        m, lo, hi = median(bench)
    except FileNotFoundError:
        return
    print(f"{name:<40} {m / scale:6.2f}  [{lo / scale:.2f}-{hi / scale:.2f}] {unit}")


print(f"{'ratio (of median times)':<40} {'median':>6}  [spread]  target")
ratio("hot path: ours / static", "hot_path/ours", "hot_path/static", "<= 1.25")
ratio("hot path: ours / static+copy", "hot_path/ours", "hot_path/static_and_copy", "<= 1")
ratio("hot path: naive / ours", "hot_path/naive", "hot_path/ours", ">= 1.5")
ratio("hot path: naive / ours without replays", "hot_path/naive",
      "hot_path/ours_without_replay")
ratio("hot path: ours without replays / static", "hot_path/ours_without_replay",
      "hot_path/static")
ratio("hot path: ours / raw", "hot_path/ours", "hot_path/raw")
for tasks in (1, 2, 4):
    ratio(f"contention {tasks} tasks: ours / static", f"contention/ours/{tasks}",
          f"contention/static/{tasks}", "<= single-task ratio")
    ratio(f"contention {tasks} tasks: naive / ours", f"contention/naive/{tasks}",
          f"contention/ours/{tasks}")
# Equal work per iteration: the time ratio static/ours is the throughput
# ratio ours/static.
ratio("end to end: throughput ours / static", "end_to_end/static", "end_to_end/ours", ">= 0.97")
ratio("end to end: throughput ours / empty middleware", "end_to_end/middleware_stack",
      "end_to_end/ours")
absolute("storm cold: wall / 50 ms latency", "storm/cold", 50e6, "(1 token call)")
absolute("storm expired: wall / 50 ms latency", "storm/expired", 50e6, "(1 token call)")
ratio("fleet hot path: redis store / in-memory", "fleet_hot_path/redis",
      "fleet_hot_path/memory", "~1.0")
absolute("fleet storm 8x1000 expired: wall / 50 ms", "fleet/storm_expired_8x1000", 50e6,
         "(1 token call)")
sys.exit(0)
