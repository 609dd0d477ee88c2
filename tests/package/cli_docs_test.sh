#!/bin/bash
# The man page and the bash completion that scripts/cli-docs.sh makes (scripts/package.sh puts
# both in the .deb) hold every command and option the binary's --help shows; the man page has
# FILES, ENVIRONMENT (every SMV_* variable) and EXIT STATUS; the completion completes commands,
# options and values in bash. The commands and options are read from --help here with a parser of
# this test's own, and the checks are shown to fail on a page or completion missing one option.
# Usage: tests/package/cli_docs_test.sh BINARY
set -euo pipefail
# Under pipefail, "producer | grep -q" fails at random: grep -q ends at its first match and the
# producer, still writing, dies of SIGPIPE. Every check here lets grep read its whole input.
binary=$(readlink -f "$1")
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
pass() { echo "ok: $*"; }

# PATH|option|NAME and PATH|command|NAME for every command below static-macvlan, from --help:
# option names start the lines that start with "  -"; commands are listed under "Subcommands:".
cli_facts() {
  local path=$1 help sub
  # shellcheck disable=SC2086  # the path's words are arguments
  help=$("$binary" ${path#static-macvlan} --help)
  grep -oE '^  -[^ ]+' <<< "$help" | tr -d ' ' | tr ',' '\n' | sed "s/^/$path|option|/"
  while read -r sub; do
    echo "$path|command|$sub"
    cli_facts "$path $sub"
  done < <(awk 'tolower($0) == "subcommands:" { listed = 1; next } /^$/ { listed = 0 } listed' <<< "$help" |
    grep -oE '^  [a-z][^ ]*')
}

# The man page as text: font changes dropped, \- as -.
man_text() { sed 's/\\f[BIRP]//g; s/\\-/-/g; s/\\e/\\/g' "$1"; }

# The lines of man page section $2 (a .SH name or a .SS command) of page text $1.
man_section() {
  awk -v want="$2" '
    /^\.S[HS] / { name = $0; sub(/^\.S[HS] /, "", name); gsub(/"/, "", name); inside = (name == want); next }
    inside
  ' <<< "$1"
}

# A word that names option $1 in text: not part of a longer option.
option_pattern() { echo "(^|[^-a-z0-9])$1([^-a-z0-9]|$)"; }

# Every command in its own subsection with each of its options; the top command's options anywhere.
check_man() {
  local text line path kind name missing=0
  text=$(man_text "$1")
  while IFS='|' read -r path kind name; do
    if [ "$path" = static-macvlan ]; then
      [ "$kind" = option ] || continue
      grep -qE -- "$(option_pattern "$name")" <<< "$text" || { echo "man page: no $name"; missing=1; }
    elif [ "$kind" = option ]; then
      man_section "$text" "${path#static-macvlan }" | grep -E -- "$(option_pattern "$name")" >/dev/null ||
        { echo "man page: \"${path#static-macvlan }\" has no $name"; missing=1; }
    else
      line="${path#static-macvlan} $name"
      grep -qxF ".SS \"${line# }\"" <<< "$text" || { echo "man page: no section for \"${line# }\""; missing=1; }
    fi
  done <<< "$facts"
  return $missing
}

# What the completion offers for a command line whose last word is being completed.
complete_line() {
  (
    set +eu
    # shellcheck disable=SC1090
    source "$completion"
    COMP_WORDS=("$@")
    COMP_CWORD=$(($# - 1))
    _static_macvlan
    printf '%s\n' "${COMPREPLY[@]}"
  )
}

# Every command's options after "-", its commands after nothing (one bash for all: it is quicker).
check_completion() {
  (
    set +eu
    # shellcheck disable=SC1090
    source "$1"
    missing=0
    while IFS='|' read -r path kind name; do
      read -r -a COMP_WORDS <<< "$path"
      if [ "$kind" = option ]; then COMP_WORDS+=(-); else COMP_WORDS+=(""); fi
      COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
      _static_macvlan
      printf '%s\n' "${COMPREPLY[@]}" | grep -xF -- "$name" >/dev/null ||
        { echo "completion: \"$path\" does not offer $name"; missing=1; }
    done <<< "$facts"
    exit $missing
  )
}

facts=$(cli_facts static-macvlan)
for want in "static-macvlan|command|compose" "static-macvlan compose|command|pin" \
  "static-macvlan serve|option|--net-sysctl-dir" "static-macvlan exec|option|--docker-host"; do
  grep -qxF "$want" <<< "$facts" || fail "this test's own reading of --help misses $want: $(echo "$facts" | head -5)"
done
pass "--help shows $(grep -c '|command|' <<< "$facts") commands and $(grep -c '|option|' <<< "$facts") option names"

"$root/scripts/cli-docs.sh" man "$binary" 0.0-test > "$work/static-macvlan.8"
"$root/scripts/cli-docs.sh" completion "$binary" > "$work/completion.bash"
bash -n "$work/completion.bash" || fail "the completion does not parse"

check_man "$work/static-macvlan.8" || fail "the man page lacks commands or options (above)"
pass "the man page has every command and option"
check_completion "$work/completion.bash" || fail "the completion lacks commands or options (above)"
pass "the completion offers every command and option"

# The checks notice one option missing.
grep -v -- 'net\\-sysctl\\-dir' "$work/static-macvlan.8" > "$work/cut.8"
! check_man "$work/cut.8" > "$work/cut.out" || fail "check_man passes a page without --net-sysctl-dir"
grep -q 'serve" has no --net-sysctl-dir' "$work/cut.out" || fail "check_man: $(cat "$work/cut.out")"
sed 's/ --net-sysctl-dir / /' "$work/completion.bash" > "$work/cut.bash"
! check_completion "$work/cut.bash" > "$work/cut.out" || fail "check_completion passes one without --net-sysctl-dir"
grep -q 'serve" does not offer --net-sysctl-dir' "$work/cut.out" || fail "check_completion: $(cat "$work/cut.out")"
pass "both checks fail on a man page or completion without serve --net-sysctl-dir"

# Sections: EXIT STATUS as the binary behaves, every SMV_* variable, the files.
text=$(man_text "$work/static-macvlan.8")
exit_status=$(man_section "$text" "EXIT STATUS")
for code in 0 1 2; do
  grep -qxF ".B $code" <<< "$exit_status" || fail "EXIT STATUS has no $code: $exit_status"
done
"$binary" --help > /dev/null || fail "--help exits $? (the page says 0)"
set +e
"$binary" bogus-command 2> /dev/null
usage=$?
"$binary" serve --no-such-option 2> /dev/null
option=$?
"$binary" reservations --socket "$work/absent.sock" ls 2> /dev/null
failed=$?
set -e
if [ "$usage" != 2 ] || [ "$option" != 2 ]; then fail "usage errors exit $usage and $option (the page says 2)"; fi
[ "$failed" = 1 ] || fail "a command that fails exits $failed (the page says 1)"
pass "EXIT STATUS 0, 1, 2 as the binary exits"

environment=$(man_section "$text" ENVIRONMENT)
variables=$(while read -r path; do
  # shellcheck disable=SC2086
  "$binary" ${path#static-macvlan} --help | grep -oE '\(Env:[A-Z0-9_]+\)' | sed 's/(Env:\(.*\))/\1/'
done < <(cut -d'|' -f1 <<< "$facts" | sort -u) | sort -u)
[ "$(wc -l <<< "$variables")" -ge 10 ] || fail "--help shows only these variables: $variables"
for variable in $variables; do
  grep -qxF ".B $variable" <<< "$environment" || fail "ENVIRONMENT has no $variable"
done
grep -A1 -xF '.B SMV_STORE' <<< "$environment" | grep -- '--store of serve, fsck' >/dev/null ||
  fail "ENVIRONMENT does not say SMV_STORE is --store of serve and fsck: $(grep -A1 -F SMV_STORE <<< "$environment")"
pass "ENVIRONMENT names all $(wc -l <<< "$variables") variables, each with its option and commands"

files=$(man_section "$text" FILES)
for path in /var/lib/static-macvlan/ data.mdb /run/docker/plugins/static-macvlan.sock /etc/default/static-macvlan \
  /lib/systemd/system/static-macvlan.service /etc/init.d/static-macvlan /var/log/static-macvlan.log \
  /run/static-macvlan.pid; do
  grep -qF -- "$path" <<< "$files" || fail "FILES has no $path"
done
# The packaged paths are the ones scripts/package.sh and the init script use.
grep -q 'PIDFILE=/run/static-macvlan.pid' "$root/plugin-config/static-macvlan.init" || fail "the init script's pid file moved"
grep -q 'LOGFILE=/var/log/static-macvlan.log' "$root/plugin-config/static-macvlan.init" || fail "the init script's log moved"
grep -q '/lib/systemd/system/static-macvlan.service' "$root/scripts/package.sh" || fail "package.sh puts the unit elsewhere"
pass "FILES has the state directory, socket, defaults, unit, init script, log and pid file"

# Completion in bash, as a user types.
completion=$work/completion.bash
expect() {  # EXPECTED WORDS...: the completion of WORDS offers EXPECTED (and, if "only", nothing else)
  local expected=$1 offered
  shift
  offered=$(complete_line "$@")
  grep -qxF -- "$expected" <<< "$offered" || fail "static-macvlan ${*:2}<TAB> offers \"$offered\", not $expected"
}
expect_only() {
  local expected=$1 offered
  shift
  offered=$(complete_line "$@")
  [ "$offered" = "$expected" ] || fail "static-macvlan ${*:2}<TAB> offers \"$offered\", want only $expected"
}
expect_only pin static-macvlan compose p
expect_only --net-sysctl-dir static-macvlan serve --net-s
expect_only --etcd-password-file static-macvlan fsck --etcd-p
expect_only --docker-host static-macvlan exec --dock
expect_only --json static-macvlan reservations --socket /x ls --j
expect_only ls static-macvlan reservations --docker-host unix:///x l
# As bash splits at COMP_WORDBREAKS (= and :).
expect_only --json static-macvlan reservations --docker-host unix : ///x ls --j
expect_only --project static-macvlan compose --socket = /x pin --proj
expect_only debug static-macvlan serve --log-level d
expect_only debug static-macvlan serve --log-level = d
mkdir "$work/sysctl.d"
expect_only "$work/sysctl.d" static-macvlan serve --net-sysctl-dir "$work/sysctl"
expect_only "$work/sysctl.d" static-macvlan serve --net-sysctl-dir = "$work/sysctl"
expect serve static-macvlan ""
expect --version static-macvlan -
expect --project static-macvlan compose pin -
expect bash static-macvlan exec --docker-host unix:///x web -- bas
# Docker names from the docker CLI (a stand-in here).
mkdir "$work/bin"
cat > "$work/bin/docker" <<'DOCKER'
#!/bin/sh
case "$1" in network) echo web-net ;; ps) echo web-1 ;; esac
DOCKER
chmod +x "$work/bin/docker"
PATH=$work/bin:$PATH
expect_only web-net static-macvlan reservations ls --network w
expect_only web-net static-macvlan reservations import --from-docker = w
expect_only web-1 static-macvlan exec w
expect_only web-1 static-macvlan exec --docker-host unix : ///x w
expect bash static-macvlan exec --docker-host unix : ///x web-1 -- bas
expect_only "" static-macvlan serve --db-size-mib ""
pass "bash completes compose p -> pin, serve --net-s -> --net-sysctl-dir, values and the command of exec"
