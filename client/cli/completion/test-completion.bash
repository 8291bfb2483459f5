#!/usr/bin/env bash
# CTest cli_bash_completion: source the completion script in a plain bash (no bash-completion
# package needed) and check what TAB offers on a few command lines. Sandbox ids and session
# names come from a stub `cwsandbox` that prints JSON as `ls -o json` does; another stub hangs,
# to check that completing never waits long. Usage: test-completion.bash path/to/cwsandbox.bash
set -u

script=${1:?usage: test-completion.bash cwsandbox.bash}
# shellcheck source=cwsandbox.bash
source "$script" || exit 1
[[ $(complete -p cwsandbox 2>/dev/null) == *"-F _cwsandbox"* ]] || {
    echo "FAIL: the script does not register _cwsandbox for cwsandbox"
    exit 1
}

tmp=$(mktemp -d /tmp/cws-completion-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failures=0

# complete LINE: the sorted candidates for LINE (the cursor at its end), space-separated.
complete_line()
{
    local line=$1
    COMP_LINE=$line
    COMP_POINT=${#line}
    read -r -a COMP_WORDS <<<"$line"
    [[ $line == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMPREPLY=()
    _cwsandbox
    printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ *$//'
}

expect()
{
    local line=$1 want=$2 got
    got=$(complete_line "$line")
    if [[ $got == "$want" ]]; then
        echo "ok   '$line<TAB>' -> $got"
    else
        echo "FAIL '$line<TAB>': expected '$want', got '$got'"
        failures=$((failures + 1))
    fi
}

# expect_has LINE WORD...: the candidates include every WORD.
expect_has()
{
    local line=$1 got w
    shift
    got=" $(complete_line "$line") "
    for w in "$@"; do
        if [[ $got != *" $w "* ]]; then
            echo "FAIL '$line<TAB>': '$w' missing from:$got"
            failures=$((failures + 1))
            return
        fi
    done
    echo "ok   '$line<TAB>' has $*"
}

cd "$tmp" || exit 1
expect "cwsandbox ex" "exec"
expect "cwsandbox s" "session sh stop"
expect "cwsandbox " "auth cp daemon delete exec files get help logs ls purge run session sh stop version"
expect "cwsandbox --socket /tmp/x.sock ex" "exec"
expect "cwsandbox --v" "--version"
expect "cwsandbox ls -o " "json table"
expect "cwsandbox ls --output=j" "json"
expect "cwsandbox get ID -o " "json table"
expect "cwsandbox ls -s " "completed creating failed paused pending running terminated terminating"
expect "cwsandbox ls -s t" "terminated terminating"
expect "cwsandbox session " "close ls open show"
expect "cwsandbox daemon " "start status stop"
expect "cwsandbox files " "read write"
expect "cwsandbox auth " "status"
expect "cwsandbox help " "auth cp daemon delete exec files get help logs ls purge run session sh stop version"
expect "cwsandbox help session " "close ls open show"
expect "cwsandbox daemon status --" "--help --no-start --output"
expect "cwsandbox daemon stop -" "--help --timeout -h -t"
expect "cwsandbox session open --i" "--idle-ttl --image"
expect "cwsandbox session close --" "--help --keep-sandboxes"
expect "cwsandbox exec --" "--cwd --env --help --interactive --timeout --tty"
expect "cwsandbox exec ID ls --" ""
expect "cwsandbox exec ID -- --" ""
expect "cwsandbox run --rm python3 -" ""
expect_has "cwsandbox run --" --image --env --tag --cpu --memory --gpu --lifetime --mount-file \
    --workdir --session --rm --detach --start-timeout
expect_has "cwsandbox ls --" --status --tag --runner-id --all --session --quiet --output
expect_has "cwsandbox stop --" --missing-ok --graceful-shutdown-seconds --no-wait --timeout
expect "cwsandbox logs x --t" "--tail --timestamps"
expect "cwsandbox purge --" "--dry-run --help --output --tag"

# As bash splits words at '=' and ':' (COMP_WORDBREAKS).
for split in "--output = j" "--output ="; do
    read -r -a COMP_WORDS <<<"cwsandbox ls $split"
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMPREPLY=()
    _cwsandbox
    got=$(printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ *$//')
    want=$([[ $split == *j ]] && echo json || echo "json table")
    if [[ $got == "$want" ]]; then
        echo "ok   'cwsandbox ls ${split// /}<TAB>' (split at =) -> $got"
    else
        echo "FAIL 'cwsandbox ls ${split// /}<TAB>' (split at =): expected '$want', got '$got'"
        failures=$((failures + 1))
    fi
done

# Files where files are meant.
touch local-file.txt
expect "cwsandbox files read ID /remote -o local-f" "local-file.txt"
expect "cwsandbox files write ID /remote local-f" "local-file.txt"
expect "cwsandbox run --mount-file local-f" "local-file.txt"

# Ids and names from a daemon that runs (a stub of the CLI standing for it).
cat >"$tmp/stub-cwsandbox" <<'EOF'
#!/bin/sh
# Must be asked for JSON, and must never be allowed to start a daemon.
case "$*" in *"-o json"*) ;; *) exit 2 ;; esac
[ "$CWSANDBOXD" = /nonexistent/cwsandboxd ] || exit 3
case "$*" in
*"session ls"*)
    printf '[\n  {\n    "name": "work",\n    "sandboxes": 1\n  }\n]\n' ;;
*"ls -a"*)
    printf '[\n  {\n    "sandbox_id": "sbx-aaa",\n    "status": "running"\n  },\n  {\n    "sandbox_id": "sbx-old",\n    "status": "completed"\n  }\n]\n' ;;
*ls*)
    printf '[\n  {\n    "sandbox_id": "sbx-aaa",\n    "status": "running"\n  },\n  {\n    "sandbox_id": "sbx-abb",\n    "status": "running"\n  }\n]\n' ;;
esac
EOF
chmod +x "$tmp/stub-cwsandbox"
stub=$tmp/stub-cwsandbox
expect "$stub exec sbx-a" "sbx-aaa sbx-abb"
expect "$stub exec " "sbx-aaa sbx-abb"
expect "$stub stop sbx-ab" "sbx-abb"
expect "$stub get sbx-" "sbx-aaa sbx-old"
expect "$stub session show " "work"
expect "$stub ls --session w" "work"
expect "$stub cp sbx-ab" "sbx-abb:"

# A daemon that does not answer: completing gives up within the timeout.
if command -v timeout >/dev/null 2>&1; then
    printf '#!/bin/sh\nexec sleep 30\n' >"$tmp/hang-cwsandbox"
    chmod +x "$tmp/hang-cwsandbox"
    start=$SECONDS
    expect "$tmp/hang-cwsandbox exec " ""
    if ((SECONDS - start > 5)); then
        echo "FAIL: completing ids took $((SECONDS - start)) s with a hanging daemon"
        failures=$((failures + 1))
    fi
fi

# No daemon at all: the real CLI must neither hang nor start one.
if [[ -n ${CWS_CLI:-} ]]; then
    mkdir -m 700 "$tmp/run"
    start=$SECONDS
    CWSANDBOX_SOCKET=$tmp/run/d.sock expect "$CWS_CLI exec " ""
    if [[ -e $tmp/run/d.sock ]] || ((SECONDS - start > 5)); then
        echo "FAIL: completing against no daemon started one or took $((SECONDS - start)) s"
        failures=$((failures + 1))
    fi
fi

if ((failures)); then
    echo "$failures failure(s)"
    exit 1
fi
echo "all completions as expected"
