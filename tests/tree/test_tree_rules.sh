#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Rules for the tree itself, checked on every unit run:
#   1. no tracked file cites a tracker number (the word "issue" and a number, any case): a
#      comment or doc states the rule or behaviour, which outlives the tracker;
#   2. every relative link in README.md, CONTRIBUTING.md and docs/*.md names a file or
#      directory inside the repository (a clone has no ../shared or other neighbours).
# First it plants each violation in a scratch tree and checks that it is caught, so the
# check cannot pass by seeing nothing. Usage: test_tree_rules.sh [REPO_ROOT]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=${1:-$(cd "$here/../.." && pwd)}

# The citation pattern, spelt so that this file does not match it.
cite_re='[Ii][Ss][Ss][Uu][Ee][Ss]?[ ]+#?[0-9]'

# s_files ROOT: the files to check, NUL-separated: git's tracked files in a checkout,
# else every file but build directories (a source tarball).
s_files() {
    local r=$1
    if git -C "$r" rev-parse --is-inside-work-tree >/dev/null 2>&1 &&
        [[ $(git -C "$r" rev-parse --show-toplevel) == "$(cd "$r" && pwd -P)" ]]; then
        git -C "$r" ls-files -z
    else
        (cd "$r" && find . \( -path './build*' -o -path ./.git \) -prune -o -type f -print0 |
            sed -z 's|^\./||')
    fi
}

# s_check_citations ROOT: prints each citation as FILE:LINE: TEXT; status 1 if any.
# One grep over every file (-I: binary files are not prose).
s_check_citations() {
    local r=$1 out
    out=$(cd "$r" && s_files . | xargs -0 -r grep -nIE -- "$cite_re" 2>/dev/null) || true
    [[ -z $out ]] && return 0
    printf '%s\n' "$out"
    return 1
}

# s_check_links ROOT: prints each link that leaves the repository or names nothing, as
# FILE:LINE: link TARGET ...; status 1 if any.
s_check_links() {
    local r=$1 bad=0 doc n target path dir resolved rootp
    rootp=$(cd "$r" && pwd -P)
    local docs=()
    for doc in README.md CONTRIBUTING.md docs/*.md; do
        [[ -f $r/$doc ]] && docs+=("$doc")
    done
    ((${#docs[@]})) || { echo "$r: no README.md to check" >&2; return 1; }
    for doc in "${docs[@]}"; do
        dir=$(dirname "$r/$doc")
        # inline links ](target) and reference definitions [name]: target, as LINE:MATCH
        while IFS=: read -r n target; do
            target=$(printf '%s' "$target" | sed -E 's/^\]\(//; s/[) ]$//; s/^\[[^]]+\]:[ ]+//')
            [[ -n $target ]] || continue
            case $target in
            http://* | https://* | mailto:*) continue ;;
            '#'*) continue ;;
            esac
            path=${target%%#*}
            if [[ $path == /* ]]; then
                echo "$doc:$n: link $target is an absolute path; link a file of the repository by a relative path"
                bad=1
                continue
            fi
            resolved=$(realpath -m "$dir/$path")
            if [[ $resolved != "$rootp" && $resolved != "$rootp"/* ]]; then
                echo "$doc:$n: link $target leaves the repository; a clone has nothing there: move the text into the repository"
                bad=1
            elif [[ ! -e $resolved ]]; then
                echo "$doc:$n: link $target names no file of the repository"
                bad=1
            fi
        done < <(grep -noE '\]\([^) ]+[) ]|^\[[^]]+\]:[ ]+[^ ]+' "$r/$doc" || true)
    done
    return "$bad"
}

fail() { echo "FAIL: $*" >&2; exit 1; }

# Self-test on a scratch tree: clean passes, each planted violation is caught.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/docs" "$scratch/src"
printf '# t\nSee [the design](docs/ARCHITECTURE.md#processes) and [web](https://example.com).\n' \
    >"$scratch/README.md"
printf '# design\nBack to [README](../README.md).\n' >"$scratch/docs/ARCHITECTURE.md"
printf '/* a queue is bounded by max_jobs */\n' >"$scratch/src/a.c"
s_check_citations "$scratch" >/dev/null || fail "self-test: a clean tree was said to cite a tracker number"
s_check_links "$scratch" >/dev/null || fail "self-test: a clean tree was said to have a bad link"
# (each spelt in two quoted halves, so that this file does not match)
for planted in '/* the bound (iss''ue 5) */' '# Iss''ue 12'"'"'s rule' 'see iss''ues #3 and 4'; do
    printf '%s\n' "$planted" >"$scratch/src/b.c"
    out=$(s_check_citations "$scratch") && fail "self-test: '$planted' was not caught"
    [[ $out == src/b.c:1:* ]] || fail "self-test: '$planted' reported as '$out'"
done
rm "$scratch/src/b.c"
for planted in '[design](../shared/ARCHITECTURE.md)' '[x](docs/NOPE.md)' '[x]: ../../etc/passwd' \
    '[abs](/etc/passwd)'; do
    cp "$scratch/README.md" "$scratch/README.md.orig"
    printf '%s\n' "$planted" >>"$scratch/README.md"
    out=$(s_check_links "$scratch") && fail "self-test: link '$planted' was not caught"
    [[ $out == README.md:3:* ]] || fail "self-test: link '$planted' reported as '$out'"
    mv "$scratch/README.md.orig" "$scratch/README.md"
done

# The real tree.
rc=0
if ! out=$(s_check_citations "$root"); then
    printf '%s\n' "$out" >&2
    echo "FAIL: the lines above cite a tracker number; state the rule or behaviour instead" >&2
    rc=1
fi
if ! out=$(s_check_links "$root"); then
    printf '%s\n' "$out" >&2
    echo "FAIL: the links above do not stay inside the repository" >&2
    rc=1
fi
((rc)) || echo "ok: no tracker citations, every doc link inside the repository"
exit "$rc"
