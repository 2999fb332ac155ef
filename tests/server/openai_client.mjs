// openai_client.mjs — `linshard serve` driven by the official OpenAI node client (npm `openai`).
// test_serve.py installs the package into a scratch folder, copies this file beside its
// node_modules and runs:  node openai_client.mjs http://127.0.0.1:PORT/v1
// Checks: completions and chat completions, whole and streamed (the stream's pieces are the
// whole text: same seed, same tokens), usage and finish_reason, /v1/models, and that a bad
// request surfaces as the client's APIError with status 400 and the server's message.
import OpenAI from 'openai';

const baseURL = process.argv[2];
const client = new OpenAI({ baseURL, apiKey: 'not-needed', maxRetries: 0, timeout: 120000 });
let failures = 0;
function check(cond, what) {
  if (!cond) {
    console.log('FAIL: ' + what);
    failures++;
  }
}

const models = await client.models.list();
const model = models.data[0].id;
check(models.data.length === 1 && typeof model === 'string', 'models.list gives one model');

// Completions.
const req = { model, prompt: 'And it came to pass', max_tokens: 20, seed: 11, temperature: 0.7 };
const whole = await client.completions.create(req);
check(whole.choices[0].finish_reason === 'length', 'completion finish_reason length');
check(whole.usage.completion_tokens === 20, 'completion usage: 20 tokens');
let streamed = '';
let finish = null;
let usage = null;
const stream = await client.completions.create({
  ...req, stream: true, stream_options: { include_usage: true },
});
for await (const chunk of stream) {
  for (const c of chunk.choices) {
    streamed += c.text;
    if (c.finish_reason) finish = c.finish_reason;
  }
  if (chunk.usage) usage = chunk.usage;
}
check(streamed === whole.choices[0].text, `completion stream ${JSON.stringify(streamed)} == whole ${JSON.stringify(whole.choices[0].text)}`);
check(finish === 'length', 'completion stream finish_reason');
check(usage && usage.completion_tokens === 20, 'completion stream usage');

// Chat completions.
const chatReq = {
  model,
  messages: [{ role: 'system', content: 'You answer.' }, { role: 'user', content: 'Tell me.' }],
  max_tokens: 16, seed: 5,
};
const chat = await client.chat.completions.create(chatReq);
check(chat.choices[0].message.role === 'assistant', 'chat message role');
check(chat.usage.completion_tokens === 16, 'chat usage');
let chatStreamed = '';
let role = null;
const chatStream = await client.chat.completions.create({ ...chatReq, stream: true });
for await (const chunk of chatStream) {
  const d = chunk.choices[0]?.delta;
  if (d?.role) role = d.role;
  if (d?.content) chatStreamed += d.content;
}
check(role === 'assistant', 'chat stream role');
check(chatStreamed === chat.choices[0].message.content, 'chat stream == chat whole');

// A bad request: the client's APIError, status 400, the server's message and param.
try {
  await client.completions.create({ ...req, temperature: 'warm' });
  check(false, 'a bad temperature should fail');
} catch (e) {
  check(e instanceof OpenAI.APIError && e.status === 400, `APIError 400, got ${e}`);
  check(e.param === 'temperature' && /temperature/.test(e.message), `param temperature: ${e.message}`);
}
try {
  await client.completions.create({ ...req, n: 3 });
  check(false, 'n = 3 should fail');
} catch (e) {
  check(e.status === 400 && e.param === 'n', `n: ${e}`);
}

if (failures) {
  console.log(`openai client: ${failures} checks failed`);
  process.exit(1);
}
console.log('openai client: every check passed (completions, chat, streams, errors)');
