#!/usr/bin/env bash
# Compiles every C++ sample in docs/*.md, so the guides cannot drift from the code. Run by ctest (doc_samples).
#
#   scripts/check-doc-samples.sh --build-dir BUILD [--cxx g++] [--sanitize ON|OFF] [--keep DIR] [FILE.md...]
#
# Two kinds of fenced blocks are checked; every other fence (```text, ```sh, ```json...) is ignored:
#   ```cpp            a whole program: compiled and linked against include/ and BUILD/libllama_crab.a. It must have
#                     main() and include what it uses.
#   ```cpp fragment   statements: compiled as the body of
#                         llama_crab::Status doc_fragment(llama_crab::Llama& llama) { <block> return {}; }
#                     with every public header included and `using namespace llama_crab;`. Use it for a few lines
#                     that need a loaded model: `llama` is one, and the block may `return` an Error (LC_TRY works).
# Fences must start at the beginning of a line. Compiler messages point at the Markdown file and line (#line).
# Flags: -std=c++20 -Wall -Wextra -Werror (fragments may leave variables unused).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build=""
cxx="${CXX:-g++}"
sanitize="OFF"
keep=""
files=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build="$2"; shift 2 ;;
    --cxx) cxx="$2"; shift 2 ;;
    --sanitize) sanitize="$2"; shift 2 ;;
    --keep) keep="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "check-doc-samples: unknown option $1" >&2; exit 2 ;;
    *) files+=("$1"); shift ;;
  esac
done
[[ -n "$build" ]] || { echo "check-doc-samples: --build-dir is required" >&2; exit 2; }
lib="$build/libllama_crab.a"
[[ -f "$lib" ]] || { echo "check-doc-samples: $lib not found (build the library first)" >&2; exit 2; }
if [[ ${#files[@]} -eq 0 ]]; then
  shopt -s nullglob
  files=("$root"/docs/*.md)
fi

flags=(-std=c++20 -Wall -Wextra -Werror -I"$root/include")
case "${sanitize^^}" in
  ON|TRUE|1|YES) flags+=(-fsanitize=address,undefined -fno-omit-frame-pointer) ;;
esac
# What libllama_crab.a itself links (its PRIVATE dependencies in CMakeLists.txt).
libs=("$lib" $(pkg-config --libs libpcre2-8 libutf8proc libzstd libxxhash) -lsqlite3 -lssl -lcrypto -lfmt -pthread)

work="${keep:-$(mktemp -d)}"
mkdir -p "$work"
[[ -n "$keep" ]] || trap 'rm -rf "$work"' EXIT

headers=""
for h in "$root"/include/llama_crab/*.h; do headers+="#include \"llama_crab/$(basename "$h")\""$'\n'; done

n=0
failed=0
for md in "${files[@]}"; do
  rel="${md#"$root"/}"
  # Split the file into blocks: <work>/<name>.<n>.<kind>.<start line>, listed in order in <work>/<name>.list.
  prefix="$work/$(basename "$md" .md)"
  awk -v prefix="$prefix" '
    !inside && /^```cpp[ \t]*$/ { inside = 1; kind = "program"; start = NR + 1; out = prefix "." ++count "." kind "." start; printf "" > out; print out; next }
    !inside && /^```cpp[ \t]+fragment[ \t]*$/ { inside = 1; kind = "fragment"; start = NR + 1; out = prefix "." ++count "." kind "." start; printf "" > out; print out; next }
    inside && /^```[ \t]*$/ { inside = 0; close(out); next }
    inside { print >> out }
    END { if (inside) { print FILENAME ": unterminated ```cpp block starting at line " start - 1 > "/dev/stderr"; exit 1 } }
  ' "$md" > "$prefix.list" || { failed=$((failed + 1)); n=$((n + 1)); continue; }
  mapfile -t blocks < "$prefix.list"
  for block in "${blocks[@]}"; do
    kind="$(echo "$block" | awk -F. '{print $(NF-1)}')"
    line="${block##*.}"
    src="$block.cpp"
    n=$((n + 1))
    if [[ "$kind" == "program" ]]; then
      { echo "#line $line \"$rel\""; cat "$block"; } > "$src"
      cmd=("$cxx" "${flags[@]}" "$src" -o "$block.out" "${libs[@]}")
    else
      { echo "$headers"
        echo "#include <cmath>"; echo "#include <cstdint>"; echo "#include <cstdio>"; echo "#include <iostream>"; echo "#include <memory>"
        echo "#include <string>"; echo "#include <vector>"
        echo "using namespace llama_crab;"
        echo "[[maybe_unused]] static Status doc_fragment([[maybe_unused]] Llama& llama) {"
        echo "#line $line \"$rel\""
        cat "$block"
        echo "return {};"
        echo "}"; } > "$src"
      cmd=("$cxx" "${flags[@]}" -Wno-unused-variable -Wno-unused-but-set-variable -c "$src" -o "$block.o")
    fi
    if output="$("${cmd[@]}" 2>&1)"; then
      echo "ok      $rel:$((line - 1)) ($kind)"
    else
      echo "FAILED  $rel:$((line - 1)) ($kind)"
      echo "$output" | sed 's/^/    /'
      failed=$((failed + 1))
    fi
  done
done

if [[ $n -eq 0 ]]; then
  echo "check-doc-samples: no \`\`\`cpp blocks found in ${files[*]:-docs/}" >&2
  exit 1
fi
echo "$((n - failed)) of $n doc samples compile"
[[ $failed -eq 0 ]]
