#!/usr/bin/env bash
# Install what lgn needs to build on Debian/Ubuntu: the HDF5 C library (libhdf5-dev) and
# pkg-config; for the MPI feature and its tests Open MPI (libopenmpi-dev, openmpi-bin) and
# libclang-dev. Does nothing when they are already there. Uses sudo when not root.
set -euo pipefail

need=()
if ! { pkg-config --exists hdf5 2>/dev/null || [ -e /usr/include/hdf5/serial/hdf5.h ] || [ -e /usr/include/hdf5.h ]; }; then
  need+=(libhdf5-dev)
fi
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
# The Python package's tests (scripts/python-test.sh) make a virtual environment.
if ! command -v python3 >/dev/null 2>&1; then
  need+=(python3 python3-venv python3-pip)
elif ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then
  need+=(python3-venv)
fi

# MPI tests (`make test-mpi`, docs/DESIGN.md §16): Open MPI's headers and mpirun, and libclang
# for the bindings' bindgen step.
if ! { command -v mpirun >/dev/null 2>&1 && command -v mpicc >/dev/null 2>&1; }; then
  need+=(libopenmpi-dev openmpi-bin)
fi
if ! compgen -G "/usr/lib/llvm-*/lib/libclang.so*" >/dev/null && ! compgen -G "/usr/lib/*/libclang*.so*" >/dev/null; then
  need+=(libclang-dev)
fi

if [ ${#need[@]} -gt 0 ]; then
  echo "lgn: installing missing system packages: ${need[*]} (apt-get)"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "lgn: apt-get not found; install the HDF5 C library (1.10+) and pkg-config with your package manager" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  echo "lgn: installed ${need[*]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "lgn: cargo not found; install the Rust toolchain (https://rustup.rs) and retry" >&2
  exit 1
fi
