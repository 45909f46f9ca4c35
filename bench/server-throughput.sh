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
    "$DIR/m.gguf" 2>/dev/null
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
best_seq=1e9 best_conc=1e9
for _ in $(seq "$ROUNDS"); do
    t0=$(now); for p in "${PROMPTS[@]}"; do post "$p"; done; t1=$(now)
    for p in "${PROMPTS[@]}"; do post "$p" & done; wait $(jobs -p | grep -v "^$PID$") 2>/dev/null || true; t2=$(now)
    best_seq=$(echo "s=$t1-$t0; if (s < $best_seq) s else $best_seq" | bc -l)
    best_conc=$(echo "c=$t2-$t1; if (c < $best_conc) c else $best_conc" | bc -l)
done
total=$((4 * TOKENS))
printf 'sequential %.1f tok/s, 4 concurrent %.1f tok/s, ratio %.2f (best of %d, --threads %d)\n' \
    "$(echo "$total/$best_seq" | bc -l)" "$(echo "$total/$best_conc" | bc -l)" "$(echo "$best_seq/$best_conc" | bc -l)" \
    "$ROUNDS" "$THREADS"
