#!/bin/bash
# Fails when a tracked C++ file differs from what clang-format 14 makes of it (.clang-format).
# Fix with: scripts/check-format.sh --fix
set -euo pipefail
cd "$(dirname "$0")/.."
format=$(command -v clang-format-14 || command -v clang-format)
mapfile -t files < <(git ls-files '*.cc' '*.h')
if [ "${1:-}" = "--fix" ]; then
  "$format" -i "${files[@]}"
  exit 0
fi
if ! "$format" --dry-run --Werror "${files[@]}" 2>/tmp/smv-format.$$; then
  grep -m 20 'error:' /tmp/smv-format.$$ >&2 || true
  echo "check-format.sh: $(grep -c 'error:' /tmp/smv-format.$$) places differ from .clang-format; run scripts/check-format.sh --fix" >&2
  rm -f /tmp/smv-format.$$
  exit 1
fi
rm -f /tmp/smv-format.$$
echo "check-format.sh: ${#files[@]} files formatted as .clang-format says"
