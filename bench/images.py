#!/usr/bin/env python3
"""Build (once, cached) the benchmark's extension pool and base root tree.

Usage: bench/images.py POOL_DIR

POOL_DIR/
  base/                 root template without extensions: usr/lib/os-release, usr/bin, etc/,
                        opt/, var/lib/extensions.mutable/etc -> /etc (the mutable /etc confext)
  v1/bench-NNN[.raw]    200 sysexts, NNN = 000..199: squashfs (.raw), erofs (.raw) or a directory
  v2/bench-NNN.raw      the "updated" image of the last extension of each set (000, 009, 019, 049,
                        199):
                        same content, marker file says v2
  conf/bench-conf.raw   the confext (squashfs) merged onto the mutable /etc
  .stamp                hash of RECIPE: a changed recipe rebuilds everything
  bigdir/big-NN         20 directory sysexts of 5,000 empty files each (NN = 00..19: 50
                        directories of 100 files in usr/share/big-NN, and the extension-release
                        file, ID=_any): the 100,000-file section of bench/bench.py
  bigdir/.stamp         hash of BIG_RECIPE (cached apart, so neither rebuilds the other)

A set of N extensions (1, 10, 20, 50, 200) is v1/bench-000 .. v1/bench-(N-1) (bench/bench.py links them into a copy
of base/). Sizes: most images carry 0.2-3 MiB of files (images of 0.1-1.5 MiB);
four carry 40/48/64/96 MiB of file data (images of about 20-50 MiB). File data is half random, half text-like, so squashfs/erofs compress it about 2x, as
real binaries do. Everything is deterministic (seeded), so a rebuild gives the same content.
"""
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys

COUNT = 200
LAST = [0, 9, 19, 49, 199]  # last extension of the 1/10/20/50/200 sets: the one a refresh updates
LARGE = {4: 40, 21: 48, 76: 64, 151: 96}  # index -> MiB of file data (about half that compressed)
RECIPE = {
    "version": 1,
    "count": COUNT,
    "last": LAST,
    "large": LARGE,
    "squashfs": ["-noappend", "-all-root", "-quiet", "-no-progress"],
    "erofs": ["--quiet", "--all-root", "-zlz4hc"],
}
BIG_RECIPE = {"version": 1, "trees": 20, "dirs": 50, "files": 100}
OS_RELEASE = (
    'PRETTY_NAME="Bench Linux 13"\nNAME="Bench Linux"\nID=debian\nVERSION_ID=13\n'
    "SYSEXT_LEVEL=1.0\nCONFEXT_LEVEL=1.0\n"
)
EXT_RELEASE = "ID=debian\nVERSION_ID=13\n"
MIB = 1 << 20


def kind(i):
    """squashfs 50 %, erofs 30 %, directory 20 %; the updated ones are squashfs."""
    if i in LAST:
        return "squashfs"
    return {0: "squashfs", 2: "squashfs", 4: "squashfs", 6: "squashfs", 8: "squashfs",
            1: "erofs", 5: "erofs", 7: "erofs", 3: "dir", 9: "dir"}[i % 10]


def name(i):
    return f"bench-{i:03d}"


def data(rng, n):
    """n bytes, half random, half text-like (compresses about 2x)."""
    half = n // 2
    words = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
    text = (words * (n // len(words) + 1))[: n - half]
    return rng.randbytes(half) + text


def write(path, content, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(content)
    os.chmod(path, mode)


def populate(src, i, version):
    """The file tree of extension i: a binary, libraries, many small data files, a marker."""
    n = name(i)
    rng = random.Random(i)
    total = LARGE.get(i, 0) * MIB or rng.randint(200 * 1024, 3 * MIB)
    write(f"{src}/usr/lib/extension-release.d/extension-release.{n}", EXT_RELEASE.encode())
    write(f"{src}/usr/share/{n}/marker", f"{n} {version}\n".encode())
    write(f"{src}/usr/bin/{n}", data(rng, total * 3 // 10), 0o755)
    libs = max(1, total // (4 * MIB))
    for k in range(libs):
        write(f"{src}/usr/lib/{n}/lib{n}-{k}.so", data(rng, total * 3 // 10 // libs))
    rest = total * 4 // 10
    files = max(5, min(2000, rest // (16 * 1024)))
    for k in range(files):
        write(f"{src}/usr/share/{n}/data/{k // 100:02d}/file{k:04d}", data(rng, rest // files))
    if i % 10 == 7:  # a few extensions also ship /opt
        write(f"{src}/opt/{n}/bin/{n}", data(rng, 64 * 1024), 0o755)


def mkimage(src, out, fs):
    tmp = out + ".tmp"
    if os.path.exists(tmp):
        os.unlink(tmp)
    if fs == "squashfs":
        subprocess.run(["mksquashfs", src, tmp, *RECIPE["squashfs"]], check=True)
    else:
        subprocess.run(["mkfs.erofs", *RECIPE["erofs"], tmp, src], check=True,
                       stdout=subprocess.DEVNULL)
    os.rename(tmp, out)


def build_ext(pool, i, version):
    n = name(i)
    fs = kind(i)
    src = f"{pool}/src/{n}-{version}"
    shutil.rmtree(src, ignore_errors=True)
    populate(src, i, version)
    if fs == "dir":
        os.rename(src, f"{pool}/{version}/{n}")
    else:
        mkimage(src, f"{pool}/{version}/{n}.raw", fs)
        shutil.rmtree(src)


def build_base(pool):
    b = f"{pool}/base"
    write(f"{b}/usr/lib/os-release", OS_RELEASE.encode())
    rng = random.Random(1000)
    for k in range(20):
        write(f"{b}/usr/bin/tool{k}", data(rng, 32 * 1024), 0o755)
        write(f"{b}/usr/share/doc/tool{k}/README", b"base\n")
    write(f"{b}/opt/base/README", b"base\n")
    write(f"{b}/etc/hostname", b"bench\n")
    write(f"{b}/etc/machine-id", b"0123456789abcdef0123456789abcdef\n")
    for k in range(30):
        write(f"{b}/etc/base.d/conf{k}.conf", f"key{k}=value\n".encode())
    os.symlink("../usr/lib/os-release", f"{b}/etc/os-release")
    os.makedirs(f"{b}/var/lib/extensions", exist_ok=True)
    os.makedirs(f"{b}/var/lib/confexts", exist_ok=True)
    os.makedirs(f"{b}/var/lib/extensions.mutable", exist_ok=True)
    os.symlink("/etc", f"{b}/var/lib/extensions.mutable/etc")


def build_conf(pool):
    src = f"{pool}/src/bench-conf"
    shutil.rmtree(src, ignore_errors=True)
    write(f"{src}/etc/extension-release.d/extension-release.bench-conf", EXT_RELEASE.encode())
    write(f"{src}/etc/bench-conf/marker", b"bench-conf v1\n")
    for k in range(40):
        write(f"{src}/etc/bench-conf/conf.d/{k:02d}.conf", f"setting{k}=on\n".encode())
    mkimage(src, f"{pool}/conf/bench-conf.raw", "squashfs")
    shutil.rmtree(src)


def big_name(i):
    return f"big-{i:02d}"


def build_bigdir(pool):
    """The directory extensions of the 100,000-file section (empty files: the walk is what is
    measured, not the data)."""
    big = f"{pool}/bigdir"
    stamp = hashlib.sha256(json.dumps(BIG_RECIPE, sort_keys=True).encode()).hexdigest()
    if stamped(big, stamp):
        return
    print(f"bench: building the 100,000-file directory extensions in {big} (cached afterwards)",
          file=sys.stderr)
    shutil.rmtree(big, ignore_errors=True)
    tmp = f"{pool}/bigdir.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    for i in range(BIG_RECIPE["trees"]):
        n = big_name(i)
        write(f"{tmp}/{n}/usr/lib/extension-release.d/extension-release.{n}", b"ID=_any\n")
        for d in range(BIG_RECIPE["dirs"]):
            sub = f"{tmp}/{n}/usr/share/{n}/d{d:02d}"
            os.makedirs(sub)
            for k in range(BIG_RECIPE["files"]):
                with open(f"{sub}/f{k:03d}", "wb"):
                    pass
    with open(f"{tmp}/.stamp", "w") as f:
        f.write(stamp + "\n")
    os.rename(tmp, big)


def stamped(d, stamp):
    try:
        with open(f"{d}/.stamp") as f:
            return f.read().strip() == stamp
    except FileNotFoundError:
        return False


def build_pool(pool, stamp):
    bigdir = f"{pool}/bigdir"
    keep = f"{os.path.dirname(pool)}/.bigdir.keep"
    if os.path.isdir(bigdir):  # survives a rebuild of the rest
        shutil.rmtree(keep, ignore_errors=True)
        os.rename(bigdir, keep)
    print(f"bench: building the extension pool in {pool} (cached afterwards)", file=sys.stderr)
    shutil.rmtree(pool, ignore_errors=True)
    for d in ("v1", "v2", "conf", "src"):
        os.makedirs(f"{pool}/{d}")
    build_base(pool)
    build_conf(pool)
    for i in range(COUNT):
        build_ext(pool, i, "v1")
    for i in LAST:
        build_ext(pool, i, "v2")
    os.rmdir(f"{pool}/src")
    if os.path.isdir(keep):
        os.rename(keep, bigdir)
    with open(f"{pool}/.stamp", "w") as f:
        f.write(stamp + "\n")


def main():
    pool = os.path.abspath(sys.argv[1])
    stamp = hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode()).hexdigest()
    if not stamped(pool, stamp):
        build_pool(pool, stamp)
    build_bigdir(pool)


if __name__ == "__main__":
    main()
