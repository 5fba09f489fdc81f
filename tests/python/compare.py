#!/usr/bin/env python3
"""Compare two measurement JSON-lines files (sub_peer.py / pub_peer.py format).

    compare.py EXPECTED.jsonl ACTUAL.jsonl [--max-report N]

A point is keyed by (signal, ticks); it must carry the same value_bits and flags on both sides.
Reports missing (expected, not received), extra (received, not expected), duplicated and mismatched
points, prints a one-line JSON verdict on stdout and exits 1 on any difference (2 on bad input).
"""

import argparse
import json
import sys
from collections import Counter


def load(path):
    points = {}
    dups = Counter()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                key = (r["signal"].lower(), int(r["ticks"]))
                val = (r["value_bits"].lower(), int(r["flags"]))
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                print(f"{path}:{n}: bad record ({e}): {line.strip()[:200]}", file=sys.stderr)
                sys.exit(2)
            if key in points:
                dups[key] += 1
            points[key] = val
    return points, dups


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("expected")
    ap.add_argument("actual")
    ap.add_argument("--max-report", type=int, default=10, help="examples printed per category")
    args = ap.parse_args()

    exp, exp_dups = load(args.expected)
    act, act_dups = load(args.actual)
    missing = sorted(k for k in exp if k not in act)
    extra = sorted(k for k in act if k not in exp)
    mismatched = sorted(k for k in exp if k in act and exp[k] != act[k])

    def show(title, keys, fmt):
        if keys:
            print(f"{title}: {len(keys)}", file=sys.stderr)
            for k in keys[: args.max_report]:
                print(f"  {fmt(k)}", file=sys.stderr)

    show("missing", missing, lambda k: f"{k[0]} @ {k[1]} expected {exp[k]}")
    show("extra", extra, lambda k: f"{k[0]} @ {k[1]} got {act[k]}")
    show("mismatched (value_bits, flags)", mismatched, lambda k: f"{k[0]} @ {k[1]} expected {exp[k]} got {act[k]}")
    show("duplicated in actual", sorted(act_dups), lambda k: f"{k[0]} @ {k[1]} x{act_dups[k] + 1}")
    show("duplicated in expected", sorted(exp_dups), lambda k: f"{k[0]} @ {k[1]} x{exp_dups[k] + 1}")

    verdict = {"expected": len(exp), "actual": len(act), "missing": len(missing), "extra": len(extra),
               "mismatched": len(mismatched), "duplicated": sum(act_dups.values())}
    ok = not (missing or extra or mismatched or act_dups or exp_dups)
    verdict["ok"] = ok
    print(json.dumps(verdict))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
