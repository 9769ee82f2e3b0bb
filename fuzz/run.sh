#!/usr/bin/env bash
# Builds glassbox's libFuzzer harnesses in build/fuzz (clang++-14) and runs each for SECONDS (default 60)
# on a copy of its seed corpus (fuzz/corpus/<harness>), JOBS of them at a time. Prints the executions count
# of each and exits non-zero on any finding: a crash, a sanitizer report, a leak, an escaping exception
# that is not a glassbox::error, a timeout (10 s per input) or running out of memory (2 GB).
# Findings are kept as build/fuzz/artifacts/<harness>-crash-* (reproduce: build/fuzz/fuzz/<harness> FILE).
#
# Usage: fuzz/run.sh [SECONDS] [HARNESS...]      environment: CXX (clang++-14), JOBS (2)
set -euo pipefail

seconds="${1:-60}"
shift || true
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${root}/build/fuzz"
cxx="${CXX:-clang++-14}"
harnesses=("$@")
if [ ${#harnesses[@]} -eq 0 ]; then
  harnesses=(safetensors_fuzz vocabulary_fuzz bpe_fuzz activation_file_fuzz jsonl_fuzz)
fi

# Ninja (as every preset), so that the harnesses compile in parallel: the Makefile generator builds the
# targets named on the command line one after another. A build/fuzz made by an older run.sh with
# another generator is reconfigured from scratch.
if [ -f "${build}/CMakeCache.txt" ] && ! grep -qx 'CMAKE_GENERATOR:INTERNAL=Ninja' "${build}/CMakeCache.txt"; then
  rm -rf "${build}/CMakeCache.txt" "${build}/CMakeFiles"
fi
cmake -S "${root}" -B "${build}" -G Ninja -DCMAKE_CXX_COMPILER="${cxx}" -DCMAKE_BUILD_TYPE=Release \
  -DGLASSBOX_BUILD_FUZZ=ON -DGLASSBOX_BUILD_TESTS=OFF -DGLASSBOX_BUILD_EXAMPLES=OFF -DGLASSBOX_BUILD_APPS=OFF \
  -DGLASSBOX_BUILD_BENCH=OFF -DGLASSBOX_INSTALL=OFF -DGLASSBOX_WARNINGS_AS_ERRORS=ON >/dev/null
cmake --build "${build}" --target "${harnesses[@]}" -j "${JOBS:-2}"

mkdir -p "${build}/artifacts"
# One harness: a copy of its corpus, SECONDS of fuzzing, its exit status in <harness>.status.
run_one() {
  local h="$1" work="${build}/corpus-run/$1" log="${build}/$1.log" status=0
  rm -rf "${work}"
  mkdir -p "${work}"
  cp "${root}/fuzz/corpus/${h}/"* "${work}/"
  "${build}/fuzz/${h}" -max_total_time="${seconds}" -timeout=10 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
    -artifact_prefix="${build}/artifacts/${h}-" "${work}" >"${log}" 2>&1 || status=$?
  echo "${status}" >"${build}/${h}.status"
}
# JOBS harnesses at a time (each is one process on one core).
for h in "${harnesses[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "${JOBS:-2}" ]; do wait -n || true; done
  run_one "${h}" &
done
wait

failed=0
printf '%-22s %12s %10s  %s\n' harness executions seconds result
for h in "${harnesses[@]}"; do
  log="${build}/${h}.log"
  status="$(cat "${build}/${h}.status")"
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "${log}" | tail -n 1)"
  if [ "${status}" -eq 0 ]; then
    result="ok"
  else
    result="FINDING (exit ${status}; see ${log})"
    failed=1
  fi
  printf '%-22s %12s %10s  %s\n' "${h}" "${runs:-?}" "${seconds}" "${result}"
  if [ "${status}" -ne 0 ]; then
    grep -m 5 -E 'ERROR|SUMMARY|terminate|what\(\)|Test unit written' "${log}" || true
  fi
done
exit "${failed}"
