// chatd's /v1 API driven by the Vercel AI SDK (`ai` + `@ai-sdk/openai-compatible`),
// unchanged. Run by tests/integration/test_sdk_clients.py (see openai_sdk.test.mjs
// for the environment it sets).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { APICallError, generateText, streamText } from 'ai';

const env = process.env;

function chatd() {
  assert.ok(env.CHATD_BASE_URL, 'CHATD_BASE_URL is not set: run me through test_sdk_clients.py');
  return createOpenAICompatible({ name: 'chatd', baseURL: env.CHATD_BASE_URL,
    apiKey: env.CHATD_API_KEY || 'no-key', includeUsage: true });
}

function expectUsage(usage) {
  assert.equal(usage.inputTokens, Number(env.EXPECT_PROMPT_TOKENS));
  assert.equal(usage.outputTokens, Number(env.EXPECT_COMPLETION_TOKENS));
  assert.equal(usage.totalTokens, Number(env.EXPECT_PROMPT_TOKENS) + Number(env.EXPECT_COMPLETION_TOKENS));
}

test('streamText', async () => {
  const deltas = [];
  const result = streamText({ model: chatd()(env.CHATD_MODEL || 'gpt-4o-mini'), prompt: 'Say hello, AI SDK.',
    maxRetries: 0, onError: ({ error }) => { throw error; } });
  for await (const d of result.textStream) deltas.push(d);
  assert.equal(deltas.join(''), env.EXPECT_TEXT);
  assert.ok(deltas.length >= 2, 'the text arrived in one piece, not streamed');
  assert.equal(await result.text, env.EXPECT_TEXT);
  assert.equal(await result.finishReason, 'stop');
  expectUsage(await result.usage);
});

test('generateText', async () => {
  const result = await generateText({ model: chatd()(env.CHATD_MODEL || 'gpt-4o-mini'),
    prompt: 'Say hello, AI SDK.', maxRetries: 0 });
  assert.equal(result.text, env.EXPECT_TEXT);
  assert.equal(result.finishReason, 'stop');
  expectUsage(result.usage);
});

test('error', async () => {
  let caught;
  try {
    await generateText({ model: chatd()(env.CHATD_MODEL), prompt: 'Say hello, AI SDK.', maxRetries: 0 });
  } catch (e) {
    caught = e;
  }
  assert.ok(APICallError.isInstance(caught), `expected an APICallError, got ${caught}`);
  assert.equal(caught.statusCode, Number(env.EXPECT_STATUS));
  assert.equal(JSON.parse(caught.responseBody).error.code, env.EXPECT_CODE);
  assert.equal(caught.isRetryable, env.EXPECT_RETRYABLE === 'true');
});
