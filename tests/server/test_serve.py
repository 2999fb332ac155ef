#!/usr/bin/env python3
"""test_serve.py — drives `linshard serve` over loopback (python3 stdlib only; curl and the
OpenAI node client where a case says so). Each case starts its own server on 127.0.0.1 with
--port 0 (the port it prints), and stops it with SIGTERM, expecting exit status 0.

    test_serve.py LINSHARD MODEL_DIR CASE [--mpi "MPIEXEC ARGS..."] [--tp P]

MODEL_DIR: a random GPT-2 with GPT-2's vocabulary and a context of 1024 (tests/CMakeLists.txt
makes it), so that a stream lasts long enough to be cut or signalled mid-way. Cases:
  basic        endpoints, streaming and not (the stream's pieces == the whole text), chat,
               stop strings, usage and finish_reason, curl
  errors       every bad input: status and OpenAI error object
  busy         --parallel 1 --queue 0: a second request while one runs gets 429
  concurrency  16 clients at once, each response equal to the same request served alone
  disconnect   a client that goes away mid-stream: its sequence is cancelled, others go on
  sigterm      SIGTERM during a stream: the stream completes, no new requests, exit 0
  openai       the official OpenAI node client (npm `openai`), streaming and not
  template     (--template chatml|llama3, a model with that tokenizer_config.json) the log names
               the template; a chat prompt is the template's text, special tokens single ids
Every wait is bounded; a server left running is killed.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

TIMEOUT = 120  # seconds any one HTTP exchange may take (ASan builds are slow)


class Server:
    def __init__(self, linshard, model, extra=(), mpi=None, tp=2):
        cmd = [linshard, 'serve', '--model', model, '--port', '0'] + list(extra)
        if mpi:
            cmd = mpi.split() + cmd + ['--backend', 'mpi']
        else:
            cmd += ['--tp', str(tp)]
        self.mpi = mpi
        self.log = tempfile.TemporaryFile(mode='w+')
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.port = None
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if 'listening on http://' in line:
                self.port = int(line.strip().rsplit(':', 1)[1])
                break
        if self.port is None:
            self.kill()
            fail('the server did not start:\n' + self.stderr())

    def stderr(self):
        self.log.seek(0)
        return self.log.read()

    def request(self, method, path, body=None, headers=None, raw=None):
        """(status, headers, parsed JSON or text)."""
        c = http.client.HTTPConnection('127.0.0.1', self.port, timeout=TIMEOUT)
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        h = {'Content-Type': 'application/json'}
        h.update(headers or {})
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read().decode('utf-8')
        c.close()
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = text
        return r.status, dict(r.getheaders()), parsed

    def post(self, path, body):
        return self.request('POST', path, body)

    def stream(self, path, body, on_event=None):
        """POSTs with stream true; returns the list of parsed events (the last is '[DONE]')."""
        body = dict(body, stream=True)
        c = http.client.HTTPConnection('127.0.0.1', self.port, timeout=TIMEOUT)
        c.request('POST', path, body=json.dumps(body), headers={'Content-Type': 'application/json'})
        r = c.getresponse()
        if r.status != 200:
            fail('stream status %d: %s' % (r.status, r.read()[:300]))
        check(r.getheader('Content-Type', '').startswith('text/event-stream'),
              'stream content type ' + r.getheader('Content-Type', ''))
        events = []
        buf = b''
        while True:
            line = r.readline()
            if not line:
                break
            buf = line.strip()
            if not buf:
                continue
            check(buf.startswith(b'data: '), 'an SSE line without data: %r' % buf)
            payload = buf[6:].decode('utf-8')
            ev = payload if payload == '[DONE]' else json.loads(payload)
            events.append(ev)
            if on_event:
                on_event(ev)
            if ev == '[DONE]':
                break
        c.close()
        return events

    def metric(self, name):
        _, _, text = self.request('GET', '/metrics')
        for line in text.splitlines():
            if line.startswith(name + ' '):
                return float(line.split()[1])
        return None

    def signal_server(self, sig=signal.SIGTERM):
        """Signals the serving process: under mpirun, rank 0 itself (mpirun, signalled, forwards
        the signal to every rank and then exits 1 whatever they do)."""
        m = re.search(r'serve: pid (\d+),', self.stderr())
        if self.mpi and m:
            os.kill(int(m.group(1)), sig)
        else:
            self.proc.send_signal(sig)

    def stop(self, expect_rc=0):
        if self.proc.poll() is None:
            self.signal_server()
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()
            fail('the server did not exit within 60 s of SIGTERM:\n' + self.stderr())
        check(rc == expect_rc, 'the server exited %s, expected %d:\n%s' % (rc, expect_rc,
                                                                         self.stderr()))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def fail(msg):
    print('FAIL: ' + msg, flush=True)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def completion_text(resp):
    choice = resp['choices'][0]
    return choice['message']['content'] if 'message' in choice else choice['text']


def stream_text(events):
    out = ''
    for ev in events[:-1]:
        for ch in ev['choices']:
            if 'delta' in ch:
                out += ch['delta'].get('content') or ''
            else:
                out += ch['text']
    return out


def stream_finish(events):
    reasons = [ch['finish_reason'] for ev in events[:-1] for ch in ev['choices']
               if ch.get('finish_reason')]
    check(len(reasons) == 1, 'a stream needs exactly one finish_reason, got %r' % reasons)
    return reasons[0]


def check_usage(resp, completion_tokens=None):
    u = resp['usage']
    check(u['total_tokens'] == u['prompt_tokens'] + u['completion_tokens'], 'usage adds up')
    check(u['prompt_tokens'] > 0, 'prompt_tokens > 0')
    if completion_tokens is not None:
        check(u['completion_tokens'] == completion_tokens,
              'completion_tokens %d, expected %d' % (u['completion_tokens'], completion_tokens))


# ---- cases ----------------------------------------------------------------------------------

def case_basic(s):
    st, _, body = s.request('GET', '/health')
    check(st == 200 and body['status'] == 'ok', 'health: %s %r' % (st, body))
    st, _, body = s.request('GET', '/v1/models')
    check(st == 200 and body['object'] == 'list' and len(body['data']) == 1, 'models %r' % body)
    req = {'model': 'x', 'prompt': 'And it came to pass', 'max_tokens': 24, 'seed': 7,
           'temperature': 0.9, 'top_k': 40, 'top_p': 0.95}
    st, _, whole = s.post('/v1/completions', req)
    check(st == 200, 'completion %s %r' % (st, whole))
    check(whole['object'] == 'text_completion', 'object')
    check(whole['choices'][0]['finish_reason'] == 'length', 'finish length')
    check_usage(whole, 24)
    # The same request again, and streamed: the same text (same seed, same tokens).
    st, _, again = s.post('/v1/completions', req)
    check(completion_text(again) == completion_text(whole), 'same seed, same text')
    events = s.stream('/v1/completions', dict(req, stream_options={'include_usage': True}))
    check(events[-1] == '[DONE]', 'stream ends with [DONE]')
    check(stream_text(events) == completion_text(whole),
          'stream %r != whole %r' % (stream_text(events), completion_text(whole)))
    check(stream_finish(events) == 'length', 'stream finish_reason')
    check(events[-2]['choices'] == [] and events[-2]['usage']['completion_tokens'] == 24,
          'usage chunk %r' % events[-2])
    # Greedy: temperature 0 gives one text whatever the seed.
    g1 = s.post('/v1/completions', dict(req, temperature=0, seed=1))[2]
    g2 = s.post('/v1/completions', dict(req, temperature=0, seed=2))[2]
    check(completion_text(g1) == completion_text(g2), 'greedy ignores the seed')
    # A stop string: cut before it, finish_reason stop.
    text = completion_text(g1)
    word = next((w for w in text.split(' ')[2:] if len(w) >= 2), None)
    if word:
        st, _, cut = s.post('/v1/completions', dict(req, temperature=0, stop=[word, 'zzqzz']))
        check(st == 200, 'stop %r' % cut)
        check(completion_text(cut) == text[:text.index(word)],
              'stop: %r, expected %r' % (completion_text(cut), text[:text.index(word)]))
        check(cut['choices'][0]['finish_reason'] == 'stop', 'finish stop')
    # Token ids as the prompt.
    st, _, ids = s.post('/v1/completions', {'prompt': [464, 1110, 286], 'max_tokens': 3})
    check(st == 200 and ids['usage']['prompt_tokens'] == 3, 'token-id prompt %r' % ids)
    # Chat, whole and streamed (GPT-2: no template, the contents concatenated).
    chat = {'messages': [{'role': 'system', 'content': 'Be brief.'},
                         {'role': 'user', 'content': 'Say something.'}],
            'max_tokens': 16, 'seed': 3}
    st, _, cw = s.post('/v1/chat/completions', chat)
    check(st == 200 and cw['object'] == 'chat.completion', 'chat %r' % cw)
    check(cw['choices'][0]['message']['role'] == 'assistant', 'chat role')
    check_usage(cw, 16)
    ev = s.stream('/v1/chat/completions', chat)
    check(ev[0]['choices'][0]['delta'].get('role') == 'assistant', 'first delta has the role')
    check(all(e['object'] == 'chat.completion.chunk' for e in ev[:-1]), 'chunk objects')
    check(stream_text(ev) == completion_text(cw), 'chat stream == chat whole')
    # curl, as a person would type it.
    if shutil.which('curl'):
        out = subprocess.run(['curl', '-sS', '--max-time', '60',
                              'http://127.0.0.1:%d/v1/completions' % s.port,
                              '-H', 'Content-Type: application/json',
                              '-d', json.dumps(req)], capture_output=True, text=True)
        check(out.returncode == 0, 'curl failed: ' + out.stderr)
        check(completion_text(json.loads(out.stdout)) == completion_text(whole), 'curl text')
        out = subprocess.run(['curl', '-sSN', '--max-time', '60',
                              'http://127.0.0.1:%d/v1/chat/completions' % s.port,
                              '-d', json.dumps(dict(chat, stream=True))],
                             capture_output=True, text=True)
        lines = [l for l in out.stdout.splitlines() if l]
        check(lines[-1] == 'data: [DONE]', 'curl stream ends with [DONE]: %r' % lines[-1:])
    else:
        print('note: curl not installed: the curl checks were skipped')
    check(s.metric('linshard_generated_tokens_total') > 0, 'metrics count tokens')
    check(s.metric('linshard_comm_share') is not None, 'metrics: communication share')
    check(s.metric('linshard_queue_depth') is not None, 'metrics: queue depth')


def expect_error(s, status, path, body=None, raw=None, method='POST', param=None, code=None,
                 says=None, headers=None):
    st, hdrs, resp = s.request(method, path, body=body, raw=raw, headers=headers)
    check(st == status, '%s %s %r: status %d, expected %d: %r' % (
        method, path, (raw or body) if not isinstance(raw, bytes) else '<bytes>', st, status,
        resp))
    check(isinstance(resp, dict) and set(resp.get('error', {})) == {'message', 'type', 'param',
                                                                    'code'},
          'an OpenAI error object, got %r' % resp)
    e = resp['error']
    check(isinstance(e['message'], str) and e['message'], 'a message')
    if param is not None:
        check(e['param'] == param, 'param %r, expected %r (%s)' % (e['param'], param,
                                                                  e['message']))
    if code is not None:
        check(e['code'] == code, 'code %r, expected %r' % (e['code'], code))
    if says is not None:
        check(says in e['message'], 'message %r should say %r' % (e['message'], says))
    return hdrs


def case_errors(s):
    C, CH = '/v1/completions', '/v1/chat/completions'
    good = {'prompt': 'Hi', 'max_tokens': 2}
    expect_error(s, 400, C, raw='{"prompt": "Hi",', says='not valid JSON')
    expect_error(s, 400, C, raw='[1, 2]', says='JSON object')
    expect_error(s, 400, C, raw='', says='not valid JSON')
    expect_error(s, 400, C, raw='{"prompt": "a\\u0000b"}', says='NUL')
    expect_error(s, 400, C, dict(good, frobnicate=1), param='frobnicate', says='unknown field')
    expect_error(s, 400, C, {'max_tokens': 2}, param='prompt', says='required')
    expect_error(s, 400, C, dict(good, max_tokens='5'), param='max_tokens')
    expect_error(s, 400, C, dict(good, max_tokens=0), param='max_tokens')
    expect_error(s, 400, C, dict(good, max_tokens=2.5), param='max_tokens')
    expect_error(s, 400, C, dict(good, temperature='hot'), param='temperature')
    expect_error(s, 400, C, dict(good, temperature=-1), param='temperature')
    expect_error(s, 400, C, dict(good, top_p=0), param='top_p')
    expect_error(s, 400, C, dict(good, top_k=-3), param='top_k')
    expect_error(s, 400, C, dict(good, seed='x'), param='seed')
    expect_error(s, 400, C, dict(good, stream='yes'), param='stream')
    expect_error(s, 400, C, dict(good, stop=5), param='stop')
    expect_error(s, 400, C, dict(good, stop=['a', 'b', 'c', 'd', 'e']), param='stop')
    expect_error(s, 400, C, dict(good, stop=''), param='stop')
    expect_error(s, 400, C, dict(good, n=2), param='n')
    expect_error(s, 400, C, dict(good, stream_options={'include_usage': True}),
                 param='stream_options')
    expect_error(s, 400, C, dict(good, prompt=7), param='prompt')
    expect_error(s, 400, C, dict(good, prompt=[1, 99999999]), param='prompt', says='token id')
    expect_error(s, 400, C, dict(good, prompt=[1, 'a']), param='prompt')
    expect_error(s, 400, C, dict(good, prompt=' word' * 1100), param='prompt',
                 code='context_length_exceeded')
    expect_error(s, 400, C, dict(good, model=3), param='model')
    expect_error(s, 400, CH, {'messages': 'hi'}, param='messages')
    expect_error(s, 400, CH, {'messages': []}, param='messages')
    expect_error(s, 400, CH, {'messages': [{'role': 'wizard', 'content': 'x'}]},
                 param='messages', says='wizard')
    expect_error(s, 400, CH, {'messages': [{'role': 'user'}]}, param='messages')
    expect_error(s, 400, CH, {'messages': [{'role': 'user', 'content': 5}]}, param='messages')
    expect_error(s, 400, CH, {'messages': [{'role': 'user', 'content': 'x', 'mood': 1}]},
                 param='messages', says='mood')
    expect_error(s, 400, CH, {'messages': [{'role': 'user', 'content': 'x'}], 'prompt': 'x'},
                 param='prompt')
    expect_error(s, 400, CH, {'messages': [{'role': 'user', 'content': ' w' * 1100}]},
                 param='messages', code='context_length_exceeded')
    # A body over 1 MiB: 413, by its Content-Length and as a chunked upload.
    big = json.dumps({'prompt': 'x' * (1 << 20)})
    expect_error(s, 413, C, raw=big, code='request_too_large')
    c = http.client.HTTPConnection('127.0.0.1', s.port, timeout=TIMEOUT)
    c.putrequest('POST', C)
    c.putheader('Transfer-Encoding', 'chunked')
    c.endheaders()
    for i in range(0, len(big), 65536):
        piece = big[i:i + 65536].encode()
        c.send(b'%x\r\n%s\r\n' % (len(piece), piece))
    c.send(b'0\r\n\r\n')
    r = c.getresponse()
    resp = json.loads(r.read())
    check(r.status == 413 and resp['error']['code'] == 'request_too_large',
          'chunked body over the limit: %d %r' % (r.status, resp))
    c.close()
    # Unknown path, wrong method.
    expect_error(s, 404, '/v1/engines', body={}, code='not_found')
    expect_error(s, 404, '/', method='GET')
    hdrs = expect_error(s, 405, C, method='GET', code='method_not_allowed')
    check(hdrs.get('Allow') == 'POST', 'Allow: POST, got %r' % hdrs)
    expect_error(s, 405, '/v1/models', body={}, method='POST')
    expect_error(s, 405, '/health', body={}, method='PUT')
    # Still serving after all that.
    st, _, ok = s.post(C, good)
    check(st == 200 and ok['usage']['completion_tokens'] == 2, 'serving after the errors')


def case_busy(s):
    """--parallel 1 --queue 0: one request in flight at most; another gets 429 meanwhile."""
    held = {}

    def long_request():
        held['resp'] = s.post('/v1/completions', {'prompt': 'And', 'max_tokens': 1000,
                                                  'temperature': 0})
    t = threading.Thread(target=long_request)
    t.start()
    deadline = time.time() + 30
    while time.time() < deadline and (s.metric('linshard_requests_in_flight') or 0) < 1:
        time.sleep(0.005)
    expect_error(s, 429, '/v1/completions', {'prompt': 'Hi', 'max_tokens': 2},
                 code='server_busy')
    t.join(TIMEOUT)
    st, _, resp = held['resp']
    check(st == 200, 'the request in flight completes: %s %r' % (st, resp))
    st, _, resp = s.post('/v1/completions', {'prompt': 'Hi', 'max_tokens': 2})
    check(st == 200, 'served again once the slot is free')


def concurrency_requests(n):
    reqs = []
    for i in range(n):
        if i % 2:
            reqs.append(('/v1/chat/completions',
                         {'messages': [{'role': 'user', 'content': 'Request %d says' % i}],
                          'max_tokens': 20 + i, 'seed': 100 + i, 'temperature': 0.8}))
        else:
            reqs.append(('/v1/completions', {'prompt': 'Client %d: the' % i,
                                             'max_tokens': 20 + i, 'seed': 100 + i,
                                             'temperature': 0.8, 'top_k': 50}))
    return reqs


def case_concurrency(s, n=16):
    reqs = concurrency_requests(n)
    alone = []
    for path, body in reqs:  # one at a time: each served alone
        st, _, resp = s.post(path, body)
        check(st == 200, 'alone %d %r' % (st, resp))
        alone.append(completion_text(resp))
    results = [None] * n
    barrier = threading.Barrier(n)

    def client(i):
        path, body = reqs[i]
        barrier.wait(30)
        try:
            if i % 4 == 3:
                ev = s.stream(path, body)
                results[i] = ('stream', stream_text(ev), ev[-1] == '[DONE]')
            else:
                st, _, resp = s.post(path, body)
                results[i] = (st, completion_text(resp) if st == 200 else resp, True)
        except Exception as e:  # noqa: BLE001 (reported below)
            results[i] = ('exception', repr(e), False)
    t0 = time.time()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    elapsed = time.time() - t0
    check(all(not t.is_alive() for t in threads), 'clients still waiting after %d s' % TIMEOUT)
    for i, r in enumerate(results):
        check(r is not None and r[0] in (200, 'stream') and r[2],
              'client %d: %r' % (i, r))
        check(r[1] == alone[i], 'client %d: %r together, %r alone' % (i, r[1], alone[i]))
    batch = s.metric('linshard_max_decode_batch')
    print('concurrency: %d clients in %.2f s, every text equal to its single-request text; '
          'largest decode batch %d' % (n, elapsed, batch))
    check(batch > 1, 'requests should have decoded together (largest batch %s)' % batch)


def case_disconnect(s):
    """Reads two events of a long stream, then closes the socket."""
    body = json.dumps({'prompt': 'And', 'max_tokens': 1000, 'temperature': 0, 'stream': True})
    sock = socket.create_connection(('127.0.0.1', s.port), timeout=TIMEOUT)
    sock.sendall(b'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json'
                 b'\r\nContent-Length: %d\r\n\r\n%s' % (len(body), body.encode()))
    got = b''
    while got.count(b'data: ') < 2:
        piece = sock.recv(4096)
        check(piece, 'the stream ended early')
        got += piece
    sock.close()
    deadline = time.time() + 30
    while time.time() < deadline and (s.metric('linshard_requests_cancelled_total') or 0) < 1:
        time.sleep(0.05)
    check(s.metric('linshard_requests_cancelled_total') == 1, 'the sequence was cancelled')
    deadline = time.time() + 30
    while time.time() < deadline and s.metric('linshard_sequences_running') != 0:
        time.sleep(0.05)
    check(s.metric('linshard_sequences_running') == 0, 'its slot was freed')
    check(s.metric('linshard_generated_tokens_total') < 1000, 'it stopped before 1000 tokens')
    st, _, resp = s.post('/v1/completions', {'prompt': 'Still', 'max_tokens': 5})
    check(st == 200 and resp['usage']['completion_tokens'] == 5, 'others keep being served')


def case_sigterm(s):
    """SIGTERM after the first events of a stream: it completes; then exit 0."""
    n = 400
    events = []
    state = {'sent': False}

    def on_event(ev):
        if len(events) == 3 and not state['sent']:
            state['sent'] = True
            s.signal_server()
    events = []

    def collect(ev):
        events.append(ev)
        on_event(ev)
    got = s.stream('/v1/completions', {'prompt': 'And', 'max_tokens': n, 'temperature': 0,
                                       'stream_options': {'include_usage': True}}, collect)
    check(state['sent'], 'SIGTERM was sent mid-stream')
    check(got[-1] == '[DONE]', 'the stream completed after SIGTERM')
    usage = got[-2]['usage']
    finish = stream_finish(got)
    check(finish == 'stop' or usage['completion_tokens'] == n,
          'all %d tokens (or EOS): %r %s' % (n, usage, finish))
    try:
        rc = s.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        s.kill()
        fail('no exit within 60 s of SIGTERM:\n' + s.stderr())
    check(rc == 0, 'exit status %d after SIGTERM:\n%s' % (rc, s.stderr()))
    check('SIGTERM' in s.stderr(), 'the log says SIGTERM')


def case_openai(s, srcdir, workdir):
    node, npm = shutil.which('node'), shutil.which('npm')
    if not node or not npm:
        print('SKIPPED: node and npm are needed for the OpenAI client test (CI installs them: '
              'apt-get install nodejs npm)')
        return 'skip'
    mod = os.path.join(workdir, 'node_modules', 'openai')
    if not os.path.isdir(mod):
        os.makedirs(workdir, exist_ok=True)
        r = subprocess.run([npm, 'install', '--no-audit', '--no-fund', '--silent', '--prefix',
                            workdir, 'openai@4'], capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            msg = 'npm install openai failed:\n' + r.stderr[-2000:]
            if os.environ.get('CI') == 'true':
                fail(msg)
            print('SKIPPED: ' + msg)
            return 'skip'
    script = os.path.join(srcdir, 'openai_client.mjs')
    env = dict(os.environ, NODE_PATH=os.path.join(workdir, 'node_modules'))
    # An .mjs import resolves from the script's folder, not NODE_PATH: run a copy beside them.
    copy = os.path.join(workdir, 'openai_client.mjs')
    shutil.copyfile(script, copy)
    r = subprocess.run([node, copy, 'http://127.0.0.1:%d/v1' % s.port], capture_output=True,
                       text=True, timeout=300, env=env)
    sys.stdout.write(r.stdout)
    check(r.returncode == 0, 'the OpenAI client test failed:\n' + r.stdout + r.stderr)


def case_template(s, linshard, model, kind):
    """A model with a chat template: the log names it, and a chat request's prompt is exactly the
    template's text, special tokens as single ids (counted by `linshard tokenize`)."""
    check('chat template: %s' % kind in s.stderr(), 'the log should name template ' + kind)
    msgs = [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hello!'}]
    text = {
        'chatml': '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n'
                  '<|im_start|>assistant\n',
        'llama3': '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.'
                  '<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>'
                  '<|start_header_id|>assistant<|end_header_id|>\n\n',
    }[kind]
    out = subprocess.run([linshard, 'tokenize', '--model', model, '-'], input=text,
                         capture_output=True, text=True, timeout=120)
    check(out.returncode == 0, 'tokenize: ' + out.stderr)
    n_ids = len(out.stdout.strip().split(','))
    st, _, resp = s.post('/v1/chat/completions', {'messages': msgs, 'max_tokens': 4, 'seed': 1})
    check(st == 200, 'chat %d %r' % (st, resp))
    check(resp['usage']['prompt_tokens'] == n_ids,
          'prompt_tokens %d, the %s text is %d tokens' % (resp['usage']['prompt_tokens'], kind,
                                                          n_ids))
    ev = s.stream('/v1/chat/completions', {'messages': msgs, 'max_tokens': 4, 'seed': 1})
    check(stream_text(ev) == completion_text(resp), 'stream == whole')


def main():
    args = sys.argv[1:]
    mpi, tp = None, 2
    if '--mpi' in args:
        i = args.index('--mpi')
        mpi = args[i + 1]
        del args[i:i + 2]
    template = None
    if '--template' in args:
        i = args.index('--template')
        template = args[i + 1]
        del args[i:i + 2]
    if '--tp' in args:
        i = args.index('--tp')
        tp = int(args[i + 1])
        del args[i:i + 2]
    linshard, model, case = args[0], args[1], args[2]
    extra = {'busy': ['--parallel', '1', '--queue', '0'],
             'concurrency': ['--parallel', '16']}.get(case, ['--parallel', '4'])
    s = Server(linshard, model, extra, mpi=mpi, tp=tp)
    try:
        if case == 'basic':
            case_basic(s)
        elif case == 'errors':
            case_errors(s)
        elif case == 'busy':
            case_busy(s)
        elif case == 'concurrency':
            case_concurrency(s)
        elif case == 'disconnect':
            case_disconnect(s)
        elif case == 'sigterm':
            case_sigterm(s)
            print('PASSED: serve sigterm')
            return
        elif case == 'template':
            case_template(s, linshard, model, template)
        elif case == 'openai':
            here = os.path.dirname(os.path.abspath(__file__))
            work = os.environ.get('OPENAI_CLIENT_DIR') or os.path.join(
                tempfile.gettempdir(), 'linshard-openai-client')
            if case_openai(s, here, work) == 'skip':
                s.stop()
                sys.exit(77)  # CTest's SKIP_RETURN_CODE
        else:
            fail('unknown case ' + case)
        s.stop()
    except SystemExit:
        sys.stderr.write('--- server log ---\n' + s.stderr())
        s.kill()
        raise
    except BaseException:
        sys.stderr.write('--- server log ---\n' + s.stderr())
        s.kill()
        raise
    print('PASSED: serve %s' % case)


if __name__ == '__main__':
    main()
