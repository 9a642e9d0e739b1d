/* app.js: the chat page. It talks to chatd's own /chat and /v1/models only.
 * Model output and server messages enter the page as text nodes, never as HTML. */
(function () {
    'use strict';

    var KEY_STORE = 'chatd.clientKey';
    var MAX_HISTORY = 100; /* the contract's limits on history: items, */
    var MAX_CONTENT = 32000; /* and code points per item */

    var $ = function (id) { return document.getElementById(id); };
    var transcript = $('transcript');
    var prompt = $('prompt');
    var sendBtn = $('send');
    var stopBtn = $('stop');
    var modelSel = $('model');
    var keyForm = $('key-form');
    var keyInput = $('api-key');
    var keyWhy = $('key-why');

    var history = []; /* {role, content} of finished turns, oldest first */
    var current = null; /* the request in flight: {ctrl, turn} */
    var conversation = 0; /* bumped by "New chat": late answers of the old one are not kept */

    function storedKey() {
        try { return sessionStorage.getItem(KEY_STORE) || ''; } catch (e) { return ''; }
    }

    function authHeaders(h) {
        var key = storedKey();
        if (key)
            h.Authorization = 'Bearer ' + key;
        return h;
    }

    function el(tag, cls, text) {
        var e = document.createElement(tag);
        if (cls)
            e.className = cls;
        if (text !== undefined)
            e.textContent = text;
        return e;
    }

    function nearBottom() {
        var s = document.scrollingElement;
        return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
    }

    function follow(wasNear) {
        if (wasNear)
            window.scrollTo(0, document.scrollingElement.scrollHeight);
    }

    function addTurn(role, cls) {
        var hint = $('empty-hint');
        if (hint)
            hint.remove();
        var t = el('article', 'turn ' + (cls || role));
        t.setAttribute('data-role', role);
        transcript.appendChild(t);
        return t;
    }

    function addUserTurn(text) {
        var t = addTurn('user');
        t.appendChild(el('h2', 'visually-hidden', 'You said'));
        t.appendChild(el('div', 'text', text));
        return t;
    }

    function addAssistantTurn() {
        var t = addTurn('assistant');
        t.setAttribute('data-state', 'streaming');
        t.setAttribute('aria-busy', 'true'); /* announced once it is complete */
        t.appendChild(el('h2', 'visually-hidden', 'Answer'));
        t.appendChild(el('div', 'text'));
        return t;
    }

    /* Three-part detail, machine code and correlation id, all as text. */
    function addErrorTurn(code, detail, cid) {
        var t = addTurn('error');
        t.setAttribute('role', 'alert');
        t.appendChild(el('p', 'error-code', 'Error: ' + code));
        t.appendChild(el('p', 'error-detail', detail));
        if (cid) {
            var p = el('p', 'error-cid', 'Correlation id: ');
            p.appendChild(el('code', 'cid', cid));
            t.appendChild(p);
        }
        return t;
    }

    function seconds(ms) {
        return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
    }

    function finishTurn(turn, state, stats) {
        turn.setAttribute('data-state', state);
        turn.removeAttribute('aria-busy');
        var parts = [];
        if (stats.ttft !== null)
            parts.push('first token ' + seconds(stats.ttft));
        if (typeof stats.tokens === 'number')
            parts.push(stats.tokens + (stats.tokens === 1 ? ' token' : ' tokens'));
        parts.push((state === 'stopped' ? 'stopped after ' : '') + seconds(stats.duration));
        if (stats.model)
            parts.push(stats.model);
        turn.appendChild(el('p', 'stats', parts.join(' · ')));
        if (state === 'done')
            renderCodeBlocks(turn.querySelector('.text'));
    }

    /* Fenced ``` blocks become <pre><code>, built from text nodes. */
    function renderCodeBlocks(box) {
        var text = box.textContent;
        if (text.indexOf('```') < 0)
            return;
        var parts = text.split('```');
        if (parts.length % 2 === 0)
            return; /* an unclosed fence: leave the text as it is */
        box.textContent = '';
        parts.forEach(function (part, i) {
            if (i % 2 === 0) {
                /* the block's own margins stand for the blank lines around it */
                if (i > 0)
                    part = part.replace(/^\n+/, '');
                if (i < parts.length - 1)
                    part = part.replace(/\n+$/, '');
                if (part)
                    box.appendChild(document.createTextNode(part));
                return;
            }
            var nl = part.indexOf('\n');
            var code = nl >= 0 ? part.slice(nl + 1) : part;
            var pre = el('pre', 'code');
            pre.appendChild(el('code', null, code.replace(/\n$/, '')));
            box.appendChild(pre);
        });
    }

    function setBusy(busy) {
        sendBtn.disabled = busy;
        stopBtn.disabled = !busy;
        document.body.classList.toggle('busy', busy);
    }

    function askForKey(refused) {
        keyWhy.textContent = refused
            ? 'The server refused the client key. Check it and enter it again; it is kept in this browser tab only.'
            : 'This server needs a client key (HTTP 401). Enter it below; it is kept in this browser tab only (sessionStorage).';
        keyForm.hidden = false;
        keyInput.focus();
    }

    function clip(text) {
        if (text.length <= MAX_CONTENT)
            return text;
        var cps = Array.from(text);
        return cps.length <= MAX_CONTENT ? text : cps.slice(0, MAX_CONTENT).join('');
    }

    function remember(user, assistant) {
        if (!assistant)
            return;
        history.push({ role: 'user', content: clip(user) },
                     { role: 'assistant', content: clip(assistant) });
        while (history.length > MAX_HISTORY)
            history.splice(0, 2);
    }

    /* An error answer before the stream: chatd's JSON {error, detail, correlation_id}. */
    function readErrorBody(res) {
        return res.text().then(function (body) {
            var j = null;
            try { j = JSON.parse(body); } catch (e) { /* not JSON: a proxy's page */ }
            if (j && typeof j.error === 'string')
                return { code: j.error, detail: j.detail || '', cid: j.correlation_id };
            return {
                code: 'http_' + res.status,
                detail: 'The server answered HTTP ' + res.status + ' without a chatd error body. ' +
                        'Something between this page and chatd may have answered instead. ' +
                        'Check the server and its proxy, then retry.',
                cid: res.headers.get('X-Correlation-Id'),
            };
        });
    }

    function send() {
        var text = prompt.value;
        if (current || text.trim() === '')
            return;
        prompt.value = '';
        addUserTurn(text);
        var turn = addAssistantTurn();
        var box = turn.querySelector('.text');
        follow(true);
        var ctrl = new AbortController();
        current = { ctrl: ctrl, turn: turn };
        setBusy(true);
        var mine = conversation;

        var t0 = performance.now();
        var stats = { ttft: null, tokens: null, duration: 0, model: null };
        var answer = '';
        var final = null;
        var cid = null;
        var body = { message: text, history: history.slice() };
        if (modelSel.value)
            body.model = modelSel.value;

        function onEvent(ev) {
            var e;
            try { e = JSON.parse(ev.data); } catch (x) { return; }
            cid = e.correlation_id || cid;
            if (e.content) {
                if (stats.ttft === null)
                    stats.ttft = performance.now() - t0;
                var near = nearBottom();
                box.appendChild(document.createTextNode(e.content));
                answer += e.content;
                follow(near);
            }
            if (e.is_final)
                final = e;
        }

        function done(state) {
            stats.duration = final && typeof final.duration_ms === 'number'
                ? final.duration_ms : performance.now() - t0;
            if (final) {
                stats.tokens = final.completion_tokens;
                stats.model = final.model || null;
            }
            finishTurn(turn, state, stats);
            if ((state === 'done' || state === 'stopped') && mine === conversation)
                remember(text, answer);
        }

        fetch('/chat', {
            method: 'POST',
            headers: authHeaders({ 'Content-Type': 'application/json', Accept: 'text/event-stream' }),
            body: JSON.stringify(body),
            signal: ctrl.signal,
        }).then(function (res) {
            if (!res.ok) {
                return readErrorBody(res).then(function (err) {
                    done('error');
                    addErrorTurn(err.code, err.detail, err.cid);
                    if (res.status === 401) {
                        prompt.value = text; /* to send again once the key is in */
                        askForKey(storedKey() !== '');
                    }
                });
            }
            cid = res.headers.get('X-Correlation-Id');
            var parser = new ChatdSSE.SSEParser(onEvent);
            var reader = res.body.getReader();
            var pump = function () {
                return reader.read().then(function (r) {
                    if (r.done)
                        return parser.end();
                    parser.push(r.value);
                    return pump();
                });
            };
            return pump().then(function () {
                if (final && final.status === 'completed') {
                    done('done');
                } else if (final) {
                    var err = final.error || {};
                    done('error');
                    addErrorTurn(err.error || final.status, err.detail || '', final.correlation_id || cid);
                } else {
                    done('error');
                    addErrorTurn('stream_cut',
                                 'The answer ended before its final event. The connection to chatd ' +
                                 'was closed early. Retry, and check the server log for this id.', cid);
                }
            });
        }).catch(function (e) {
            if (e && e.name === 'AbortError') {
                done('stopped');
            } else {
                done('error');
                addErrorTurn('network_error',
                             'The request to chatd failed (' + (e && e.message ? e.message : e) + '). ' +
                             'The server may be down or the network interrupted. ' +
                             'Check that chatd is running, then send again.', cid);
            }
        }).then(function () {
            current = null;
            setBusy(false);
            follow(true);
            (keyForm.hidden ? prompt : keyInput).focus();
        });
    }

    function stop() {
        if (current)
            current.ctrl.abort();
    }

    function loadModels() {
        fetch('/v1/models', { headers: authHeaders({ Accept: 'application/json' }) })
            .then(function (res) {
                if (res.status === 401) {
                    askForKey(storedKey() !== '');
                    return null;
                }
                return res.ok ? res.json() : null;
            })
            .then(function (list) {
                if (!list || !Array.isArray(list.data))
                    return;
                var keep = modelSel.value;
                while (modelSel.options.length > 1)
                    modelSel.remove(1);
                list.data.forEach(function (m) {
                    if (m && typeof m.id === 'string') {
                        var o = el('option', null, m.id);
                        o.value = m.id;
                        modelSel.appendChild(o);
                    }
                });
                modelSel.value = keep;
                if (modelSel.value !== keep)
                    modelSel.value = '';
            })
            .catch(function () { /* the picker keeps "server default" */ });
    }

    $('composer').addEventListener('submit', function (e) {
        e.preventDefault();
        send();
    });
    prompt.addEventListener('keydown', function (e) {
        if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            send();
        } else if (e.key === 'Escape') {
            stop();
        }
    });
    stopBtn.addEventListener('click', stop);
    $('new-chat').addEventListener('click', function () {
        stop();
        conversation++;
        history = [];
        transcript.textContent = '';
        prompt.focus();
    });
    keyForm.addEventListener('submit', function (e) {
        e.preventDefault();
        try { sessionStorage.setItem(KEY_STORE, keyInput.value.trim()); } catch (x) { /* private mode */ }
        keyInput.value = '';
        keyForm.hidden = true;
        loadModels();
        prompt.focus();
    });

    loadModels();
    prompt.focus();
})();
