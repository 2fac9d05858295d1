#!/usr/bin/env bash
# Zendesk sync latency benchmark, as recorded in docs/benchmarks.md: bug
# reports at REPORTS/s for DURATION against arubug serve (managed ClickHouse,
# the default routing rules) syncing to the Zendesk simulator run as its own
# process with a RPM requests-per-minute limit (Zendesk Enterprise: 700).
# Prints ack → ticket p50/p99 from arubug_zendesk_ack_to_ticket_seconds
# (interpolated within buckets), tickets created, and the rate-limit answers.
# Usage: make bench-zendesk [DURATION=60s REPORTS=1 RPM=700]
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-60s}
REPORTS=${REPORTS:-1}
RPM=${RPM:-700}
. cmd/arubug-load/bench-lib.sh

zaddr=127.0.0.1:$(port)
"$BIN" zendesk simulate --addr "$zaddr" --requests-per-minute "$RPM" --rules-file routing-rules/rules.yaml > "$work/sim.out" 2>&1 & pids+=($!)
for _ in $(seq 1 100); do grep -q "listening" "$work/sim.out" 2>/dev/null && break; sleep 0.1; done

addr=127.0.0.1:$(port)
export ARUBUG_ZENDESK_URL=http://$zaddr ARUBUG_ZENDESK_EMAIL=agent@example.test ARUBUG_ZENDESK_API_TOKEN=sim-api-token
"$BIN" zendesk setup --webhook-url "http://$addr/webhooks/zendesk" --secret-file "$work/webhook-secret" --rules-file routing-rules/rules.yaml > /dev/null
ARUBUG_ZENDESK_WEBHOOK_SECRET_FILE=$work/webhook-secret ARUBUG_ZENDESK_REQUESTS_PER_MINUTE=$RPM \
ARUBUG_ADDR=$addr ARUBUG_DATA_DIR=$work/data ARUBUG_PROJECT_TOKENS=phc_arubug_load ARUBUG_LOG_FORMAT=json ARUBUG_LOG_LEVEL=${LOG_LEVEL:-warn} \
ARUBUG_BUG_REPORTS_PER_IP=0 ARUBUG_BUG_REPORTS_PER_USER=0 \
	"$BIN" serve 2> "$work/arubug.log" & pids+=($!)
wait_ready "$addr"

"$LOAD" -quiet -json -url "http://$addr" -bug-reports -rate "$REPORTS" -c 4 -d "$DURATION" > "$work/reports.json"
# Let the queue drain: wait until every acked report has its ticket and the
# outbox is empty (at most 5 minutes).
acked=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["result"]["ok"])' "$work/reports.json")
for _ in $(seq 1 300); do
	m=$(curl -fs "http://$addr/metrics")
	depth=$(awk '/^arubug_zendesk_outbox_depth /{print $2}' <<<"$m")
	created=$(awk '/^arubug_zendesk_tickets_created_total /{printf "%d", $2}' <<<"$m")
	[ "${depth:-1}" = "0" ] && [ "${created:-0}" -ge "$acked" ] && break
	sleep 1
done
[ -n "${KEEP_LOG:-}" ] && cp "$work/arubug.log" "$KEEP_LOG"
curl -fs "http://$addr/metrics" > "$work/metrics.txt"

python3 - "$work/metrics.txt" "$work/reports.json" "$RPM" <<'PY'
import json, sys
buckets, count, created, retries = [], 0, 0, {}
for line in open(sys.argv[1]):
    if line.startswith('arubug_zendesk_ack_to_ticket_seconds_bucket'):
        le = line.split('le="')[1].split('"')[0]
        buckets.append((float('inf') if le == '+Inf' else float(le), float(line.split()[-1])))
    elif line.startswith('arubug_zendesk_ack_to_ticket_seconds_count'):
        count = float(line.split()[-1])
    elif line.startswith('arubug_zendesk_tickets_created_total'):
        created = int(float(line.split()[-1]))
    elif line.startswith('arubug_zendesk_retries_total{'):
        retries[line.split('reason="')[1].split('"')[0]] = int(float(line.split()[-1]))
def q(p):
    rank, prev_le, prev_n = p * count, 0.0, 0.0
    for le, n in buckets:
        if n >= rank:
            if le == float('inf'):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_n) / max(n - prev_n, 1e-9)
        prev_le, prev_n = le, n
rp = json.load(open(sys.argv[2]))['result']
print(f"bug reports: {rp['ok_per_sec']:.2f}/s acked ({rp['errors']} errors), {rp['ok']} in all; simulator limit {sys.argv[3]} requests/min")
print(f"tickets created: {created}; retries by reason: {retries or 'none'}")
print(f"ack -> ticket: p50 {q(0.5)*1000:.0f} ms, p99 {q(0.99)*1000:.0f} ms")
PY
