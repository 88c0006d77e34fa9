#!/usr/bin/env python3
"""The tables of docs/boot-benchmark.md made from the guests' journals (boot-bench.sh runs it).

Usage: phase-table.py [--steps | --reruns] DATA
DATA: boot-bench.sh's data file, "ROUND VARIANT/KIND KEY ..." lines (check-boot-1.sh's
"bench KEY ..." lines; KIND is cold or warm).

Without an option, the phase table, from the phase lines
  ROUND extmerge/KIND phase UNIT PID CLASS PHASE DURATION_US [IMAGE]
(extmerge's debug lines): per unit, class and phase, the median (min–max) over the rounds, in
ms, cold and warm; a phase's sub-phases (`gather.identify`) follow it; `open.image` (one line
per image, opened in parallel) is summarised per image.

--steps: each extmerge unit's time split into start-up, initrd-stage's steps and the rest,
from PID 1's "Starting"/"Finished" (unit lines), the step lines
  ROUND extmerge/KIND step UNIT STEP DURATION_US EXIT_STATUS END_US
and the first and last extmerge journal entry of the unit
  ROUND extmerge/KIND extmerge_entries UNIT FIRST_US LAST_US COUNT

--reruns: the table of the tools run three times in a row in the booted system
  ROUND VARIANT/KIND rerun TOOL CMD N US EXIT
and a paragraph on what it shows, its numbers from the data.
"""
import statistics
import sys
from collections import OrderedDict, defaultdict


def cell(xs):
    if not xs:
        return "-"
    f = lambda us: f"{us / 1000:.1f}"
    return f"{f(statistics.median(xs))} ({f(min(xs))}–{f(max(xs))})"


def phases(path):
    """The phase table."""
    rows = OrderedDict()  # (unit, class, phase) -> {kind: [us per round]}
    images = defaultdict(list)  # (unit, class, kind) -> [us per image and round]
    for line in open(path):
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


def ms(us):
    return f"{us / 1000:.0f}"


def cell0(xs):
    """median (min–max) in whole ms."""
    if not xs:
        return "-"
    return f"{ms(statistics.median(xs))} ({ms(min(xs))}–{ms(max(xs))})"


def records(path, key, nfields):
    """(round, variant, kind, fields after KEY) of the KEY lines with at least nfields after it."""
    out = []
    for line in open(path):
        f = line.split()
        if len(f) < 3 + nfields or f[2] != key or "/" not in f[1]:
            continue
        variant, kind = f[1].split("/", 1)
        out.append((f[0], variant, kind, f[3:]))
    return out


def steps(path):
    """Each extmerge unit's "Starting" → "Finished" split at initrd-stage's steps."""
    units = {}  # (round, kind, unit) -> (start, finish)
    for rnd, variant, kind, f in records(path, "unit", 3):
        if variant == "extmerge":
            units[(rnd, kind, f[0])] = (int(f[1]), int(f[2]))
    stepl = defaultdict(list)  # (round, kind, unit) -> [(step, us, end)]
    for rnd, variant, kind, f in records(path, "step", 5):
        if variant == "extmerge" and f[4].isdigit():
            stepl[(rnd, kind, f[0])].append((f[1].replace("_", " "), int(f[2]), int(f[4])))
    entries = {}  # (round, kind, unit) -> (first, last)
    for rnd, variant, kind, f in records(path, "extmerge_entries", 3):
        if variant == "extmerge":
            entries[(rnd, kind, f[0])] = (int(f[1]), int(f[2]))
    if not stepl:
        print("No step lines were found in the guests' journals.")
        return
    rows = OrderedDict()  # (unit, row label) -> {kind: [us per round]}
    unit_order = list(OrderedDict.fromkeys(k[2] for k in units))
    for unit in unit_order:
        step_names = list(OrderedDict.fromkeys(s[0] for k, v in stepl.items() if k[2] == unit for s in v))
        labels = ["**\"Starting\" → \"Finished\"**",
                  "start-up: \"Starting\" → the first step begins (fork, exec, start-up)"]
        labels += [f"step `{n}`" for n in step_names]
        labels += ["rest: between the steps and after the last one → \"Finished\" (exit)",
                   "**outside the steps** (start-up + rest)",
                   "for reference: \"Starting\" → first extmerge journal entry",
                   "for reference: last extmerge journal entry → \"Finished\""]
        for label in labels:
            rows[(unit, label)] = defaultdict(list)
        for (rnd, kind, u), (start, finish) in units.items():
            if u != unit or not stepl.get((rnd, kind, u)):
                continue
            sl = stepl[(rnd, kind, u)]
            first_begin = min(end - us for _, us, end in sl)
            in_steps = sum(us for _, us, _ in sl)
            startup = first_begin - start
            rest = (finish - start) - startup - in_steps
            values = [finish - start, startup]
            values += [sum(us for n, us, _ in sl if n == name) if any(n == name for n, _, _ in sl) else None
                       for name in step_names]
            values += [rest, startup + rest]
            e = entries.get((rnd, kind, u))
            values += [e[0] - start, finish - e[1]] if e else [None, None]
            for label, v in zip(labels, values):
                if v is not None:
                    rows[(unit, label)][kind].append(v)
    print("| unit | part | cold, ms | warm, ms |")
    print("|---|---|---:|---:|")
    for (unit, label), v in rows.items():
        print(f"| {unit.removesuffix('.service')} | {label} | {cell0(v['cold'])} | {cell0(v['warm'])} |")


RERUN_ORDER = [("extmerge", "status"), ("systemd-sysext", "status"),
               ("extmerge", "refresh"), ("systemd-sysext", "refresh")]


def reruns(path):
    """The tools run three times in a row in the booted system, and what that shows."""
    runs = defaultdict(list)  # (variant, tool, cmd, n) -> [us per boot]
    boots = defaultdict(set)  # variant -> {(round, kind)}
    for rnd, variant, kind, f in records(path, "rerun", 4):
        tool, cmd, n, us = f[0], f[1], int(f[2]), int(f[3])
        runs[(variant, tool, cmd, n)].append(us)
        boots[variant].add((rnd, kind))
    if not runs:
        print("No rerun lines were found in the guests' reports.")
        return
    variants = [v for v in ("extmerge", "systemd") if v in boots]
    print("| command | booted variant | boots | 1st run, ms | 2nd run, ms | 3rd run, ms |")
    print("|---|---|---:|---:|---:|---:|")
    for tool, cmd in RERUN_ORDER:
        for v in variants:
            xs = [runs.get((v, tool, cmd, n), []) for n in (1, 2, 3)]
            if xs[0]:
                print(f"| `{tool} {cmd}` | {v} | {len(xs[0])} | {cell0(xs[0])} | {cell0(xs[1])} | {cell0(xs[2])} |")
    print()

    def med(v, tool, cmd, n):
        xs = runs.get((v, tool, cmd, n))
        return statistics.median(xs) if xs else None

    # The words follow the numbers: the extmerge variant's boots (all four commands ran there).
    v = "extmerge" if "extmerge" in boots else variants[0]
    parts = []
    for tool, cmd in RERUN_ORDER:
        a, b, c = (med(v, tool, cmd, n) for n in (1, 2, 3))
        if a is None or c is None or c <= 0:
            continue
        parts.append((tool, cmd, a, b, c))
    if not parts:
        return
    said = []
    for tool, cmd, a, b, c in parts:
        said.append(f"`{tool} {cmd}` {ms(a)}, {ms(b)}, {ms(c)} ms (the first {a / c:.1f}× the third)")
    print(f"Medians over the {len(boots[v])} boot(s) of the {v} variant, first, second and third run: "
          + "; ".join(said) + ".")
    print()
    extra = {(t, c): a - c3 for t, c, a, _, c3 in parts}
    em, sd = extra.get(("extmerge", "status")), extra.get(("systemd-sysext", "status"))
    text = ("Each command does the same each time (the status verbs read, the refreshes find "
            "nothing changed and skip), so what a first run takes above the third is what running "
            "that code for the first time in this boot costs: reading the binary's pages from the "
            "disk and, under TCG, QEMU translating every block of guest code the first time it "
            "runs (the translation is kept and reused by later runs: hardware with KVM runs the "
            "code as it is and pays no such cost).")
    if em is not None and sd is not None:
        text += (f" The first `status` costs {ms(em)} ms more than the third for extmerge and "
                 f"{ms(sd)} ms for `systemd-sysext`.")
        if em > sd:
            text += (" extmerge pays more: it is one static binary whose code no process has run "
                     "before its first run (in the initrd, the same for its first unit), while most of "
                     "`systemd-sysext`'s code is in `libsystemd-shared`, which PID 1 and the other "
                     "systemd processes have run already.")
        else:
            text += (" extmerge does not pay more than `systemd-sysext` here, although its static "
                     "binary's code has not run before, while most of `systemd-sysext`'s is in "
                     "`libsystemd-shared`, which PID 1 has run already.")
    er, sr = extra.get(("extmerge", "refresh")), extra.get(("systemd-sysext", "refresh"))
    third = {(t, c): c3 for t, c, _, _, c3 in parts}
    if er is not None and sr is not None:
        a, b = third[("extmerge", "refresh")], third[("systemd-sysext", "refresh")]
        text += (f" Once translated (third run), an unchanged `extmerge refresh` takes {ms(a)} ms "
                 f"and `systemd-sysext refresh` {ms(b)} ms"
                 + (f" ({a / b:.2f}×)." if b > 0 else "."))
    startup = defaultdict(list)  # kind -> [us]: the first extmerge unit's start-up in the initrd
    first_unit = {}
    for rnd, variant, kind, f in records(path, "unit", 3):
        if variant == "extmerge" and (rnd, kind) not in first_unit:
            first_unit[(rnd, kind)] = (f[0], int(f[1]))
    begins = defaultdict(list)
    for rnd, variant, kind, f in records(path, "step", 5):
        if variant == "extmerge" and f[4].isdigit():
            begins[(rnd, kind, f[0])].append(int(f[4]) - int(f[2]))
    for (rnd, kind), (unit, start) in first_unit.items():
        if begins.get((rnd, kind, unit)):
            startup[kind].append(min(begins[(rnd, kind, unit)]) - start)
    if startup and em is not None:
        name = next(iter(first_unit.values()))[0].removesuffix(".service")
        text += (f" For comparison, the start-up of extmerge's first unit in the initrd, {name}"
                 " (table above), took "
                 + " and ".join(f"{ms(statistics.median(startup[k]))} ms {k}" for k in ("cold", "warm") if startup[k])
                 + " (medians).")
    print(text)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--steps":
        steps(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "--reruns":
        reruns(sys.argv[2])
    elif len(sys.argv) == 2:
        phases(sys.argv[1])
    else:
        sys.exit("usage: phase-table.py [--steps | --reruns] DATA")


if __name__ == "__main__":
    main()
