#!/usr/bin/env bash
# Triage latency benchmark, as recorded in docs/benchmarks.md: bug reports at
# REPORTS/s while EVENTS/s other events flow, against arubug serve with a
# managed ClickHouse and the default routing rules. Prints ack → routed
# p50/p95/p99 from the arubug_triage_ack_to_routed_seconds histogram
# (interpolated within buckets, as Prometheus's histogram_quantile does).
#
# The load generators run at nice ${GEN_NICE:-19}: they stand in for remote
# clients, which in production spend none of the service's CPU, so here they
# take only what arubug and its ClickHouse leave idle. The rates they reach
# are printed (and the run fails if they fall short), so a starved generator
# cannot pass for a fast service. GEN_NICE=0 runs them as equals.
# Usage: make bench-triage [DURATION=60s REPORTS=10 EVENTS=5000 GEN_NICE=19]
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-60s}
REPORTS=${REPORTS:-10}
EVENTS=${EVENTS:-5000}
. cmd/arubug-load/bench-lib.sh

addr=127.0.0.1:$(port)
ARUBUG_ADDR=$addr ARUBUG_DATA_DIR=$work/data ARUBUG_PROJECT_TOKENS=phc_arubug_load ARUBUG_LOG_FORMAT=json ARUBUG_LOG_LEVEL=${LOG_LEVEL:-warn} ARUBUG_BUG_REPORTS_PER_IP=0 ARUBUG_BUG_REPORTS_PER_USER=0 \
	"$BIN" serve 2> "$work/arubug.log" & pids+=($!)
wait_ready "$addr"

GEN_NICE=${GEN_NICE:-19}
[ $((EVENTS % 50)) -eq 0 ] && [ "$EVENTS" -gt 0 ] || { echo "EVENTS must be a positive multiple of 50 (they go 50 per request)" >&2; exit 2; }
# Background events: 50 per /batch request. nice execs the generator, so
# $bg is its pid and the cleanup stops it if the script ends early.
nice -n "$GEN_NICE" "$LOAD" -quiet -json -url "http://$addr" -batch 50 -gzip -rate $((EVENTS / 50)) -c 16 -d "$DURATION" > "$work/events.json" &
bg=$!
pids+=($bg)
nice -n "$GEN_NICE" "$LOAD" -quiet -json -url "http://$addr" -bug-reports -rate "$REPORTS" -c 4 -d "$DURATION" > "$work/reports.json"
wait $bg
sleep 3 # the last reports finish triage
[ -n "${KEEP_LOG:-}" ] && cp "$work/arubug.log" "$KEEP_LOG"
curl -fs "http://$addr/metrics" > "$work/metrics.txt"

python3 - "$work/metrics.txt" "$work/events.json" "$work/reports.json" "$EVENTS" "$REPORTS" <<'PY'
import json, sys
buckets, count = [], 0
for line in open(sys.argv[1]):
    if line.startswith('arubug_triage_ack_to_routed_seconds_bucket'):
        le = line.split('le="')[1].split('"')[0]
        buckets.append((float('inf') if le == '+Inf' else float(le), float(line.split()[-1])))
    elif line.startswith('arubug_triage_ack_to_routed_seconds_count'):
        count = float(line.split()[-1])
def q(p):
    rank, prev_le, prev_n = p * count, 0.0, 0.0
    for le, n in buckets:
        if n >= rank:
            if le == float('inf'):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_n) / max(n - prev_n, 1e-9)
        prev_le, prev_n = le, n
ev, rp = json.load(open(sys.argv[2]))['result'], json.load(open(sys.argv[3]))['result']
print(f"background: {ev['events_per_sec']:.0f} events/s acked ({ev['errors']} errors), p99 ack {ev['p99_ns']/1e6:.1f} ms")
print(f"bug reports: {rp['ok_per_sec']:.1f}/s acked ({rp['errors']} errors); triaged: {int(count)}")
print(f"ack -> routed: p50 {q(0.5)*1000:.0f} ms, p95 {q(0.95)*1000:.0f} ms, p99 {q(0.99)*1000:.0f} ms")
want_ev, want_rp = float(sys.argv[4]), float(sys.argv[5])
if ev['errors'] or rp['errors'] or ev['events_per_sec'] < 0.97 * want_ev or rp['ok_per_sec'] < 0.97 * want_rp:
    sys.exit(f"the generators fell short of {want_ev:.0f} events/s and {want_rp:g} reports/s, or saw errors: this run measures nothing")
PY
