#!/usr/bin/env bash
# The calls in glassbox's headers that GCC compiles when it reads them rather than when a template is
# instantiated ("Include cost" in docs/building.md): calls into Eigen, and expressions of a
# nlohmann_json type, in function bodies whose types do not depend on a template parameter. Each
# such call instantiates Eigen's expression classes (or the JSON type's conversions) in every
# translation unit that includes the header, used or not. Lists them per file, then each site.
#
#   bench/dependent_calls.sh               Eigen calls and JSON expressions
#   KIND=eigen bench/dependent_calls.sh    Eigen calls only
#   KIND=json bench/dependent_calls.sh     JSON expressions only
#
# Needs clang-query-14 (Debian: clang-tools-14). It reads the umbrella glassbox/glassbox.hpp; about
# 20 s per kind. nlohmann's own header completes both JSON types (nlohmann::json and the report's
# ordered_json), so what a JSON expression costs is the conversions and members it instantiates.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
query="${CLANG_QUERY:-clang-query-14}"
kind="${KIND:-all}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
printf '#include <glassbox/glassbox.hpp>\n' > "$work/tu.cpp"

# A matcher of $1 (a node matcher's inner constraints) in glassbox's headers, outside instantiations.
in_glassbox='isExpansionInFileMatching("/include/glassbox/"), unless(hasAncestor(functionDecl(isTemplateInstantiation()))), unless(hasAncestor(cxxRecordDecl(isTemplateInstantiation())))'
eigen="match callExpr($in_glassbox, callee(functionDecl(hasAncestor(namespaceDecl(hasName(\"Eigen\")))))).bind(\"site\")"
json="match expr($in_glassbox, hasType(hasUnqualifiedDesugaredType(recordType(hasDeclaration(classTemplateSpecializationDecl(hasName(\"::nlohmann::basic_json\"))))))).bind(\"site\")"

run() {  # $1: label, $2: the match command
  printf 'set output diag\nset bind-root false\n%s\n' "$2" > "$work/query"
  "$query" -f "$work/query" "$work/tu.cpp" -- -std=c++20 -I"$root/include" -isystem /usr/include/eigen3 2>&1 |
    grep 'note: "site" binds here' | sed -e 's/: note.*//' -e "s#^$root/include/##" | sort -u -t: -k1,1 -k2,2n \
    > "$work/sites" || true
  echo "## $1: $(wc -l < "$work/sites") sites"
  cut -d: -f1 "$work/sites" | uniq -c | sort -rn
  cat "$work/sites"
}
if [[ "$kind" == all || "$kind" == eigen ]]; then run "calls into Eigen" "$eigen"; fi
if [[ "$kind" == all || "$kind" == json ]]; then run "nlohmann_json expressions" "$json"; fi
