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
	./target/release/lgn accel --system dblpend --state "0.5,1.0,0.0,0.2"
	./target/release/lgn bench accel --n 100000 --hidden 128 --solver sparse
	./target/release/lgn bench accel --n 1600 --hidden 128 --solver dense --min-seconds 0

test: deps
	$(CARGO) test --release

bench: build
	$(CARGO) bench --bench accel

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets -- -D warnings
