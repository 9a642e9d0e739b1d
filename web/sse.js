/* sse.js: a Server-Sent Events parser for a fetch() body read in pieces.
 *
 * Bytes arrive in arbitrary pieces: a piece may end inside a UTF-8 character,
 * inside a line, between the CR and LF of a CRLF, or between two events. The
 * parser keeps what it has not finished and calls onEvent({event, data}) once
 * per complete event (a blank line ends one), following the WHATWG rules:
 * lines end with CRLF, LF or CR; lines starting with ':' are comments; "data"
 * lines of one event are joined with '\n'; an event with no data is not sent;
 * an unfinished event at the end of the stream is dropped.
 *
 * A classic script (no module syntax) so the page loads it with a plain
 * <script src> and node's test runner can import it: it defines ChatdSSE on
 * the global object. */
(function (root) {
    'use strict';

    function SSEParser(onEvent) {
        this.onEvent = onEvent;
        this.decoder = new TextDecoder('utf-8');
        this.pending = ''; /* an unfinished line */
        this.skipLF = false; /* the last piece ended with CR: a leading LF is its pair */
        this.data = [];
        this.hasData = false;
        this.eventType = '';
    }

    /* Feeds one piece of the body (a Uint8Array). */
    SSEParser.prototype.push = function (bytes) {
        this.pushText(this.decoder.decode(bytes, { stream: true }));
    };

    /* Feeds already decoded text. */
    SSEParser.prototype.pushText = function (text) {
        if (text.length === 0)
            return;
        var s = this.pending + text;
        var pos = 0;
        if (this.skipLF) {
            this.skipLF = false;
            if (s.charAt(0) === '\n')
                pos = 1;
        }
        for (;;) {
            var cr = s.indexOf('\r', pos);
            var lf = s.indexOf('\n', pos);
            var end = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
            if (end < 0)
                break;
            this.line(s.slice(pos, end));
            pos = end + 1;
            if (s.charAt(end) === '\r') {
                if (pos === s.length)
                    this.skipLF = true;
                else if (s.charAt(pos) === '\n')
                    pos++;
            }
        }
        this.pending = s.slice(pos);
    };

    /* The body has ended. Returns true when it ended cleanly (no unfinished
     * line or event was left), false when it was cut in the middle. */
    SSEParser.prototype.end = function () {
        this.pushText(this.decoder.decode());
        var clean = this.pending === '' && !this.hasData;
        this.pending = '';
        this.data = [];
        this.hasData = false;
        this.eventType = '';
        return clean;
    };

    SSEParser.prototype.line = function (line) {
        if (line === '') {
            if (this.hasData)
                this.onEvent({ event: this.eventType || 'message', data: this.data.join('\n') });
            this.data = [];
            this.hasData = false;
            this.eventType = '';
            return;
        }
        if (line.charAt(0) === ':')
            return; /* a comment, such as ": keep-alive" */
        var colon = line.indexOf(':');
        var field = colon < 0 ? line : line.slice(0, colon);
        var value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.charAt(0) === ' ')
            value = value.slice(1);
        if (field === 'data') {
            this.data.push(value);
            this.hasData = true;
        } else if (field === 'event') {
            this.eventType = value;
        } /* id and retry mean nothing to a fetch() reader */
    };

    root.ChatdSSE = { SSEParser: SSEParser };
})(typeof globalThis !== 'undefined' ? globalThis : this);
