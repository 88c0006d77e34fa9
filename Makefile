# extmerge: build, test and tooling entry points. `make test` is what CI runs.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

export PATH := $(HOME)/.cargo/bin:$(PATH)
export CARGO_TERM_COLOR ?= never

TRIPLE     := x86_64-unknown-linux-gnu
STATIC_BIN := target/$(TRIPLE)/release/extmerge
NEXTEST_LOG := target/nextest.log

.PHONY: all deps build check install test fmt-check clippy nextest static demo qemu-guest qemu-test upstream-test bench-boot \
	fuzz-build fuzz-smoke chroot chroot-check bench clean distclean help

all: build

help:
	@echo "targets: deps build check install test static demo qemu-guest qemu-test upstream-test bench-boot fuzz-build fuzz-smoke chroot chroot-check bench clean distclean"

deps:
	@scripts/install-deps.sh

build:
	cargo build

fmt-check:
	cargo fmt --all --check -- --color=never

clippy:
	cargo clippy --all-targets -- -D warnings

# The fast loop: formatting, lints and every test that needs neither root nor apt (no mounts,
# loop devices, device nodes, trusted xattrs or the chroot; such unit tests end in `_as_root`).
CHECK_TESTS := (kind(lib) & !test(/_as_root$$/)) | binary(layout) | binary(cli_list) | binary(flatcar_selection) | binary(install) | binary(docs) | binary(golden)

check:
	$(MAKE) --no-print-directory fmt-check
	$(MAKE) --no-print-directory clippy
	cargo nextest run --no-fail-fast -E '$(CHECK_TESTS)'

# Install the binary, the initrd units, the booted system's (inactive) drop-ins and the dracut
# module below DESTDIR (a package's
# staging tree, or / itself). EXTMERGE_BIN picks the binary (e.g. the static one from
# `make static`, which the initrd needs where libcryptsetup is not in it); by default a release
# build of this checkout.
DESTDIR ?=
PREFIX ?= /usr
BINDIR ?= $(PREFIX)/bin
UNITDIR ?= $(PREFIX)/lib/systemd/system
DRACUTDIR ?= $(PREFIX)/lib/dracut/modules.d
# The booted system's drop-ins (units/booted): installed here, inactive until linked into
# /etc/systemd/system/UNIT.d/ (README.md, "In the booted system").
BOOTEDDIR ?= $(PREFIX)/lib/extmerge/booted
EXTMERGE_BIN ?=

install:
	@bin='$(EXTMERGE_BIN)'; \
	if [ -z "$$bin" ]; then cargo build --release; bin=target/release/extmerge; fi; \
	install -D -m 0755 "$$bin" '$(DESTDIR)$(BINDIR)/extmerge'; \
	for u in units/*.service; do install -D -m 0644 "$$u" "$(DESTDIR)$(UNITDIR)/$${u#units/}"; done; \
	for d in units/booted/*.d/*.conf; do install -D -m 0644 "$$d" "$(DESTDIR)$(BOOTEDDIR)/$${d#units/booted/}"; done; \
	install -D -m 0755 dracut-module/90extmerge/module-setup.sh '$(DESTDIR)$(DRACUTDIR)/90extmerge/module-setup.sh'; \
	echo "installed extmerge, its units and dracut module below $(or $(DESTDIR),/)"

# nextest's output is kept so its summary line can be repeated as the run's last line.
nextest:
	@mkdir -p target
	cargo nextest run --workspace --no-fail-fast 2>&1 | tee $(NEXTEST_LOG)

test: deps
	$(MAKE) --no-print-directory fmt-check
	$(MAKE) --no-print-directory clippy
	@# The differential tests compare against systemd 262 from this chroot (cached).
	$(MAKE) --no-print-directory chroot
	@# Build (or reuse) the QEMU guest before the tests, so no boot test idles waiting for it.
	$(MAKE) --no-print-directory qemu-guest
	$(MAKE) --no-print-directory nextest
	$(MAKE) --no-print-directory fuzz-smoke
	@grep -E '^ *Summary \[' $(NEXTEST_LOG) | tail -n1 || true

# The initrd binary must open verity DDIs (Flatcar's default confext is one), so `static`
# is the verity build: static libcryptsetup from scripts/build-cryptsetup.sh (cached).
static: static-verity

# pkg-config resolves libcryptsetup-rs's link line against the static prefix
# (docs/static-build.md); PKG_CONFIG_ALL_STATIC makes it use Requires.private too. The
# link is resolved so that a rebuilt prefix (new path) makes cargo re-run the -sys build.
CRYPTSETUP_PREFIX := $(CURDIR)/target/cryptsetup-static/prefix
STATIC_PKG_CONFIG := PKG_CONFIG_PATH=$$(readlink -f $(CRYPTSETUP_PREFIX))/lib/pkgconfig PKG_CONFIG_ALL_STATIC=1

.PHONY: static-verity
static-verity:
	@scripts/build-cryptsetup.sh
	$(STATIC_PKG_CONFIG) RUSTFLAGS='-C target-feature=+crt-static' \
		cargo build --release --target $(TRIPLE) --features static-verity
	@scripts/static-check.sh $(STATIC_BIN)

# Boot the QEMU demo guest (Debian unstable, 6.12, dracut + extmerge) with sample
# extensions and print what was merged in the initrd (qemu-tests/README.md).
demo:
	@scripts/install-deps.sh
	@qemu-tests/demo.sh

# Build (or reuse from target/qemu/) the boot-test guest: rootfs, kernel, initramfs, disk.
qemu-guest: deps
	@qemu-tests/build-guest.sh

# The QEMU boot tests alone (make test runs them too, within nextest).
qemu-test: deps
	cargo nextest run --no-fail-fast --test qemu_boot

# Boot benchmark (not part of `make test`): the same QEMU guest with 20 sysexts and a
# confext, merged by extmerge and by systemd's own systemd-{sys,conf}ext-sysroot.service,
# BENCH_BOOTS (default 3) rounds of a cold and a warm boot each; writes docs/boot-benchmark.md.
bench-boot: deps
	@qemu-tests/bench/boot-bench.sh

# Upstream's TEST-50-DISSECT.sysext.sh block by block, systemd 262 against extmerge (make test
# runs it too, within nextest); per-block lines and logs in target/upstream-sysext/.
upstream-test: deps
	$(MAKE) --no-print-directory chroot
	cargo nextest run --no-fail-fast --test upstream_sysext

fuzz-build:
	@scripts/fuzz.sh build

fuzz-smoke:
	@scripts/fuzz.sh smoke

chroot:
	@scripts/mkchroot.sh

chroot-check:
	@scripts/mkchroot.sh check

# Benchmarks against systemd-sysext 262 from the chroot (not part of `make test`): times
# merge/refresh/unmerge of 1-200 extensions for both, writes docs/benchmarks.md (bench/run.sh).
bench: deps
	$(MAKE) --no-print-directory static
	$(MAKE) --no-print-directory chroot
	@bench/run.sh

# Keeps the debootstrap tree (target/chroot: minutes to rebuild); distclean drops it too.
clean:
	@if [ -d target ]; then find target -mindepth 1 -maxdepth 1 ! -name chroot -exec rm -rf {} +; fi
	rm -rf fuzz/target fuzz/artifacts

distclean: clean
	rm -rf --one-file-system target fuzz/corpus
