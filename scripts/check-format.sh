#!/bin/bash
# Fails when a tracked C++ file differs from what clang-format 14 makes of it (.clang-format), or
# when a product function (common/, daemon/, driver/, engine/, identity/, ipam/; not tests/,
# bench/ or the fuzz targets) is over 60 lines (.clang-tidy: readability-function-size).
# Fix the format with: scripts/check-format.sh --fix (long functions are split by hand).
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

# The function-length limit. clang-tidy reads each file with the flags the build compiles it
# with: a configure-only build directory of the product alone (no tests, benchmarks or fuzz
# targets) gives it them in about a second, so this check needs no build before it. Unity
# sources, as scripts/test.sh builds: each clang-tidy run parses the heavy headers once for a
# whole target instead of once per file, half the time of a file-by-file run.
tidy=$(command -v clang-tidy-14 || command -v clang-tidy) || {
  echo "check-format.sh: no clang-tidy-14 here for the function-length check: sudo scripts/install-deps.sh --test" >&2
  exit 1
}
db=${SMV_TIDY_BUILD_DIR:-build-tidy-db}
cmake -S . -B "$db" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DCMAKE_UNITY_BUILD=ON -DBUILD_TESTING=OFF \
  -DSMV_BENCH=OFF -DSMV_FUZZ=OFF >/dev/null
mapfile -t units < <(sed -n 's/^ *"file": "\(.*\)",\?$/\1/p' "$db/compile_commands.json")
product='(common|daemon|driver|engine|etcd|identity|ipam)/'
# A unity source includes the product's .cc files by their path here; the headers come in
# through the build directory's per-library include folders (cmake/SmvLibrary.cmake).
root=$(printf '%s' "$PWD" | sed 's/[][\\.*^$+?(){}|]/\\&/g')  # the path as a regex
filter="^$root/$product|/include/smv_[a-z_]+/$product"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
started=$SECONDS
# A unit that does not compile is an error of its own (clang-tidy's exit status), named below.
tidy_ok=yes
printf '%s\n' "${units[@]}" | xargs -P "$(nproc)" -n 1 "$tidy" -p "$db" --quiet --header-filter="$filter" \
  >"$out" 2>&1 || tidy_ok=no
# "FILE:LINE:COL: note: N lines including whitespace and comments (threshold 60)" follows the
# warning that names the function; one line per function, even when several units include it.
long=$(awk -v root="$PWD/" '
  /warning: function .* exceeds recommended size/ { split($0, w, "'\''"); name = w[2]; next }
  /note: [0-9]+ lines including whitespace/ {
    loc = $1; sub(/: *$/, "", loc); if (index(loc, root) == 1) loc = substr(loc, length(root) + 1); sub(/^.*\/include\/smv_[a-z_]+\//, "", loc)
    print "  " loc " " name "(): " $3 " lines" }' "$out" | sort -u)
if [ -n "$long" ]; then
  echo "check-format.sh: $(echo "$long" | wc -l) function(s) over the limit of 60 lines (.clang-tidy);" \
    "split each into steps with names of their own:" >&2
  echo "$long" >&2
  exit 1
fi
if [ $tidy_ok = no ]; then
  grep -E 'error:|Error while processing' "$out" | sort -u | head -20 >&2
  echo "check-format.sh: clang-tidy could not read every product file (above); the function-length check did not run" >&2
  exit 1
fi
echo "check-format.sh: no product function over 60 lines (${#units[@]} units, $((SECONDS - started)) s)"
