#!/usr/bin/env python3
"""Summarise the JSON reports scripts/bench.sh leaves in a directory (medians of the runs)."""
import glob
import json
import statistics
import sys

out = sys.argv[1]


def med(xs):
    return statistics.median(xs)


def runs(pattern):
    return [json.load(open(f)) for f in sorted(glob.glob(f"{out}/{pattern}"))]


print("| calls | completed | lost | setup p99 ms | gap dev p99 ms (hotline / floor) "
      "| CPU s/call-min (hotline / floor) | ratio (runs) | peak RSS MB |")
print("|---|---|---|---|---|---|---|---|")
sizes = sorted({int(f.split("calls")[1].split("-")[0]) for f in glob.glob(f"{out}/calls*-run*.json")})
for n in sizes:
    rs = runs(f"calls{n}-run*.json")
    ratios = ", ".join("%.2f" % r["server_to_floor_ratio"] for r in rs)
    print("| %d | %d/%d | %d | %.1f | %.2f / %.2f | %.4f / %.4f | %.2f× (%s) | %.1f |" % (
        n,
        min(r["calls_completed"] for r in rs), n,
        max(r["rtp"]["packets_lost"] for r in rs),
        med([r["setup_ms_p99"] for r in rs]),
        med([r["rtp"]["gap_dev_ms_p99"] for r in rs]),
        med([r["floor"]["rtp"]["gap_dev_ms_p99"] for r in rs]),
        med([r["server_cpu_s_per_call_min"] for r in rs]),
        med([r["floor_cpu_s_per_call_min"] for r in rs]),
        med([r["server_to_floor_ratio"] for r in rs]), ratios,
        max(r["server_peak_rss_mb"] for r in rs),
    ))
rs = runs("cps200-run*.json")
if rs:
    print("\n200 calls/s, 1000 calls: completed %d/1000, setup p50 %.1f ms, p99 %.1f ms (runs: %s), max %.1f ms" % (
        min(r["calls_completed"] for r in rs),
        med([r["setup_ms_p50"] for r in rs]),
        med([r["setup_ms_p99"] for r in rs]),
        ", ".join(str(r["setup_ms_p99"]) for r in rs),
        max(r["setup_ms_max"] for r in rs),
    ))
print("\nreports: " + out)
