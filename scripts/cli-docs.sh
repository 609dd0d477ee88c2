#!/bin/bash
# The man page and the bash completion of static-macvlan, made from the binary's own --help
# (CLI11: Options:, Positionals: and Subcommands: sections), walked command by command. A command
# or option added to the CLI appears in both without a list to edit here.
# Usage: scripts/cli-docs.sh completion BINARY     the bash completion script
#        scripts/cli-docs.sh man BINARY VERSION    the man page (section 8, roff; help2man)
#        scripts/cli-docs.sh tree BINARY           the command tree, one fact a line (PATH: the command,
#                                                  e.g. "static-macvlan reservations ls"):
#          PATH|command|NAME|DESCRIPTION                    a command below PATH
#          PATH|option|NAMES|KIND|ENV|DEFAULT|DESCRIPTION   NAMES: -p,--project; KIND: value or flag;
#                                                           ENV: its SMV_* variable (or empty)
#          PATH|positional|NAME|one or many|DESCRIPTION     an argument; many: it repeats
# Needs bash, awk and help2man (build dependencies).
set -euo pipefail

usage() {
  sed -n '5,12s/^# \{0,1\}//p' "$0" >&2
  exit 2
}

# --help of the command at PATH ("static-macvlan reservations ls"), as a user runs it.
help_of() {
  local path=$1
  # shellcheck disable=SC2086  # the path's words are the command's arguments
  (exec -a static-macvlan "$binary" ${path#static-macvlan} --help)
}

# The column where CLI11 starts an option's description in --help (as in -h,--help's line).
help_column() {
  awk '/Print this help message and exit/ { found = index($0, "Print this help message") - 1 } END { print found + 0 }'
}

# The facts of one command's --help (see Usage), prefixed with its PATH. CLI11 writes an option
# as "  NAMES [TYPE[=DEFAULT]] [(Env:VAR)]", padded to a column where its description starts (on
# the next line when the names are longer), and a description's further lines at that column.
parse_help() {
  local help column
  help=$(cat)
  column=$(help_column <<< "$help")
  awk -v path="$1" -v column="$column" '
    function flush() {
      if (fact != "") print fact "|" description
      fact = ""; description = ""
    }
    # "Options:", "Positionals:", "Subcommands:" (upper case in CLI11 2.3 and later)
    /^[A-Za-z][A-Za-z ]*:$/ { flush(); section = tolower($0); next }
    /^$/ { flush(); section = ""; next }
    section == "" { next }
    /^  [^ ]/ {
      flush()
      names = $0; description = ""
      if (column > 0 && length($0) > column && substr($0, column, 1) == " ") {
        names = substr($0, 1, column); description = substr($0, column + 1)
      }
      split(names, field, " ")
      if (section == "subcommands:") { fact = path "|command|" field[1]; next }
      if (section == "positionals:") {
        fact = path "|positional|" field[1] "|" (index(names, " ...") ? "many" : "one"); next
      }
      env = ""; default = ""
      if (match(names, /\(Env:[A-Za-z0-9_]+\)/)) env = substr(names, RSTART + 5, RLENGTH - 6)
      # After the names a TYPE (TEXT, UINT, ...) when the option takes a value, with "=DEFAULT".
      kind = (field[2] ~ /^[A-Z][A-Z0-9_]*([=:].*)?$/) ? "value" : "flag"
      spec = names; sub(/ *\(Env:.*/, "", spec); sub(/ +$/, "", spec)
      if (kind == "value" && match(spec, /=[^ =]+$/)) default = substr(spec, RSTART + 1)
      fact = path "|option|" field[1] "|" kind "|" env "|" default
      next
    }
    /^   / && fact != "" { line = $0; sub(/^ +/, "", line); description = description (description == "" ? "" : " ") line }
    END { flush() }
  ' <<< "$help"
}

# The whole tree, depth first from the top command.
tree() {
  local path=$1 facts sub
  facts=$(help_of "$path" | parse_help "$path")
  [ -n "$facts" ] || { echo "cli-docs.sh: \"$path --help\" printed no options or commands" >&2; exit 1; }
  echo "$facts"
  while read -r sub; do
    tree "$path $sub"
  done < <(awk -F'|' '$2 == "command" { print $3 }' <<< "$facts")
}

# _static_macvlan_cli PATH KIND: the tree as the completion asks it. KIND commands (below PATH),
# options (of PATH), valued (options that take a value, of PATH and the commands above it: CLI11
# takes those after the subcommand too) or positionals (in order; NAME... repeats).
completion_table() {
  awk -F'|' '
    { key = substr($1, length("static-macvlan") + 2) }
    !(key in seen) { seen[key] = 1; keys[++n] = key }
    $2 == "command" { commands[key] = commands[key] " " $3 }
    $2 == "option" {
      names = $3; gsub(/,/, " ", names)
      options[key] = options[key] " " names
      if ($4 == "value") valued[key] = valued[key] " " names
    }
    $2 == "positional" { positionals[key] = positionals[key] " " $3 ($4 == "many" ? "..." : "") }
    function unique(words,    count, word, i, seen, out) {
      count = split(words, word, " ")
      for (i = 1; i <= count; i++) if (!(word[i] in seen)) { seen[word[i]] = 1; out = out " " word[i] }
      return out
    }
    function entry(key, kind, words) {
      if (words != "") printf "\t\"%s|%s\") echo \"%s\" ;;\n", key, kind, substr(words, 2)
    }
    END {
      print "_static_macvlan_cli() {  # COMMAND-PATH commands|options|valued|positionals"
      print "\tcase \"$1|$2\" in"
      for (i = 1; i <= n; i++) {
        key = keys[i]
        inherited = valued[key]
        for (up = key; up ~ / /;) { sub(/ [^ ]*$/, "", up); inherited = inherited valued[up] }
        if (key ~ /./) inherited = inherited valued[""]
        inherited = unique(inherited)
        entry(key, "commands", commands[key]); entry(key, "options", options[key])
        entry(key, "valued", inherited); entry(key, "positionals", positionals[key])
      }
      print "\tesac"
      print "}"
    }
  '
}

completion() {
  local facts
  facts=$(tree static-macvlan)
  cat <<'HEAD'
# bash completion for static-macvlan: commands, their options, and Docker network and container
# names where a command takes one. Made by scripts/cli-docs.sh from the binary's --help at package
# time: edit that script or the CLI, not this file.

HEAD
  completion_table <<< "$facts"
  cat <<'BODY'

_static_macvlan_docker_names() {  # networks | containers
	command -v docker >/dev/null 2>&1 || return 0
	if [ "$1" = networks ]; then
		docker network ls --format '{{.Name}}' 2>/dev/null
	else
		docker ps --format '{{.Names}}' 2>/dev/null
	fi
}

# COMPREPLY: the candidates that start with $2 for the value of option $1 (here, not in a
# subshell: compopt must reach this completion).
_static_macvlan_value() {
	case "$1" in
	--network | --from-docker) _static_macvlan_reply "$(_static_macvlan_docker_names networks)" "$2" ;;
	--log-level) _static_macvlan_reply "trace debug info warn error off" "$2" ;;
	*-dir) compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -d -- "$2") ;;
	--socket | -o | --output | *-file | *-cacert | *-cert | *-key)
		compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -f -- "$2") ;;
	esac
}

# COMPREPLY: the candidates for positional argument $1 (its name in --help) that start with $2.
_static_macvlan_positional() {
	case "$1" in
	CONTAINER) _static_macvlan_reply "$(_static_macvlan_docker_names containers)" "$2" ;;
	COMMAND) mapfile -t COMPREPLY < <(compgen -c -- "$2") ;;
	FILE) compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -f -- "$2") ;;
	esac
}

# COMPREPLY: the words of $1 that start with $2.
_static_macvlan_reply() { mapfile -t COMPREPLY < <(compgen -W "$1" -- "$2"); }

# " $2 " holds the word $1.
_static_macvlan_in() { [[ " $2 " == *" $1 "* ]]; }

_static_macvlan() {
	local words=() cword i word
	# bash splits words at the COMP_WORDBREAKS ":" too: unix:///x is unix, :, ///x; join them again.
	for ((i = 0; i <= COMP_CWORD; i++)); do
		word=${COMP_WORDS[i]}
		if ((i > 1)) && { [ "$word" = : ] || [ "${COMP_WORDS[i - 1]}" = : ]; }; then
			words[-1]+=$word
		else
			words+=("$word")
		fi
	done
	cword=$((${#words[@]} - 1))
	local cur=${words[cword]} prev=${words[cword - 1]:-} path="" given=0
	COMPREPLY=()
	# The words before the cursor: commands go down the tree, an option that takes a value
	# skips it (bash splits --opt=value into --opt, =, value), anything else is an argument.
	for ((i = 1; i < cword; i++)); do
		word=${words[i]}
		if [ "$word" = -- ]; then
			given=$((given + cword - i - 1))
			break
		elif [ "$word" = = ]; then
			((i += 1))
		elif [[ $word == -* ]]; then
			if _static_macvlan_in "$word" "$(_static_macvlan_cli "$path" valued)" && [ "${words[i + 1]:-}" != = ]; then
				((i += 1))
			fi
		elif _static_macvlan_in "$word" "$(_static_macvlan_cli "$path" commands)"; then
			path=${path:+$path }$word
		else
			given=$((given + 1))
		fi
	done
	local option=""
	if [ "$cur" = = ]; then
		option=$prev cur=""
	elif [ "$prev" = = ] && ((cword > 1)); then
		option=${words[cword - 2]}
	elif [[ $prev == -* ]] && _static_macvlan_in "$prev" "$(_static_macvlan_cli "$path" valued)"; then
		option=$prev
	fi
	if [ -n "$option" ]; then
		_static_macvlan_value "$option" "$cur"
		return 0
	fi
	local commands positionals
	commands=$(_static_macvlan_cli "$path" commands)
	if [[ $cur == -* ]] || [ -n "$commands" ]; then
		_static_macvlan_reply "$commands $(_static_macvlan_cli "$path" options)" "$cur"
		return 0
	fi
	# A command without subcommands: its next positional argument (the last one repeats), else
	# its options.
	read -r -a positionals <<< "$(_static_macvlan_cli "$path" positionals)"
	local count=${#positionals[@]}
	((count > 0)) && word=${positionals[given < count ? given : count - 1]} || word=""
	if ((given < count)) || [[ $word == *... ]]; then
		_static_macvlan_positional "${word%...}" "$cur"
	else
		_static_macvlan_reply "$(_static_macvlan_cli "$path" options)" "$cur"
	fi
}
complete -F _static_macvlan static-macvlan
BODY
}

# roff for text that is not a request: backslashes escaped, a leading . or ' made literal.
# A command's --help as roff: its description, usage, and each option, argument or command as a
# tagged paragraph (.TP: the line of names, type, default and variable; then the description).
help_to_roff() {
  local help column
  help=$(cat)
  column=$(help_column <<< "$help")
  awk -v column="$column" '
    function roff(text) {  # backslashes, leading dots and quotes, options as minus signs
      gsub(/\\/, "\\e", text); gsub(/--/, "\\-\\-", text); sub(/^[.\x27]/, "\\\\\\&&", text)
      return text
    }
    NR == 1 { print roff($0); next }
    /^Usage: / { print ".PP"; print roff($0); next }
    /^[A-Za-z][A-Za-z ]*:$/ { print ".PP"; print "\\fI" $0 "\\fR"; next }
    /^  [^ ]/ {
      tag = $0; text = ""
      if (length($0) > column && substr($0, column, 1) == " ") { tag = substr($0, 1, column); text = substr($0, column + 1) }
      sub(/^ +/, "", tag); sub(/ +$/, "", tag)
      name = tag; sub(/ .*/, "", name); rest = substr(tag, length(name) + 1)
      gsub(/-/, "\\-", name)
      print ".TP"; print "\\fB" name "\\fR" roff(rest)
      if (text != "") print roff(text)
      next
    }
    /^   / { line = $0; sub(/^ +/, "", line); print roff(line) }
  ' <<< "$help"
}

# One subsection per command: its --help.
man_commands() {
  local path
  cat <<'HEAD'
[COMMANDS]
Each command's options; \fBstatic\-macvlan\fR \fICOMMAND\fR \fB\-\-help\fR prints the same.
HEAD
  while read -r path; do
    echo ".SS \"${path#static-macvlan }\""
    help_of "$path" | help_to_roff
  done < <(awk -F'|' '$2 == "command" { print $1 " " $3 }' <<< "$1")
}

man_exit_status() {
  cat <<'EXIT'
[EXIT STATUS]
.TP
.B 0
The command did what was asked (for \fBdoctor\fR and \fBfsck\fR: every check passed), or printed
its help or version.
.TP
.B 1
The command failed: the error names the cause (for \fBdoctor\fR: a check failed; for \fBfsck\fR:
the state has problems).
.TP
.B 2
The command line is wrong: an unknown command or option, a missing or malformed argument.
.PP
\fBexec\fR, once it has entered the container's network namespace, becomes the command and ends
with its exit status.
EXIT
}

# Every SMV_* variable an option reads, with the option and the commands that have it.
man_environment() {
  cat <<'HEAD'
[ENVIRONMENT]
Each variable is the environment form of an option (\fB/etc/default/static\-macvlan\fR sets
them for the service; \fBdocker plugin set\fR for the managed plugin). The option on the command
line wins over its variable, and a command reads only the variables of its own options.
HEAD
  awk -F'|' '
    $2 == "option" && $5 != "" {
      command = substr($1, length("static-macvlan") + 2)
      if (!($5 in option)) { order[++n] = $5; option[$5] = $3; description[$5] = $7 }
      commands[$5] = commands[$5] (commands[$5] == "" ? "" : ", ") "\\fB" command "\\fR"
    }
    END {
      for (i = 1; i <= n; i++) {
        env = order[i]; name = option[env]; gsub(/-/, "\\-", name); gsub(/\\/, "\\e", description[env])
        printf ".TP\n.B %s\n\\fB%s\\fR of %s: %s\n", env, name, commands[env], description[env]
      }
    }
  ' <<< "$1"
}

# The default of option NAME of serve, from its --help.
serve_default() {
  local value
  value=$(awk -F'|' -v name="$2" '$1 == "static-macvlan serve" && $2 == "option" && $3 == name { print $6 }' <<< "$1")
  [ -n "$value" ] || { echo "cli-docs.sh: serve --help shows no default for $2" >&2; exit 1; }
  echo "$value"
}

# The paths of the packaged service (scripts/package.sh, plugin-config/) and serve's defaults.
man_files() {
  local state_dir socket
  state_dir=$(serve_default "$1" --state-dir)
  socket=$(serve_default "$1" --socket)
  cat <<FILES
[FILES]
.TP
.B $state_dir/
The state directory (\fB\-\-state\-dir\fR): \fBdata.mdb\fR and \fBlock.mdb\fR, the LMDB database of
networks, endpoints and (unless \fB\-\-store etcd://\fR) the address book; \fBlock\fR, held by the one
\fBserve\fR that writes it.
.TP
.B $socket
The plugin socket dockerd connects to (\fB\-\-socket\fR; mode 0600, root's). A managed plugin's is
\fB/run/docker/plugins/\fR\fIID\fR\fB/static\-macvlan.sock\fR; the commands find either.
.TP
.B /etc/default/static\-macvlan
\fBSMV_*\fR settings of the service (see ENVIRONMENT), read by the systemd unit and the init script.
.TP
.B /lib/systemd/system/static\-macvlan.service
The systemd unit: \fBstatic\-macvlan serve\fR, started before docker.service.
.TP
.B /etc/init.d/static\-macvlan
The init script for hosts without systemd, started before docker.
.TP
.B /var/log/static\-macvlan.log
The daemon's log when the init script runs it (without systemd); under systemd: \fBjournalctl \-u static\-macvlan\fR.
.TP
.B /run/static\-macvlan.pid
The init script's pid file.
.TP
.B /usr/share/bash\-completion/completions/static\-macvlan
Bash completion of the commands and options.
FILES
}

man_page() {
  local version=$1 facts dir
  facts=$(tree static-macvlan)
  dir=$(mktemp -d)
  # shellcheck disable=SC2064  # expand now: dir is local
  trap "rm -rf '$dir'" EXIT
  # help2man names the page after the program it runs, and shows its usage line.
  printf '#!/bin/bash\nexec -a static-macvlan "%s" "$@"\n' "$(readlink -f "$binary")" > "$dir/static-macvlan"
  chmod +x "$dir/static-macvlan"
  {
    man_commands "$facts"
    man_exit_status
    man_environment "$facts"
    man_files "$facts"
  } > "$dir/include"
  help2man --no-info --section=8 --version-string="$version" --include="$dir/include" \
    --name="Docker network and IPAM plugin: macvlan on VLANs with sticky addresses" "$dir/static-macvlan"
}

[ $# -ge 2 ] || usage
mode=$1 binary=$2
[ -x "$binary" ] || { echo "cli-docs.sh: BINARY \"$binary\" is not an executable" >&2; exit 2; }
case "$mode" in
tree) tree static-macvlan ;;
completion) completion ;;
man) [ $# -eq 3 ] || usage; man_page "$3" ;;
*) usage ;;
esac
