#!/usr/bin/env bash
# Reproduce BENCHMARKS.md: start a release hotline on loopback, run `hotline load` at several
# sizes with the floor measured in the same run, then a 200 calls/s set-up run. Prints one
# JSON report per run into $OUT and a summary table (medians) at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
BIN=${CARGO_TARGET_DIR:-target}/release/hotline
OUT=${OUT:-$(mktemp -d)}
RUNS=${RUNS:-3}
SIZES=${SIZES:-"100 200 500 1000"}
# The load tool is one address placing every call, as a trunk does: trusted like one, or the
# per-source limits (50 new calls/s, half of max_calls) would refuse most of it.
printf '[sip]\ntrusted = ["127.0.0.1"]\n' >"$OUT/hotline.toml"
"$BIN" serve --config "$OUT/hotline.toml" --sip-bind 127.0.0.1:5060 --rtp-ports 20000-29999 \
  --database "sqlite://$OUT/bench.db" --flows tests/interop --prompts prompts 2>"$OUT/server.log" &
SERVER=$!
trap 'kill -INT $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
sleep 1
for n in $SIZES; do
  for r in $(seq 1 "$RUNS"); do
    "$BIN" load 127.0.0.1:5060 --calls "$n" --cps $((n / 10)) --hold 30 --digits 1 --digit-interval 3 \
      --server-pid "$SERVER" --floor --format json >"$OUT/calls$n-run$r.json"
  done
done
for r in $(seq 1 "$RUNS"); do
  "$BIN" load 127.0.0.1:5060 --calls 1000 --cps 200 --hold 8 --server-pid "$SERVER" --format json >"$OUT/cps200-run$r.json"
done
python3 scripts/bench-summary.py "$OUT"
