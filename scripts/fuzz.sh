#!/usr/bin/env bash
# Long fuzzing runs, started by hand (CI runs each target for 30 s through run-fuzzers.sh).
#
#   bash scripts/fuzz.sh [SECONDS_EACH=300] [TARGET...]
#
# Builds the libFuzzer targets with clang-14 into build-fuzz/, runs each one for SECONDS_EACH seconds
# (default 5 minutes) on every core but one, seeded from its corpus in fuzz/corpus/<target>/ (and the test data
# for the GGUF reader, the tokenizers and the chat templates), then merges what it found into that corpus, so
# the repository's corpus grows with every run: commit fuzz/corpus/ afterwards. A crash leaves its input in
# fuzz/crashes/<target>/ and makes the script exit 1; the last line of each target's log says how many
# executions it ran. A summary table is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-300}"
shift || true
TESTDATA="${LLAMA_CRAB_TESTDATA_DIR:-$(pwd)/../shared/testdata}"
export LLAMA_CRAB_TESTDATA_DIR="$TESTDATA"
# LLAMA_CRAB_FUZZ_BUILD=DIR runs the targets already built there instead of building build-fuzz/.
BUILD="${LLAMA_CRAB_FUZZ_BUILD:-build-fuzz}"
JOBS="$(( $(nproc) > 1 ? $(nproc) - 1 : 1 ))"

if [ -z "${LLAMA_CRAB_FUZZ_BUILD:-}" ]; then
  bash scripts/install-deps.sh
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLLAMA_CRAB_FUZZ=ON \
    -DLLAMA_CRAB_TESTS=OFF -DLLAMA_CRAB_BENCH=OFF >/dev/null
  cmake --build "$BUILD" -j "$(nproc)"
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for bin in "$BUILD"/*_fuzz; do [ -x "$bin" ] && targets+=("$(basename "$bin")"); done
fi

# Extra seeds from the test data, per target (read-only: never merged into the repository's corpus).
extra_seeds() {
  local name="$1" dir="$2"
  case "$name" in
    gguf_reader_fuzz)
      for f in "$TESTDATA"/models/stories260K.gguf "$TESTDATA"/models/llama-2-tiny-random.gguf; do
        [ -f "$f" ] && head -c 65536 "$f" > "$dir/$(basename "$f")"
      done ;;
    chat_template_fuzz)
      cp "$TESTDATA"/templates/*.jinja "$dir/" 2>/dev/null || true ;;
    tokenizer_fuzz)
      for f in "$TESTDATA"/vocab/*.inp; do [ -f "$f" ] && head -c 4096 "$f" > "$dir/$(basename "$f")"; done ;;
  esac
}

status=0
summary=()
for name in "${targets[@]}"; do
  bin="$BUILD/$name"
  [ -x "$bin" ] || { echo "fuzz: no target $name"; status=1; continue; }
  corpus="fuzz/corpus/$name"
  crashes="fuzz/crashes/$name"
  work="$(mktemp -d)"
  mkdir -p "$corpus" "$work/new" "$work/seed"
  extra_seeds "$name" "$work/seed"
  echo "fuzz: $name for ${SECONDS_EACH}s on $JOBS job(s)"
  parallel=()
  [ "$JOBS" -gt 1 ] && parallel=(-jobs="$JOBS" -workers="$JOBS")
  set +e
  "$bin" -max_total_time="$SECONDS_EACH" -max_len=65536 -rss_limit_mb=4096 -timeout=25 -print_final_stats=1 \
    "${parallel[@]}" -artifact_prefix="$work/" "$work/new" "$corpus" "$work/seed" > "$work/log" 2>&1
  rc=$?
  set -e
  # fuzz-N.log files hold the workers' output when -jobs > 1.
  cat "$work"/fuzz-*.log >> "$work/log" 2>/dev/null || true
  rm -f fuzz-*.log
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/log" | awk '{s += $2} END {print s + 0}')"
  artifacts=("$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*)
  found=0
  for a in "${artifacts[@]}"; do
    [ -f "$a" ] || continue
    mkdir -p "$crashes"; cp "$a" "$crashes/"; found=$((found + 1))
  done
  # Keep only inputs that add coverage: merge the new ones into the repository's corpus.
  before="$(find "$corpus" -type f 2>/dev/null | wc -l)"
  mkdir -p "$corpus"
  "$bin" -merge=1 -max_len=65536 -rss_limit_mb=4096 "$corpus" "$work/new" > "$work/merge.log" 2>&1 || true
  after="$(find "$corpus" -type f 2>/dev/null | wc -l)"
  if [ "$rc" -ne 0 ] || [ "$found" -gt 0 ]; then
    echo "fuzz: $name FAILED (exit $rc, $found crash input(s) in $crashes)"; tail -n 40 "$work/log"; status=1
  fi
  summary+=("$(printf '%-24s %12s execs  %3d crashes  corpus %d -> %d' "$name" "$execs" "$found" "$before" "$after")")
  rm -rf "$work"
done
echo "== fuzz summary (${SECONDS_EACH}s each)"
printf '%s\n' "${summary[@]}"
exit $status
