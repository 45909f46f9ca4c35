#!/usr/bin/env bash
# Installs the openai npm client (the version pinned by package-lock.json) into DEST, with the test script, so
# that `node DEST/openai_client.mjs` resolves it. Reinstalls only when the lockfile changed.
set -euo pipefail
DEST="${1:?usage: install.sh DEST}"
SRC="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$DEST"
cp "$SRC/package.json" "$SRC/openai_client.mjs" "$DEST/"
if [ -d "$DEST/node_modules/openai" ] && cmp -s "$SRC/package-lock.json" "$DEST/package-lock.json"; then
  exit 0
fi
cp "$SRC/package-lock.json" "$DEST/"
cd "$DEST"
npm ci --no-audit --no-fund --loglevel=error
