#!/usr/bin/env python3
"""Live tailing latency: append one record at a steady rate, time until /metrics shows it.

usage: latency.py METRICS_URL FILE N RATE_PER_S SOURCE < template_records
Prints one JSON object: p50/p99/max in milliseconds over N appends.
Each append is one complete record (read from stdin, one per line, reused cyclically
with a fresh id) and counted by passportd_ingest_lines_total{source=SOURCE}.
"""
import json, re, sys, time, urllib.request, uuid

url, path, n, rate, source = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
templates = [l for l in sys.stdin.read().splitlines() if l.strip()]
pat = re.compile(r'^passportd_ingest_lines_total\{source="%s"\} (\S+)$' % re.escape(source), re.M)

def lines():
    try:
        body = urllib.request.urlopen(url, timeout=2).read().decode()
    except Exception:
        return -1
    m = pat.search(body)
    return int(float(m.group(1))) if m else 0

deadline = time.time() + 30
while lines() < 0 and time.time() < deadline:
    time.sleep(0.05)
seen = lines()
lat = []
with open(path, "a", buffering=1) as f:
    for i in range(n):
        t = templates[i % len(templates)]
        rec = re.sub(r'"id":"[0-9a-f-]{36}"', '"id":"%s"' % uuid.uuid4(), t, count=1)
        start = time.monotonic()
        f.write(rec + "\n")
        f.flush()
        while True:
            c = lines()
            if c > seen:
                seen = c
                break
            if time.monotonic() - start > 10:
                break
            time.sleep(0.002)
        lat.append((time.monotonic() - start) * 1000)
        rest = 1 / rate - (time.monotonic() - start)
        if rest > 0:
            time.sleep(rest)
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(round(p * (len(lat) - 1))))]
print(json.dumps({"n": n, "p50_ms": round(q(0.5), 1), "p99_ms": round(q(0.99), 1), "max_ms": round(lat[-1], 1)}))
