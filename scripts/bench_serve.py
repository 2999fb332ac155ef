#!/usr/bin/env python3
"""bench_serve.py — load test of `linshard serve` over loopback (python3 stdlib only).

For each concurrency C (default 1, 4, 16), C client threads each send R streaming completion
requests one after another (max_tokens tokens each, "stream_options": {"include_usage": true}),
and the table reports, over the level's wall time:
  tokens/s      generated tokens (usage.completion_tokens) per second, all clients together
  requests/s    completed requests per second
  TTFT p50/p99  time to first token: request sent -> first event carrying text
  ITL p50/p99   inter-token latency: the gaps between successive text events of a stream
  vs C=1        tokens/s over the first level's tokens/s
  decode t/s    the server's own count (GET /metrics): tokens generated over the wall time of
                its batched decode steps (prefills excluded), during the level

    bench_serve.py --url http://127.0.0.1:8080            a server already running
    bench_serve.py --start "build/linshard serve --model /tmp/g2 --tp 2 --parallel 16"
                                                          starts it (--port 0), stops it after
Options: --clients 1,4,16  --requests R (per client, default 4)  --max-tokens N (default 64)
         --prompt TEXT  --json (one JSON object per level as well)
Each level waits for its requests; a request that fails is counted and reported, not retried.
Every connection is to the given URL (loopback); nothing runs after the script ends.
"""
import argparse
import http.client
import json
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.parse


TEXT_EVENT = re.compile(rb'"text":"(?!")')


def server_counters(host, port):
    """(generated tokens, decode seconds) from GET /metrics."""
    c = http.client.HTTPConnection(host, port, timeout=60)
    c.request('GET', '/metrics')
    text = c.getresponse().read().decode()
    c.close()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith('#'):
            name, _, value = line.rpartition(' ')
            values[name] = float(value)
    return (values.get('linshard_generated_tokens_total', 0),
            values.get('linshard_decode_seconds_total', 0))


def percentile(xs, p):
    if not xs:
        return float('nan')
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def one_request(host, port, body, timeout):
    """One streaming request: (completion tokens, ttft, [gaps]) or raises."""
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    t0 = time.perf_counter()
    c.request('POST', '/v1/completions', body=body, headers={'Content-Type': 'application/json'})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError('status %d: %s' % (r.status, r.read()[:200]))
    first = last = None
    gaps = []
    tokens = 0
    while True:
        line = r.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b'data: '):
            continue
        payload = line[6:]
        if payload == b'[DONE]':
            break
        # Parsing every event would make the client, not the server, the bottleneck on a small
        # machine: only the usage chunk is parsed; a text event is one with a non-empty "text".
        if b'"usage":{' in payload:
            tokens = json.loads(payload)['usage']['completion_tokens']
        if TEXT_EVENT.search(payload):
            now = time.perf_counter()
            if first is None:
                first = now - t0
            else:
                gaps.append(now - last)
            last = now
    c.close()
    return tokens, first, gaps


def run_level(host, port, clients, requests, max_tokens, prompt, timeout):
    results, errors = [], []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def client(i):
        barrier.wait(60)
        for j in range(requests):
            body = json.dumps({'prompt': prompt, 'max_tokens': max_tokens, 'stream': True,
                               'stream_options': {'include_usage': True},
                               'temperature': 1.0, 'seed': 1000 * i + j})
            try:
                out = one_request(host, port, body, timeout)
                with lock:
                    results.append(out)
            except Exception as e:  # noqa: BLE001 (counted and reported)
                with lock:
                    errors.append(repr(e))
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    gen0, dec0 = server_counters(host, port)
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    wall = time.perf_counter() - t0
    gen1, dec1 = server_counters(host, port)
    tokens = sum(r[0] for r in results)
    ttft = [r[1] for r in results if r[1] is not None]
    itl = [g for r in results for g in r[2]]
    return {'clients': clients, 'requests': len(results), 'errors': len(errors),
            'first_error': errors[0] if errors else None, 'seconds': wall,
            'tokens': tokens, 'tokens_per_s': tokens / wall, 'requests_per_s': len(results) / wall,
            'decode_tokens_per_s': (gen1 - gen0) / (dec1 - dec0) if dec1 > dec0 else float('nan'),
            'ttft_p50_ms': 1e3 * percentile(ttft, 50), 'ttft_p99_ms': 1e3 * percentile(ttft, 99),
            'itl_p50_ms': 1e3 * percentile(itl, 50), 'itl_p99_ms': 1e3 * percentile(itl, 99)}


def start_server(command):
    argv = shlex.split(command) + ['--port', '0']
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if 'listening on http://' in line:
            return proc, line.strip().split('listening on ', 1)[1]
    proc.kill()
    proc.wait()
    sys.exit('bench_serve: the server did not start: ' + command)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument('--url', help='a running server, e.g. http://127.0.0.1:8080')
    where.add_argument('--start', help='the `linshard serve ...` command to start (--port 0 '
                                       'is added)')
    ap.add_argument('--clients', default='1,4,16')
    ap.add_argument('--requests', type=int, default=4, help='per client (default 4)')
    ap.add_argument('--max-tokens', type=int, default=64)
    ap.add_argument('--prompt', default='And it came to pass in those days')
    ap.add_argument('--timeout', type=float, default=600, help='seconds per request')
    ap.add_argument('--json', action='store_true')
    a = ap.parse_args()
    levels = [int(x) for x in a.clients.split(',')]
    proc = None
    url = a.url
    if a.start:
        proc, url = start_server(a.start)
    u = urllib.parse.urlparse(url)
    host, port = u.hostname, u.port or 80
    try:
        print('bench_serve: %s, %d requests per client of %d tokens, prompt %r' % (
            url, a.requests, a.max_tokens, a.prompt))
        print('%8s %9s %7s %10s %8s %10s %10s %10s %9s %9s %10s' % (
            'clients', 'requests', 'errors', 'tokens/s', 'vs C=1', 'requests/s', 'TTFT p50',
            'TTFT p99', 'ITL p50', 'ITL p99', 'decode t/s'))
        base = None
        for c in levels:
            r = run_level(host, port, c, a.requests, a.max_tokens, a.prompt, a.timeout)
            base = base or r['tokens_per_s']
            r['speedup'] = r['tokens_per_s'] / base if base else float('nan')
            print('%8d %9d %7d %10.1f %7.2fx %10.2f %8.0fms %8.0fms %7.1fms %7.1fms %10.1f' % (
                c, r['requests'], r['errors'], r['tokens_per_s'], r['speedup'],
                r['requests_per_s'], r['ttft_p50_ms'], r['ttft_p99_ms'], r['itl_p50_ms'],
                r['itl_p99_ms'], r['decode_tokens_per_s']), flush=True)
            if r['errors']:
                print('  first error: %s' % r['first_error'])
            if a.json:
                print(json.dumps(r))
    finally:
        if proc:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


if __name__ == '__main__':
    main()
