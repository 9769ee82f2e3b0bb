#!/usr/bin/env node
// Writes the tokenizer agreement corpus to stdout: records separated by a NUL byte (records may hold
// newlines, tabs and invalid UTF-8, never NUL). Deterministic: the same arguments give the same bytes.
//
//   node gen_corpus.js [--records N] [--seed S] [--valid] [--bytes B]
//     --records N  number of records (default 12000)
//     --seed S     seed of the generator (default 18)
//     --valid      no invalid UTF-8 (the benchmark text)
//     --bytes B    instead of --records: records until B bytes are written
'use strict';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? Number(args[i + 1]) : fallback;
};
const records = option('--records', 12000);
const byteBudget = option('--bytes', 0);
const validOnly = args.includes('--valid');
let state = option('--seed', 18) >>> 0;

// mulberry32: a small seeded generator, so that the corpus is the same on every machine.
function random() {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = n => Math.floor(random() * n);
const pick = list => list[int(list.length)];
const repeat = (n, f) => Array.from({length: n}, f);

const words = ('the of and to in is was that for it with as his on be at by had are but from not this have they ' +
  'which one you were her all she there would their we him been has when who will more no if out so said what up ' +
  'its about into than them can only other new some could time these two may then do first any my now such like our ' +
  'over man me even most made after also did many before must through back years where much your way well down ' +
  'should because each just those people how too little state good very make world still own see men work long get ' +
  'here between both life being under never day same another know while last might us great old year off come since ' +
  'against go came right used take three tokenizer gradient attention transformer embedding integrated Paris France ' +
  'London Tokyo Einstein Shakespeare GPT OpenAI HuggingFace glassbox internationalization antidisestablishmentarianism')
  .split(' ');
const contractions = ["don't", "DON'T", "Don't", "I'm", "I'M", "we'll", "WE'LL", "it's", "IT'S", "It's", "they've",
  "THEY'VE", "you're", "YOU'RE", "he'd", "HE'D", "can't", "won't", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S",
  "''", "'", "rock 'n' roll", "don’t", "o'clock", "'twas", "students'", "x's", "'ll've", " 's", "?'s", "''s"];
const accented = ['café', 'naïve', 'Ångström', 'São Paulo', 'Zürich', 'façade', 'jalapeño', 'Tiếng Việt', 'źdźbło',
  'Καλημέρα κόσμε', 'Привет, мир', 'Ёжик', 'مرحبا بالعالم', 'שָׁלוֹם', 'नमस्ते दुनिया', 'สวัสดีครับ', 'Ελληνικά', 'İstanbul',
  'ǅemal', 'ß', 'ẞ', 'e\u0301', 'A\u030A', 'ﬁ', 'Œuvre', 'ħ', 'ŉ', 'ǈ', 'Ωμέγα', 'ქართული', 'Հայերեն', 'ትግርኛ'];
const cjk = ['你好，世界。', 'こんにちは世界', 'カタカナ', 'ｶﾀｶﾅ', '안녕하세요', '漢字とかな', '中文字符测试', '東京タワー',
  'ＡＢＣ１２３', '㈱', '〆', '々', '〇', '𠀀𠀁', '𪚥', '「引用」', '・', 'ー'];
const emoji = ['😀', '👍', '👍🏽', '👨‍👩‍👧‍👦', '🏳️‍🌈', '🇫🇷', '🇯🇵', '1️⃣', '❤️', '🧑🏿‍💻', '👩‍❤️‍💋‍👨', '🐈‍⬛', '™', '©', '∑', '→',
  '✓', '☃', '♥', '🎉🎉🎉', '🙂\u200d', '\u200b', '\u200c', '\u2060'];
const numbers = () => pick([
  () => String(int(100000)), () => (random() * 1000).toFixed(int(6)), () => '1,000,000', () => '-' + int(100),
  () => '1e10', () => '٣٤٥', () => '१२३', () => 'Ⅻ', () => '½', () => '²³', () => '0x' + int(1 << 30).toString(16),
  () => '3.14159265358979', () => '2024-01-' + String(1 + int(28)).padStart(2, '0'), () => '10:30pm', () => '$' + int(999),
  () => '50%', () => '+1 (555) 010-' + String(int(10000)).padStart(4, '0'), () => '𝟏𝟐𝟑', () => '①②', () => '١٢']);
const code = ['int main() { return 0; }', 'for (let i = 0; i < n; ++i) {', 'def f(x):\n    return x**2',
  '<div class="a">&nbsp;</div>', 'https://example.com/path?q=1&r=2#frag', '{"key": [1, 2, 3], "ok": true}',
  'std::vector<int> v{1, 2};', 'if (a != b && c >= d) x->y = z[0];', '#include <iostream>', '    indented();',
  '\tx = 1\n\ty = 2', 'SELECT * FROM t WHERE id = 42;', 'a_b_c = foo_bar(baz__qux)', '$ ls -la | grep "*.cpp"',
  '// comment', '/* block */', '~/.config', '@decorator', 'λx.x', 'x := y ++ z', '```cpp\ncode\n```'];
const spaces = [' ', '  ', '   ', '\t', '\t\t', ' \t ', '\n', '\n\n', '\r\n', '\u00a0', '\u3000', '\u2003', '\u2009',
  '\v', '\f', '\u0085', '\ufeff', '\u2028', '\u1680', '\u205f', '    ', ' \n ', '\n\t', '        '];
const specialText = ['<|endoftext|>', ' <|endoftext|>', '<|endoftext|> ', '<|endoftext|><|endoftext|>', '<|endoftext',
  'endoftext|>', '<|endoftext|>\n', '<| endoftext |>'];
const invalid = ['\x80', '\xff', '\xc0\xaf', '\xe2\x82', '\xed\xa0\x80', '\xf4\x90\x80\x80', '\xf0\x9f\x98', '\xc3',
  '\xfe\xfe', '\xe0\x80\x80', '\xf8\x88\x80\x80\x80', '\xe2\x28\xa1', '\xc3\x28', '\xa0\xa1'];
// Blocks assigned since Unicode 1.1 - 6.0 (so that tables of Unicode 15 and newer agree on them).
const blocks = [[0xa1, 0xff], [0x100, 0x17f], [0x391, 0x3c9], [0x400, 0x45f], [0x5d0, 0x5ea], [0x621, 0x64a],
  [0x905, 0x94d], [0xe01, 0xe3a], [0xac00, 0xd7a3], [0x4e00, 0x9fa5], [0x3041, 0x3096], [0x30a1, 0x30fa],
  [0x2010, 0x2027], [0x2190, 0x21ff], [0x2200, 0x22ff], [0x2500, 0x257f], [0x1f600, 0x1f64f], [0x2600, 0x26ff],
  [0x20000, 0x2a6d6], [0x1d400, 0x1d454], [0x10330, 0x1034a], [0x660, 0x669], [0x2070, 0x2079], [0x2150, 0x2182]];

const pieces = {
  prose: () => {
    const n = 3 + int(15);
    let s = repeat(n, () => {
      let w = pick(words);
      if (random() < 0.15) w = w[0].toUpperCase() + w.slice(1);
      if (random() < 0.04) w = w.toUpperCase();
      return w + (random() < 0.1 ? pick([',', '.', ';', ':', '!', '?', '...', ' -', '"']) : '');
    }).join(' ');
    return s[0].toUpperCase() + s.slice(1) + pick(['.', '!', '?', '', '."', '...']);
  },
  contraction: () => pick(contractions),
  accented: () => pick(accented),
  cjk: () => pick(cjk),
  emoji: () => pick(emoji),
  number: () => numbers()(),
  code: () => pick(code),
  space: () => pick(spaces),
  special: () => pick(specialText),
  invalid: () => validOnly ? pick(words) : pick(invalid),
  codepoints: () => {
    const [a, b] = pick(blocks);
    return String.fromCodePoint(...repeat(1 + int(6), () => a + int(b - a + 1)));
  },
};
const kinds = Object.keys(pieces);
const weights = {prose: 6, contraction: 2, accented: 2, cjk: 2, emoji: 2, number: 2, code: 2, space: 3, special: 1,
  invalid: 1, codepoints: 2};
const weighted = kinds.flatMap(k => repeat(weights[k], () => k));

function record(i) {
  // The first records each show one kind alone; then mixtures of 1 to 12 pieces with random separators.
  if (i < kinds.length * 40) {
    const kind = kinds[i % kinds.length];
    return Buffer.from(pieces[kind](), kind === 'invalid' && !validOnly ? 'latin1' : 'utf8');
  }
  const parts = [];
  const n = 1 + int(12);
  for (let k = 0; k < n; ++k) {
    const kind = pick(weighted);
    const text = pieces[kind]();
    // Invalid UTF-8 pieces are written as raw bytes; everything else as UTF-8.
    parts.push(kind === 'invalid' && !validOnly ? Buffer.from(text, 'latin1') : Buffer.from(text, 'utf8'));
    const r = random();
    if (r < 0.55) parts.push(Buffer.from(' '));
    else if (r < 0.7) parts.push(Buffer.from(pick(spaces), 'utf8'));
  }
  return Buffer.concat(parts);
}

const out = [];
let written = 0;
for (let i = 0; byteBudget > 0 ? written < byteBudget : i < records; ++i) {
  let r = record(i);
  if (r.includes(0)) r = Buffer.from(r.toString('latin1').replace(/\0/g, ''), 'latin1');
  out.push(r, Buffer.from([0]));
  written += r.length + 1;
}
process.stdout.write(Buffer.concat(out));
