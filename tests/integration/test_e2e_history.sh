#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Build records through farmctl, on real parts (registry, coordinator with its journal, a
# sandboxed agent, buildah), each right tried by the role it concerns:
# - a chatty build's record (history ls/inspect, text and --format json: its owner, steps
#   timed by the agent, attempts, index) and its log, as submit printed it, cut by
#   history.log_limit where it says (first and last lines kept, the cut counted);
# - a submit client sees, reads and cancels its own builds only; a read client lists
#   every build but reads no log and cancels nothing; each refusal names why and the fix;
# - farmctl logs -f of a running build prints the kept lines, then the new ones as they
#   come, and ends with the build; farmctl cancel stops it and says so;
# - the records survive a coordinator restart, and history.max_builds prunes the oldest.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
lab_init
export LAB_SKIP_BINFMT=1
lab_registry_start
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=x86-a:2"
# three more clients beside the lab's admin, and the history settings under test
for k in alice bob ro; do lab_keygen "$k" >/dev/null; done
awk -v a="$(lab_keygen alice)" -v b="$(lab_keygen bob)" -v r="$(lab_keygen ro)" '
    { print }
    /^  lab: \{key:/ {
        print "  alice: {key: \"" a "\", role: submit}"
        print "  bob: {key: \"" b "\", role: submit}"
        print "  ro: {key: \"" r "\", role: read}"
    }' "$LAB/farm.yaml" >"$LAB/farm.yaml.new"
mv "$LAB/farm.yaml.new" "$LAB/farm.yaml"
printf 'history:\n  keep: 7d\n  max_builds: 3\n  log_limit: 8K\n' >>"$LAB/farm.yaml"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent x86-a linux/amd64
lab_wait_nodes 1 30 x86-a
clog=$LAB/coordinator.log
K=$LAB/keys
ctx=$LAB/ctx
lab_example_context "$ctx"
cat >>"$ctx/Dockerfile" <<'DEOF'
ARG ROUND
RUN if [ "$ROUND" = chatty ]; then i=1; while [ $i -le 300 ]; do echo "farm-test line $i of the chatty build, padded to be long enough"; i=$((i+1)); done; elif [ "$ROUND" = slow ]; then i=0; while [ $i -lt 600 ]; do echo "farm-test tick $i"; i=$((i+1)); sleep 1; done; else echo "farm-test round $ROUND"; fi
DEOF

# as CLIENT: farmctl ARGS... (output in $LAB/CLIENT-NAME.{out,err}; status in $st)
as() {
    local who=$1 name=$2
    shift 2
    st=0
    FARM_KEY=$K/$who.key timeout 120 "$FARMCTL" "$@" --coordinator "$FARM_COORDINATOR" \
        >"$LAB/$who-$name.out" 2>"$LAB/$who-$name.err" </dev/null || st=$?
}
# refused CLIENT NAME WANT ARGS...: farmctl fails and says WANT
refused() {
    local who=$1 name=$2 want=$3
    shift 3
    as "$who" "$name" "$@"
    ((st != 0)) || lab_fail "$who: farmctl $* exited 0: $(cat "$LAB/$who-$name.out")"
    grep -qF -- "$want" "$LAB/$who-$name.err" \
        || lab_fail "$who: farmctl $* does not say \"$want\": $(cat "$LAB/$who-$name.err")"
    lab_log "$who refused ($name): $(head -c 300 "$LAB/$who-$name.err")"
}
submit() { # submit CLIENT ROUND [&]: alice's builds
    FARM_KEY=$K/$1.key "$FARMCTL" submit --coordinator "$FARM_COORDINATOR" \
        -t "$REGISTRY/team/hist:$2" --platform linux/amd64 --progress plain \
        --build-arg "ROUND=$2" "$ctx" >"$LAB/submit-$2.out" 2>"$LAB/submit-$2.err"
}
build_of() { grep -o 'build b[0-9]*-[0-9a-f]* accepted' "$LAB/submit-$1.err" | head -1 | cut -d' ' -f2; }

# --- a chatty build, its record and its log ---------------------------------------------
submit alice chatty || lab_fail "the chatty build failed: $(tail -5 "$LAB/submit-chatty.err")"
A=$(build_of chatty)
[[ -n $A ]] || lab_fail "farmctl submit did not name its build"
as alice ls history
grep -qE "^$A +alice +completed " "$LAB/alice-ls.out" || lab_fail "alice's history does not show $A completed: $(cat "$LAB/alice-ls.out")"
as bob ls history
grep -qF "$A" "$LAB/bob-ls.out" && lab_fail "bob's history shows alice's build $A"
as ro ls history ls --format json
"$LAB_PYTHON" - "$LAB/ro-ls.out" "$A" <<'PY' || lab_fail "ro's history --format json is not the record list: $(cat "$LAB/ro-ls.out")"
import json, sys
d = json.load(open(sys.argv[1]))
b = d["builds"][0]
assert b["build_id"] == sys.argv[2] and b["owner"] == "alice" and b["status"] == "completed", b
assert b["index_digest"].startswith("sha256:") and b["platforms"] == ["linux/amd64"], b
PY
as alice inspect history inspect "$A"
for want in "Build:        $A" "Owner:        alice" "Status:       completed" \
    "Platform linux/amd64: done on node x86-a" "Attempt 1:  node x86-a, done after" "Steps:" \
    "lines (" "bytes) cut: the log was over history.log_limit"; do
    grep -qF -- "$want" "$LAB/alice-inspect.out" || lab_fail "history inspect lacks \"$want\": $(cat "$LAB/alice-inspect.out")"
done
grep -qE '^ +#[0-9]+ +[0-9.]+s +.*RUN if ' "$LAB/alice-inspect.out" || lab_fail "history inspect shows no timed RUN step"
as alice inspect_json history inspect ^0 --format json
"$LAB_PYTHON" - "$LAB/alice-inspect_json.out" "$A" "$(cat "$LAB/submit-chatty.out")" <<'PY' || lab_fail "history inspect ^0 --format json is not $A's record: $(cat "$LAB/alice-inspect_json.out")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["build"]["build_id"] == sys.argv[2], r["build"]
assert r["build"]["index_digest"] == sys.argv[3], (r["build"], sys.argv[3])
p = r["platforms"][0]
assert p["platform"] == "linux/amd64" and p["node"] == "x86-a" and p["state"] == "done", p
assert p["attempts"][0]["outcome"] == "done" and p["image"]["digest"].startswith("sha256:"), p
steps = p["build_steps"]
assert len(steps) == p["steps"] and len(steps) >= 2, steps
assert any("RUN if" in s["text"] and s["ms"] > 0 for s in steps), steps
assert r["log_cut_lines"] > 0 and r["log_cut_bytes"] > 0, r
PY
# the log: what submit printed, its first lines and its last, with the cut between
as alice logs logs "$A"
# submit's log lines: its [platform node] lines less the events and the pushed digest
grep -F '[linux/amd64 x86-a] ' "$LAB/submit-chatty.err" \
    | grep -vE '^\[linux/amd64 x86-a\] ((queued|waiting|dispatched|pushed|lost|failed|verifying|cancel): |sha256:[0-9a-f]{64}( \(warm\))?$)' \
    >"$LAB/submit-lines"
head -20 "$LAB/submit-lines" >"$LAB/submit-head"
head -20 "$LAB/alice-logs.out" >"$LAB/logs-head"
cmp -s "$LAB/submit-head" "$LAB/logs-head" || lab_fail "farmctl logs does not begin as submit printed: $(diff "$LAB/submit-head" "$LAB/logs-head")"
grep -qF '[linux/amd64 x86-a] farm-test line 300 of' "$LAB/alice-logs.out" || lab_fail "the log lost its last line"
grep -qF '[linux/amd64 x86-a] farm-test line 150 of' "$LAB/alice-logs.out" && lab_fail "the log kept its middle: nothing was cut"
cut_line=$(grep -E '^#\.\.\. [0-9]+ lines \([0-9]+ bytes\) cut' "$LAB/alice-logs.out") || lab_fail "farmctl logs does not say what was cut: $(cat "$LAB/alice-logs.out")"
nlines=$(sed -E 's/^#\.\.\. ([0-9]+) lines.*/\1/' <<<"$cut_line")
kept=$(grep -c '^\[linux/amd64 x86-a\] ' "$LAB/alice-logs.out")
all=$(wc -l <"$LAB/submit-lines")
((kept + nlines == all)) || lab_fail "kept $kept + cut $nlines lines != the $all lines submit printed"
bytes=$(grep -F '[linux/amd64 x86-a] ' "$LAB/alice-logs.out" | sed 's/^\[linux\/amd64 x86-a\] //' | wc -c)
# each line counts its text, its newline and 64 bytes for its row in the journal
((bytes + 64 * kept <= 8192)) || lab_fail "the kept log is $bytes bytes in $kept lines, over history.log_limit 8K"
lab_log "the log kept $kept lines ($bytes bytes) and cut $nlines: $cut_line"
refused bob logs "build $A belongs to client alice; client bob (role submit) may read the logs of only its own builds" logs "$A"
refused ro logs "client ro has role read, which lists builds but may not read the logs of" logs "$A"
refused bob inspect "may inspect only its own builds" history inspect "$A"
refused alice badfilter 'filter "colour=red": unknown key' history --filter colour=red

# --- logs -f of a running build, and cancel ------------------------------------------------
submit alice slow &
spid=$!
lab_on_exit "kill $spid 2>/dev/null || true"
lab_wait_until 180 "the slow build's first line" grep -qF 'farm-test tick 0' "$LAB/submit-slow.err"
B=$(build_of slow)
FARM_KEY=$K/alice.key "$FARMCTL" logs -f "$B" --coordinator "$FARM_COORDINATOR" \
    >"$LAB/follow.out" 2>"$LAB/follow.err" &
fpid=$!
lab_on_exit "kill $fpid 2>/dev/null || true"
# the kept lines first, then ticks printed after logs -f began, each once and in order
lab_wait_until 30 "logs -f to print the kept lines" grep -qF 'farm-test tick 0' "$LAB/follow.out"
seen=$(grep -oE 'farm-test tick [0-9]+' "$LAB/follow.out" | tail -1 | cut -d' ' -f3)
lab_wait_until 60 "logs -f to print a line that came after it began" \
    grep -qF "farm-test tick $((seen + 3))" "$LAB/follow.out"
grep -oE 'farm-test tick [0-9]+' "$LAB/follow.out" | cut -d' ' -f3 >"$LAB/ticks"
seq 0 "$(tail -1 "$LAB/ticks")" | cmp -s - "$LAB/ticks" \
    || lab_fail "logs -f did not print each tick once, in order: $(tr '\n' ' ' <"$LAB/ticks")"
grep -qF '[linux/amd64 x86-a] farm-test tick 0' "$LAB/follow.out" || lab_fail "logs -f lines are not as submit printed them"
refused bob cancel "build $B belongs to client alice; client bob (role submit) may cancel only its own builds" cancel "$B"
refused ro cancel "client ro has role read; to cancel builds it needs role submit" cancel "$B"
as alice cancel cancel "$B"
((st == 0)) || lab_fail "alice could not cancel $B: $(cat "$LAB/alice-cancel.err")"
grep -qF "build $B cancelled; nothing was pushed under its tags" "$LAB/alice-cancel.out" || lab_fail "cancel did not say so: $(cat "$LAB/alice-cancel.out")"
st=0; wait "$fpid" || st=$?
((st == 1)) || lab_fail "logs -f of the cancelled build exited $st, not 1: $(tail -3 "$LAB/follow.err")"
grep -qF 'cancelled by farmctl' "$LAB/follow.err" || lab_fail "logs -f did not say how the build ended: $(cat "$LAB/follow.err")"
st=0; wait "$spid" || st=$?
((st != 0)) || lab_fail "the cancelled build's submit exited 0"
as alice cancel_again cancel "$B"
grep -qF "build $B had already ended (cancelled): nothing to cancel" "$LAB/alice-cancel_again.out" || lab_fail "a second cancel: $(cat "$LAB/alice-cancel_again.out" "$LAB/alice-cancel_again.err")"
as ro cancelled history --filter status=cancelled
grep -qE "^$B +alice +cancelled " "$LAB/ro-cancelled.out" && ! grep -qF "$A" "$LAB/ro-cancelled.out" \
    || lab_fail "--filter status=cancelled: $(cat "$LAB/ro-cancelled.out")"

# --- a restart keeps the records; history.max_builds prunes the oldest ---------------------
lab_stop coordinator KILL
lab_start_coordinator "$LAB/farm.yaml"
lab_wait_nodes 1 60 x86-a
as alice inspect_after history inspect "$A"
grep -qF "Status:       completed" "$LAB/alice-inspect_after.out" || lab_fail "$A's record did not survive the restart: $(cat "$LAB/alice-inspect_after.err")"
as alice logs_after logs "$A"
cmp -s "$LAB/alice-logs.out" "$LAB/alice-logs_after.out" || lab_fail "$A's log changed across the restart"
submit alice c1 || lab_fail "build c1 failed"
submit alice c2 || lab_fail "build c2 failed"
FARM_KEY=$K/lab.key "$FARMCTL" history --coordinator "$FARM_COORDINATOR" >"$LAB/admin-ls.out"
n=$(grep -cE '^b[0-9]+-' "$LAB/admin-ls.out")
((n == 3)) || lab_fail "history.max_builds is 3 but the history holds $n: $(cat "$LAB/admin-ls.out")"
grep -qF "$A" "$LAB/admin-ls.out" && lab_fail "the oldest build $A was not pruned"
refused alice pruned "no build $A on this coordinator: it was pruned" history inspect "$A"
grep -qF "beyond history.max_builds (3) pruned" "$clog" || lab_fail "the coordinator did not log the prune"
lab_alive coordinator || lab_fail "the coordinator died"
lab_log PASS
