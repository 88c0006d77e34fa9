# extmerge: build, test and tooling entry points. `make test` is what CI runs.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

export PATH := $(HOME)/.cargo/bin:$(PATH)
export CARGO_TERM_COLOR ?= never

TRIPLE     := x86_64-unknown-linux-gnu
STATIC_BIN := target/$(TRIPLE)/release/extmerge
NEXTEST_LOG := target/nextest.log

.PHONY: all deps build test fmt-check clippy nextest static demo fuzz-build fuzz-smoke \
	chroot chroot-check clean distclean help

all: build

help:
	@echo "targets: deps build test static demo fuzz-build fuzz-smoke chroot chroot-check clean distclean"

deps:
	@scripts/install-deps.sh

build:
	cargo build

fmt-check:
	cargo fmt --all --check -- --color=never

clippy:
	cargo clippy --all-targets -- -D warnings

# nextest's output is kept so its summary line can be repeated as the run's last line.
nextest:
	@mkdir -p target
	cargo nextest run --workspace --no-fail-fast 2>&1 | tee $(NEXTEST_LOG)

test: deps
	$(MAKE) --no-print-directory fmt-check
	$(MAKE) --no-print-directory clippy
	@# The differential tests compare against systemd 262 from this chroot (cached).
	$(MAKE) --no-print-directory chroot
	$(MAKE) --no-print-directory nextest
	$(MAKE) --no-print-directory fuzz-smoke
	@grep -E '^ *Summary \[' $(NEXTEST_LOG) | tail -n1 || true

static:
	RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target $(TRIPLE)
	@scripts/static-check.sh $(STATIC_BIN)

demo:
	@echo "make demo: not yet — the QEMU boot demo arrives with issue 4"

fuzz-build:
	@scripts/fuzz.sh build

fuzz-smoke:
	@scripts/fuzz.sh smoke

chroot:
	@scripts/mkchroot.sh

chroot-check:
	@scripts/mkchroot.sh check

# Keeps the debootstrap tree (target/chroot: minutes to rebuild); distclean drops it too.
clean:
	@if [ -d target ]; then find target -mindepth 1 -maxdepth 1 ! -name chroot -exec rm -rf {} +; fi
	rm -rf fuzz/target fuzz/artifacts

distclean: clean
	rm -rf --one-file-system target fuzz/corpus
