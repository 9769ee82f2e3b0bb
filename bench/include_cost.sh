#!/usr/bin/env bash
# What including glassbox costs a user's build ("Include cost" in docs/building.md): the CPU time of
# compiling a translation unit that only includes one header, for Eigen, xtensor and every public
# glassbox header, with the compiler and flags a user's plain build has (GCC, -std=c++20 -O2); then
# the cost of a first real use, one integrated-gradients call on the reference GPT-2.
#
#   bench/include_cost.sh                      every public header, best of 3
#   CXX=clang++-14 bench/include_cost.sh       another compiler
#   REPEAT=1 bench/include_cost.sh glassbox/core.hpp glassbox/attribution.hpp   some headers, once
#   FIRST_USE=0 bench/include_cost.sh ...      without the first-use compile
#
# Times are user + system CPU seconds of the compiler (GNU time is not needed: bash's `times` of a
# subshell), so a busy machine inflates them less than wall time; run it on a quiet machine anyway.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cxx="${CXX:-g++}"
repeat="${REPEAT:-3}"
flags=(-std=c++20 -O2 -I"$root/include" -isystem /usr/include/eigen3)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# CPU seconds (user + system of the children) of compiling $1 (a source file), best of $repeat.
compile_seconds() {
  local best=""
  for ((k = 0; k < repeat; ++k)); do
    local t
    local log
    log=$( { TIMEFORMAT='%U %S'; time "$cxx" "${flags[@]}" -c "$1" -o "$work/out.o" 2>&1; } 2>&1 ) || {
      echo "include_cost.sh: compiling $1 failed:" >&2
      echo "$log" >&2
      exit 1
    }
    t=$(echo "$log" | tail -n 1 | awk '{printf "%.2f", $1 + $2}')
    if [[ -z "$best" ]] || awk "BEGIN {exit !($t < $best)}"; then best=$t; fi
  done
  echo "$best"
}

header_seconds() {
  printf '#include <%s>\nint main() { return 0; }\n' "$1" > "$work/tu.cpp"
  compile_seconds "$work/tu.cpp"
}

if (($# > 0)); then
  headers=("$@")
else
  mapfile -t headers < <(cd "$root/include" && find glassbox -name '*.hpp' -not -path '*/detail/*' \
                          -not -path '*/adapters/*' -not -path '*/parallel/*' | sort)
fi

eigen=$(header_seconds Eigen/Dense)
echo "compiler: $("$cxx" --version | head -n 1); flags: ${flags[*]}; best of $repeat"
echo
echo "| header | seconds | / <Eigen/Dense> |"
echo "|---|---:|---:|"
printf '| `<Eigen/Dense>` | %s | 1.00 |\n' "$eigen"
xt=$(header_seconds xtensor/xtensor.hpp)
printf '| `<xtensor/xtensor.hpp>` | %s | %.2f |\n' "$xt" "$(awk "BEGIN {print $xt / $eigen}")"
for h in "${headers[@]}"; do
  s=$(header_seconds "$h")
  printf '| `%s` | %s | %.2f |\n' "$h" "$s" "$(awk "BEGIN {print $s / $eigen}")"
done

[[ "${FIRST_USE:-1}" == 0 ]] && exit 0

# A first real use: one integrated-gradients call on the reference GPT-2 (the model compiled in the
# same translation unit, as a user's first program would).
cat > "$work/first_use.cpp" <<'EOF'
#include <glassbox/attribution/integrated_gradients.hpp>
#include <glassbox/models/gpt2.hpp>
int main() {
  const auto model = glassbox::models::gpt2::random(glassbox::models::gpt2_config{}, 1);
  const glassbox::token_sequence tokens = {464, 3797, 3332, 319, 262};
  return glassbox::integrated_gradients(model, tokens, glassbox::target::log_probability(2603)).scores.size() == 5 ? 0 : 1;
}
EOF
first=$(compile_seconds "$work/first_use.cpp")
echo
printf 'first real use (one integrated_gradients call on the reference GPT-2, one translation unit): %s s\n' "$first"
