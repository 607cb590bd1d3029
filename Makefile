# Two commands do everything on a fresh Debian/Ubuntu machine (see README):
#   make demo   — install what is missing, build, run the main job
#   make test   — install what is missing, build, run the test suite
CARGO ?= cargo
DEMO_OUT ?= lgn-demo

.PHONY: deps build demo test bench lint

deps:
	@bash scripts/install-deps.sh

build: deps
	$(CARGO) build --release

demo: build
	./target/release/lgn demo --out $(DEMO_OUT) --force

test: deps
	$(CARGO) test --release

bench: build
	$(CARGO) bench --bench accel

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets -- -D warnings
