#!/usr/bin/env bash
# The ACD benchmark of BENCHMARKS.md: a release hotline on loopback serving the queue flow in
# tests/bench-acd with AGENTS registered agents (made here: extensions from 2000, password
# "secret", logged in when they register), and `hotline load` placing callers that queue,
# are bridged to the load tool's agents (which echo each packet as it arrives) and checked
# both ways.
# Two runs per size: steady (agents keep their caller: AGENTS bridged, the rest waiting on
# music and announcements, CPU against the floor of the same streams) and cycling (agents
# hang up after TALK seconds, so every caller is eventually bridged).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
BIN=${CARGO_TARGET_DIR:-target}/release/hotline
OUT=${OUT:-$(mktemp -d)}
RUNS=${RUNS:-1}
SIZES=${SIZES:-"100:100 1000:200"}   # callers:agents
TALK=${TALK:-10}
mkdir -p "$OUT/flows/acd"
cp tests/bench-acd/bench.toml "$OUT/flows/"
cp tests/bench-acd/acd/queues.toml "$OUT/flows/acd/"
max_agents=0
for s in $SIZES; do a=${s#*:}; ((a > max_agents)) && max_agents=$a; done
{
  for i in $(seq 0 $((max_agents - 1))); do
    ext=$((2000 + i))
    echo "[agents.$ext]"
    printf 'secret\n' | "$BIN" agent-password "$ext"
    echo "auto_login = true"
    echo
  done
} >"$OUT/flows/acd/agents.toml"
# The load tool's callers all come from one address, as through a trunk: trusted like one.
printf '[sip]\ntrusted = ["127.0.0.1"]\n' >"$OUT/hotline.toml"
"$BIN" serve --config "$OUT/hotline.toml" --sip-bind 127.0.0.1:5060 --rtp-ports 20000-29999 \
  --database "sqlite://$OUT/bench.db" --flows "$OUT/flows" --prompts prompts 2>"$OUT/server.log" &
SERVER=$!
trap 'kill -INT $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
sleep 1
for s in $SIZES; do
  n=${s%:*} a=${s#*:}
  for r in $(seq 1 "$RUNS"); do
    "$BIN" load 127.0.0.1:5060 --number 400 --calls "$n" --cps $((n / 10)) --hold 30 --digits "" \
      --agents "$a" --agent-base 2000 --agent-password secret --agent-answer-delay 1 \
      --server-pid "$SERVER" --floor --format json >"$OUT/steady-$n-run$r.json"
    "$BIN" load 127.0.0.1:5060 --number 400 --calls "$n" --cps $((n / 10)) --hold 120 --digits "" \
      --agents "$a" --agent-base 2000 --agent-password secret --agent-answer-delay 1 \
      --agent-talk "$TALK" --server-pid "$SERVER" --format json >"$OUT/cycling-$n-run$r.json"
  done
done
echo "reports in $OUT"
