# Shared by every recipe run.sh: declared options, --stage/--stop_stage, stage logging and the CLI.
# A recipe sets its header comment (usage and stages), declares each option with its default and a
# line of help, and parses the command line:
#   . "$(dirname "$0")/../lib/stages.sh"
#   option clips 400 "clips to synthesize"
#   parse_options "$@"; set -- "${positional[@]+"${positional[@]}"}"
# "--name value" and "--name=value" set $name. An option the recipe did not declare is an error
# (exit 2); --help prints the header comment and every option with its default. Every recipe has
# --stage, --stop_stage and --verbose (true: NeMo's and Lightning's full log on the terminal, exported to
# every command as ASR_TRANSFER_VERBOSE=1). Nothing changes directory: relative paths are the caller's,
# and files of the repository are found under $repo.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PY=${PYTHON:-$repo/.venv/bin/python}
_option_names=(); _option_defaults=(); _option_help=()

# option NAME DEFAULT HELP: declare --NAME and set $NAME to its default.
option() {
    printf -v "$1" '%s' "$2"
    _option_names+=("$1"); _option_defaults+=("$2"); _option_help+=("$3")
}
option stage 0 "first stage to run"
option stop_stage 100 "last stage to run"
option verbose false "true: NeMo's and Lightning's full log on the terminal"

print_help() {
    sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"
    echo "Options (default):"
    local i
    for i in "${!_option_names[@]}"; do
        printf '  --%-14s %s (%s)\n' "${_option_names[$i]}" "${_option_help[$i]}" "${_option_defaults[$i]:-none}"
    done
}

_declared() {
    local name
    for name in "${_option_names[@]}"; do [ "$name" = "$1" ] && return 0; done
    return 1
}

_set_option() {
    local name=${1//-/_}
    _declared "$name" || { echo "error: unknown option --$1; $(basename "$0") --help lists the options" >&2; exit 2; }
    printf -v "$name" '%s' "$2"
}

# parse_options "$@": set the declared options; the other words are left in the array positional.
parse_options() {
    positional=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --help|-h) print_help; exit 0 ;;
            --*=*) local key=${1%%=*}; _set_option "${key#--}" "${1#*=}"; shift ;;
            --*)
                [ $# -ge 2 ] || { echo "error: $1 needs a value; $(basename "$0") --help lists the options" >&2; exit 2; }
                _set_option "${1#--}" "$2"; shift 2 ;;
            *) positional+=("$1"); shift ;;
        esac
    done
    case $verbose in
        true|1|yes) export ASR_TRANSFER_VERBOSE=1 ;;
        false|0|no) ;;
        *) echo "error: --verbose $verbose; use true or false" >&2; exit 2 ;;
    esac
}

# run_stage N: true when stage N lies within --stage..--stop_stage.
run_stage() { [ "$1" -ge "$stage" ] && [ "$1" -le "$stop_stage" ]; }

# log_stage N WHAT INPUT OUTPUT
log_stage() { echo "$(date '+%F %T') Stage $1: $2: $3 -> $4"; }

cli() { "$PY" -m asr_transfer.cli "$@"; }
