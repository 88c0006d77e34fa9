#!/usr/bin/env python3
"""Write docs/benchmarks.md from bench/bench.py's JSON (bench/run.sh runs it).

Usage: bench/report.py RESULTS_JSON OUT_MD --repo DIR --chroot DIR --bin FILE --pool DIR
                       --load-start "1 5 15" --load-end "1 5 15"
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

sys.dont_write_bytecode = True  # no bench/__pycache__ in the worktree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from images import BIG_RECIPE  # noqa: E402  (the trees' shape, as bench/images.py builds them)

OPS = [
    ("merge", "merge"),
    ("refresh", "refresh, nothing changed"),
    ("refresh-changed", "refresh, one image changed"),
    ("unmerge", "unmerge"),
]
MIB = 1 << 20


def cmd(argv):
    try:
        return subprocess.run(argv, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def machine(a):
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
    virt = cmd(["systemd-detect-virt"]) if cmd(["which", "systemd-detect-virt"]) != "?" else "?"
    hyp = ""
    for line in cmd(["lscpu"]).splitlines():
        if line.startswith("Hypervisor vendor:"):
            hyp = line.split(":", 1)[1].strip()
    sd = cmd(["chroot", a.chroot, "/usr/bin/systemd-sysext", "--version"]).splitlines()
    commit = cmd(["git", "-C", a.repo, "rev-parse", "--short=12", "HEAD"])
    dirty = cmd(["git", "-C", a.repo, "status", "--porcelain", "--untracked-files=no"])
    subject = cmd(["git", "-C", a.repo, "log", "-1", "--format=%s"])
    with open("/etc/debian_version") as f:
        debian = f.read().strip()
    pretty = "?"
    with open("/etc/os-release") as f:
        for line in f:
            if line.startswith("PRETTY_NAME="):
                pretty = line.split("=", 1)[1].strip().strip('"')
    return [
        ("CPU", f"{cpu}, {os.cpu_count()} cores"
                + (f" (virtual machine, {hyp})" if hyp else (f" ({virt})" if virt != "?" else ""))),
        ("RAM", mem),
        ("Kernel", cmd(["uname", "-r"])),
        ("Host OS", f"{pretty} ({debian})"),
        ("systemd in the chroot", sd[0] if sd else "?"),
        ("extmerge", f"commit {commit}{' + uncommitted changes' if dirty else ''} "
                     f"({subject}), rustc {cmd(['rustc', '--version']).split(' ')[1]}"),
        ("Load average (1/5/15 min)", f"start {a.load_start}, end {a.load_end}"),
    ]


def ms(s):
    v = s * 1000
    # Precision by magnitude, so that a negative difference reads like a positive one.
    return f"{v:.0f}" if abs(v) >= 100 else (f"{v:.1f}" if abs(v) >= 1 else f"{v:.2f}")


def summary(values):
    return statistics.median(values), min(values), max(values)


def fmt_time(values):
    med, lo, hi = summary(values)
    return f"{ms(med)} ({ms(lo)}–{ms(hi)})"


def mib(kib):
    return f"{kib / 1024:.1f}"


def pool_stats(pool, n):
    kinds = {"squashfs": 0, "erofs": 0, "dir": 0}
    size = 0
    for i in range(n):
        p = f"{pool}/v1/bench-{i:03d}"
        if os.path.isdir(p):
            kinds["dir"] += 1
            for d, _, files in os.walk(p):
                size += sum(os.lstat(os.path.join(d, f)).st_size for f in files)
        else:
            with open(p + ".raw", "rb") as f:
                head = f.read(4)
                f.seek(1024)
                sb = f.read(4)
            if head == b"hsqs":
                kinds["squashfs"] += 1
            elif sb == bytes.fromhex("e2e1f5e0"):
                kinds["erofs"] += 1
            size += os.path.getsize(p + ".raw")
    big = sum(1 for i in range(n) if os.path.exists(f"{pool}/v1/bench-{i:03d}.raw")
              and os.path.getsize(f"{pool}/v1/bench-{i:03d}.raw") > 10 * MIB)
    return kinds, size, big


def floor_section(r, sets, w):
    """extmerge's and systemd's first merge against the floor, and extmerge's one-process
    unchanged refresh of both classes, with the targets of issue 17."""

    def vals(n, t, op, key="s"):
        return [x[key] for x in r["sets"][n]["runs"][t].get(op, []) if key in x]

    def walk_cost(n):
        """Per repetition, extmerge's default merge minus its merge with --check-conflicts=off
        (wall, CPU, the sysext process's wall), and the medians' shares of the default merge;
        None without the second merge."""
        runs = r["sets"][n]["runs"]["extmerge"]
        pairs = list(zip(runs.get("merge", []), runs.get("merge-off", [])))
        if not pairs:
            return None
        out = {"s": [d["s"] - o["s"] for d, o in pairs],
               "cpu_s": [d["cpu_s"] - o["cpu_s"] for d, o in pairs],
               "sysext_s": [d["per_class"]["sysext"]["s"] - o["per_class"]["sysext"]["s"]
                            for d, o in pairs]}
        out["s_share"] = statistics.median(out["s"]) / statistics.median(vals(n, "extmerge", "merge"))
        out["cpu_share"] = (statistics.median(out["cpu_s"])
                            / statistics.median(vals(n, "extmerge", "merge", "cpu_s")))
        return out

    w("## Against the floor")
    w("")
    def off_cells(n, fm, key="s"):
        off = vals(n, "extmerge", "merge-off", key)
        return f"{fmt_time(off)} | {statistics.median(off) / fm:.2f} |" if off else "— | — |"

    w("First merge (confext + sysext, two processes each), median (min–max) ms. extmerge "
      "merges twice per repetition, each time on a fresh copy: with its default "
      "`--check-conflicts=warn`, which walks every entry of every image to report files that "
      "more than one extension ships (systemd and the floor do no such walk), and with "
      "`--check-conflicts=off`, the same merge without that walk:")
    w("")
    w("| extensions | floor | extmerge (default, warn) | extmerge/floor | "
      "extmerge, conflicts off | off/floor | systemd | systemd/floor |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in sets:
        fl, ex = vals(n, "floor", "merge"), vals(n, "extmerge", "merge")
        if not fl:
            continue
        sd = [] if "systemd" in r["sets"][n].get("failed", {}) else vals(n, "systemd", "merge")
        fm = statistics.median(fl)
        w(f"| {n} | {fmt_time(fl)} | {fmt_time(ex)} | {statistics.median(ex) / fm:.2f} | "
          + off_cells(n, fm) + " "
          + (f"{fmt_time(sd)} | {statistics.median(sd) / fm:.1f} |" if sd else "fails | — |"))
    w("")
    w("The same merges' CPU time (`wait4()`'s user + system time of the processes; the loop "
      "devices' I/O runs on kernel threads and is not in it), which other jobs on the machine "
      "disturb less than the wall time, median (min–max) ms:")
    w("")
    w("| extensions | floor | extmerge (default, warn) | extmerge/floor | "
      "extmerge, conflicts off | off/floor | systemd |")
    w("|---:|---:|---:|---:|---:|---:|---:|")
    for n in sets:
        fl, ex = vals(n, "floor", "merge", "cpu_s"), vals(n, "extmerge", "merge", "cpu_s")
        if not fl or not ex:
            continue
        sd = [] if "systemd" in r["sets"][n].get("failed", {}) else vals(n, "systemd", "merge", "cpu_s")
        w(f"| {n} | {fmt_time(fl)} | {fmt_time(ex)} | "
          f"{statistics.median(ex) / statistics.median(fl):.2f} | "
          + off_cells(n, statistics.median(fl), "cpu_s") + " "
          + (f"{fmt_time(sd)} |" if sd else "fails |"))
    w("")
    walk = {n: walk_cost(n) for n in sets}
    if any(walk.values()):
        w("What the conflict walk costs: per repetition the default merge minus the merge with "
          "`--check-conflicts=off` (the two copies of the same repetition), median (min–max) "
          "ms over the repetitions, and the median's share of the default merge's median; "
          "negative values are noise:")
        w("")
        w("| extensions | wall ms | share of the merge's wall time | CPU ms | "
          "share of the merge's CPU time | sysext process alone, wall ms |")
        w("|---:|---:|---:|---:|---:|---:|")
        for n, c in walk.items():
            if c:
                w(f"| {n} | {fmt_time(c['s'])} | {c['s_share']:.0%} | {fmt_time(c['cpu_s'])} | "
                  f"{c['cpu_share']:.0%} | {fmt_time(c['sysext_s'])} |")
        w("")
    w("Unchanged refresh of both classes, median (min–max) ms: one `extmerge refresh` process, "
      "and the two `--class=` processes of the table above; wall time, and CPU time:")
    w("")
    w("| extensions | one process | two processes | CPU, one process | CPU, two processes |")
    w("|---:|---:|---:|---:|---:|")
    for n in sets:
        both = vals(n, "extmerge", "refresh-both")
        if both:
            cb, c2 = vals(n, "extmerge", "refresh-both", "cpu_s"), vals(n, "extmerge", "refresh", "cpu_s")
            w(f"| {n} | {fmt_time(both)} | {fmt_time(vals(n, 'extmerge', 'refresh'))} | "
              f"{fmt_time(cb) if cb else '-'} | {fmt_time(c2) if c2 else '-'} |")
    w("")
    w("## Against the targets (issue 17)")
    w("")
    w("| target | measured | |")
    w("|---|---|---|")
    def to_floor(n, op):
        return (statistics.median(vals(n, "extmerge", op))
                / statistics.median(vals(n, "floor", "merge")))

    if "20" in sets and vals("20", "floor", "merge"):
        ratio = to_floor("20", "merge")
        others = ", ".join(f"{to_floor(n, 'merge'):.2f} at {n}"
                           for n in sets if n != "20" and vals(n, "floor", "merge"))
        w(f"| first merge ≤ 1.5 × the floor (20 extensions), as extmerge merges by default "
          f"(`--check-conflicts=warn`) | {ratio:.2f}{f' ({others})' if others else ''} | "
          f"{'met' if ratio <= 1.5 else 'missed'} |")
        if vals("20", "extmerge", "merge-off"):
            off = to_floor("20", "merge-off")
            others = ", ".join(f"{to_floor(n, 'merge-off'):.2f} at {n}"
                               for n in sets if n != "20" and vals(n, "floor", "merge")
                               and vals(n, "extmerge", "merge-off"))
            c = walk_cost("20")
            w(f"| not the target, for comparison: the same merge with `--check-conflicts=off` "
              f"(no conflict walk) | {off:.2f}{f' ({others})' if others else ''}; so at 20 extensions the conflict walk costs "
              f"{ms(statistics.median(c['s']))} ms of wall time ({c['s_share']:.0%} of the "
              f"default merge) and {ms(statistics.median(c['cpu_s']))} ms of CPU time | "
              f"— |")
        both = statistics.median(vals("20", "extmerge", "refresh-both"))
        two = statistics.median(vals("20", "extmerge", "refresh"))
        w(f"| unchanged refresh of 20 extensions in both classes ≤ 2 ms | {ms(both)} ms in one "
          f"process ({ms(two)} ms as two) | {'met' if both <= 0.002 else 'missed'} |")
    w("")


def bigdir_section(r, w):
    """Directory extensions of 100,000 files: extmerge's unchanged refresh per conflict policy
    against the walk floor and systemd, peak RSS, what extmerge keeps (issue 17, point 2)."""
    b = r.get("bigdir")
    if not b:
        return
    pols = b["policies"]
    fl = [x["s"] for x in b["floor"]]
    fl_cpu = [x["cpu_s"] for x in b["floor"]]
    fmed = statistics.median(fl)
    threads = sorted({x["threads"] for x in b["floor"]})
    sd = b["systemd"]
    w("## Directory extensions of 100,000 files")
    w("")
    w(f"{b['trees']} directory sysexts (`bench/images.py`, `target/bench/pool/bigdir`), each "
      f"{BIG_RECIPE['dirs']} directories of {BIG_RECIPE['files']} empty files below "
      f"`usr/share/big-NN` plus its `extension-release.big-NN` (`ID=_any`): {b['entries']:,} "
      "entries in all, hard-linked into a fresh copy of the base root per conflict policy. "
      "sysext only (`--class=sysext`). Per policy: `extmerge --check-conflicts=POLICY merge`, "
      f"then {b['reps']} rounds of, in rotating order, extmerge's unchanged `refresh` (exit 77), "
      "the walk floor over the same trees, and systemd 262's unchanged `refresh` (its own copy, "
      "merged once; exit 0 and \"Skipping extension refresh\" checked each time); then `unmerge`. "
      "The **walk floor** (`bench/walkfloor.c`) does only what an identity that sees an in-place "
      "edit must: `getdents64` of every directory, one `statx(AT_SYMLINK_NOFOLLOW, "
      "STATX_BASIC_STATS|STATX_BTIME)` per entry, `openat(O_NOFOLLOW|O_DIRECTORY|O_NOATIME)` per "
      f"subdirectory, one tree per work item on {'/'.join(map(str, threads))} threads (the "
      "processors it may run on, as extmerge's `available_parallelism()`); nothing is hashed or "
      "kept, and its entry count is checked against the trees'.")
    w("")
    w("Unchanged refresh, median (min–max) ms; CPU is `wait4()`'s user + system time of all "
      "threads; peak RSS the largest of the runs:")
    w("")
    w("| | wall ms | CPU ms | wall / floor | CPU / floor | peak RSS MiB |")
    w("|---|---:|---:|---:|---:|---:|")
    rows = [(f"extmerge, `--check-conflicts={p}`", pols[p]["refresh"]) for p in pols]
    rows += [("walk floor", b["floor"]), ("systemd 262", sd["refresh"])]
    for label, xs in rows:
        wall, cpu = [x["s"] for x in xs], [x["cpu_s"] for x in xs]
        w(f"| {label} | {fmt_time(wall)} | {fmt_time(cpu)} | "
          f"{statistics.median(wall) / fmed:.2f} | "
          f"{statistics.median(cpu) / statistics.median(fl_cpu):.2f} | "
          f"{mib(max(x['rss_kib'] for x in xs))} |")
    w("")
    w("Per conflict policy: the merge (one run), peak RSS of merge and refreshes, and what "
      "extmerge keeps while merged — its files in the meta dir (`usr/.systemd-sysext/`: "
      "`extmerge-state.json` and systemd's record), its files for this root in "
      "`/run/extmerge/` (the state copy and the lock) — and any cache (`/var/cache/extmerge` "
      "in the chroot or the root):")
    w("")
    w("| policy | merge ms | merge CPU ms | peak RSS merge MiB | peak RSS refresh MiB | "
      "unmerge ms | extmerge-state.json bytes | meta dir + /run bytes | cache |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for p, x in pols.items():
        st = x["state"]
        meta_run = sum(st["meta"].values()) + sum(st["run"].values())
        cache = ", ".join(f"{k}: {v} bytes" for k, v in st["cache"].items()) or "none"
        w(f"| {p} | {ms(x['merge']['s'])} | {ms(x['merge']['cpu_s'])} | "
          f"{mib(x['merge']['rss_kib'])} | {mib(max(y['rss_kib'] for y in x['refresh']))} | "
          f"{ms(x['unmerge']['s'])} | {st['state_json']} | {meta_run} | {cache} |")
    w("")
    w(f"systemd 262 on the same trees: merge {ms(sd['merge']['s'])} ms, unmerge "
      f"{ms(sd['unmerge']['s'])} ms, peak RSS {mib(max(x['rss_kib'] for x in [sd['merge'], *sd['refresh']]))} MiB.")
    w("")
    ex_med = {p: statistics.median(y["s"] for y in x["refresh"]) for p, x in pols.items()}
    cpu_med = {p: statistics.median(y["cpu_s"] for y in x["refresh"]) for p, x in pols.items()}
    cpu_entry = statistics.median(fl_cpu) / b["entries"] * 1e6
    # The least wall time the floor's work can take: its CPU time on all its threads at once.
    best = statistics.median(fl_cpu) / max(threads)
    w("**Why the floor bounds the refresh.** extmerge identifies a directory extension by a "
      "digest of every entry's inode metadata (README, \"Refresh\"; `src/gather/identity.rs`), "
      "one `statx` per entry. It must: an edit of a file in place changes that file's "
      "modification and change times and nothing above it — not its directory, not the tree's "
      "root — so an identity that looks at fewer inodes than all of them cannot see it, and "
      "`tests/merge.rs` `refresh_detects_every_kind_of_change_and_nothing_else` requires that "
      "such an edit re-merges. The walk floor is that per-entry work and nothing else: "
      f"{ms(statistics.median(fl_cpu))} ms of CPU ({cpu_entry:.1f} µs per entry) for "
      f"{b['entries']:,} entries on this machine; spread without loss over its {max(threads)} "
      f"threads that is {ms(best)} ms of wall time at best, with the cores to itself (measured: "
      f"{ms(fmed)} ms, with whatever else ran). No per-entry identity "
      "refreshes these trees faster here; extmerge's unchanged refresh takes "
      + ", ".join(f"{cpu_med[p] / statistics.median(fl_cpu):.2f}×" for p in pols)
      + f" the floor's CPU time ({', '.join(pols)}). systemd 262 skips in "
      f"{ms(statistics.median(x['s'] for x in sd['refresh']))} ms "
      "because its record (`origin`) holds only each extension directory's own mount ID, "
      "file handle, birth and modification time: it misses an edit inside the tree (systemd "
      "issue 41523).")
    w("")
    w("Against issue 17's targets for these trees:")
    w("")
    w("| target | measured | |")
    w("|---|---|---|")
    worst = max(ex_med.values())
    w(f"| unchanged refresh ≤ 50 ms | "
      + ", ".join(f"{ms(v)} ms ({p})" for p, v in ex_med.items())
      + f"; the walk floor: {ms(fmed)} ms, at best {ms(best)} ms (its CPU time over its "
      f"threads) | " + ("met" if worst <= 0.05 else
                        ("missed: the target is below the per-entry floor" if best > 0.05 else "missed")) + " |")
    kept = max(x["state"]["total"] for x in pols.values())
    w(f"| state and cache ≤ 1 MiB | {kept} bytes at most (cache: "
      + ("none" if not any(x["state"]["cache"] for x in pols.values()) else "present")
      + f") | {'met' if kept <= MIB else 'missed'} |")
    peak = max(y["rss_kib"] for x in pols.values() for y in [x["merge"], *x["refresh"]])
    w(f"| peak RSS ≤ 64 MiB under every conflict policy | "
      + ", ".join(f"{mib(max(y['rss_kib'] for y in [x['merge'], *x['refresh']]))} MiB ({p})"
                  for p, x in pols.items())
      + f" | {'met' if peak <= 64 * 1024 else 'missed'} |")
    w("")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("out")
    for k in ("repo", "chroot", "bin", "pool", "load-start", "load-end"):
        ap.add_argument(f"--{k}", required=True)
    a = ap.parse_args()
    with open(a.results) as f:
        r = json.load(f)
    sets = sorted(r["sets"], key=int)
    L = []
    w = L.append
    w("# Benchmarks: extmerge against systemd-sysext 262")
    w("")
    w(f"Generated by `make bench` (bench/run.sh) on {r['started'][:16].replace('T', ' ')} UTC; "
      f"the run took {r['wall_s'] / 60:.1f} min. Do not edit: the next `make bench` rewrites "
      "this file.")
    w("")
    w("## Machine")
    w("")
    w("| | |")
    w("|---|---|")
    for k, v in machine(a):
        w(f"| {k} | {v} |")
    w("")
    w("Other jobs (compiles, QEMU guests) may share these 2 cores: that is why the two tools and "
      "the floor take turns (A B C, then B C A, then C A B, …), medians are shown and the load "
      "averages above are recorded.")
    w("")
    w("## What is measured")
    w("")
    w(f"- **Image sets** of {', '.join(sets[:-1])} and {sets[-1]} sysexts in `var/lib/extensions` of a root tree "
      "(`bench/images.py`, cached in `target/bench/pool`), plus one confext (squashfs) merged "
      "onto a mutable `/etc` (`var/lib/extensions.mutable/etc -> /etc`, `--mutable=auto`: "
      "`/etc` is its own upper dir, as on Flatcar). Squashfs is gzip (mksquashfs defaults), "
      "erofs is lz4hc:")
    w("")
    w("  | extensions | squashfs | erofs | directories | images > 10 MiB | total size |")
    w("  |---:|---:|---:|---:|---:|---:|")
    for n in sets:
        kinds, size, big = pool_stats(a.pool, int(n))
        w(f"  | {n} | {kinds['squashfs']} | {kinds['erofs']} | {kinds['dir']} | {big} | "
          f"{size / MIB:.0f} MiB |")
    w("")
    w("- **Both tools run inside the Debian unstable chroot** (`make chroot`), in one private "
      "mount namespace, each on its own fresh, identical copy of the root tree (images "
      "hard-linked from the pool, so the page cache is warm and shared; before the first "
      "repetition the set is read once and merged, refreshed and unmerged once by extmerge, "
      "untimed): `systemd-confext`/`systemd-sysext` from the chroot, and "
      "the static extmerge binary copied into the chroot. Every operation is two processes, "
      "confext then sysext (`--class=confext --mutable=auto`, then `--class=sysext`), like "
      "the initrd unit and like Flatcar's two systemd calls; the times below are the sum of "
      "the two. A fresh copy waits 200 ms (untimed) before the first operation: hard-linking "
      "its files changed their ctime, and extmerge looks again at anything changed in the last "
      "100 ms (\"racily clean\", as git), which on a real system, with extensions written long "
      "before the boot, never applies.")
    w("- **The floor** (`bench/floor.c`, built by `bench/run.sh`) does only what any "
      "implementation must on the kernels extmerge targets, in the same chroot, on its own "
      "fresh copy, in the same rotation, as two processes (confext, then sysext): list the "
      "search directories; per image open it, read its superblock magic, mount erofs from the "
      "file (kernel ≥ 6.12, as extmerge does) and squashfs through one `LOOP_CONFIGURE` "
      "(read-only, autoclear, direct I/O) and `fsopen`/`fsmount`, in a private mount namespace "
      "(overlay layers must be mounts of the caller's namespace before 6.15); one overlay per "
      "hierarchy an extension populates (`lowerdir+` per layer; `/etc` its own upper dir); "
      "back in the caller's namespace, `move_mount` onto the hierarchy. No `extension-release` "
      "is read, nothing is identified or recorded, no metadata layer: no implementation that "
      "merges the same overlays can be faster. Its merge is checked like the tools' (every "
      "marker file), then unmounted, untimed.")
    w("- **Operations**, in this order on each copy: `merge`; `refresh` with nothing changed "
      "(extmerge exits 77 per class, systemd prints \"Skipping extension refresh\" and exits "
      "0); for extmerge also the same refresh as one process for both classes (`extmerge "
      "refresh`, no `--class`, exit 77); `refresh` after the last sysext of the set was replaced by an updated image "
      "(new inode, renamed over the old one; the confext is unchanged); `unmerge`. After each "
      "step every marker file of the set (and the updated marker, and the confext's) is "
      "checked in the merged tree, and after `unmerge` that nothing is left mounted; a wrong "
      "exit status or a failed check aborts the run. extmerge also gets a second fresh copy "
      "per repetition (before or after the first, in turn): the same first merge with "
      "`--check-conflicts=off`, checked the same way, then unmerged and checked; only that "
      "merge's time is reported (\"Against the floor\").")
    w("- **Time** is wall time from fork to `wait4()` (`bench/runner.c`, which chroots and "
      "execs the tool itself). **Peak RSS** is `wait4()`'s `ru_maxrss`: the largest peak RSS "
      "of the process or of any descendant it waited for (systemd forks helpers; their peaks "
      "are not summed); shown is the maximum over both classes and all repetitions.")
    w("- **Caches and noise**: both tools attach loop devices with direct I/O (`losetup` shows "
      "DIO 1 for both), so squashfs images are read from the virtual disk on every merge even "
      "though the page cache holds the image files (erofs images need no loop device for "
      "extmerge on kernels ≥ 6.12: file-backed mount). The disk and the 2 CPUs are shared "
      "with other jobs: that, not the tools, is most of the min–max spread.")
    reps = ", ".join(f"{r['sets'][n]['reps']} for {n}" for n in sets)
    w(f"- **Repetitions**: {reps}; shown are median (min–max) in milliseconds; the ratio is "
      "median extmerge / median systemd.")
    w("")
    w("## Results")
    w("")
    w("| extensions | operation | extmerge ms | systemd ms | extmerge/systemd | "
      "peak RSS extmerge MiB | peak RSS systemd MiB |")
    w("|---:|---|---:|---:|---:|---:|---:|")
    for n in sets:
        runs = r["sets"][n]["runs"]
        failed = r["sets"][n].get("failed", {})
        for op, label in OPS:
            cells = {}
            for t in ("extmerge", "systemd"):
                if t in failed:
                    f = failed[t]["merge"]
                    cells[t] = (f"**fails** (exit {f['per_class']['sysext']['rc']} after "
                                f"{ms(f['s'])})" if op == "merge" else "—",
                                mib(f["rss_kib"]) if op == "merge" else "—")
                else:
                    xs = runs[t][op]
                    cells[t] = (fmt_time([x["s"] for x in xs]), mib(max(x["rss_kib"] for x in xs)))
            if failed:
                ratio = "—"
            else:
                ratio = (statistics.median(x["s"] for x in runs["extmerge"][op])
                         / statistics.median(x["s"] for x in runs["systemd"][op]))
                ratio = f"{ratio:.3f}"
            w(f"| {n} | {label} | {cells['extmerge'][0]} | {cells['systemd'][0]} | {ratio} | "
              f"{cells['extmerge'][1]} | {cells['systemd'][1]} |")
    for n in sets:
        for t, f in r["sets"][n].get("failed", {}).items():
            w("")
            w(f"**{t} fails to merge {n} extensions** (so only its merge attempt is shown, "
              f"once): `{f['reason']}`" + (f"; kernel: `{f['kernel']}`" if f["kernel"] else "")
              + ".")
            if t == "systemd":
                w("systemd 262 passes all layers in one `lowerdir=` option string through "
                  "mount(2), which copies at most one page (4096 bytes) of options; each layer "
                  "`/run/systemd/sysext/extensions/NAME/usr:` takes about 45 bytes here, so the "
                  "string is cut and the overlay mount fails. extmerge adds layers one by one "
                  "with `fsconfig(lowerdir+)`.")
    w("")
    w("The sysext process alone (the second of each pair), median ms:")
    w("")
    w("| extensions | merge extmerge | merge systemd | refresh (unchanged) extmerge | "
      "refresh (unchanged) systemd | refresh (changed) extmerge | refresh (changed) systemd |")
    w("|---:|---:|---:|---:|---:|---:|---:|")
    for n in sets:
        runs = r["sets"][n]["runs"]
        failed = r["sets"][n].get("failed", {})
        cells = []
        for op in ("merge", "refresh", "refresh-changed"):
            for t in ("extmerge", "systemd"):
                if t in failed:
                    cells.append("fails" if op == "merge" else "—")
                else:
                    cells.append(ms(statistics.median(x["per_class"]["sysext"]["s"]
                                                      for x in runs[t][op])))
        w(f"| {n} | " + " | ".join(cells) + " |")
    w("")
    g = r["gap"]
    w("## Visibility gap")
    w("")
    w(f"On the {r['gap_set']}-extension set (sysext only), a reader (`bench/reader.c`) opens "
      f"and reads `usr/share/bench-000/marker` — a file of the first extension, present before "
      f"and after every refresh — in a tight loop while the tool runs "
      f"{g['extmerge']['refreshes']} forced refreshes (`refresh --always-refresh=yes`) one "
      "after the other. A read fails when open() or read() fails.")
    w("")
    w("| tool | forced refreshes | reads | failed reads | failed share | wrong content | "
      "median refresh ms | peak RSS MiB |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    for t in ("extmerge", "systemd"):
        x = g[t]
        share = 100 * x["failed"] / x["reads"] if x["reads"] else 0
        w(f"| {t} | {x['refreshes']} | {x['reads']} | {x['failed']} | {share:.3f} % | "
          f"{x['mismatched']} | {ms(statistics.median(x['refresh_s']))} | {mib(x['rss_kib'])} |")
    if g["systemd"]["failed"]:
        w("")
        w(f"systemd's first failed read: errno {g['systemd']['first_errno']} "
          f"({os.strerror(g['systemd']['first_errno']) if g['systemd']['first_errno'] > 0 else 'empty read'}).")
    w("")
    w("## Binary")
    w("")
    size = os.path.getsize(a.bin)
    ftype = cmd(["file", "-b", a.bin])
    stripped = "stripped" if re.search(r"\bstripped\b", ftype) and "not stripped" not in ftype \
        else "not stripped"
    rel = os.path.relpath(a.bin, a.repo)
    origin = "`make static`" if rel == "target/x86_64-unknown-linux-gnu/release/extmerge" \
        else "given by BENCH_BIN"
    w(f"`{rel}` ({origin}): {size} bytes "
      f"({size / MIB:.2f} MiB), {stripped}; `file`: {ftype.split(',')[0]}, "
      f"{'static-pie linked' if 'static-pie' in ftype else ('statically linked' if 'statically' in ftype else 'dynamically linked')}.")
    w("")
    floor_section(r, sets, w)
    bigdir_section(r, w)
    w("## Against the targets (issue 8)")
    w("")

    def med(n, t, op, cls=None):
        xs = r["sets"][n]["runs"][t][op]
        return statistics.median(x["per_class"][cls]["s"] if cls else x["s"] for x in xs)

    w("| target | measured | |")
    w("|---|---|---|")
    big = [n for n in sets if int(n) >= 10]
    ratios = {n: med(n, "extmerge", "merge") / med(n, "systemd", "merge") for n in big
              if not r["sets"][n].get("failed")}
    fails = [n for n in big if "systemd" in r["sets"][n].get("failed", {})]
    w("| merge ≤ 0.2 × systemd at 10+ extensions | "
      + ", ".join([f"{ratios[n]:.3f} at {n}" for n in ratios]
                  + [f"systemd fails at {n} (extmerge {ms(med(n, 'extmerge', 'merge'))} ms)"
                     for n in fails])
      + f" | {'met' if all(v <= 0.2 for v in ratios.values()) else 'missed'} |")
    near = ["20"] if "20" in sets else [n for n in sets if int(n) in (10, 50)]
    vals = {n: med(n, "extmerge", "refresh") for n in near}
    w("| unchanged refresh ≤ 5 ms with 20 extensions (confext + sysext) | "
      + ", ".join(f"{ms(vals[n])} ms at {n}" for n in near)
      + " (sysext alone: "
      + ", ".join(f"{ms(med(n, 'extmerge', 'refresh', 'sysext'))} ms" for n in near) + ")"
      + f" | {'met' if all(v <= 0.005 for v in vals.values()) else 'missed'} |")
    gx = g["extmerge"]
    w(f"| zero visibility gap | {gx['failed']} failed of {gx['reads']} reads "
      f"(systemd: {g['systemd']['failed']} of {g['systemd']['reads']}) | "
      f"{'met' if gx['failed'] == 0 and gx['mismatched'] == 0 else 'missed'} |")
    if "200" in r["sets"]:
        peak = max(x["rss_kib"] for op, _ in OPS for x in r["sets"]["200"]["runs"]["extmerge"][op])
        w(f"| peak RSS ≤ 10 MiB with 200 extensions | {mib(peak)} MiB | "
          f"{'met' if peak <= 10 * 1024 else 'missed'} |")
    w("")
    w("## Reproduce")
    w("")
    w("`make bench` (root; builds `make static` and `make chroot` first; about 10–15 minutes, "
      "most of it systemd's side). Raw results: `target/bench/results.json`; every command "
      "with its output, exit status, time and peak RSS: `target/bench/run/logs/`.")
    with open(a.out, "w") as f:
        f.write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
