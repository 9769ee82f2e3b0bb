#!/usr/bin/env bash
# What including glassbox costs a user's build ("Include cost" in docs/building.md): the CPU time of
# compiling a translation unit that only includes one header, for Eigen, xtensor and every public
# glassbox header, with the compiler and flags a user's plain build has (GCC, -std=c++20 -O2); then
# the cost of a first real use, one integrated-gradients call on the reference GPT-2, compiled with
# the model in the same translation unit and with `extern template class
# glassbox::models::basic_gpt2<float>;` (the model compiled once elsewhere, as src/gpt2_float.cpp
# is for the repository's programs).
#
#   bench/include_cost.sh                      every public header, best of 3
#   CXX=clang++-14 bench/include_cost.sh       another compiler
#   REPEAT=1 bench/include_cost.sh glassbox/core.hpp glassbox/attribution.hpp   some headers, once
#   FIRST_USE=0 bench/include_cost.sh ...      without the first-use compile
#   PCH=0 bench/include_cost.sh ...            without the row of glassbox.hpp through a precompiled
#                                              header (printed when glassbox/glassbox.hpp is measured)
#   BEFORE=/tmp/before bench/include_cost.sh ... before/after table: each header compiled alternately
#                                              against BEFORE/include (a copy of the tree before a change,
#                                              e.g. `git archive HEAD | tar -x -C /tmp/before`) and this
#                                              tree's include/, so that both columns see the same load
#                                              (the first-use rows too, unless FIRST_USE=0)
#
# Times are user + system CPU seconds of the compiler (GNU time is not needed: bash's `times` of a
# subshell), so a busy machine inflates them less than wall time; run it on a quiet machine anyway.
set -euo pipefail
shopt -s inherit_errexit  # a failed compile inside $(...) stops the script
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cxx="${CXX:-g++}"
repeat="${REPEAT:-3}"
flags=(-std=c++20 -O2 -I"$root/include" -isystem /usr/include/eigen3)
before="${BEFORE:-}"
before_flags=(-std=c++20 -O2 -I"$before/include" -isystem /usr/include/eigen3)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# CPU seconds (user + system of the children) of one compile of $1 (a source file) with the flags
# named by $2 (flags or before_flags).
compile_once() {
  local -n use_flags="$2"
  local log
  log=$( { TIMEFORMAT='%U %S'; time "$cxx" "${use_flags[@]}" -c "$1" -o "$work/out.o" 2>&1; } 2>&1 ) || {
    echo "include_cost.sh: compiling $1 failed:" >&2
    echo "$log" >&2
    exit 1
  }
  echo "$log" | tail -n 1 | awk '{printf "%.2f", $1 + $2}'
}

# The smaller of two numbers.
smaller() { if [[ -z "$1" ]] || awk "BEGIN {exit !($2 < $1)}"; then echo "$2"; else echo "$1"; fi; }

# Best of $repeat compiles of the one-include translation unit of header $1, alternating between the
# BEFORE tree and this tree: prints "before after".
header_pair() {
  printf '#include <%s>\nint main() { return 0; }\n' "$1" > "$work/tu.cpp"
  local b="" a="" t
  for ((k = 0; k < repeat; ++k)); do
    t=$(compile_once "$work/tu.cpp" before_flags)
    b=$(smaller "$b" "$t")
    t=$(compile_once "$work/tu.cpp" flags)
    a=$(smaller "$a" "$t")
  done
  echo "$b $a"
}

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

# A first real use: one integrated-gradients call on the reference GPT-2, written to $work/first_use.cpp
# (the model compiled in the same translation unit, as a user's first program would) and to
# $work/first_use_extern.cpp (the same after `extern template class ...basic_gpt2<float>;`).
write_first_use() {
  cat > "$work/first_use.cpp" <<'EOF2'
#include <glassbox/attribution/integrated_gradients.hpp>
#include <glassbox/models/gpt2.hpp>
int main() {
  const auto model = glassbox::models::gpt2::random(glassbox::models::gpt2_config{}, 1);
  const glassbox::token_sequence tokens = {464, 3797, 3332, 319, 262};
  return glassbox::integrated_gradients(model, tokens, glassbox::target::log_probability(2603)).scores.size() == 5 ? 0 : 1;
}
EOF2
  { sed -n '1,2p' "$work/first_use.cpp"
    echo 'extern template class glassbox::models::basic_gpt2<float>;'
    sed -n '3,$p' "$work/first_use.cpp"; } > "$work/first_use_extern.cpp"
}
first_use_rows='one integrated_gradients call on the reference GPT-2, one translation unit'
extern_rows='the same with extern template class glassbox::models::basic_gpt2<float>'

if (($# > 0)); then
  headers=("$@")
else
  mapfile -t headers < <(cd "$root/include" && find glassbox -name '*.hpp' -not -path '*/detail/*' \
                          -not -path '*/adapters/*' -not -path '*/parallel/*' | sort)
fi

if [[ -n "$before" ]]; then
  [[ -d "$before/include/glassbox" ]] || { echo "include_cost.sh: BEFORE=$before has no include/glassbox" >&2; exit 1; }
  echo "compiler: $("$cxx" --version | head -n 1); flags: -std=c++20 -O2; best of $repeat, before and after alternately"
  echo "before: $before/include; after: $root/include"
  echo
  echo "| header | before (s) | before / Eigen | after (s) | after / Eigen |"
  echo "|---|---:|---:|---:|---:|"
  pair=$(header_pair Eigen/Dense)
  read -r eb ea <<< "$pair"
  # Eigen is the same file in both trees: one figure (the best of both columns) for both ratios.
  eb=$(smaller "$eb" "$ea")
  ea=$eb
  printf '| `<Eigen/Dense>` | %s | 1.00 | %s | 1.00 |\n' "$eb" "$ea"
  for h in xtensor/xtensor.hpp "${headers[@]}"; do
    [[ "$h" == glassbox/* ]] && shown="$h" || shown="<$h>"
    if [[ "$h" == glassbox/* && ! -f "$before/include/$h" ]]; then  # new in this tree
      printf '#include <%s>\nint main() { return 0; }\n' "$h" > "$work/tu.cpp"
      a=$(compile_seconds "$work/tu.cpp")
      printf '| `%s` | (new) | | %s | %.2f |\n' "$shown" "$a" "$(awk "BEGIN {print $a / $ea}")"
      continue
    fi
    pair=$(header_pair "$h")
    read -r b a <<< "$pair"
    printf '| `%s` | %s | %.2f | %s | %.2f |\n' "$shown" "$b" "$(awk "BEGIN {print $b / $eb}")" "$a" \
      "$(awk "BEGIN {print $a / $ea}")"
  done
  [[ "${FIRST_USE:-1}" == 0 ]] && exit 0
  write_first_use
  echo
  echo "| first real use | before (s) | after (s) |"
  echo "|---|---:|---:|"
  for f in first_use first_use_extern; do
    b="" a=""
    for ((k = 0; k < repeat; ++k)); do
      b=$(smaller "$b" "$(compile_once "$work/$f.cpp" before_flags)")
      a=$(smaller "$a" "$(compile_once "$work/$f.cpp" flags)")
    done
    [[ "$f" == first_use ]] && what="$first_use_rows" || what="$extern_rows"
    printf '| %s | %s | %s |\n' "$what" "$b" "$a"
  done
  exit 0
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

# The umbrella through a precompiled header (PCH=0 skips it), the way CMake's
# target_precompile_headers(app PRIVATE <glassbox/glassbox.hpp>) builds it: a wrapper header that
# includes the umbrella is precompiled once, and every translation unit is compiled with
# `-include` of the wrapper (GCC then loads glassbox_pch.hxx.gch; -Winvalid-pch -Werror makes an
# unusable one an error), so its own #include <glassbox/glassbox.hpp> costs nothing more.
if [[ "${PCH:-1}" != 0 && " ${headers[*]} " == *" glassbox/glassbox.hpp "* ]]; then
  mkdir -p "$work/pch"
  printf '#include <glassbox/glassbox.hpp>\n' > "$work/pch/glassbox_pch.hxx"
  pch_flags=(-std=c++20 -O2 -I"$root/include" -isystem /usr/include/eigen3 -Winvalid-pch -Werror)
  log=$( { TIMEFORMAT='%U %S'; time "$cxx" "${pch_flags[@]}" -x c++-header "$work/pch/glassbox_pch.hxx" \
           -o "$work/pch/glassbox_pch.hxx.gch" 2>&1; } 2>&1 ) || {
    echo "include_cost.sh: precompiling glassbox/glassbox.hpp failed:" >&2
    echo "$log" >&2
    exit 1
  }
  build=$(echo "$log" | tail -n 1 | awk '{printf "%.2f", $1 + $2}')
  size=$(du -m "$work/pch/glassbox_pch.hxx.gch" | cut -f1)
  printf '#include <glassbox/glassbox.hpp>\nint main() { return 0; }\n' > "$work/tu.cpp"
  pch_use=(-include "$work/pch/glassbox_pch.hxx" "${pch_flags[@]}")
  best=""
  for ((k = 0; k < repeat; ++k)); do
    best=$(smaller "$best" "$(compile_once "$work/tu.cpp" pch_use)")
  done
  printf '| `glassbox/glassbox.hpp` through a precompiled header (built once: %s s, %s MB) | %s | %.2f |\n' \
    "$build" "$size" "$best" "$(awk "BEGIN {print $best / $eigen}")"
fi

[[ "${FIRST_USE:-1}" == 0 ]] && exit 0
write_first_use
echo
printf 'first real use (%s): %s s\n' "$first_use_rows" "$(compile_seconds "$work/first_use.cpp")"
printf 'first real use (%s): %s s\n' "$extern_rows" "$(compile_seconds "$work/first_use_extern.cpp")"
