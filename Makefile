# Two commands do everything on a fresh Debian/Ubuntu machine (see README):
#   make demo   — install what is missing, build, run the main job
#   make test   — install what is missing, build, run the test suite
CARGO ?= cargo
DEMO_OUT ?= lgn-demo

.PHONY: deps build demo test test-mpi pytest bench lint fuzz

deps:
	@bash scripts/install-deps.sh

build: deps
	$(CARGO) build --release

demo: build
	./target/release/lgn demo --out $(DEMO_OUT) --force

test: deps
	$(CARGO) test --release
	bash scripts/python-test.sh
	$(MAKE) test-mpi

# The MPI tests (docs/DESIGN.md §16): lgn built with --features mpi; each test starts
# `mpirun -n 1, 2, 3 --oversubscribe` itself (as root with OMPI_ALLOW_RUN_AS_ROOT set).
test-mpi: deps
	$(CARGO) test --release --features mpi --test 'mpi_*'

# The Python package's tests alone (builds it into target/pyvenv).
pytest: deps
	bash scripts/python-test.sh

bench: build
	$(CARGO) bench --bench accel

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --release --all-targets -- -D warnings

# Fuzz the Gmsh and HDF5 readers for FUZZ_SECONDS each (needs nightly and cargo-fuzz; see fuzz/README.md).
FUZZ_SECONDS ?= 600
fuzz: build
	cd fuzz && ./seed.sh
	cd fuzz && $(CARGO) +nightly fuzz run -O gmsh corpus/gmsh -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 -timeout=30
	cd fuzz && $(CARGO) +nightly fuzz run -O hdf5 corpus/hdf5 -- -fork=1 -ignore_timeouts=1 -detect_leaks=0 -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 -timeout=20
