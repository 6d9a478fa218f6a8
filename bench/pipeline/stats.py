#!/usr/bin/env python3
"""Pipeline benchmark figures from the requests table (bench/pipeline/run.sh).

Reads "accepted_at processed_at status" lines (milliseconds; processed_at may be NULL) on
stdin and prints one line of figures for the phase:

  stats.py PHASE [--start MS]     MS: when the worker was started (drain phase)
"""
import sys


def pct(sorted_values, p):
    if not sorted_values:
        return float("nan")
    # nearest rank
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def main():
    phase = sys.argv[1]
    start = None
    if len(sys.argv) > 3 and sys.argv[2] == "--start":
        start = int(sys.argv[3])
    rows = []
    for line in sys.stdin:
        parts = line.split()
        if len(parts) < 3:
            continue
        accepted = int(parts[0])
        processed = None if parts[1] in ("NULL", "None", "") else int(parts[1])
        rows.append((accepted, processed, parts[2]))
    done = [r for r in rows if r[1] is not None]
    pending = len(rows) - len(done)
    failed = sum(1 for r in rows if r[2] == "failed")
    if not done:
        print(f"{phase}: {len(rows)} accepted, none processed")
        return
    first_acc = min(r[0] for r in rows)
    last_acc = max(r[0] for r in rows)
    first_proc = min(r[1] for r in done)
    last_proc = max(r[1] for r in done)
    lat = sorted(r[1] - r[0] for r in done)
    accept_rate = len(rows) / max(0.001, (last_acc - first_acc) / 1000.0)
    e2e = len(done) / max(0.001, (last_proc - first_acc) / 1000.0)
    proc_rate = len(done) / max(0.001, (last_proc - first_proc) / 1000.0)
    line = (
        f"{phase}: accepted={len(rows)} processed={len(done) - failed} failed={failed} pending={pending} "
        f"accept_rate={accept_rate:.0f}/s e2e_rate={e2e:.0f}/s (processed/(last processed - first accepted)) "
        f"processing_rate={proc_rate:.0f}/s (processed/(last processed - first processed))"
    )
    if start is not None:
        line += f" drain_rate={len(done) / max(0.001, (last_proc - start) / 1000.0):.0f}/s (processed/(last processed - worker start))"
    line += (
        f" latency_ms p50={pct(lat, 50)} p90={pct(lat, 90)} p99={pct(lat, 99)} max={lat[-1]}"
    )
    print(line)


if __name__ == "__main__":
    main()
