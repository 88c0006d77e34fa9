#!/usr/bin/env bash
# Build and run the cargo-fuzz targets in fuzz/ with the stable toolchain.
#
# Usage:
#   scripts/fuzz.sh build                 build every target (output in fuzz/target/fuzz-build.log)
#   scripts/fuzz.sh smoke                 build, then run each target briefly (CI)
#   scripts/fuzz.sh run TARGET SECONDS    fuzz one target for SECONDS, corpus kept in fuzz/corpus/TARGET
#   scripts/fuzz.sh list                  list the targets
#
# cargo-fuzz passes nightly-only rustc flags (-Zsanitizer=address, -Cpasses=sancov-module
# options, --cfg fuzzing); the stable rustc accepts them with RUSTC_BOOTSTRAP=1, and its
# rust-std ships the AddressSanitizer runtime, so no nightly is needed.
#
# Environment:
#   FUZZ_SANITIZER   address (default) | none   (none: faster, finds panics only)
#   SMOKE_RUNS       libFuzzer -runs per target in `smoke` (default 20000)
#   SMOKE_SECONDS    libFuzzer -max_total_time per target in `smoke` (default 20)
set -euo pipefail

die() { echo "fuzz: error: $*" >&2; exit 1; }

ORIG_PWD=$PWD
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FUZZ_DIR="$REPO/fuzz"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export RUSTC_BOOTSTRAP=1
SANITIZER=${FUZZ_SANITIZER:-address}
TRIPLE=x86_64-unknown-linux-gnu
# Default cargo-fuzz profile: optimised, with debug assertions and overflow checks.
FUZZ_ARGS=(--sanitizer "$SANITIZER" --target "$TRIPLE")

command -v cargo-fuzz >/dev/null 2>&1 || die "cargo-fuzz missing: run scripts/install-deps.sh (or make deps)"
[[ -f $FUZZ_DIR/Cargo.toml ]] || die "no fuzz crate at $FUZZ_DIR"
cd "$FUZZ_DIR"

targets() { cargo fuzz list; }

# Little-endian bytes of the integer $1 in $2 bytes, as printf %b escapes.
le() {
    local v=$1 n=$2 i s=
    for ((i = 0; i < n; i++)); do s+=$(printf '\\x%02x' $(((v >> (8 * i)) & 255))); done
    printf '%s' "$s"
}

# gpt_head OUT IMAGE_BYTES ENTRIES_LBA COUNT ENTRY_SIZE: a protective MBR and a GPT header at LBA 1
# (512-byte sectors) that claims that partition-entry array, with a valid header CRC (gzip's
# trailer carries the same CRC-32), so a parser gets past the header checks to the array.
gpt_head() {
    local out=$1 size=$2 lba=$3 count=$4 esize=$5 last tmp
    last=$((size / 512 - 1))
    tmp=$(mktemp -d)
    printf '%b' "EFI PART$(le 0x00010000 4)$(le 92 4)$(le 0 4)$(le 0 4)$(le 1 8)$(le "$last" 8)$(le 34 8)$(le $((last - 34)) 8)$(printf '\\x5a%.0s' {1..16})$(le "$lba" 8)$(le "$count" 4)$(le "$esize" 4)$(le 0 4)" >"$tmp/header"
    gzip -c <"$tmp/header" | tail -c8 | head -c4 >"$tmp/crc"
    {
        head -c 450 /dev/zero
        printf '\xee'
        head -c 59 /dev/zero
        printf '\x55\xaa'
        head -c 16 "$tmp/header"
        cat "$tmp/crc"
        tail -c +21 "$tmp/header"
    } >"$out"
    rm -rf "$tmp"
}

# sparse_seed FILE IMAGE_BYTES ENTRIES_LBA COUNT ENTRY_SIZE: a gpt_ddi_sparse input (the image
# size, then the image's first bytes).
sparse_seed() {
    local f=$1
    shift
    printf '%b' "$(le "$1" 8)" >"$f"
    gpt_head "$f.head" "$@"
    cat "$f.head" >>"$f"
    rm -f "$f.head"
}

# A real GPT (root + root-verity, x86-64) made by sfdisk, so the fuzzer starts past the header checks.
real_gpt() {
    truncate -s 64K "$1"
    printf '%s\n' 'label: gpt' \
        'size=16, type=4f68bce3-e8cd-4db1-96e7-fbcaf984b709, name="root"' \
        'size=8, type=2c7357ed-ebd2-46d9-aec1-23d437ec2bf5, name="root-verity"' |
        sfdisk --quiet --no-reread --no-tell-kernel "$1" >/dev/null ||
        die "sfdisk could not write the GPT seed (install fdisk: scripts/install-deps.sh)"
}

# Little-endian bytes of VALUE (WIDTH bytes) as printf %b escapes.
lebytes() {
    local v=$1 n=$2 out='' i
    for ((i = 0; i < n; i++)); do out+=$(printf '\\x%02x' $(((v >> (8 * i)) & 255))); done
    printf '%s' "$out"
}

# patch_le FILE OFFSET VALUE WIDTH: overwrite a little-endian field in place.
patch_le() { printf '%b' "$(lebytes "$3" "$4")" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }

# GPT seeds derived from the sfdisk one (512-byte sectors: header at 512, entries at 1024).
# Their CRCs go stale; the gpt_ddi target also parses each input with repaired CRCs.
gpt_variants() {
    local dir=$1 base=$1/seed-gpt h=512 e=1024
    cp "$base" "$dir/seed-gpt-oversized-array" # 1024 entries of 2 KiB: 2 MiB, over the cap
    patch_le "$dir/seed-gpt-oversized-array" $((h + 80)) 1024 4
    patch_le "$dir/seed-gpt-oversized-array" $((h + 84)) 2048 4
    cp "$base" "$dir/seed-gpt-entry-size-384" # a multiple of 128 but not 128 x 2^n
    patch_le "$dir/seed-gpt-entry-size-384" $((h + 84)) 384 4
    cp "$base" "$dir/seed-gpt-entry-size-100"
    patch_le "$dir/seed-gpt-entry-size-100" $((h + 84)) 100 4
    cp "$base" "$dir/seed-gpt-1025-entries"
    patch_le "$dir/seed-gpt-1025-entries" $((h + 80)) 1025 4
    cp "$base" "$dir/seed-gpt-array-beyond-eof" # entry array at LBA 1000 of a 128-LBA file
    patch_le "$dir/seed-gpt-array-beyond-eof" $((h + 72)) 1000 8
    cp "$base" "$dir/seed-gpt-partition-beyond-eof" # root partition ends at LBA 1000000
    patch_le "$dir/seed-gpt-partition-beyond-eof" $((e + 40)) 1000000 8
    # The same table with 4096-byte sectors: header at 4096, entries at LBA 2 (8192), the
    # two partitions moved to LBAs 6-9 and 10-11 of the 16 the file has.
    local s4=$dir/seed-gpt-4096
    truncate -s 64K "$s4"
    dd if="$base" of="$s4" bs=1 skip=$h seek=4096 count=92 conv=notrunc status=none
    dd if="$base" of="$s4" bs=1 skip=$e seek=8192 count=16384 conv=notrunc status=none
    patch_le "$s4" $((8192 + 32)) 6 8
    patch_le "$s4" $((8192 + 40)) 9 8
    patch_le "$s4" $((8192 + 128 + 32)) 10 8
    patch_le "$s4" $((8192 + 128 + 40)) 11 8
}

# A real PKCS#7 signature over the fuzz target's root hash and its DER certificate, NUL between.
signature_seed() {
    local out=$1 tmp
    command -v openssl >/dev/null 2>&1 || return 0
    tmp=$(mktemp -d)
    printf '%s' aea69771e07dcdaf5667b114ee6caaed6d2df19518a4c6e1672c868a39128be7 >"$tmp/rh"
    if openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/key" -out "$tmp/crt" \
        -subj /CN=fuzz -days 1 >/dev/null 2>&1 &&
        openssl smime -sign -binary -noattr -outform der -in "$tmp/rh" -inkey "$tmp/key" \
            -signer "$tmp/crt" -out "$tmp/sig" >/dev/null 2>&1 &&
        openssl x509 -in "$tmp/crt" -outform der -out "$tmp/der" >/dev/null 2>&1; then
        { cat "$tmp/sig"; printf '\0'; cat "$tmp/der"; } >"$out"
    fi
    rm -rf "$tmp"
}

# Seed inputs, written only into an empty corpus (fuzz/corpus is not tracked by git).
seed() {
    local t=$1 dir="$FUZZ_DIR/corpus/$1"
    mkdir -p "$dir"
    [[ -z $(ls -A "$dir") ]] || return 0
    case $t in
        os_release)
            printf '%s\n' 'ID=debian' 'VERSION_ID="13"' 'SYSEXT_LEVEL=1.0' 'ARCHITECTURE=x86-64' >"$dir/seed-sysext"
            printf '%s\n' 'ID=_any' 'CONFEXT_SCOPE="initrd system"' '# comment' 'EXTENSION_RELOAD_MANAGER=1' >"$dir/seed-confext"
            # shellcheck disable=SC1003,SC2016 # literal backslashes and $ are the point
            printf '%s\n' "NAME='single'" 'PRETTY_NAME="a \"quoted\" \$x \\ b"' 'VERSION="line\' 'continued"' 'BAD LINE' '=' 'ID=' >"$dir/seed-quotes"
            ;;
        config_file)
            printf '%s\n' '[SysExt]' 'Mutable=ephemeral-import' 'ImagePolicy=root=verity+signed:usr=verity' >"$dir/seed-sysext"
            printf '%s\n' '# c' '[ConfExt]' 'Mutable=yes' '' '[Other]' 'Mutable=no' >"$dir/seed-confext"
            # shellcheck disable=SC1003
            printf '%s\n' '[SysExt]' 'Mutable = auto \' '  continued' ';x' '[SysExt' 'Key' >"$dir/seed-odd"
            ;;
        kernel_cmdline)
            printf '%s' 'root=/dev/vda rw quiet rd.systemd.sysext=0 systemd.mount-extra=LABEL=var:/var:ext4:defaults rd.extmerge.var="UUID=0a1b:btrfs:compress=zstd" rd.extmerge.var_timeout=2.5s extmerge.check-conflicts=refuse' >"$dir/seed-flatcar"
            ;;
        enabled_sysext)
            printf '%s\n' '# vendor' 'zfs' 'podman # note' '-zfs' 'python' >"$dir/seed-both"
            ;;
        state_json)
            printf '%s' '{"state":{"version":1,"class":"sysext","osRelease":"aa","scope":"system","architecture":"x86-64","mutable":"no","mutableDirs":{"/usr":null},"hierarchies":["/usr"],"overlayOptions":null,"noexec":null,"force":false,"imagePolicy":null,"images":[{"name":"a","kind":"raw","path":"/var/lib/extensions/a.raw","identity":{"type":"sha256","value":"11"}}]},"merged":["/usr"]}' >"$dir/seed-state"
            ;;
        gpt_ddi)
            # The real GPT's 64 KiB also raise libFuzzer's input size limit above the parser's
            # 8 KiB minimum.
            real_gpt "$dir/seed-gpt"
            # Headers whose entry arrays are larger than any GPT needs (1024 entries of 64 KiB,
            # and of 4 GiB - 1 bytes): here they lie beyond the 64 KiB image.
            gpt_head "$dir/seed-oversized-array" 65536 2 1024 65536
            truncate -s 64K "$dir/seed-oversized-array"
            gpt_head "$dir/seed-max-entry-size" 65536 2 1024 4294967295
            truncate -s 64K "$dir/seed-max-entry-size"
            gpt_variants "$dir"
            ;;
        gpt_ddi_sparse)
            # Entry arrays of 128 MiB, 2 TiB and 4 TiB inside sparse images large enough to hold
            # them; one beyond its image; and the real GPT.
            sparse_seed "$dir/seed-128mib-array" $((256 << 20)) 2 1024 $((128 << 10))
            sparse_seed "$dir/seed-2tib-array" $((1 << 42)) 2 1024 $((1 << 31))
            sparse_seed "$dir/seed-max-entry-size" $((1 << 62)) 2 1024 4294967295
            sparse_seed "$dir/seed-array-beyond" $((1 << 20)) $((1 << 40)) 128 128
            real_gpt "$dir/real.img"
            printf '%b' "$(le 65536 8)" >"$dir/seed-real-gpt"
            cat "$dir/real.img" >>"$dir/seed-real-gpt"
            rm -f "$dir/real.img"
            ;;
        verity_metadata)
            printf 'verity\0\0\1\0\0\0\1\0\0\0sha256' >"$dir/seed-sb"
            printf '%s' '{"rootHash":"00112233445566778899aabbccddeeff","signature":"MAA="}' >"$dir/seed-sig"
            ;;
        superblock)
            # Byte 0 picks where the rest lands in a zeroed head (index into the target's
            # OFFSETS: 0, 512, 1024, 2048, 4096, 0x10000, 0x10100).
            local u='\x01\x23\x45\x67\x89\xab\xcd\xef\x01\x23\x45\x67\x89\xab\xcd\xef'
            { printf '\x02'; head -c 56 /dev/zero; printf '\x53\xef'; head -c 46 /dev/zero
              printf '%b' "$u"; printf 'var-ext4'; } >"$dir/seed-ext4"
            { printf '\x05'; head -c 32 /dev/zero; printf '%b' "$u"; head -c 16 /dev/zero
              printf '_BHRfS_M'; head -c 227 /dev/zero; printf 'var-btrfs'; } >"$dir/seed-btrfs"
            { printf '\x00XFSB'; head -c 28 /dev/zero; printf '%b' "$u"; head -c 60 /dev/zero
              printf 'var-xfs'; } >"$dir/seed-xfs"
            { printf '\x02\xe2\xe1\xf5\xe0'; head -c 8 /dev/zero; printf '\x0c'; head -c 23 /dev/zero
              printf '\x10\x00\x00\x00'; head -c 8 /dev/zero; printf '%b' "$u"; printf 'ro'; } >"$dir/seed-erofs"
            { printf '\x00hsqs'; head -c 36 /dev/zero; printf '\x00\x10\x00\x00\x00\x00\x00\x00'; } >"$dir/seed-squashfs"
            printf '\x01EFI PART\x00\x00\x01\x00' >"$dir/seed-gpt"
            ;;
        mountinfo)
            printf '%s\n' '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw' \
                '23 22 0:5 / /dev rw,nosuid - devtmpfs devtmpfs rw,size=10k' \
                '24 22 0:6 /a\040b /mnt/x\040y rw master:2 - tmpfs tmpfs rw' \
                '25 24 0:7 / /mnt/x\040y/sub ro - overlay overlay ro,lowerdir=/a:/b' >"$dir/seed-table"
            ;;
        fstab)
            printf '%s\n' '# /etc/fstab: static file system information.' 'LABEL=ROOT / ext4 defaults 0 1' \
                'UUID=0a1b /var auto defaults,nofail,x-systemd.device-timeout=5 0 2' \
                '/dev/disk/by-label/my\040var /var\040x xfs noauto,auto,x-systemd.automount' \
                'tmpfs /tmp tmpfs mode=1777 0 0' 'auto.net /net autofs ignore' >"$dir/seed-fstab"
            printf 'LABEL=a /srv\0 ext4\nLABEL=v /var ext4\n\t \n  # c\n' >"$dir/seed-nul"
            ;;
        unit_file)
            # shellcheck disable=SC1003 # a literal backslash continues the line
            printf '%s\n' '# written by Ignition' '[Unit]' 'Before=local-fs.target' '[Mount]' \
                'What=/dev/disk/by-label/VAR' 'Where=/var' 'Type=xfs' 'Options=noatime,\' \
                '; comment inside a continuation' '  nodev' 'What=%%' '[Install]' \
                'WantedBy=local-fs.target' >"$dir/seed-var-mount"
            printf '\xef\xbb\xbf[Mount]\r\nWhat=/a\rType=ext4\0Where=var\n\r=x\n[Mount\n' >"$dir/seed-odd"
            ;;
        cescape)
            printf 'a\tb\\c\n\001\377"x\047' >"$dir/seed-bytes"
            printf '%s' '\x41\101\u00e4\U0001F600\s\q\000' >"$dir/seed-escapes"
            ;;
        varlink_wire)
            # Byte 0 is the chunk size the stream is fed in.
            printf '\x07{"method":"io.systemd.sysext.List","parameters":{"class":"confext"},"more":true}\0{"method":"org.varlink.service.GetInfo"}\0{"method":"a.B","oneway":true,"more":true}\0{"par' >"$dir/seed-calls"
            printf '\x01not json\0[]\0{"method":"x","parameters":[1]}\0{"method":"x","bogus":null}\0' >"$dir/seed-bad"
            ;;
        version)
            printf '%s\n' 'v1.10~rc1' 'v1.9^1' >"$dir/seed-pair"
            printf '%s\n' '225.0-1.fc40' '225-2.fc40' >"$dir/seed-rpm"
            ;;
        signature)
            signature_seed "$dir/seed-pkcs7"
            printf '%s\n' '-----BEGIN CERTIFICATE-----' 'MAA=' '-----END CERTIFICATE-----' >"$dir/seed-pem"
            ;;
    esac
}

build() {
    local log="$FUZZ_DIR/target/fuzz-build.log" start=$SECONDS
    mkdir -p "$FUZZ_DIR/target"
    # Start from the main crate's lock file so the fuzzed code links the same versions.
    if [[ ! -f $FUZZ_DIR/Cargo.lock && -f $REPO/Cargo.lock ]]; then
        cp "$REPO/Cargo.lock" "$FUZZ_DIR/Cargo.lock"
    fi
    if ! cargo fuzz build "${FUZZ_ARGS[@]}" >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        die "cargo fuzz build failed (full log: $log)"
    fi
    echo "fuzz: built $(targets | wc -l) targets (sanitizer=$SANITIZER) in $((SECONDS - start)) s"
}

# run_target TARGET LOG -- libfuzzer args...
run_target() {
    local t=$1 log=$2
    shift 3
    seed "$t"
    mkdir -p "$FUZZ_DIR/artifacts/$t"
    if ! cargo fuzz run "${FUZZ_ARGS[@]}" "$t" "$FUZZ_DIR/corpus/$t" -- \
        -timeout=10 -rss_limit_mb=2048 "$@" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "fuzz: $t FAILED (log: $log; crash inputs in fuzz/artifacts/$t/;" \
            "reproduce: scripts/fuzz.sh repro $t fuzz/artifacts/$t/<file>)" >&2
        return 1
    fi
    local done_line
    done_line=$(grep -E '^Done [0-9]+ runs' "$log" | tail -n1 || true)
    echo "fuzz: $t ok: ${done_line:-finished}, corpus $(find "$FUZZ_DIR/corpus/$t" -type f | wc -l) inputs"
}

cmd=${1:-}
case $cmd in
    list)
        targets
        ;;
    build)
        build
        ;;
    smoke)
        build
        runs=${SMOKE_RUNS:-20000} secs=${SMOKE_SECONDS:-20} failed=0
        for t in $(targets); do
            run_target "$t" "$FUZZ_DIR/target/smoke-$t.log" -- -runs="$runs" -max_total_time="$secs" || failed=1
        done
        [[ $failed -eq 0 ]] || die "fuzz smoke failed"
        ;;
    run)
        [[ $# -eq 3 ]] || die "usage: scripts/fuzz.sh run TARGET SECONDS"
        t=$2 secs=$3
        [[ $secs =~ ^[0-9]+$ ]] || die "SECONDS must be a number, got '$secs'"
        # Not `targets | grep -q`: grep quits at the first match and cargo-fuzz panics on the
        # broken pipe, which fails the pipeline (pipefail).
        known=$(targets)
        grep -qx -- "$t" <<<"$known" || die "unknown target '$t' (have: $(tr '\n' ' ' <<<"$known"))"
        build
        # Long runs print libFuzzer's progress live and keep the log too.
        mkdir -p "$FUZZ_DIR/target"
        seed "$t"
        mkdir -p "$FUZZ_DIR/artifacts/$t"
        exec cargo fuzz run "${FUZZ_ARGS[@]}" "$t" "$FUZZ_DIR/corpus/$t" -- \
            -timeout=10 -rss_limit_mb=2048 -max_total_time="$secs" -print_final_stats=1
        ;;
    repro)
        [[ $# -eq 3 ]] || die "usage: scripts/fuzz.sh repro TARGET FILE"
        t=$2 f=$(cd "$ORIG_PWD" && realpath -e -- "$3") || die "no such file: $3"
        exec cargo fuzz run "${FUZZ_ARGS[@]}" "$t" "$f"
        ;;
    *)
        die "usage: scripts/fuzz.sh build | smoke | run TARGET SECONDS | repro TARGET FILE | list"
        ;;
esac
