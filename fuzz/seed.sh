#!/bin/sh
# Seed corpora for the fuzz targets: the repository's meshes and HDF5 fixtures plus one file of
# every lgn kind written by the current binary. Run from fuzz/ after `cargo build --release`.
set -e
LGN=${LGN:-../target/release/lgn}
mkdir -p corpus/gmsh corpus/hdf5
cp ../meshes/*.msh ../tests/data/*.msh corpus/gmsh/
cp ../tests/data/*.h5 corpus/hdf5/
T=$(mktemp -d)
$LGN generate dblpend --n 50 --out "$T/samples.h5"
$LGN generate dblpend --kind trajectories --batch 2 --frames 5 --out "$T/traj.h5"
$LGN train --data "$T/samples.h5" --model lnn --hidden 4 --epochs 1 --out "$T/model.h5" --quiet > /dev/null
$LGN accel --system dblpend --state 0.1,0.2,0.3,0.4 --out "$T/accel.h5" > /dev/null
cp "$T"/*.h5 corpus/hdf5/
rm -rf "$T"
