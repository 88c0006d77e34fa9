#!/usr/bin/env python3
"""Benchmark driver: extmerge against systemd-sysext/systemd-confext 262 (bench/run.sh runs it).

Must run as root inside a private mount namespace (`unshare -m --propagation private`): it
mounts the chroot's /proc, /sys, /dev, /run, /tmp and the copies, and everything vanishes with
the namespace. Both tools run inside the Debian unstable chroot (bench/runner.c chroots and
execs them; the static extmerge binary is copied into the chroot's /tmp), on identical copies of one root tree below the chroot's /tmp/bench/run (a bind mount of
target/bench/run), in alternating order.

Per set of N extensions and per repetition, each tool gets a fresh copy and runs, timed:
  merge             confext (mutable /etc) then sysext, two processes each, as the initrd unit
  refresh           nothing changed (extmerge exits 77 per class when it skips)
  refresh-both      extmerge only: the same, one process for both classes (`extmerge refresh`)
  refresh-changed   after the last sysext image was replaced by its v2 (new inode, rename)
  unmerge
and extmerge on a second fresh copy, before or after the first in turn:
  merge-off         the same merge with --check-conflicts=off (no walk of every image's
                    entries for conflicts; the difference to `merge` is what that walk costs),
                    then its unmerge (checked; its time only in the log)
The floor (bench/floor.c: loop devices, image mounts, one overlay per hierarchy, attach, and
nothing else) runs in the same alternation, merge only, two processes like the tools.
After each step (also on the second copy) the merged tree is checked (every marker file of the
set, the v2 marker, the confext's marker, and nothing left mounted after unmerge); a failed check
aborts the run.
Then the visibility gap: on the GAP set, sysext only, a reader loops over a file of the first
extension while the tool runs K forced refreshes (--always-refresh=yes).
Then directory extensions of 100,000 files (--big TREES:REPS, the pool's bigdir/big-NN trees of
5,056 entries each), sysext only: per conflict policy (--check-conflicts=off|warn|refuse) a fresh
copy merged by extmerge, then REPS rounds of extmerge's unchanged refresh (exit 77), the walk
floor (bench/walkfloor.c: getdents64 + one statx per entry over the same trees, on as many
threads as extmerge uses; its entry count is checked) and systemd's unchanged refresh (on its
own copy merged once; exit 0 and its "Skipping extension refresh" line checked), in rotating
order; then the size of what extmerge keeps (the meta dir, /run/extmerge) and whether it made a
cache, and the unmerge.
Writes the raw results as JSON and the Markdown report.
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time

LAST = {1: 0, 10: 9, 20: 19, 50: 49, 200: 199}
OPS = ["merge", "refresh", "refresh-changed", "unmerge"]
TOOLS = ["extmerge", "systemd", "floor"]
GAP_TOOLS = ["extmerge", "systemd"]
POLICIES = ["off", "warn", "refuse"]
BIG_TOOLS = ["extmerge", "floor", "systemd"]
SD_SKIP = "Skipping extension refresh"
# What each tool runs (the floor only merges; the one-process refresh and the merge without the
# conflict walk are extmerge's own).
TOOL_OPS = {"extmerge": OPS + ["refresh-both", "merge-off"], "systemd": OPS, "floor": ["merge"]}
ENV = {"PATH": "/usr/bin:/usr/sbin:/bin:/sbin", "LANG": "C"}


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def sh(cmd):
    subprocess.run(["sh", "-euc", cmd], check=True)


def name(i):
    return f"bench-{i:03d}"


def big_name(i):
    return f"big-{i:02d}"


def tree_entries(path):
    """Entries below path (path itself not counted), without following symlinks."""
    n = 0
    for _, dirs, files in os.walk(path):
        n += len(dirs) + len(files)
    return n


def sizes(path):
    """{relative path: bytes} of the files below path (lstat; symlinks count their own size)."""
    out = {}
    for d, _, files in os.walk(path):
        for f in files:
            p = os.path.join(d, f)
            out[os.path.relpath(p, path)] = os.lstat(p).st_size
    return out


class Bench:
    def __init__(self, a):
        self.a = a
        self.c = os.path.realpath(a.chroot)
        self.work = os.path.realpath(a.work)
        self.pool = os.path.realpath(a.pool)
        self.logdir = os.path.join(self.work, "logs")
        self.inner_run = "/tmp/bench/run"
        self.host_run = self.c + self.inner_run

    # ---- namespace setup --------------------------------------------------------------
    def setup(self):
        c = self.c
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.logdir)
        sh(f"mount --bind {c} {c}; mount -t proc proc {c}/proc; mount --rbind /sys {c}/sys; "
           f"mount --rbind /dev {c}/dev; mount -t tmpfs -o mode=755 tmpfs {c}/run; "
           f"mount -t tmpfs tmpfs {c}/tmp; mkdir -p {c}/tmp/bench/bin {self.host_run}; "
           f"cp {self.a.bin} {c}/tmp/bench/bin/extmerge; cp {self.a.floor} {c}/tmp/bench/bin/floor; "
           f"cp {self.a.walkfloor} {c}/tmp/bench/bin/walkfloor; "
           f"mount --bind {self.work} {self.host_run}")

    def teardown(self):
        subprocess.run(["umount", "-R", "-l", self.c], check=False)

    # ---- copies ---------------------------------------------------------------------
    def make_copy(self, n, label):
        dst = os.path.join(self.work, label)
        shutil.rmtree(dst, ignore_errors=True)
        subprocess.run(["cp", "-a", f"{self.pool}/base", dst], check=True)
        exts = f"{dst}/var/lib/extensions"
        for i in range(n):
            src = f"{self.pool}/v1/{name(i)}"
            if os.path.isdir(src):
                subprocess.run(["cp", "-al", src, exts], check=True)
            else:
                os.link(src + ".raw", f"{exts}/{name(i)}.raw")
        os.link(f"{self.pool}/conf/bench-conf.raw", f"{dst}/var/lib/confexts/bench-conf.raw")
        self.settle_copy(label)

    def make_big_copy(self, trees, label):
        """A copy of the base root with the first `trees` 100,000-file directory sysexts (hard
        links, like make_copy's)."""
        dst = os.path.join(self.work, label)
        shutil.rmtree(dst, ignore_errors=True)
        subprocess.run(["cp", "-a", f"{self.pool}/base", dst], check=True)
        subprocess.run(["cp", "-al", *(f"{self.pool}/bigdir/{big_name(i)}" for i in range(trees)),
                        f"{dst}/var/lib/extensions"], check=True)
        self.settle_copy(label)

    def settle_copy(self, label):
        h = self.host(label)
        # systemd merges in a child namespace: a shared bind lets its mounts propagate back.
        sh(f"mount --bind {h} {h}; mount --make-rshared {h}")
        # Linking the files just now changed their ctime. On a real system the extensions were
        # written long before a boot; extmerge looks again at a tree changed in the last 100 ms
        # (as git treats "racily clean" files), so let the copy settle first. Untimed, and the
        # same for every tool.
        time.sleep(0.2)

    def drop_copy(self, label):
        h = self.host(label)
        left = self.mounts_below(h)
        if left:
            subprocess.run(["umount", "-R", "-l", h], check=False)
            raise RuntimeError(f"mounts left below {h} after unmerge: {left}")
        subprocess.run(["umount", h], check=True)
        shutil.rmtree(os.path.join(self.work, label))

    def host(self, label):
        return f"{self.host_run}/{label}"

    @staticmethod
    def mounts_below(path):
        out = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4].replace("\\040", " ")
                if mp.startswith(path + "/"):
                    out.append(mp)
        return out

    # ---- running the tools ----------------------------------------------------------
    def cmds(self, tool, label, verb, extra=(), classes=("confext", "sysext")):
        root = f"--root={self.inner_run}/{label}"
        out = []
        for cls in classes:
            mut = ["--mutable=auto"] if cls == "confext" else []
            if tool == "floor":
                out.append((cls, ["/tmp/bench/bin/floor", f"{self.inner_run}/{label}", cls]))
                continue
            if tool == "extmerge":
                argv = ["/tmp/bench/bin/extmerge", f"--class={cls}"]
            else:
                argv = [f"/usr/bin/systemd-{cls}"]
            out.append((cls, [*argv, *mut, *extra, root, verb]))
        return out

    def run1(self, argv, logname, env=None):
        """Run one process inside the chroot; return (seconds, exit status, peak RSS in KiB,
        CPU seconds).

        bench/runner.c forks, chroots and execs it, and reports the wall time from fork to
        wait4() and wait4()'s ru_maxrss: the largest peak RSS of the process and of every
        descendant it waited for (systemd-sysext forks helpers and waits for them)."""
        path = os.path.join(self.logdir, logname)
        with open(path, "ab") as lf:
            lf.write(("$ " + " ".join(argv) + "\n").encode())
        out = subprocess.run([self.a.runner, self.c, path, *argv], env={**ENV, **(env or {})},
                             check=True,
                             stdout=subprocess.PIPE, text=True).stdout
        rc, dt, kib, cpu = out.split()
        rc, dt, kib, cpu = int(rc), float(dt), int(kib), float(cpu)
        with open(path, "ab") as lf:
            lf.write(f"# exit {rc}, {dt * 1000:.1f} ms, CPU {cpu * 1000:.1f} ms, "
                     f"maxrss {kib} KiB\n".encode())
        return dt, rc, kib, cpu

    def op(self, tool, label, verb, expect, extra=(), tolerate=False, both=False):
        """Run verb for both classes; expect maps class -> allowed exit codes. With tolerate,
        an unexpected exit status is returned (per_class[...]["rc"]) instead of aborting. With
        both, one extmerge process does both classes (class "both" in expect)."""
        total, cpu_total, rss, per, ok = 0.0, 0.0, 0, {}, True
        cmds = self.cmds(tool, label, verb, extra)
        env = None
        if both:
            # The confext's --mutable=auto of the two-process form, for that class only.
            env = {"SYSTEMD_CONFEXT_MUTABLE_MODE": "auto"}
            cmds = [("both", ["/tmp/bench/bin/extmerge", f"--root={self.inner_run}/{label}", verb])]
        for cls, argv in cmds:
            dt, rc, kib, cpu = self.run1(argv, f"{label}.log", env)
            if rc not in expect[cls]:
                if not tolerate:
                    self.fail(label, f"{tool} {cls} {verb} exited {rc} (expected {expect[cls]})")
                ok = False
            total += dt
            cpu_total += cpu
            rss = max(rss, kib)
            per[cls] = {"s": dt, "rc": rc, "rss_kib": kib, "cpu_s": cpu}
        return {"s": total, "cpu_s": cpu_total, "rss_kib": rss, "per_class": per, "ok": ok}

    @staticmethod
    def uptime():
        with open("/proc/uptime") as f:
            return float(f.read().split()[0])

    def failure_reason(self, label, since):
        """The tool's last "Failed ..." line (shortened) and the kernel's last overlayfs error
        logged after `since` (seconds since boot)."""
        reason = ""
        with open(os.path.join(self.logdir, f"{label}.log"), errors="replace") as f:
            for line in f:
                if line.startswith("Failed to mount"):
                    reason = line.strip()
        if len(reason) > 200:
            reason = reason[:200] + " …"
        kmsg = subprocess.run(["dmesg"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True).stdout.splitlines()
        kernel = []
        for k in kmsg:
            try:
                stamp = float(k[1:k.index("]")])
            except ValueError:
                continue
            if stamp >= since and "overlayfs:" in k:
                kernel.append(k)
        return reason, (kernel[-1].split("] ", 1)[-1] if kernel else "")

    def fail(self, label, msg):
        path = os.path.join(self.logdir, f"{label}.log")
        tail = ""
        try:
            with open(path) as f:
                tail = "".join(f.readlines()[-30:])
        except OSError:
            pass
        raise RuntimeError(f"{msg}\n--- {path} (tail) ---\n{tail}")

    # ---- checks -----------------------------------------------------------------------
    def check_merged(self, label, n, last_version):
        h = self.host(label)
        for i in range(n):
            want = f"{name(i)} {last_version if i == LAST[n] else 'v1'}\n"
            p = f"{h}/usr/share/{name(i)}/marker"
            try:
                got = open(p).read()
            except OSError as e:
                self.fail(label, f"{p}: {e}")
            if got != want:
                self.fail(label, f"{p}: {got!r}, expected {want!r}")
        p = f"{h}/etc/bench-conf/marker"
        try:
            if open(p).read() != "bench-conf v1\n":
                self.fail(label, f"{p}: wrong content")
        except OSError as e:
            self.fail(label, f"{p}: {e}")

    def check_unmerged(self, label, n):
        h = self.host(label)
        for p in (f"{h}/usr/share/{name(LAST[n])}", f"{h}/etc/bench-conf"):
            if os.path.exists(p):
                self.fail(label, f"{p} still visible after unmerge")
        left = self.mounts_below(h)
        if left:
            self.fail(label, f"mounts left after unmerge: {left}")

    def update_image(self, label, n):
        # The work path, not the chroot view: link() across bind mounts fails with EXDEV.
        ext = f"{self.work}/{label}/var/lib/extensions"
        tmp = f"{ext}/.{name(LAST[n])}.raw.new"
        os.link(f"{self.pool}/v2/{name(LAST[n])}.raw", tmp)
        os.rename(tmp, f"{ext}/{name(LAST[n])}.raw")

    def warm(self, n):
        """Read the set's images once, so neither tool pays for a cold page cache; then one
        untimed extmerge cycle: the loop devices read with direct I/O, past the page cache, and
        the first reads of the disk blocks would otherwise fall on whichever tool runs first."""
        self.warm_files(n)
        self.cycle("extmerge", n, "warmup")

    def warm_files(self, n):
        paths = [f"{self.pool}/conf/bench-conf.raw", f"{self.pool}/v2/{name(LAST[n])}.raw"]
        for i in range(n):
            paths.append(f"{self.pool}/v1/{name(i)}")
        for p in paths:
            if os.path.isdir(p):
                for d, _, files in os.walk(p):
                    for f in files:
                        with open(os.path.join(d, f), "rb") as fh:
                            while fh.read(1 << 20):
                                pass
            else:
                with open(p if os.path.exists(p) else p + ".raw", "rb") as fh:
                    while fh.read(1 << 20):
                        pass

    # ---- one repetition for one tool --------------------------------------------------
    def floor_cycle(self, n, rep):
        """The floor's merge, checked like the tools', then its overlays unmounted (untimed)."""
        label = f"floor-{n}-{rep}"
        self.make_copy(n, label)
        res = {"merge": self.op("floor", label, "merge", {"confext": {0}, "sysext": {0}})}
        self.check_merged(label, n, "v1")
        h = self.host(label)
        for m in reversed(self.mounts_below(h)):
            subprocess.run(["umount", m], check=True)
        self.check_unmerged(label, n)
        self.drop_copy(label)
        return res

    def off_cycle(self, n, rep):
        """extmerge's first merge with --check-conflicts=off (both classes, otherwise as the
        default merge) on its own fresh copy, checked; then its unmerge, checked (its time stays
        in the log only)."""
        label = f"extmerge-off-{n}-{rep}"
        self.make_copy(n, label)
        zero = {"confext": {0}, "sysext": {0}}
        res = {"merge-off": self.op("extmerge", label, "merge", zero,
                                    extra=["--check-conflicts=off"])}
        self.check_merged(label, n, "v1")
        self.op("extmerge", label, "unmerge", zero)
        self.check_unmerged(label, n)
        self.drop_copy(label)
        return res

    def cycle(self, tool, n, rep):
        if tool == "floor":
            return self.floor_cycle(n, rep)
        if tool == "extmerge":
            # The two extmerge copies take turns going first, so neither always runs right
            # after the other (or after the same other tool).
            off_first = isinstance(rep, int) and rep % 2 == 1
            off = self.off_cycle(n, rep) if off_first else None
            res = self.main_cycle(tool, n, rep)
            return {**res, **(off or self.off_cycle(n, rep))}
        return self.main_cycle(tool, n, rep)

    def main_cycle(self, tool, n, rep):
        label = f"{tool}-{n}-{rep}"
        self.make_copy(n, label)
        skip = {0} if tool == "systemd" else {77}
        res = {}
        since = self.uptime()
        res["merge"] = self.op(tool, label, "merge", {"confext": {0}, "sysext": {0}},
                               tolerate=tool == "systemd")
        if not res["merge"]["ok"]:
            # systemd 262 cannot merge some sets at all (200 layers: its lowerdir= string is
            # longer than the page mount(2) copies). Record it, clean up, and go on.
            reason, kernel = self.failure_reason(label, since)
            self.op(tool, label, "unmerge", {"confext": {0}, "sysext": {0}})
            self.check_unmerged(label, n)
            self.drop_copy(label)
            return {"failed": {"merge": res["merge"], "reason": reason, "kernel": kernel}}
        self.check_merged(label, n, "v1")
        res["refresh"] = self.op(tool, label, "refresh", {"confext": skip, "sysext": skip})
        self.check_merged(label, n, "v1")
        if tool == "extmerge":
            res["refresh-both"] = self.op(tool, label, "refresh", {"both": {77}}, both=True)
            self.check_merged(label, n, "v1")
        self.update_image(label, n)
        res["refresh-changed"] = self.op(tool, label, "refresh",
                                         {"confext": skip, "sysext": {0}})
        self.check_merged(label, n, "v2")
        res["unmerge"] = self.op(tool, label, "unmerge", {"confext": {0}, "sysext": {0}})
        self.check_unmerged(label, n)
        self.drop_copy(label)
        return res

    # ---- visibility gap ----------------------------------------------------------------
    def gap(self, tool, n, count):
        label = f"{tool}-gap-{n}"
        self.make_copy(n, label)
        ((_, merge),) = self.cmds(tool, label, "merge", classes=("sysext",))
        _, rc, _, _ = self.run1(merge, f"{label}.log")
        if rc != 0:
            self.fail(label, f"{tool} sysext merge exited {rc}")
        target = f"{self.host(label)}/usr/share/{name(0)}/marker"
        reader = subprocess.Popen([self.a.reader, target], stdout=subprocess.PIPE, text=True)
        if reader.stdout.readline().strip() != "ready":
            self.fail(label, f"the reader never read {target}")
        ((_, refresh),) = self.cmds(tool, label, "refresh", extra=["--always-refresh=yes"],
                                    classes=("sysext",))
        times, rss = [], 0
        try:
            for _ in range(count):
                dt, rc, kib, _ = self.run1(refresh, f"{label}.log")
                if rc != 0:
                    self.fail(label, f"{tool} forced refresh exited {rc}")
                times.append(dt)
                rss = max(rss, kib)
        finally:
            reader.send_signal(signal.SIGTERM)
            out, _ = reader.communicate(timeout=30)
        total, failed, mismatched, first_errno = (int(x) for x in out.split())
        ((_, unmerge),) = self.cmds(tool, label, "unmerge", classes=("sysext",))
        _, rc, _, _ = self.run1(unmerge, f"{label}.log")
        if rc != 0:
            self.fail(label, f"{tool} sysext unmerge exited {rc}")
        self.drop_copy(label)
        return {"refreshes": count, "reads": total, "failed": failed, "mismatched": mismatched,
                "first_errno": first_errno, "refresh_s": times, "rss_kib": rss}

    # ---- directory extensions of 100,000 files --------------------------------------
    def big1(self, argv, label, expect):
        """One timed process of the 100,000-file section; its result as stored, and its output
        (without run1's command and exit lines)."""
        path = os.path.join(self.logdir, f"{label}.log")
        start = os.path.getsize(path) if os.path.exists(path) else 0
        dt, rc, kib, cpu = self.run1(argv, f"{label}.log")
        with open(path, errors="replace") as f:
            f.seek(start)
            out = "".join(line for line in f if not line.startswith(("$ ", "# exit ")))
        if rc not in expect:
            self.fail(label, f"{' '.join(argv)} exited {rc} (expected {sorted(expect)})")
        return {"s": dt, "rc": rc, "rss_kib": kib, "cpu_s": cpu}, out

    def check_big(self, label, trees, merged):
        h = self.host(label)
        for i in range(trees):
            p = f"{h}/usr/lib/extension-release.d/extension-release.{big_name(i)}"
            if os.path.exists(p) != merged:
                self.fail(label, f"{p} {'missing after merge' if merged else 'still visible after unmerge'}")
        if not merged:
            left = self.mounts_below(h)
            if left:
                self.fail(label, f"mounts left after unmerge: {left}")

    def big_state(self, label):
        """What extmerge keeps for the root `label` (sysext merged): the meta dirs of the merged
        hierarchies, its files in /run/extmerge, and any cache."""
        h = self.host(label)
        meta = {}
        for hier in ("usr", "opt"):
            for rel, size in sizes(f"{h}/{hier}/.systemd-sysext").items():
                meta[f"{hier}/.systemd-sysext/{rel}"] = size
        # extmerge's files for this root in /run/extmerge are named after its lock
        # (src/kernel/lock.rs lock_path_for: last component, 8 bytes of sha256 of the path).
        inner = f"{self.inner_run}/{label}"
        stem = f"{label}.{hashlib.sha256(inner.encode()).hexdigest()[:16]}."
        run = {k: v for k, v in sizes(f"{self.c}/run/extmerge").items() if k.startswith(stem)}
        if not any(k.endswith(".lock") for k in run):
            self.fail(label, f"no {stem}lock in /run/extmerge: its naming changed, update big_state")
        cache = {}
        for where, p in (("chroot", f"{self.c}/var/cache/extmerge"),
                         ("root", f"{h}/var/cache/extmerge")):
            if os.path.lexists(p):
                cache[where] = sum(sizes(p).values()) if os.path.isdir(p) else os.lstat(p).st_size
        return {"meta": meta, "run": run, "cache": cache,
                "state_json": meta.get("usr/.systemd-sysext/extmerge-state.json", 0),
                "total": sum(meta.values()) + sum(run.values()) + sum(cache.values())}

    def big(self, trees, reps):
        """extmerge's unchanged refresh of `trees` 100,000-file directory sysexts per conflict
        policy, against the walk floor and systemd's unchanged refresh (see the module doc)."""
        sd_label = "bigdir-systemd"
        res = {"trees": trees, "reps": reps, "policies": {}, "floor": [], "systemd": {}}
        self.make_big_copy(trees, sd_label)
        entries = sum(tree_entries(f"{self.work}/{sd_label}/var/lib/extensions/{big_name(i)}")
                      for i in range(trees))
        res["entries"] = entries
        def sd(verb):
            return ["/usr/bin/systemd-sysext", f"--root={self.inner_run}/{sd_label}", verb]

        res["systemd"]["merge"], _ = self.big1(sd("merge"), sd_label, {0})
        self.check_big(sd_label, trees, True)
        res["systemd"]["refresh"] = []
        for policy in POLICIES:
            label = f"bigdir-extmerge-{policy}"
            self.make_big_copy(trees, label)
            root = f"{self.inner_run}/{label}"

            def ex(verb):
                return ["/tmp/bench/bin/extmerge", "--class=sysext",
                        f"--check-conflicts={policy}", f"--root={root}", verb]

            walk = ["/tmp/bench/bin/walkfloor",
                    *(f"{root}/var/lib/extensions/{big_name(i)}" for i in range(trees))]
            p = {"refresh": []}
            p["merge"], _ = self.big1(ex("merge"), label, {0})
            self.check_big(label, trees, True)
            for rep in range(reps):
                k = rep % len(BIG_TOOLS)
                for tool in BIG_TOOLS[k:] + BIG_TOOLS[:k]:
                    if tool == "extmerge":
                        r, _ = self.big1(ex("refresh"), label, {77})
                        p["refresh"].append(r)
                    elif tool == "systemd":
                        r, out = self.big1(sd("refresh"), sd_label, {0})
                        if SD_SKIP not in out:
                            self.fail(sd_label, f"systemd's refresh did not skip (no {SD_SKIP!r})")
                        res["systemd"]["refresh"].append(r)
                    else:
                        r, out = self.big1(walk, f"{label}-walkfloor", {0})
                        got, threads = (int(x) for x in out.split())
                        if got != entries:
                            self.fail(f"{label}-walkfloor",
                                      f"the walk floor saw {got} entries, the trees have {entries}")
                        r["threads"] = threads
                        res["floor"].append(r)
            self.check_big(label, trees, True)
            p["state"] = self.big_state(label)
            p["unmerge"], _ = self.big1(ex("unmerge"), label, {0})
            self.check_big(label, trees, False)
            self.drop_copy(label)
            res["policies"][policy] = p
            log(f"{entries} entries in {trees} directory extensions, --check-conflicts={policy}: "
                f"merge {p['merge']['s'] * 1000:.0f} ms, unchanged refresh "
                f"{statistics.median(x['s'] for x in p['refresh']) * 1000:.1f} ms (median of "
                f"{reps}), peak RSS {max(x['rss_kib'] for x in [p['merge'], *p['refresh']])} KiB, "
                f"state {p['state']['total']} bytes")
        res["systemd"]["unmerge"], _ = self.big1(sd("unmerge"), sd_label, {0})
        self.check_big(sd_label, trees, False)
        self.drop_copy(sd_label)
        log(f"walk floor {statistics.median(x['s'] for x in res['floor']) * 1000:.1f} ms, systemd "
            f"unchanged refresh {statistics.median(x['s'] for x in res['systemd']['refresh']) * 1000:.1f} ms "
            f"(medians)")
        return res

    # ---- the whole run ---------------------------------------------------------------
    def run(self):
        a = self.a
        res = {"sets": {}, "gap": {}}
        for spec in a.sets.split(","):
            n, reps = (int(x) for x in spec.split(":"))
            runs = {t: {o: [] for o in TOOL_OPS[t]} for t in TOOLS}
            failed = {}
            self.warm(n)
            for rep in range(reps):
                # Each tool runs first, second and last in turn.
                order = TOOLS[rep % len(TOOLS):] + TOOLS[:rep % len(TOOLS)]
                for tool in order:
                    if tool in failed:
                        continue  # once is enough to show it fails
                    t0 = time.perf_counter()
                    r = self.cycle(tool, n, rep)
                    if "failed" in r:
                        failed[tool] = r["failed"]
                        log(f"{n:>3} extensions, rep {rep + 1}/{reps}, {tool:<8}: merge FAILED "
                            f"after {r['failed']['merge']['s']:.1f} s: {r['failed']['kernel']}")
                        continue
                    for o in TOOL_OPS[tool]:
                        runs[tool][o].append(r[o])
                    log(f"{n:>3} extensions, rep {rep + 1}/{reps}, {tool:<8}: "
                        + ", ".join(f"{o} {r[o]['s'] * 1000:.1f} ms" for o in TOOL_OPS[tool])
                        + f" ({time.perf_counter() - t0:.1f} s with checks)")
            res["sets"][str(n)] = {"reps": reps, "runs": runs, "failed": failed}
        for tool in GAP_TOOLS:
            t0 = time.perf_counter()
            g = self.gap(tool, a.gap_set, a.gap_refreshes)
            res["gap"][tool] = g
            log(f"gap {tool}: {g['failed']} failed of {g['reads']} reads during "
                f"{g['refreshes']} forced refreshes ({time.perf_counter() - t0:.1f} s)")
        res["gap_set"] = a.gap_set
        trees, reps = (int(x) for x in a.big.split(":"))
        if trees and reps:
            t0 = time.perf_counter()
            res["bigdir"] = self.big(trees, reps)
            log(f"directory extensions of 100,000 files: {time.perf_counter() - t0:.1f} s")
        return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chroot", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--reader", required=True)
    ap.add_argument("--runner", required=True)
    ap.add_argument("--floor", required=True)
    ap.add_argument("--walkfloor", required=True)
    ap.add_argument("--pool", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--sets", default="1:7,10:7,50:5,200:3")
    ap.add_argument("--gap-set", type=int, default=10)
    ap.add_argument("--gap-refreshes", type=int, default=200)
    ap.add_argument("--big", default="20:7",
                    help="TREES:REPS of the 100,000-file directory section (0:0 skips it)")
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    b = Bench(a)
    t0 = time.time()
    b.setup()
    try:
        res = b.run()
    finally:
        b.teardown()
    res["started"] = datetime.datetime.fromtimestamp(t0, datetime.timezone.utc).isoformat()
    res["wall_s"] = time.time() - t0
    with open(a.json, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
