# bash completion for cwsandbox(1): commands, subcommands, options per command, option values
# (-o table|json, -s STATUS), sandbox ids and session names.
#
# Ids and names come from the running daemon (`cwsandbox ls -o json`, `session ls -o json`),
# asked quietly with a short timeout and with CWSANDBOXD naming no program, so that pressing
# TAB never starts a daemon and never hangs. Installed as
# share/bash-completion/completions/cwsandbox. Keep it in step with client/cli/cmd_*.c.

_cwsandbox_commands="run ls get exec sh logs cp files stop delete purge session daemon auth version help"
_cwsandbox_states="running creating pending paused terminating completed failed terminated"

# The subcommands of a group, or nothing.
_cwsandbox_subcommands()
{
    case $1 in
        files) echo "read write" ;;
        session) echo "open close ls show" ;;
        daemon) echo "status start stop" ;;
        auth) echo "status" ;;
    esac
}

# The options of a command ("ls", "session open", ...): all of them in opts, those that take a
# value in args.
_cwsandbox_options()
{
    local help="-h --help"
    opts='' args=''
    case $1 in
        run)
            opts="--image -e --env --tag --cpu --memory --gpu --lifetime --mount-file -w --workdir --session --rm -d --detach --start-timeout"
            args="--image -e --env --tag --cpu --memory --gpu --lifetime --mount-file -w --workdir --session --start-timeout" ;;
        ls)
            opts="-s --status -t --tag -T --runner-id -a --all --session -q --quiet -o --output"
            args="-s --status -t --tag -T --runner-id --session -o --output" ;;
        get)
            opts="-o --output --cached"
            args="-o --output" ;;
        exec)
            opts="-w --cwd --timeout -e --env -i --interactive -t --tty"
            args="-w --cwd --timeout -e --env" ;;
        sh)
            opts="-c --cmd"
            args="-c --cmd" ;;
        logs)
            opts="-f --follow --tail --since -t --timestamps"
            args="--tail --since" ;;
        cp)
            opts="-q --quiet" ;;
        "files read")
            opts="-o --output -t --timeout -q --quiet"
            args="-o --output -t --timeout" ;;
        "files write")
            opts="-t --timeout -q --quiet"
            args="-t --timeout" ;;
        stop)
            opts="--missing-ok --graceful-shutdown-seconds --no-wait -t --timeout -q --quiet"
            args="--graceful-shutdown-seconds -t --timeout" ;;
        delete)
            opts="--missing-ok -t --timeout -q --quiet"
            args="-t --timeout" ;;
        purge)
            opts="-t --tag --dry-run -o --output"
            args="-t --tag -o --output" ;;
        "session open")
            opts="--idle-ttl --image -e --env --tag -o --output"
            args="--idle-ttl --image -e --env --tag -o --output" ;;
        "session close")
            opts="--keep-sandboxes" ;;
        "session ls" | "session show" | "auth status" | version)
            opts="-o --output"
            args="-o --output" ;;
        "daemon status")
            opts="-o --output --no-start"
            args="-o --output" ;;
        "daemon start") ;;
        "daemon stop")
            opts="-t --timeout"
            args="-t --timeout" ;;
    esac
    opts="$opts $help"
}

# Run `cwsandbox [--socket PATH] ARGS... -o json` against a daemon that already runs (never
# starting one), for at most 2 seconds, and print the values of one JSON field.
_cwsandbox_query()
{
    local field=$1
    shift
    local limit=()
    command -v timeout >/dev/null 2>&1 && limit=(timeout 2)
    CWSANDBOXD=/nonexistent/cwsandboxd "${limit[@]}" "$_cwsandbox_prog" \
        "${_cwsandbox_global[@]}" "$@" -o json 2>/dev/null </dev/null |
        sed -n 's/^ *"'"$field"'": *"\([^"]*\)".*/\1/p'
}

_cwsandbox_reply()
{
    local w
    while IFS= read -r w; do
        [[ -n $w ]] && COMPREPLY+=("$w")
    done < <(compgen -W "$1" -- "$2")
}

_cwsandbox_files()
{
    local f
    compopt -o filenames 2>/dev/null
    while IFS= read -r f; do
        COMPREPLY+=("$f")
    done < <(compgen -f -- "$1")
}

_cwsandbox_ids()
{
    _cwsandbox_reply "$(_cwsandbox_query sandbox_id ls "$@")" "$cur"
}

_cwsandbox_sessions()
{
    _cwsandbox_reply "$(_cwsandbox_query name session ls)" "$cur"
}

# The value of option $1 of command $2.
_cwsandbox_value()
{
    case $1 in
        -o | --output)
            if [[ $2 == "files read" ]]; then
                _cwsandbox_files "$cur"
            else
                _cwsandbox_reply "table json" "$cur"
            fi ;;
        -s | --status) _cwsandbox_reply "$_cwsandbox_states" "$cur" ;;
        --session) _cwsandbox_sessions ;;
        --mount-file) _cwsandbox_files "$cur" ;;
    esac
}

# Without the bash-completion package: words and cword from COMP_WORDS, with the pieces that
# bash split at '=' and ':' (COMP_WORDBREAKS) joined again: "--output" "=" "j" is "--output=j".
_cwsandbox_words()
{
    local k w join=0
    words=()
    cword=0
    for ((k = 0; k < ${#COMP_WORDS[@]}; k++)); do
        w=${COMP_WORDS[k]}
        if ((k > 0)) && [[ $w == "=" || $w == ":" ]]; then
            words[${#words[@]} - 1]+=$w
            join=1
        elif ((join)); then
            words[${#words[@]} - 1]+=$w
            join=0
        else
            words+=("$w")
        fi
        ((k == COMP_CWORD)) && cword=$((${#words[@]} - 1))
    done
}

_cwsandbox()
{
    local cur prev words cword
    if declare -F _get_comp_words_by_ref >/dev/null; then
        _get_comp_words_by_ref -n =: cur prev words cword
    else
        _cwsandbox_words
        cur=${words[cword]}
        prev=${words[cword - 1]}
    fi
    COMPREPLY=()
    local _cwsandbox_prog=${words[0]}
    local _cwsandbox_global=()

    # Global options, before the command.
    local i=1
    while ((i < cword)); do
        case ${words[i]} in
            --socket)
                _cwsandbox_global=(--socket "${words[i + 1]}")
                ((i += 2)) ;;
            --socket=*)
                _cwsandbox_global=("${words[i]}")
                ((i++)) ;;
            -*) ((i++)) ;;
            *) break ;;
        esac
    done
    if ((i >= cword)); then
        if ((i > cword)); then # the value of --socket
            _cwsandbox_files "$cur"
        elif [[ $cur == -* ]]; then
            _cwsandbox_reply "--socket --help -h --version" "$cur"
        else
            _cwsandbox_reply "$_cwsandbox_commands" "$cur"
        fi
        return 0
    fi

    local cmd=${words[i]} subs
    ((i++))
    if [[ $cmd == help ]]; then
        if ((i == cword)); then
            _cwsandbox_reply "$_cwsandbox_commands" "$cur"
        elif ((i + 1 == cword)); then
            _cwsandbox_reply "$(_cwsandbox_subcommands "${words[i]}")" "$cur"
        fi
        return 0
    fi
    subs=$(_cwsandbox_subcommands "$cmd")
    if [[ -n $subs ]]; then
        if ((i == cword)); then
            if [[ $cur == -* ]]; then
                _cwsandbox_reply "-h --help" "$cur"
            else
                _cwsandbox_reply "$subs" "$cur"
            fi
            return 0
        fi
        cmd="$cmd ${words[i]}"
        ((i++))
    fi

    local opts args
    _cwsandbox_options "$cmd"

    # The value of an option: `--output <TAB>`, `--output=<TAB>`.
    if [[ $cur == --*=* ]]; then
        local opt=${cur%%=*}
        cur=${cur#*=}
        _cwsandbox_value "$opt" "$cmd"
        return 0
    fi
    if ((cword - 1 >= i)) && [[ " $args " == *" $prev "* ]]; then
        _cwsandbox_value "$prev" "$cmd"
        return 0
    fi

    # Which positional argument is being completed; for exec and run, whether the command
    # line has begun (then everything is the command's own).
    local n=0 j w dashdash=0
    for ((j = i; j < cword; j++)); do
        w=${words[j]}
        if ((dashdash)); then
            ((n++))
            continue
        fi
        case $w in
            --) dashdash=1 ;;
            --*=*) ;;
            -*) [[ " $args " == *" $w "* ]] && ((j++)) ;;
            *) ((n++)) ;;
        esac
        if [[ ($cmd == exec && $n -ge 2) || ($cmd == run && $n -ge 1) ]]; then
            dashdash=1
        fi
    done
    if [[ ($cmd == exec && $n -ge 1 && $dashdash == 1) || ($cmd == run && $dashdash == 1) ]]; then
        return 0 # the remote command's own arguments
    fi

    if [[ $cur == -* && $dashdash == 0 ]]; then
        _cwsandbox_reply "$opts" "$cur"
        return 0
    fi

    case $cmd in
        get | logs | delete)
            ((n == 0)) && _cwsandbox_ids -a ;;
        exec | sh | stop | "files read" | "files write")
            if ((n == 0)); then
                _cwsandbox_ids
            elif [[ $cmd == "files write" && $n -eq 2 ]]; then
                _cwsandbox_files "$cur"
            fi ;;
        cp)
            if ((n < 2)) && [[ $cur != */* && $cur != *:* ]]; then
                local id
                for id in $(_cwsandbox_query sandbox_id ls); do
                    [[ $id == "$cur"* ]] && COMPREPLY+=("$id:")
                done
                compopt -o nospace 2>/dev/null
            fi
            ((n < 2)) && [[ $cur != *:* ]] && _cwsandbox_files "$cur" ;;
        "session close" | "session show")
            ((n == 0)) && _cwsandbox_sessions ;;
    esac
    return 0
}

complete -F _cwsandbox cwsandbox
