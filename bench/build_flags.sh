#!/usr/bin/env bash
# The build settings of the programs against each other ("Speed of the programs you build" in
# docs/building.md): builds bench/gpt2_bench in four configurations of this source tree and times
# every pass of each, with PyTorch's times for the same passes, in one run (bench/gpt2_torch.py):
#
#   default  what scripts/demo, scripts/test and a plain `cmake -S . -B build` give: -march=native,
#            OpenMP, Eigen's products through OpenBLAS (GLASSBOX_NATIVE, GLASSBOX_OPENMP, GLASSBOX_BLAS ON)
#   blas     OpenBLAS without -march=native (GLASSBOX_NATIVE=OFF): a binary that runs on any x86-64
#   native   -march=native without OpenBLAS (GLASSBOX_BLAS=OFF): Eigen's own products
#   plain    neither (both OFF): what a consumer's plain Release build of its own program gets
#
#   bench/build_flags.sh                 GPT-2 small shape, T = 32 and 128, 1 and 2 threads
#   THREADS="1" LENGTHS="128" bench/build_flags.sh
#
# Builds go to build/flags-<name> (Release, only the benchmark). Needs python3-torch for the
# PyTorch column (install libopenblas0-pthread first: docs/benchmarks.md).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
declare -A settings=(
  [default]="-DGLASSBOX_NATIVE=ON -DGLASSBOX_OPENMP=ON -DGLASSBOX_BLAS=ON"
  [blas]="-DGLASSBOX_NATIVE=OFF -DGLASSBOX_OPENMP=ON -DGLASSBOX_BLAS=ON"
  [native]="-DGLASSBOX_NATIVE=ON -DGLASSBOX_OPENMP=ON -DGLASSBOX_BLAS=OFF"
  [plain]="-DGLASSBOX_NATIVE=OFF -DGLASSBOX_OPENMP=ON -DGLASSBOX_BLAS=OFF"
)
binaries=()
for name in default blas native plain; do
  dir="build/flags-$name"
  # shellcheck disable=SC2086
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGLASSBOX_BUILD_TESTS=OFF -DGLASSBOX_BUILD_EXAMPLES=OFF \
        -DGLASSBOX_BUILD_APPS=OFF -DGLASSBOX_BUILD_BENCH=ON ${settings[$name]} > /dev/null
  cmake --build "$dir" --target gpt2_bench > /dev/null
  binaries+=("$name=$dir/bench/gpt2_bench")
done
# shellcheck disable=SC2086
/usr/bin/python3 bench/gpt2_torch.py --configs 0 --threads ${THREADS:-1 2} --lengths ${LENGTHS:-32 128} \
                 --glassbox "${binaries[@]}" --markdown
