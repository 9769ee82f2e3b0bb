#!/usr/bin/env bash
# Where a build's compile time goes ("CI's time" in docs/building.md): the CPU seconds of the compile
# jobs in a Ninja build tree's .ninja_log, summed by part (the command line, the examples, the unit,
# CLI and libtorch tests, the shared GPT-2 instantiation, ...), and the gauge: the jobs of the test
# programs (tests/unit, tests/cli, tests/libtorch), whose sum tells how fast the machine was when two
# builds of the same tests are compared. Run it on the build tree `bash .ci/run` leaves
# (build/release of a fresh clone), the build the README's test command makes.
#
#   bench/compile_jobs.sh build/release                    the table for one build
#   bench/compile_jobs.sh /tmp/before/build/release build/release   two builds side by side, with
#                                                          each total scaled to the first's gauge
#   GAUGE='^tests/cli/' bench/compile_jobs.sh A B          another gauge (a regular expression over the
#                                                          object files' paths), when a change between
#                                                          the two builds touched some of the tests
set -euo pipefail
if (($# < 1 || $# > 2)); then
  echo "usage: bench/compile_jobs.sh BUILD_DIR [BUILD_DIR]" >&2
  exit 2
fi
# The last entry of every output (.ninja_log keeps one line per build of it), grouped by part.
parts() {
  awk -F'\t' -v gauge_re="${GAUGE:-^tests/(unit|cli|libtorch)/}" '!/^#/ && $4 ~ /\.o$/ {
      t[$4] = ($2 - $1) / 1000
    } END {
      for (o in t) {
        n = split(o, p, "/"); part = p[1] == "tests" ? p[1] "/" p[2] : p[1]
        if (part == "examples" && p[2] != "CMakeFiles") part = "examples/" p[2]
        if (part == "CMakeFiles") part = "shared objects (" p[2] ")"
        s[part] += t[o]; total += t[o]
        if (o ~ gauge_re) gauge += t[o]
      }
      for (k in s) printf "%s\t%.1f\n", k, s[k]
      printf "TOTAL\t%.1f\nGAUGE\t%.1f\n", total, gauge
    }' "$1/.ninja_log"
}
if (($# == 1)); then
  printf '| part | compile jobs (CPU s) |\n|---|---:|\n'
  parts "$1" | sort -t$'\t' -k2 -rn | awk -F'\t' '{printf "| %s | %s |\n", $1, $2}'
  exit 0
fi
join -t$'\t' -a1 -a2 -e 0 -o 0,1.2,2.2 <(parts "$1" | sort) <(parts "$2" | sort) |
  awk -F'\t' -v gauge_name="${GAUGE:-unit, CLI and libtorch tests}" '{v[$1] = $2 "\t" $3; a[$1] = $2; b[$1] = $3}
    END {
      scale = b["GAUGE"] > 0 ? a["GAUGE"] / b["GAUGE"] : 1
      printf "| part | %s | %s | second at the first gauge |\n|---|---:|---:|---:|\n", "first", "second"
      for (k in v) if (k != "TOTAL" && k != "GAUGE") printf "| %s | %.1f | %.1f | %.1f |\n", k, a[k], b[k], b[k] * scale
      printf "| **total** | %.1f | %.1f | %.1f |\n", a["TOTAL"], b["TOTAL"], b["TOTAL"] * scale
      printf "| gauge (%s) | %.1f | %.1f | (second machine %.2fx slower) |\n", gauge_name, a["GAUGE"], b["GAUGE"], 1 / scale
    }'
