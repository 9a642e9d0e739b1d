// chatd's /v1 API driven by the official `openai` package, unchanged.
//
// Run by tests/integration/test_sdk_clients.py, one test per case
// (`node --test --test-name-pattern`), after it has started a scripted fake
// provider and chatd. Inputs come from the environment:
//   CHATD_BASE_URL  http://127.0.0.1:PORT/v1
//   CHATD_API_KEY   the client key to send (any string when chatd has none)
//   CHATD_MODEL     the model to ask for (default gpt-4o-mini)
//   EXPECT_*        what the case expects (text, usage, error class, ...)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const env = process.env;
const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const MESSAGES = [{ role: 'user', content: 'Say hello to the SDK test, please.' }];

function client() {
  assert.ok(env.CHATD_BASE_URL, 'CHATD_BASE_URL is not set: run me through test_sdk_clients.py');
  return new OpenAI({ baseURL: env.CHATD_BASE_URL, apiKey: env.CHATD_API_KEY || 'no-key', maxRetries: 0,
    timeout: 20000 });
}

function model() {
  return env.CHATD_MODEL || 'gpt-4o-mini';
}

async function collect(stream) {
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
  return { chunks, text };
}

test('stream', async () => {
  const { data: stream, response, request_id } = await client().chat.completions
    .create({ model: model(), messages: MESSAGES, stream: true }).withResponse();
  assert.equal(response.status, 200);
  assert.match(request_id, UUID4);
  assert.equal(request_id, response.headers.get('x-correlation-id'));
  const { chunks, text } = await collect(stream);
  assert.equal(text, env.EXPECT_TEXT);
  assert.ok(chunks.every((c) => c.usage == null), 'a usage chunk reached a client that did not ask for it');
  assert.ok(chunks.every((c) => c.choices.length > 0), 'a chunk without choices reached the client');
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
});

test('stream with usage', async () => {
  const stream = await client().chat.completions.create({
    model: model(), messages: MESSAGES, stream: true, stream_options: { include_usage: true } });
  const { chunks, text } = await collect(stream);
  assert.equal(text, env.EXPECT_TEXT);
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage.prompt_tokens, Number(env.EXPECT_PROMPT_TOKENS));
  assert.equal(last.usage.completion_tokens, Number(env.EXPECT_COMPLETION_TOKENS));
  assert.equal(last.usage.total_tokens, Number(env.EXPECT_PROMPT_TOKENS) + Number(env.EXPECT_COMPLETION_TOKENS));
});

test('non-stream', async () => {
  const completion = await client().chat.completions.create({ model: model(), messages: MESSAGES });
  assert.equal(completion.object, 'chat.completion');
  assert.equal(completion.choices[0].message.content, env.EXPECT_TEXT);
  assert.equal(completion.choices[0].finish_reason, 'stop');
  assert.equal(completion.usage.total_tokens, Number(env.EXPECT_TOTAL_TOKENS));
  assert.match(completion._request_id, UUID4);
  const { response, request_id } = await client().chat.completions
    .create({ model: model(), messages: MESSAGES }).withResponse();
  assert.equal(request_id, response.headers.get('x-correlation-id'));
});

test('stream helper with a tool call', async () => {
  const tools = [{ type: 'function', function: { name: 'get_weather', parameters: {
    type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
  const runner = client().chat.completions.stream({ model: model(), messages: MESSAGES, tools });
  const final = await runner.finalChatCompletion();
  const call = final.choices[0].message.tool_calls[0];
  assert.equal(final.choices[0].finish_reason, 'tool_calls');
  assert.equal(call.id, 'call_abc');
  assert.equal(call.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });
});

test('error class', async () => {
  const Class = OpenAI[env.EXPECT_ERROR];
  assert.ok(Class, `no such SDK error class: ${env.EXPECT_ERROR}`);
  const extra = env.REQUEST_JSON ? JSON.parse(env.REQUEST_JSON) : {};
  const body = { model: model(), messages: MESSAGES, ...extra };
  let caught;
  try {
    const res = await client().chat.completions.create(body);
    if (body.stream) await collect(res);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught, 'no error was raised');
  assert.ok(caught instanceof Class, `expected ${env.EXPECT_ERROR}, got ${caught?.constructor?.name}: ${caught}`);
  assert.ok(caught instanceof OpenAI.APIError);
  assert.equal(caught.status, Number(env.EXPECT_STATUS));
  if (env.EXPECT_CODE) assert.equal(caught.code, env.EXPECT_CODE);
  assert.equal(typeof caught.type, 'string');
  assert.match(caught.requestID, UUID4);
  assert.equal(caught.requestID, caught.headers.get('x-correlation-id'));
  assert.ok(!caught.message.includes('Say hello to the SDK test'), 'the message text is in the error');
  if (env.EXPECT_RETRY_AFTER) assert.equal(caught.headers.get('retry-after'), env.EXPECT_RETRY_AFTER);
});

test('error mid-stream', async () => {
  const stream = await client().chat.completions.create({ model: model(), messages: MESSAGES, stream: true });
  let text = '';
  let caught;
  try {
    for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
  } catch (e) {
    caught = e;
  }
  assert.equal(text, env.EXPECT_TEXT);
  assert.ok(caught instanceof OpenAI.APIError, `expected an APIError, got ${caught}`);
  assert.equal(caught.code, env.EXPECT_CODE);
});

test('abort mid-stream', async () => {
  const controller = new AbortController();
  const stream = await client().chat.completions.create(
    { model: model(), messages: MESSAGES, stream: true }, { signal: controller.signal });
  let text = '';
  let caught;
  try {
    for await (const c of stream) {
      text += c.choices[0]?.delta?.content ?? '';
      if (text.length >= 3) controller.abort();
    }
  } catch (e) {
    caught = e;
  }
  // openai 6 ends the iteration quietly on an abort (older releases threw APIUserAbortError).
  assert.ok(caught === undefined || caught instanceof OpenAI.APIUserAbortError, `unexpected error: ${caught}`);
  assert.ok(controller.signal.aborted && text.length >= 3);
  assert.ok(!text.includes('[DONE]'));
  console.log('ABORTED');
});

test('models.list', async () => {
  const ids = [];
  for await (const m of client().models.list()) {
    assert.equal(m.object, 'model');
    assert.equal(m.owned_by, env.EXPECT_OWNED_BY || 'default');
    ids.push(m.id);
  }
  assert.deepEqual(ids, env.EXPECT_MODELS.split(','));
});
