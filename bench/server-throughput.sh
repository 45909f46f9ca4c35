#!/usr/bin/env bash
# Continuous batching throughput: 4 concurrent clients against 4 sequential runs of the same requests on one server
# (a ~100M-parameter Q4_0 model, so a step is dominated by reading the weights). Prints both rates and their ratio,
# best of ROUNDS interleaved rounds. A measurement, not a test: the figure depends on what else the machine runs.
#   bench/server-throughput.sh [path/to/llama-crab] [threads] [rounds]
set -euo pipefail
BIN=${1:-build/llama-crab}
THREADS=${2:-1}
ROUNDS=${3:-3}
TOKENS=48
DIR=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$DIR"' EXIT
"$BIN" make-model --n-embd 1024 --n-layer 8 --n-head 16 --n-head-kv 16 --n-ff 2816 --type q4_0 --threads 2 \
    "$DIR/m.gguf" >/dev/null 2>&1
"$BIN" serve --model "$DIR/m.gguf" --host 127.0.0.1 --port 0 --slots 4 --ctx-size 256 --threads "$THREADS" \
    >"$DIR/log" 2>&1 &
PID=$!
PORT=
for _ in $(seq 600); do
    PORT=$(grep -o 'http://127.0.0.1:[0-9]*' "$DIR/log" | head -1 | sed 's/.*://') || true
    [ -n "$PORT" ] && curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
    sleep 0.1
done
[ -n "$PORT" ] || { echo "the server did not start:"; cat "$DIR/log"; exit 1; }
post() {
    curl -sf -o /dev/null -H 'Content-Type: application/json' "http://127.0.0.1:$PORT/v1/completions" \
        -d "{\"prompt\":\"$1\",\"max_tokens\":$TOKENS,\"temperature\":0,\"ignore_eos\":true}"
}
PROMPTS=("Once upon a time" "The little dog" "Tom liked to play" "In the park there was")
now() { date +%s.%N; }
post "warm up"
best_seq=1000000 best_conc=1000000
for _ in $(seq "$ROUNDS"); do
    t0=$(now); for p in "${PROMPTS[@]}"; do post "$p"; done; t1=$(now)
    pids=(); for p in "${PROMPTS[@]}"; do post "$p" & pids+=($!); done; wait "${pids[@]}"; t2=$(now)
    best_seq=$(awk -v a="$t0" -v b="$t1" -v best="$best_seq" 'BEGIN { d = b - a; print (d < best ? d : best) }')
    best_conc=$(awk -v a="$t1" -v b="$t2" -v best="$best_conc" 'BEGIN { d = b - a; print (d < best ? d : best) }')
done
awk -v s="$best_seq" -v c="$best_conc" -v n=$((4 * TOKENS)) -v r="$ROUNDS" -v t="$THREADS" 'BEGIN {
    printf "sequential %.1f tok/s, 4 concurrent %.1f tok/s, ratio %.2f (best of %d, --threads %d)\n", n / s, n / c, s / c, r, t }'
