#!/usr/bin/env node
// Encodes every record of a corpus (records separated by NUL bytes, as gen_corpus.js writes them) with
// the npm package gpt-3-encoder and writes one JSON line per record:
//   {"as_text": [...], "recognize": [...]}
// as_text: the package's encode of the record, decoded from UTF-8 as JavaScript does (TextDecoder:
// each ill-formed subsequence becomes one U+FFFD); recognize: the same with every "<|endoftext|>" cut out
// as id 50256 and the text between encoded on its own (what Hugging Face's tokenizers do).
//
//   node gpt3_encode.js NODE_MODULES_DIR CORPUS > ids.jsonl
'use strict';
const fs = require('fs');
const path = require('path');
const [modules, corpus] = process.argv.slice(2);
const {encode} = require(path.resolve(modules, 'gpt-3-encoder'));
const bytes = fs.readFileSync(corpus);
const decoder = new TextDecoder('utf-8', {ignoreBOM: true});  // keep a leading U+FEFF, as it is text
const out = [];
let start = 0;
for (let i = 0; i < bytes.length; ++i) {
  if (bytes[i] !== 0) continue;
  const text = decoder.decode(bytes.subarray(start, i));
  start = i + 1;
  const recognize = [];
  text.split('<|endoftext|>').forEach((piece, k) => {
    if (k > 0) recognize.push(50256);
    for (const id of encode(piece)) recognize.push(id);
  });
  out.push(JSON.stringify({as_text: encode(text), recognize}));
}
process.stdout.write(out.join('\n') + '\n');
