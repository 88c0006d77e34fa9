#!/usr/bin/env bash
# Build static libcryptsetup + libdevmapper from Debian's source packages into a cached,
# relocatable prefix for the static release binary (`make static-verity`, issue 5).
#
#   target/cryptsetup-static/downloads/   source packages (.dsc, .orig, .debian), per version
#   target/cryptsetup-static/prefix-KEY/  lib/libcryptsetup.a, lib/libdevmapper.a,
#                                         include/, lib/pkgconfig/{libcryptsetup,devmapper}.pc
#   target/cryptsetup-static/prefix       symlink to the current prefix-KEY
#
# KEY hashes what went into the build, so the path handed to pkg-config changes with it
# and cargo re-runs libcryptsetup-rs-sys's build script (it watches PKG_CONFIG_PATH, not
# the files) instead of linking a stale archive.
#
# The versions are those of the installed libcryptsetup12 / libdevmapper1.02.1 (override
# with CRYPTSETUP_VERSION= / LVM2_VERSION=, Debian source versions). The crypto backend is
# nettle (CRYPTSETUP_CRYPTO_BACKEND=openssl for OpenSSL). A prefix whose stamp matches the
# versions, the backend and this script's own hash is reused at once. Sources come through
# apt with a private configuration under target/ (deb-src entries derived from the
# machine's own sources), so the host's apt setup is never touched. Everything is built
# in a temporary directory and renamed into place only when complete. docs/static-build.md
# explains the configure flags.
#
# Usage: scripts/build-cryptsetup.sh [-p]   (quiet on success; -p prints the prefix-KEY path)
set -euo pipefail

die() { echo "build-cryptsetup: error: $*" >&2; exit 1; }

print_prefix=0
case ${1:-} in
    "") ;;
    -p | --print-prefix) print_prefix=1 ;;
    *) die "usage: scripts/build-cryptsetup.sh [-p|--print-prefix]" ;;
esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
root=$repo/target/cryptsetup-static
link=$root/prefix
downloads=$root/downloads

# ---- what to build --------------------------------------------------------------
src_version() { # binary-package -> its source version
    dpkg-query -W -f='${source:Version}' "$1" 2>/dev/null || true
}
cs_ver=${CRYPTSETUP_VERSION:-$(src_version libcryptsetup12)}
lvm_ver=${LVM2_VERSION:-$(src_version libdevmapper1.02.1)}
[[ -n $cs_ver ]] || die "cannot tell the cryptsetup version: libcryptsetup12 is not installed (set CRYPTSETUP_VERSION=)"
[[ -n $lvm_ver ]] || die "cannot tell the lvm2 version: libdevmapper1.02.1 is not installed (set LVM2_VERSION=)"
backend=${CRYPTSETUP_CRYPTO_BACKEND:-nettle}
case $backend in
    nettle) backend_pc=nettle backend_a=libnettle.a backend_deb=nettle-dev ;;
    openssl) backend_pc=openssl backend_a=libcrypto.a backend_deb=libssl-dev ;;
    *) die "CRYPTSETUP_CRYPTO_BACKEND must be nettle or openssl, not '$backend'" ;;
esac
recipe=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)
stamp_want="cryptsetup=$cs_ver lvm2=$lvm_ver backend=$backend recipe=$recipe"
key=$(echo "$stamp_want" | sha256sum | cut -c1-12)
prefix=$root/prefix-$key

stamp_ok() { [[ -f $prefix/.stamp && $(<"$prefix/.stamp") == "$stamp_want" ]]; }
point_link() { # make $link name prefix-$key (rename: never a moment without a link)
    [[ -L $link && $(readlink "$link") == "prefix-$key" ]] && return 0
    [[ -e $link && ! -L $link ]] && rm -rf "$link"
    ln -sfn "prefix-$key" "$root/.prefix.new.$$"
    mv -T "$root/.prefix.new.$$" "$link"
}
done_ok() {
    point_link
    if ((print_prefix)); then echo "$prefix"; fi
    exit 0
}
stamp_ok && done_ok

# ---- one builder at a time --------------------------------------------------------
mkdir -p "$root" "$downloads"
exec 9>"$root/.lock"
flock 9
stamp_ok && done_ok # another run finished it while we waited

for tool in apt-get dpkg-source autoreconf autopoint libtoolize make cc pkg-config flock; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' missing: run scripts/install-deps.sh"
done
for pc in json-c uuid "$backend_pc"; do
    pkg-config --exists "$pc" || die "pkg-config cannot find $pc: run scripts/install-deps.sh (libjson-c-dev uuid-dev $backend_deb)"
done
for a in libjson-c.a libuuid.a "$backend_a"; do
    [[ -n $(find /usr/lib /usr/lib64 -name "$a" -print -quit 2>/dev/null) ]] ||
        die "$a not found: its -dev package ships the static library (run scripts/install-deps.sh)"
done

rm -rf "$root"/tmp.*
work=$(mktemp -d "$root/tmp.XXXXXX")
logs=$work/logs
mkdir -p "$logs"
trap 'rc=$?; if ((rc)); then echo "build-cryptsetup: build directory kept for inspection: $work" >&2; else rm -rf "$work"; fi' EXIT

run() { # step-name command... ; output to a log, shown only on failure
    local step=$1
    shift
    if ! "$@" >"$logs/$step.log" 2>&1; then
        tail -n 40 "$logs/$step.log" >&2
        die "step '$step' failed (full log: $logs/$step.log)"
    fi
}

# ---- sources (cached per version) --------------------------------------------------
dsc_name() { # source-package version -> file name of its .dsc (epoch dropped)
    echo "${1}_${2#*:}.dsc"
}
cs_dsc=$downloads/$(dsc_name cryptsetup "$cs_ver")
lvm_dsc=$downloads/$(dsc_name lvm2 "$lvm_ver")

fetch_sources() {
    local apt=$root/apt
    rm -rf "$apt"
    mkdir -p "$apt/sources.list.d" "$apt/preferences.d" "$apt/lists/partial" "$apt/cache/archives/partial"
    local deb822=/etc/apt/sources.list.d/debian.sources one_line=/etc/apt/sources.list
    if [[ -r $deb822 ]] && grep -q '^URIs:' "$deb822"; then
        sed 's/^Types:.*/Types: deb-src/' "$deb822" >"$apt/sources.list.d/debian-src.sources"
    elif [[ -r $one_line ]] && grep -q '^deb ' "$one_line"; then
        sed -n 's/^deb /deb-src /p' "$one_line" >"$apt/sources.list.d/debian-src.list"
    else
        die "no Debian sources to derive deb-src entries from ($deb822 or $one_line)"
    fi
    local opts=(
        -o "Dir::Etc::SourceList=/dev/null"
        -o "Dir::Etc::SourceParts=$apt/sources.list.d"
        -o "Dir::Etc::PreferencesParts=$apt/preferences.d"
        -o "Dir::State::Lists=$apt/lists"
        -o "Dir::Cache=$apt/cache"
        -o "Debug::NoLocking=true"
        -o "APT::Sandbox::User=root"
    )
    run apt-update apt-get "${opts[@]}" -q update
    local dl=$work/dl
    mkdir -p "$dl"
    local pkgs=()
    [[ -f $cs_dsc ]] || pkgs+=("cryptsetup=$cs_ver")
    [[ -f $lvm_dsc ]] || pkgs+=("lvm2=$lvm_ver")
    if ! (cd "$dl" && apt-get "${opts[@]}" -q source --download-only "${pkgs[@]}") >"$logs/apt-source.log" 2>&1; then
        tail -n 20 "$logs/apt-source.log" >&2
        die "apt-get source ${pkgs[*]} failed: is that version still in the archive? (set CRYPTSETUP_VERSION= / LVM2_VERSION= to one that is)"
    fi
    mv "$dl"/* "$downloads"/
    rm -rf "$apt"
}
if [[ ! -f $cs_dsc || ! -f $lvm_dsc ]]; then
    fetch_sources
fi

# dpkg-source checks the files against the .dsc (which apt checked against the signed
# Sources index) and applies Debian's patches.
mkdir -p "$work/src"
run unpack-cryptsetup dpkg-source -x "$cs_dsc" "$work/src/cryptsetup"
run unpack-lvm2 dpkg-source -x "$lvm_dsc" "$work/src/lvm2"

# With OpenSSL, one source change: OpenSSL 3's "legacy" provider (ripemd160, whirlpool;
# nothing dm-verity uses) is a module that libcrypto dlopen()s. A static binary that does
# so pulls the system's shared libcrypto.so.3 and a second libc into its process (seen
# with strace), so the static library never asks for it.
if [[ $backend == openssl ]]; then
    ossl=$work/src/cryptsetup/lib/crypto_backend/crypto_openssl.c
    legacy='ossl_legacy = OSSL_PROVIDER_try_load(ossl_ctx, "legacy", 0);'
    [[ $(grep -cF "$legacy" "$ossl") == 1 ]] ||
        die "cannot find the legacy-provider load in $ossl: the patch needs updating for cryptsetup $cs_ver"
    sed -i "s|${legacy//|/\\|}|ossl_legacy = NULL; /* extmerge: no dlopen() from a static binary */|" "$ossl"
    grep -qF 'extmerge: no dlopen()' "$ossl" || die "patching $ossl failed"
fi

# ---- build ------------------------------------------------------------------------
stage=$work/prefix
jobs=$(nproc 2>/dev/null || echo 2)
# PIC so the archives link into a static-pie; one section per function/object so the
# final link's --gc-sections drops what extmerge never calls.
export CFLAGS="-O2 -g0 -fPIC -ffunction-sections -fdata-sections"
export PKG_CONFIG_PATH=$stage/lib/pkgconfig
unset PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR

# libdevmapper: only the device-mapper library (no libaio, no udev sync, no tools).
mkdir -p "$work/build/lvm2"
cd "$work/build/lvm2"
run configure-lvm2 "$work/src/lvm2/configure" \
    --prefix="$stage" --libdir="$stage/lib" --with-usrlibdir="$stage/lib" \
    --enable-static_link --enable-pkgconfig \
    --disable-udev_sync --disable-udev_rules --disable-selinux --disable-blkid_wiping \
    --disable-readline --disable-dmeventd --disable-cmdlib --disable-nls \
    --disable-systemd-journal --disable-app-machineid --disable-notify-dbus
run make-libdm make -j"$jobs" -C libdm ioctl/libdevmapper.a libdevmapper.pc
run install-libdm make -C libdm install_static install_include install_pkgconfig

# libcryptsetup: the library only, userspace hashing (nettle or OpenSSL; no AF_ALG), no
# plugins, no udev/blkid.
# configure insists on popt, which only the command-line tools (disabled here) use.
cd "$work/src/cryptsetup"
run autoreconf autoreconf -fi
mkdir -p "$work/build/cryptsetup"
cd "$work/build/cryptsetup"
run configure-cryptsetup "$work/src/cryptsetup/configure" \
    ac_cv_lib_popt_poptConfigFileToString=yes \
    --prefix="$stage" --libdir="$stage/lib" \
    --enable-static --disable-shared --with-pic \
    --with-crypto_backend="$backend" --disable-kernel_crypto \
    --disable-asciidoc --disable-ssh-token --disable-external-tokens \
    --disable-blkid --disable-udev --disable-selinux --disable-nls \
    --disable-pwquality --disable-passwdqc \
    --disable-cryptsetup --disable-veritysetup --disable-integritysetup
run make-cryptsetup make -j"$jobs" libcryptsetup.la
run install-cryptsetup make install-libLTLIBRARIES install-includeHEADERS install-pkgconfigDATA

# ---- make the prefix relocatable and put it in place ------------------------------
rm -f "$stage"/lib/*.la
for pc in "$stage"/lib/pkgconfig/*.pc; do
    sed -i -e "s|^prefix=.*|prefix=\${pcfiledir}/../..|" \
        -e "s|$stage|\${prefix}|g" "$pc"
done
for f in lib/libcryptsetup.a lib/libdevmapper.a include/libcryptsetup.h include/libdevmapper.h \
    lib/pkgconfig/libcryptsetup.pc lib/pkgconfig/devmapper.pc; do
    [[ -s $stage/$f ]] || die "the build did not produce $f"
done
PKG_CONFIG_PATH=$stage/lib/pkgconfig pkg-config --static --libs libcryptsetup >/dev/null ||
    die "pkg-config cannot resolve the static link line of the new libcryptsetup.pc"
echo "$stamp_want" >"$stage/.stamp"

cd "$root"
rm -rf "$prefix"
mv "$stage" "$prefix"
point_link
# Prefixes of other versions or recipes are no longer named by the link.
find "$root" -mindepth 1 -maxdepth 1 -type d -name 'prefix-*' ! -name "prefix-$key" -exec rm -rf {} +
done_ok
