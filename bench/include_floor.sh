#!/usr/bin/env bash
# Where the umbrella's include cost goes ("Include cost" in docs/building.md): the third-party and
# standard headers that glassbox/glassbox.hpp includes, compiled alone (the floor that no change
# inside glassbox can remove), then without each large library in turn, then with nlohmann_json's
# header minus its two string-literal operators, next to the umbrella itself.
#
#   bench/include_floor.sh              best of 5 compiles of each translation unit, alternated
#   REPEAT=3 bench/include_floor.sh     best of 3
#   MODULES=0 bench/include_floor.sh    without the second table (each module umbrella over the floor)
#
# Two figures per translation unit, from GCC with the flags of a user's plain build (-std=c++20 -O2):
#   - GCC's memory (`-fmem-report` with the garbage collector held off, so every allocation counts):
#     the same on every machine with the same compiler and packages, and it tracks compile time;
#   - CPU seconds (user + system), the best of $REPEAT compiles, the rows alternated round by round so
#     that a machine whose speed drifts slows every row alike. Run it on a quiet machine anyway.
# A second table gives, in GCC's memory only, what each module umbrella (glassbox/attention.hpp ...)
# adds to the floor: the floor's headers, then the module's.
#
# The floor's header list is read from glassbox's own headers: every `#include <...>` under
# include/glassbox that is not a glassbox header, less the optional parts the umbrella does not
# include (libtorch, MPI, OpenMP's omp.h). nlohmann_json's header defines two non-template
# `operator""` functions (`_json` and `_json_pointer`) whose bodies GCC compiles in every
# translation unit that includes it; the "without its literals" rows use a copy of Debian's
# /usr/include/nlohmann with those two functions deleted, made in a temporary directory and put
# before the system headers with -I. Nothing of it is kept, and glassbox builds against Debian's.
set -euo pipefail
shopt -s inherit_errexit
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cxx="${CXX:-g++}"
repeat="${REPEAT:-5}"
nlohmann_dir="${NLOHMANN_DIR:-/usr/include/nlohmann}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
base_flags=(-std=c++20 -O2 -I"$root/include" -isystem /usr/include/eigen3)

# The floor's #include lines, one per header.
grep -rhoE '^#include <[^>]+>' "$root/include/glassbox" | grep -v '<glassbox/' |
  grep -vE '<(torch|ATen|c10)/|<mpi\.h>|<omp\.h>' | sort -u > "$work/floor_includes"
[[ -s "$work/floor_includes" ]] || { echo "include_floor.sh: no #include <...> found under $root/include" >&2; exit 1; }

# nlohmann_json without its literal operators: everything from `inline namespace literals` to the
# end of that namespace, and the JSON_USE_GLOBAL_UDLS using-declarations, removed from a copy.
mkdir -p "$work/nl"
cp -r "$nlohmann_dir" "$work/nl/nlohmann"
awk '
  /^inline namespace literals/ { skip = 1 }
  skip && /^}  \/\/ namespace literals/ { skip = 0; next }
  /^#if JSON_USE_GLOBAL_UDLS/ { udls = 1 }
  udls { if (/^#endif/) udls = 0; next }
  !skip { print }
' "$nlohmann_dir/json.hpp" > "$work/nl/nlohmann/json.hpp"
if grep -q 'operator "" _json' "$work/nl/nlohmann/json.hpp" ||
   ! grep -q 'operator "" _json' "$nlohmann_dir/json.hpp"; then
  echo "include_floor.sh: $nlohmann_dir/json.hpp does not have the layout this script edits (nlohmann_json 3.11)" >&2
  exit 1
fi

# Writes translation unit $1 from the floor's include lines, less those matching the regex $2 (or
# none when empty), then `int main`. Each include is guarded by __has_include: glassbox's headers
# choose between xtensor's 0.24 and 0.25 layouts that way, and only one of them is installed.
floor_tu() {
  if [[ -n "$2" ]]; then grep -vE "$2" "$work/floor_includes" || true; else cat "$work/floor_includes"; fi |
    sed -E 's/^#include (<[^>]+>)$/#if __has_include(\1)\n#include \1\n#endif/' > "$work/$1.cpp"
  echo 'int main() { return 0; }' >> "$work/$1.cpp"
}
printf '#include <Eigen/Dense>\nint main() { return 0; }\n' > "$work/eigen.cpp"
printf '#include <nlohmann/json.hpp>\nint main() { return 0; }\n' > "$work/json.cpp"
cp "$work/json.cpp" "$work/json_no_literals.cpp"
floor_tu floor ''
floor_tu floor_no_json '<nlohmann/'
floor_tu floor_no_xtensor '<xtensor/'
floor_tu floor_no_fmt '<fmt/'
cp "$work/floor.cpp" "$work/floor_json_no_literals.cpp"
printf '#include <glassbox/glassbox.hpp>\nint main() { return 0; }\n' > "$work/umbrella.cpp"
cp "$work/umbrella.cpp" "$work/umbrella_json_no_literals.cpp"

rows=(eigen json json_no_literals floor floor_no_json floor_no_xtensor floor_no_fmt floor_json_no_literals umbrella
      umbrella_json_no_literals)
# shellcheck disable=SC2016  # the backquotes are Markdown
declare -A label=(
  [eigen]='`<Eigen/Dense>`'
  [json]='`<nlohmann/json.hpp>`'
  [json_no_literals]='`<nlohmann/json.hpp>` without its literal operators'
  [floor]='the floor: every third-party and standard header that glassbox.hpp includes'
  [floor_no_json]='the floor without nlohmann_json'
  [floor_no_xtensor]='the floor without xtensor'
  [floor_no_fmt]='the floor without fmt'
  [floor_json_no_literals]="the floor, nlohmann_json without its literal operators"
  [umbrella]='`glassbox/glassbox.hpp`'
  [umbrella_json_no_literals]='`glassbox/glassbox.hpp`, nlohmann_json without its literal operators'
)
# Extra flags of a row: the edited nlohmann copy first on the include path.
row_flags() { if [[ "$1" == *json_no_literals ]]; then echo "-I$work/nl"; fi; }

# GCC's memory in MB for row $1, the collector held off.
memory_mb() {
  local extra out
  extra=$(row_flags "$1")
  # shellcheck disable=SC2086  # $extra is empty or one flag
  out=$("$cxx" $extra "${base_flags[@]}" -fsyntax-only "$work/$1.cpp" --param ggc-min-heapsize=4000000 \
        --param ggc-min-expand=10000 -fmem-report 2>&1) || {
    echo "include_floor.sh: compiling $1.cpp failed:" >&2
    echo "$out" | head -n 20 >&2
    exit 1
  }
  # The collector's table ends "Total <allocated> <used> <overhead>": the used figure, in MB.
  echo "$out" | grep -m1 -E '^Total +[0-9]' | awk '{v = $3; u = substr(v, length(v)); n = v + 0;
    if (u == "k") n /= 1024; else if (u == "G") n *= 1024; else if (u != "M") n /= 1048576; printf "%.0f", n}'
}

# CPU seconds of one compile of row $1.
seconds_once() {
  local extra log
  extra=$(row_flags "$1")
  # shellcheck disable=SC2086
  log=$( { TIMEFORMAT='%U %S'; time "$cxx" $extra "${base_flags[@]}" -c "$work/$1.cpp" -o "$work/out.o" 2>&1; } 2>&1 ) || {
    echo "include_floor.sh: compiling $1.cpp failed:" >&2
    echo "$log" >&2
    exit 1
  }
  echo "$log" | tail -n 1 | awk '{printf "%.2f", $1 + $2}'
}

declare -A mem best
for r in "${rows[@]}"; do mem[$r]=$(memory_mb "$r"); done
for ((k = 0; k < repeat; ++k)); do
  for r in "${rows[@]}"; do
    t=$(seconds_once "$r")
    if [[ -z "${best[$r]:-}" ]] || awk "BEGIN {exit !($t < ${best[$r]})}"; then best[$r]=$t; fi
  done
done

echo "compiler: $("$cxx" --version | head -n 1); flags: -std=c++20 -O2; nlohmann_json: $nlohmann_dir;" \
  "seconds: best of $repeat, rows alternated"
echo
echo "| translation unit | GCC memory (MB) | / Eigen | seconds | / Eigen |"
echo "|---|---:|---:|---:|---:|"
for r in "${rows[@]}"; do
  printf '| %s | %s | %.2f | %s | %.2f |\n' "${label[$r]}" "${mem[$r]}" \
    "$(awk "BEGIN {print ${mem[$r]} / ${mem[eigen]}}")" "${best[$r]}" \
    "$(awk "BEGIN {print ${best[$r]} / ${best[eigen]}}")"
done

[[ "${MODULES:-1}" == 0 ]] && exit 0
echo
echo "| module umbrella | GCC memory over the floor (MB) |"
echo "|---|---:|"
mapfile -t modules < <(cd "$root/include" && find glassbox -maxdepth 1 -name '*.hpp' -not -name glassbox.hpp | sort)
for m in "${modules[@]}"; do
  row="module_$(basename "$m" .hpp)"
  { grep -v '^int main' "$work/floor.cpp"; printf '#include <%s>\nint main() { return 0; }\n' "$m"; } > "$work/$row.cpp"
  used=$(memory_mb "$row")
  printf "| \`%s\` | %s |\n" "$m" "$((used - mem[floor]))"
done
