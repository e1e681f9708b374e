#!/usr/bin/env bash
# The CTI event-stream benchmark of BENCHMARKS.md: the ACD benchmark (scripts/bench-agents.sh:
# CALLERS callers in the queue flow of tests/bench-acd, AGENTS load-tool agents echoing their
# audio) while DESKTOPS agent desktops (API users 2000, 2001, ...) hold the WebSocket event
# stream open. The load tool times each agent-state event from the engine's stamp to its
# arrival, and reports the call figures as ever.
# Two runs per repetition: steady (agents keep their caller; CPU against the floor) and
# cycling (agents hang up after TALK seconds: a stream of state changes).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
BIN=${CARGO_TARGET_DIR:-target}/release/hotline
OUT=${OUT:-$(mktemp -d)}
RUNS=${RUNS:-1}
CALLERS=${CALLERS:-1000}
AGENTS=${AGENTS:-200}
DESKTOPS=${DESKTOPS:-2000}
TALK=${TALK:-10}
API=127.0.0.1:8080
ulimit -n "$(ulimit -Hn)"
mkdir -p "$OUT/flows/acd"
cp tests/bench-acd/bench.toml "$OUT/flows/"
cp tests/bench-acd/acd/queues.toml "$OUT/flows/acd/"
# SEATS: agents defined (default: enough for every desktop and phone).
seats=${SEATS:-$((DESKTOPS > AGENTS ? DESKTOPS : AGENTS))}
# One agent per seat; the first AGENTS have the load tool's phones. One password hash serves
# every desktop user (a benchmark, not a site): hashing 2,000 would take minutes.
hash=$(printf 'secret-desk\n' | "$BIN" user-password x --role agent --agent x | sed -n 's/^password = //p')
{
  for i in $(seq 0 $((seats - 1))); do
    ext=$((2000 + i))
    echo "[agents.$ext]"
    printf 'secret\n' | "$BIN" agent-password "$ext"
    echo "auto_login = true"
    echo
  done
} >"$OUT/flows/acd/agents.toml"
{
  for i in $(seq 0 $((DESKTOPS - 1))); do
    ext=$((2000 + i))
    printf '[[user]]\nname = "%s"\nrole = "agent"\nagent = "%s"\npassword = %s\n\n' "$ext" "$ext" "$hash"
  done
} >"$OUT/users.toml"
cat >"$OUT/hotline.toml" <<EOF
[sip]
trusted = ["127.0.0.1"]

[api]
bind = "$API"
users = "$OUT/users.toml"
max_connections = 8192
max_connections_per_address = 8192
EOF
"$BIN" serve --config "$OUT/hotline.toml" --sip-bind 127.0.0.1:5060 --rtp-ports 20000-29999 \
  --database "sqlite://$OUT/bench.db" --flows "$OUT/flows" --prompts prompts 2>"$OUT/server.log" &
SERVER=$!
trap 'kill -INT $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
sleep 2
MODES=${MODES:-"steady cycling"}
for r in $(seq 1 "$RUNS"); do
  [[ " $MODES " == *" steady "* ]] && "$BIN" load 127.0.0.1:5060 --number 400 --calls "$CALLERS" --cps $((CALLERS / 10)) --hold 30 --digits "" \
    --agents "$AGENTS" --agent-base 2000 --agent-password secret --agent-answer-delay 1 \
    --desktops "$DESKTOPS" --api "$API" --server-pid "$SERVER" --floor --format json \
    >"$OUT/steady-run$r.json"
  [[ " $MODES " == *" cycling "* ]] && "$BIN" load 127.0.0.1:5060 --number 400 --calls "$CALLERS" --cps $((CALLERS / 10)) --hold 120 --digits "" \
    --agents "$AGENTS" --agent-base 2000 --agent-password secret --agent-answer-delay 1 \
    --agent-talk "$TALK" --desktops "$DESKTOPS" --api "$API" --server-pid "$SERVER" --format json \
    >"$OUT/cycling-run$r.json"
  true
done
echo "reports in $OUT"
