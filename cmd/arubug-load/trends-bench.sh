#!/usr/bin/env bash
# Trends and web UI latency benchmark, as recorded in docs/benchmarks.md:
# arubug seed writes REPORTS bug reports and about REPORTS/3 × EVENTS_PER_PERSON
# events (100 000 and 300: 10 M events) into a managed ClickHouse under
# DATA_DIR (kept, so later runs skip the seeding: delete it to start over),
# then arubug serve answers every trends query and UI page RUNS times each;
# the script prints p50/p95/max per query.
# Usage: make bench-trends [REPORTS=100000 EVENTS_PER_PERSON=300 DATA_DIR=build/trends-bench RUNS=20]
set -euo pipefail
cd "$(dirname "$0")/../.."
REPORTS=${REPORTS:-100000}
EVENTS_PER_PERSON=${EVENTS_PER_PERSON:-300}
DATA_DIR=${DATA_DIR:-build/trends-bench}
RUNS=${RUNS:-20}
BIN=bin/arubug
[ -x "$BIN" ] || { echo "run make build first" >&2; exit 2; }
export ARUBUG_DATA_DIR=$DATA_DIR ARUBUG_PROJECT_TOKENS=phc_trends_bench ARUBUG_LOG_LEVEL=${LOG_LEVEL:-warn} ARUBUG_LOG_FORMAT=json

if [ ! -f "$DATA_DIR/seeded-$REPORTS-$EVENTS_PER_PERSON" ]; then
	rm -rf "$DATA_DIR"; mkdir -p "$DATA_DIR"
	echo "seeding $REPORTS reports, $EVENTS_PER_PERSON events per reporter (takes minutes)..." >&2
	/usr/bin/time -f "seed: %e s wall, %M KiB max RSS" "$BIN" seed --reports "$REPORTS" --events-per-person "$EVENTS_PER_PERSON" --days 90 2>&1 | tr '\r' '\n' | tail -2 >&2
	touch "$DATA_DIR/seeded-$REPORTS-$EVENTS_PER_PERSON"
fi

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
addr=127.0.0.1:$(port)
token=bench-admin-token-0123456789
ARUBUG_ADDR=$addr ARUBUG_ADMIN_TOKEN=$token "$BIN" serve 2> "$DATA_DIR/serve.log" & pids+=($!)
for _ in $(seq 1 300); do curl -fs "http://$addr/_ready" >/dev/null 2>&1 && break; sleep 0.2; done

python3 - "$addr" "$token" "$RUNS" <<'PY'
import http.cookiejar, json, sys, time, urllib.parse, urllib.request
addr, token, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
base = "http://" + addr
jar = http.cookiejar.CookieJar()
ui = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
req = urllib.request.Request(base + "/ui/signin", data=urllib.parse.urlencode({"token": token}).encode(), headers={"Origin": base})
ui.open(req).read()
def api(path):
    r = urllib.request.Request(base + path, headers={"Authorization": "Bearer " + token})
    return urllib.request.urlopen(r)
counts = json.load(api("/api/v1/trends?metric=reports&interval=week&limit=50&from=" + time.strftime("%Y-%m-%d", time.gmtime(time.time() - 365 * 86400))))
total = sum(s["total"] for s in counts["series"])
team = json.load(api("/api/v1/teams"))["teams"][0]["name"]
rid = json.load(api(f"/api/v1/teams/{team}/reports?limit=1"))["reports"][0]["id"]
cases = []
for m in ["reports", "reporters", "messages", "first_response", "open_solved"]:
    cases.append((f"trends {m}, day, 30 d", f"/api/v1/trends?metric={m}&interval=day"))
    if m != "open_solved":
        cases.append((f"trends {m} by team, day, 30 d", f"/api/v1/trends?metric={m}&interval=day&breakdown=team"))
for b in ["product_area", "severity", "browser", "os", "path", "similarity"]:
    cases.append((f"trends reports by {b}, day, 30 d", f"/api/v1/trends?metric=reports&interval=day&breakdown={b}"))
cases += [
    ("trends reports by team, hour, 7 d", "/api/v1/trends?metric=reports&interval=hour&breakdown=team&from=" + time.strftime("%Y-%m-%d", time.gmtime(time.time() - 7 * 86400))),
    ("trends reports by team, week, 90 d, Europe/Berlin", "/api/v1/trends?metric=reports&interval=week&breakdown=team&tz=Europe/Berlin&from=" + time.strftime("%Y-%m-%d", time.gmtime(time.time() - 90 * 86400))),
    ("trends messages by kind, day, 90 d", "/api/v1/trends?metric=messages&interval=day&breakdown=kind&from=" + time.strftime("%Y-%m-%d", time.gmtime(time.time() - 90 * 86400))),
]
for l in ["pages", "exceptions", "organisations"]:
    cases.append((f"top {l}, 30 d", f"/api/v1/trends/top?list={l}"))
pages = [
    ("page: overview /ui/", "/ui/"),
    ("page: chart data /ui/data/trend (reports by team)", "/ui/data/trend?metric=reports&breakdown=team&days=30"),
    ("page: chart data /ui/data/trend (first response)", "/ui/data/trend?metric=first_response&days=30"),
    (f"page: team queue /ui/teams/{team}", f"/ui/teams/{team}"),
    ("page: report /ui/reports/{id}", f"/ui/reports/{rid}"),
    ("page: rules /ui/rules", "/ui/rules"),
]
def measure(fetch):
    for _ in range(2):
        fetch()
    ts = []
    for _ in range(runs):
        t = time.perf_counter(); fetch(); ts.append((time.perf_counter() - t) * 1000)
    ts.sort()
    return ts[len(ts) // 2], ts[min(len(ts) - 1, int(round(0.95 * len(ts))) - 1)], ts[-1]
print(f"{int(total)} reports in ClickHouse; {runs} runs each after 2 warm-ups")
print("| query | p50 ms | p95 ms | max ms |")
print("|---|---|---|---|")
worst = 0
for name, path in cases:
    p50, p95, mx = measure(lambda: api(path).read())
    worst = max(worst, p95)
    print(f"| {name} | {p50:.0f} | {p95:.0f} | {mx:.0f} |")
for name, path in pages:
    def get():
        r = ui.open(base + path)
        if r.status != 200 or "/signin" in r.url:
            raise SystemExit(f"{path}: {r.status} {r.url}")
        r.read()
    p50, p95, mx = measure(get)
    worst = max(worst, p95)
    print(f"| {name} | {p50:.0f} | {p95:.0f} | {mx:.0f} |")
print(f"worst p95: {worst:.0f} ms (target < 500 ms)")
PY
