#!/usr/bin/env bash
# Runs every libFuzzer binary in a build folder for a bounded time, seeded from fuzz/corpus/<name> and,
# for the GGUF reader and tokenizers, from the test data. Fails on the first crash.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${1:-build-fuzz}"
SECONDS_EACH="${2:-30}"
TESTDATA="${LLAMA_CRAB_TESTDATA_DIR:-$(pwd)/../shared/testdata}"
status=0
for bin in "$BUILD"/*_fuzz; do
  [ -x "$bin" ] || continue
  name="$(basename "$bin")"
  work="$(mktemp -d)"
  seeds=()
  [ -d "fuzz/corpus/$name" ] && seeds+=("fuzz/corpus/$name")
  if [ "$name" = "gguf_reader_fuzz" ] && [ -d "$TESTDATA/models" ]; then
    mkdir -p "$work/seed"
    # Small models only: libFuzzer's default max input length would truncate the others anyway.
    for f in "$TESTDATA"/models/stories260K.gguf "$TESTDATA"/models/llama-2-tiny-random.gguf; do
      [ -f "$f" ] && head -c 65536 "$f" > "$work/seed/$(basename "$f")"
    done
    seeds+=("$work/seed")
  fi
  echo "fuzz: $name for ${SECONDS_EACH}s"
  if ! "$bin" -max_total_time="$SECONDS_EACH" -max_len=65536 -rss_limit_mb=4096 -print_final_stats=0 \
        -artifact_prefix="$work/" "$work" "${seeds[@]}" > "$work/log" 2>&1; then
    echo "fuzz: $name FAILED"; tail -n 40 "$work/log"; status=1
  else
    echo "fuzz: $name ok ($(grep -c . "$work/log" || true) log lines)"
  fi
  rm -rf "$work"
done
exit $status
