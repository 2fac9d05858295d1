# Shared by the benchmark scripts (sourced, not run): the binaries, a work
# directory removed at exit, the processes started with start_bg stopped at
# exit, and free loopback ports.
BIN=bin/arubug
LOAD=bin/arubug-load
[ -x "$BIN" ] && [ -x "$LOAD" ] || { echo "run make build first" >&2; exit 2; }

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_ready ADDR waits (up to a minute) until arubug at ADDR is ready.
wait_ready() { for _ in $(seq 1 300); do curl -fs "http://$1/_ready" >/dev/null 2>&1 && return 0; sleep 0.2; done; echo "arubug at $1 did not get ready" >&2; return 1; }
