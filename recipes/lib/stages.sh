# Shared helpers for recipe run.sh files: --stage/--stop_stage parsing and stage logging.
# Source it after setting defaults; every "--name value" argument sets the variable "name".
#   stage=0; stop_stage=100; . "$(dirname "$0")/../lib/stages.sh" "$@"

positional=()
while [ $# -gt 0 ]; do
    case "$1" in
        --help|-h)
            sed -n '2,/^$/s/^# \{0,1\}//p' "$0"
            exit 0
            ;;
        --*=*)
            name=${1%%=*}; name=${name#--}; name=${name//-/_}
            printf -v "$name" '%s' "${1#*=}"
            shift
            ;;
        --*)
            [ $# -ge 2 ] || { echo "error: $1 needs a value" >&2; exit 2; }
            name=${1#--}; name=${name//-/_}
            printf -v "$name" '%s' "$2"
            shift 2
            ;;
        *)
            positional+=("$1")
            shift
            ;;
    esac
done
set -- "${positional[@]+"${positional[@]}"}"

# run_stage N: true when stage N lies within --stage..--stop_stage.
run_stage() { [ "$1" -ge "$stage" ] && [ "$1" -le "$stop_stage" ]; }

# log_stage N WHAT INPUT OUTPUT
log_stage() { echo "$(date '+%F %T') Stage $1: $2: $3 -> $4"; }
