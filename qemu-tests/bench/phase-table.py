#!/usr/bin/env python3
"""The phase table of docs/boot-benchmark.md (qemu-tests/bench/boot-bench.sh runs it).

Usage: phase-table.py DATA
DATA: boot-bench.sh's data file; its phase lines are
  ROUND extmerge/KIND phase UNIT PID CLASS PHASE DURATION_US [IMAGE]
(from extmerge's debug lines in the guest's journal, check-boot-1.sh). Prints a Markdown table:
per unit, class and phase, the median (min–max) over the rounds, in ms, cold and warm; a
phase's sub-phases (`gather.identify`) follow it; `open.image` (one line per image, opened
in parallel) is summarised per image.
"""
import statistics
import sys
from collections import OrderedDict, defaultdict


def cell(xs):
    if not xs:
        return "-"
    f = lambda us: f"{us / 1000:.1f}"
    return f"{f(statistics.median(xs))} ({f(min(xs))}–{f(max(xs))})"


def main():
    rows = OrderedDict()  # (unit, class, phase) -> {kind: [us per round]}
    images = defaultdict(list)  # (unit, class, kind) -> [us per image and round]
    for line in open(sys.argv[1]):
        f = line.split()
        if len(f) < 8 or f[2] != "phase" or not f[1].startswith("extmerge/"):
            continue
        kind, unit, cls, phase, us = f[1].split("/")[1], f[3], f[5], f[6], int(f[7])
        unit = unit.removesuffix(".service")
        if phase == "open.image":
            images[(unit, cls, kind)].append(us)
            continue
        rows.setdefault((unit, cls, phase), defaultdict(list))[kind].append(us)
    if not rows:
        print("No phase lines were found in the guests' journals.")
        return
    print("| unit | class | phase | cold, ms | warm, ms |")
    print("|---|---|---|---:|---:|")
    for (unit, cls, phase), v in rows.items():
        name = f"&nbsp;&nbsp;{phase}" if "." in phase else f"**{phase}**" if phase == "total" else phase
        print(f"| {unit} | {cls} | {name} | {cell(v['cold'])} | {cell(v['warm'])} |")
        if phase == "open":
            c, w = images.get((unit, cls, "cold"), []), images.get((unit, cls, "warm"), [])
            if c or w:
                print(f"| {unit} | {cls} | &nbsp;&nbsp;open.image, per image | {cell(c)} | {cell(w)} |")


if __name__ == "__main__":
    main()
