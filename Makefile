# ipcshim: `make` builds, `make test` runs every test, `make bench` the side-by-side benchmarks.
CARGO ?= cargo
export CARGO_TERM_COLOR = never

.PHONY: all build deps demo test lint planted unit difftest programs bench clean

all: build

build:
	$(CARGO) build --release --workspace

# System packages and PyPI modules the tests and benchmarks use (idempotent).
deps:
	bash scripts/deps.sh

demo: build
	bash scripts/demo.sh

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

# Unit and multi-process tests of shared-state, plus the integration tests in tests/.
unit: build
	$(CARGO) test --release --workspace

# A shim with a deliberately wrong errno, for the test that `ipcshim diff` catches it.
planted:
	$(CARGO) build --release -p ipcshim -p ipcshim-cli --features ipcshim/planted-fault --target-dir target/planted

test: deps build lint planted unit

bench: deps build
	bash bench/run.sh

clean:
	$(CARGO) clean
	rm -rf c-tests/build bench/build
