#!/bin/bash
# Turns the raw lines of bench/run.sh into docs/benchmarks.md (markdown on stdout), next to the
# same figures from the first full run (bench/baseline-first-run.txt), before the fixes that
# the first run's misses asked for.
# The hand-written findings between the page's two "findings" markers are carried over as they
# are: docs/benchmarks.md is the one benchmark write-up, and a run only replaces its figures.
# Usage: bench/report.sh RAW [BASELINE]
set -euo pipefail
raw=$1
baseline=${2:-$(dirname "$0")/baseline-first-run.txt}
page=$(dirname "$0")/../docs/benchmarks.md
findings=$(sed -n '/^<!-- findings:/,/^<!-- end of findings -->/p' "$page")
[ -n "$findings" ] || { echo "report.sh: no findings markers in $page" >&2; exit 1; }

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
val() { grep -o "$1=[0-9.]*" | head -1 | cut -d= -f2; }
val_all() { grep -o "$1=[0-9.]*" | cut -d= -f2; }
ratio() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN {if (a > 0) printf f, b / a; else print "-"}'; }
ok() { awk -v a="$1" -v b="$2" -v op="$3" 'BEGIN { if ((op=="<=" && a<=b) || (op==">=" && a>=b)) print "met"; else print "**missed**" }'; }

# metrics RAW: "key<TAB>value" lines, the table's figures and the ratios its targets judge.
metrics() {
  local f=$1 l
  line() { grep "^P3 $1 $2 " "$f" || true; }
  p3() { echo "$(line "$1" "$2" | val p50_us) / $(line "$1" "$2" | val p99_us)"; }
  local p1a p1b p1r p2a p2b p2r p2n in0 in99 so0 so99 idle full
  p1a=$(grep '^P1' "$f" | grep -o 'builtin_ms=[0-9]*' | cut -d= -f2 | median)
  p1b=$(grep '^P1' "$f" | grep -o 'ours_ms=[0-9]*' | cut -d= -f2 | median)
  p1r=$(grep '^P1' "$f" | awk '{split($2,a,"="); split($3,b,"="); printf "%.4f\n", b[2]/a[2]}' | median)
  # P2: one burst per network per round (the first run had one round, without round=).
  p2a=$(grep '^P2.* builtin wall_ms' "$f" | val_all wall_ms | median)
  p2b=$(grep '^P2.* ours wall_ms' "$f" | val_all wall_ms | median)
  p2r=$(paste <(grep '^P2.* builtin wall_ms' "$f" | val_all wall_ms) <(grep '^P2.* ours wall_ms' "$f" | val_all wall_ms) |
        awk '{printf "%.3f\n", $2 / $1}' | median)
  p2n=$(grep -c '^P2.* ours wall_ms' "$f")
  in0=$(line inprocess 0 | val p50_us); in99=$(line inprocess 99 | val p50_us)
  so0=$(line socket 0 | val p50_us); so99=$(line socket 99 | val p50_us)
  idle=$(grep 'idle_rss_kib' "$f" | val idle_rss_kib); full=$(grep 'full_rss_kib' "$f" | val full_rss_kib)
  printf 'n1\t%s\n' "$(grep -c '^P1' "$f")"
  printf 'p1\t%s ms / %s ms, ratio %s\n' "$p1a" "$p1b" "$p1r"
  printf 'p1r\t%s\n' "$p1r"
  printf 'p2\t%s ms / %s ms, ratio %s (%s round%s)\n' "$p2a" "$p2b" "$p2r" "$p2n" "$([ "$p2n" = 1 ] || echo s)"
  printf 'p2r\t%s\n' "$p2r"
  printf 'p3in\t%s; %s; %s; %s (ratio %s)\n' "$(p3 inprocess 0)" "$(p3 inprocess 50)" "$(p3 inprocess 90)" \
    "$(p3 inprocess 99)" "$(ratio "$in0" "$in99" %.2f)"
  printf 'p3inr\t%s\n' "$(ratio "$in0" "$in99" %.2f)"
  printf 'p3so\t%s; %s; %s; %s (ratio %s)\n' "$(p3 socket 0)" "$(p3 socket 50)" "$(p3 socket 90)" \
    "$(p3 socket 99)" "$(ratio "$so0" "$so99" %.2f)"
  printf 'p3sor\t%s\n' "$(ratio "$so0" "$so99" %.2f)"
  printf 'p4\t%s / %s / %s\n' "$(grep 'clients=1 ' "$f" | val allocations_per_s)" \
    "$(grep 'clients=8 ' "$f" | val allocations_per_s)" "$(grep 'clients=32 ' "$f" | val allocations_per_s)"
  printf 'p4r\t%s\n' "$(grep 'clients=8 ' "$f" | val allocations_per_s)"
  local anon file split=""
  anon=$(grep 'full_anon_kib' "$f" | val full_anon_kib || true)
  file=$(grep 'full_file_kib' "$f" | val full_file_kib || true)
  [ -n "$anon" ] && split=" (heap and stacks $(awk -v k="$anon" 'BEGIN {printf "%.1f", k/1024}') MiB, mapped files $(awk -v k="$file" 'BEGIN {printf "%.1f", k/1024}') MiB)"
  printf 'p5\t%s MiB; %s MiB%s\n' "$(awk -v k="$idle" 'BEGIN {printf "%.1f", k/1024}')" \
    "$(awk -v k="$full" 'BEGIN {printf "%.1f", k/1024}')" "$split"
  printf 'p5r\t%s\n' "$full"
  # Runs before five starts were measured wrote one full_start_ms.
  local starts; starts=$(grep -o '^P5 start_ms=[0-9]*' "$f" | cut -d= -f2 || true)
  [ -n "$starts" ] || starts=$(grep 'full_start_ms' "$f" | val full_start_ms)
  local p5max; p5max=$(sort -n <<< "$starts" | tail -1)
  if [ "$(wc -l <<< "$starts")" -gt 1 ]; then
    printf 'p5s\t%s ms (median of %s starts; slowest %s ms)\n' "$(median <<< "$starts")" "$(wc -l <<< "$starts")" "$p5max"
  else
    printf 'p5s\t%s ms\n' "$starts"
  fi
  printf 'p5sr\t%s\n' "$p5max"
}

declare -A now before
while IFS=$'\t' read -r k v; do now[$k]=$v; done < <(metrics "$raw")
while IFS=$'\t' read -r k v; do before[$k]=$v; done < <(metrics "$baseline")
row() {  # row ID WHAT KEY TARGET VERDICT
  echo "| $1 | $2 | ${before[$3]} | ${now[$3]} | $4 | $5 |"
}

cat <<MD
# Benchmarks

Written by \`sudo bench/run.sh\` on $(date -u +%Y-%m-%d) — $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)),
$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, kernel $(uname -r), dockerd $(dockerd --version | awk '{print $3}' | tr -d ,).
Code: commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- . ':!docs' 2>/dev/null || echo " with local changes").
Numbers from one run on a shared virtual machine; rerun to compare. "First run" is the same
suite on commit c657346, before the fixes described below (its raw lines:
\`bench/baseline-first-run.txt\`); "this run" is the current code.

| id | what | first run | this run | target | status (this run) |
|---|---|---|---|---|---|
$(row P1 "\`docker run --rm\` interleaved A/B, n=${now[n1]} each: median built-in macvlan / static-macvlan, median pairwise ratio" p1 "ratio ≤ 1.02" "$(ok "${now[p1r]}" 1.02 "<=")")
$(row P2 "parallel \`docker run -d\` (20 at once; 3 with --quick) per network, rounds alternating: median wall time built-in / ours, median of the per-round ratios" p2 "ratio ≤ 1.05" "$(ok "${now[p2r]}" 1.05 "<=")")
$(row P3 "RequestAddress+ReleaseAddress p50 / p99 (µs) in process at 0 / 50 / 90 / 99 % of a /16" p3in "p50 at 99 % ≤ 1.2 × p50 at 0 %" "$(ok "${now[p3inr]}" 1.2 "<=")")
$(row P3 "the same over the socket, each change committed to LMDB before the reply" p3so "same" "$(ok "${now[p3sor]}" 1.2 "<=")")
$(row P4 "durable allocations per second with 1 / 8 / 32 socket clients" p4 "≥ 2,000/s at 8 clients" "$(ok "${now[p4r]}" 2000 ">=")")
$(row P5 "RSS idle; RSS with 65,536 reservations and 50 networks" p5 "≤ 16 MiB" "$(ok "${now[p5r]}" 16384 "<=")")
$(row P5 "process start to socket ready with 65,536 reservations and 50 networks" p5s "≤ 300 ms (every start)" "$(ok "${now[p5sr]}" 300 "<=")")

$findings

Raw lines of this run:

\`\`\`
$(cat "$raw")
\`\`\`
MD
