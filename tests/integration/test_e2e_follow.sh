#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Clients follow a build by id, through a coordinator outage (keyed farm, two submit clients).
# 1. farmctl submit --detach prints the build id and exits 0 at once; farmctl wait and
#    farmctl attach (two followers of one build, from other processes) both follow it to
#    its end, exit 0 and print the index digest the registry holds under the tag. Another
#    submit client's farmctl wait is refused, told whose build it is, and exits 1.
# 2. The coordinator is SIGSTOPped for 65 s (longer than farmctl's old 60 s give-up) while
#    the build runs: farmctl submit says once that it lost the coordinator and is
#    reconnecting, follows the build again when it answers, and exits 0 with the digest
#    after the SIGCONT. A farmctl wait --give-up-after 5s of the same build gives up
#    during the pause with exit 3, naming the build and the command that follows it.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init
command -v pgrep >/dev/null || lab_fail "pgrep is not installed"
command -v skopeo >/dev/null || lab_fail "skopeo is not installed"
export LAB_SKIP_BINFMT=1 LAB_CLIENT_ROLE=submit
lab_registry_start
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=x86-f"
# a second submit client, "other"
other=$(lab_keygen other)
sed -i "/^  lab: {key:/a\\  other: {key: \"$other\", role: submit}" "$LAB/farm.yaml"
grep -q '^  other: {key:' "$LAB/farm.yaml" || lab_fail "could not enrol the client other"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent x86-f linux/amd64
lab_wait_nodes 1 30 x86-f
ctx=$LAB/ctx
lab_example_context "$ctx"
dur=20.$$   # busybox sleep takes fractions: no other lab's sleep has this duration
cat >>"$ctx/Dockerfile" <<DEOF
ARG ROUND
RUN echo "farm-test: step \$ROUND" && if [ "\$ROUND" = 2 ]; then sleep $dur; else sleep 6; fi
DEOF
digest_of() { lab_index "$REGISTRY/team/follow:$1" | sha256sum | awk '{print "sha256:" $1}'; }

# --- 1. --detach, then two followers; another client is refused
st=0
"$FARMCTL" submit --coordinator "$FARM_COORDINATOR" -t "$REGISTRY/team/follow:1" \
    --platform linux/amd64 --progress plain --build-arg ROUND=1 --detach "$ctx" \
    >"$LAB/out-1" 2>"$LAB/err-1" || st=$?
((st == 0)) || { cat "$LAB/err-1" >&2; lab_fail "farmctl submit --detach exited $st"; }
bid=$(cat "$LAB/out-1")
[[ $bid =~ ^b[0-9]+-[0-9a-f]{32}$ ]] || lab_fail "farmctl submit --detach printed \"$bid\", not a build id"
grep -qF "farmctl wait $bid" "$LAB/err-1" || lab_fail "--detach did not say how to follow the build"
lab_log "detached from build $bid"
lab_farmctl wait --progress plain "$bid" >"$LAB/wait-a.out" 2>"$LAB/wait-a.err" &
wa=$!
lab_farmctl attach --progress plain "$bid" >"$LAB/wait-b.out" 2>"$LAB/wait-b.err" &
wb=$!
st=0
FARM_KEY=$LAB/keys/other.key lab_farmctl wait "$bid" >"$LAB/wait-other.out" 2>"$LAB/wait-other.err" || st=$?
((st == 1)) || lab_fail "another client's farmctl wait exited $st, not 1"
grep -qF "build $bid belongs to client lab; client other may follow only its own builds" \
    "$LAB/wait-other.err" || { cat "$LAB/wait-other.err" >&2; lab_fail "another client was not told whose build it is"; }
[[ ! -s $LAB/wait-other.out ]] || lab_fail "another client's farmctl wait printed on stdout"
for w in a b; do
    st=0
    wait "$([[ $w == a ]] && echo $wa || echo $wb)" || st=$?
    cat "$LAB/wait-$w.err" >&2
    ((st == 0)) || lab_fail "farmctl wait ($w) exited $st"
done
want=$(digest_of 1)
for w in a b; do
    [[ $(cat "$LAB/wait-$w.out") == "$want" ]] \
        || lab_fail "farmctl wait ($w) printed \"$(cat "$LAB/wait-$w.out")\", not the index the registry holds ($want)"
    grep -qF "following build $bid" "$LAB/wait-$w.err" || lab_fail "farmctl wait ($w) did not say it follows $bid"
    grep -q '\[linux/amd64 x86-f\] farm-test: step 1' "$LAB/wait-$w.err" \
        || lab_fail "farmctl wait ($w) did not show the build's log"
done
# a finished build is answered at once
st=0
timeout 10 "$FARMCTL" wait --coordinator "$FARM_COORDINATOR" -q "$bid" >"$LAB/wait-c.out" 2>"$LAB/wait-c.err" || st=$?
((st == 0)) && [[ $(cat "$LAB/wait-c.out") == "$want" ]] || lab_fail "farmctl wait of the finished build: exit $st, \"$(cat "$LAB/wait-c.out")\""
lab_log "detach, two followers and a refused stranger: ok"

# --- 2. a 65 s SIGSTOP while the build runs
"$FARMCTL" submit --coordinator "$FARM_COORDINATOR" -t "$REGISTRY/team/follow:2" \
    --platform linux/amd64 --progress plain --build-arg ROUND=2 "$ctx" \
    >"$LAB/out-2" 2>"$LAB/err-2" &
sp=$!
lab_wait_until 180 "the RUN step's sleep" bash -c "pgrep -f 'sleep $dur\$' >/dev/null"
bid=$(grep -o 'build b[0-9]*-[0-9a-f]* accepted' "$LAB/err-2" | head -1 | cut -d' ' -f2)
[[ -n $bid ]] || lab_fail "farmctl submit (round 2) did not say its build was accepted"
lab_farmctl wait --give-up-after 5s --progress plain "$bid" >"$LAB/wait-g.out" 2>"$LAB/wait-g.err" &
wg=$!
lab_wait_until 15 "farmctl wait to follow $bid" grep -qF "following build $bid" "$LAB/wait-g.err"
lab_log "SIGSTOP to the coordinator for 65 s"
lab_signal coordinator STOP
t_stop=$SECONDS
lab_wait_until 30 "farmctl submit to notice the silence" \
    grep -qF "lost the coordinator at $FARM_COORDINATOR; reconnecting to follow build $bid" "$LAB/err-2"
st=0
lab_wait_until 40 "farmctl wait --give-up-after 5s to give up" bash -c "! kill -0 $wg 2>/dev/null"
wait "$wg" || st=$?
((st == 3)) || { cat "$LAB/wait-g.err" >&2; lab_fail "farmctl wait --give-up-after 5s exited $st, not 3"; }
grep -qF "build $bid may still be running there: \`farmctl wait $bid\` follows it" "$LAB/wait-g.err" \
    || { cat "$LAB/wait-g.err" >&2; lab_fail "the give-up did not name the build and the command that follows it"; }
sleep $((65 - (SECONDS - t_stop)))
kill -0 "$sp" 2>/dev/null || { cat "$LAB/err-2" >&2; lab_fail "farmctl submit exited during the coordinator's 65 s pause"; }
lab_signal coordinator CONT
t_cont=$SECONDS
st=0
wait "$sp" || st=$?
cat "$LAB/err-2" >&2
((st == 0)) || lab_fail "farmctl submit exited $st after the coordinator's pause, not 0"
[[ $(cat "$LAB/out-2") == "$(digest_of 2)" ]] || lab_fail "farmctl submit printed \"$(cat "$LAB/out-2")\", not the index in the registry"
grep -qF "following build $bid again" "$LAB/err-2" || lab_fail "farmctl submit did not say it follows the build again"
n=$(grep -c "lost the coordinator at" "$LAB/err-2" || true)
((n == 1)) || lab_fail "farmctl submit said $n times that it lost the coordinator in one outage"
grep -q 'no word from the coordinator\|may still finish' "$LAB/err-2" && lab_fail "farmctl submit still says the old give-up"
lab_log "farmctl submit followed build $bid through the pause and ended $((SECONDS - t_cont)) s after the SIGCONT"
lab_log "PASS"
