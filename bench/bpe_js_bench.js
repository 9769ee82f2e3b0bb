#!/usr/bin/env node
// The JavaScript side of the GPT-2 tokenizer benchmark (docs/benchmarks.md, "GPT-2 tokenizer"): npm
// gpt-3-encoder encodes every record of a text (NUL-separated, tests/unit/bpe/gen_corpus.js), single
// thread, from a fresh process (cold cache); prints tokens per second. bench/bpe_bench.cpp is the C++ side.
//
//   node bench/bpe_js_bench.js NODE_MODULES_DIR text.bin
'use strict';
const fs = require('fs');
const path = require('path');
const [modules, file] = process.argv.slice(2);
let start = process.hrtime.bigint();
const {encode} = require(path.resolve(modules, 'gpt-3-encoder'));
const load = Number(process.hrtime.bigint() - start) / 1e9;
const bytes = fs.readFileSync(file);
const decoder = new TextDecoder('utf-8', {ignoreBOM: true});
const records = [];
for (let i = 0, from = 0; i <= bytes.length; ++i)
  if (i === bytes.length || bytes[i] === 0) {
    if (i > from || i < bytes.length) records.push(decoder.decode(bytes.subarray(from, i)));
    from = i + 1;
  }
console.log(`text: ${bytes.length} bytes, ${records.length} records; encoder loaded in ${load.toFixed(3)} s`);
let tokens = 0;
start = process.hrtime.bigint();
for (const r of records) tokens += encode(r).length;
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
console.log(`npm gpt-3-encoder (node ${process.version}), cold cache: ${tokens} tokens in ${seconds.toFixed(3)} s = ` +
            `${(tokens / seconds).toFixed(0)} tokens/s (${(bytes.length / seconds / 1e6).toFixed(1)} MB/s)`);
