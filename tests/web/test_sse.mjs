// Unit tests of web/sse.js, the page's SSE reader: every stream is also fed
// split at every byte offset (and byte by byte), and must give the same events.
// Run: /usr/bin/node --test tests/web/test_sse.mjs   (node 20, no packages)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
require(fileURLToPath(new URL('../../web/sse.js', import.meta.url)));
const { SSEParser } = globalThis.ChatdSSE;

const enc = new TextEncoder();

function parse(pieces) {
    const events = [];
    const p = new SSEParser((e) => events.push(e));
    for (const piece of pieces)
        p.push(piece);
    const clean = p.end();
    return { events, clean };
}

// The stream whole, at every split into two, at every split into three around
// a moving middle, and one byte at a time: all must agree.
function checkAllSplits(text, expected, expectClean = true) {
    const bytes = enc.encode(text);
    const check = (pieces, how) => {
        const { events, clean } = parse(pieces);
        assert.deepEqual(events, expected, how);
        assert.equal(clean, expectClean, how + ' (clean end)');
    };
    check([bytes], 'whole');
    for (let i = 0; i <= bytes.length; i++)
        check([bytes.subarray(0, i), bytes.subarray(i)], `split at ${i}`);
    for (let i = 1; i < bytes.length - 1; i++)
        check([bytes.subarray(0, i), bytes.subarray(i, i + 1), bytes.subarray(i + 1)],
              `three pieces around ${i}`);
    check(Array.from(bytes, (_, i) => bytes.subarray(i, i + 1)), 'byte by byte');
}

const msg = (data) => ({ event: 'message', data });

test('chatd stream: content events then the final event', () => {
    const evs = [
        { content: 'Hel', sequence: 0, is_final: false, correlation_id: 'c' },
        { content: 'lo ☃ 😀 ü', sequence: 1, is_final: false, correlation_id: 'c' },
        { content: '', sequence: 2, is_final: true, correlation_id: 'c', status: 'completed',
          completion_tokens: 2 },
    ];
    const text = evs.map((e) => 'data: ' + JSON.stringify(e) + '\n\n').join('');
    checkAllSplits(text, evs.map((e) => msg(JSON.stringify(e))));
});

test('comments and keep-alives are not events', () => {
    checkAllSplits(': keep-alive\n\ndata: a\n\n:x\ndata: b\n\n', [msg('a'), msg('b')]);
});

test('CRLF, CR and LF line ends, mixed', () => {
    checkAllSplits('data: a\r\n\r\ndata: b\r\rdata: c\n\ndata: d\r\n\n',
                   [msg('a'), msg('b'), msg('c'), msg('d')]);
});

test('multi-line data, event names, no space after the colon, ignored fields', () => {
    checkAllSplits('event: ping\ndata:one\ndata: two\nid: 7\nretry: 10\n\ndata\n\n',
                   [{ event: 'ping', data: 'one\ntwo' }, msg('')]);
});

test('an event without data is not dispatched', () => {
    checkAllSplits('event: x\n\nid: 3\n\ndata: y\n\n', [msg('y')]);
});

test('a stream cut in the middle of an event drops it and says so', () => {
    checkAllSplits('data: whole\n\ndata: cut', [msg('whole')], false);
    checkAllSplits('data: whole\n\ndata: cut\n', [msg('whole')], false);
});

test('multi-byte characters split between pieces survive', () => {
    const s = '€𝄞日本語';
    checkAllSplits(`data: ${s}\n\n`, [msg(s)]);
});

test('a leading byte-order mark is ignored', () => {
    const bytes = new Uint8Array([0xef, 0xbb, 0xbf, ...enc.encode('data: x\n\n')]);
    for (let i = 0; i <= bytes.length; i++)
        assert.deepEqual(parse([bytes.subarray(0, i), bytes.subarray(i)]).events, [msg('x')]);
});

test('empty pieces change nothing', () => {
    const e = new Uint8Array(0);
    const { events } = parse([e, enc.encode('data: a\r'), e, enc.encode('\n\r\n'), e]);
    assert.deepEqual(events, [msg('a')]);
});
