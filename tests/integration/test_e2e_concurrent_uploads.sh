#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Concurrent submits of one fresh context never fail at the upload: 100 `farmctl submit`
# at once from 10 client keys (10 each, more than coordinator.max_uploads_per_client: 2)
# all succeed. A client's offers of a digest it is already uploading join that upload
# (no slot replaced); an upload that is gone is offered again by farmctl. Each client
# still sends the bytes itself (the context is stored once per key, no client is served
# another's upload).
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
lab_init
export LAB_SKIP_BINFMT=1
lab_registry_start
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=n1:4"
sed -i "/^  heartbeat:/a\\  max_uploads_per_client: 2" "$LAB/farm.yaml"
clients=(alice bob carol dave erin frank grace heidi ivan judy)
# the sanitized run (tests/CMakeLists.txt) looks for memory errors with the first 3
clients=("${clients[@]:0:${FARM_TEST_CLIENTS:-10}}")
for c in "${clients[@]}"; do
    k=$(lab_keygen "$c")
    sed -i "/^  lab: {key:/a\\  $c: {key: \"$k\", role: submit}" "$LAB/farm.yaml"
done
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent n1 linux/amd64 --slots 4
lab_wait_nodes 1 30 n1
lab_example_context "$LAB/ex"

# a fresh context of 16 busybox copies and random bytes (several chunks per upload, so
# uploads of one client overlap); no RUN step, so the builds are quick
ctx=$LAB/ctx
mkdir -p "$ctx"
cp "$LAB/ex/busybox/amd64/busybox" "$ctx/busybox"
head -c $((12 << 20)) /dev/urandom >"$ctx/noise"
printf 'FROM scratch\nCOPY busybox /bin/busybox\n' >"$ctx/Dockerfile"

per=10
pids=()
t0=$SECONDS
for c in "${clients[@]}"; do
    for i in $(seq 1 "$per"); do
        FARM_KEY=$LAB/keys/$c.key lab_farmctl submit --progress plain --platform linux/amd64 \
            -t "$REGISTRY/$c/app:$i" "$ctx" >"$LAB/$c-$i.out" 2>"$LAB/$c-$i.err" &
        pids+=("$!:$c-$i")
    done
done
failed=0
for p in "${pids[@]}"; do
    if ! wait "${p%%:*}"; then
        failed=$((failed + 1))
        lab_log "submit ${p#*:} failed; it said: $(tail -n 5 "$LAB/${p#*:}.err")"
    fi
done
lab_log "$(( ${#clients[@]} * per )) submits in $((SECONDS - t0)) s, $failed failed"
((failed == 0)) || lab_fail "$failed of $(( ${#clients[@]} * per )) concurrent submits of one context failed"

# the concurrent path ran: some offers joined an upload of the same client
joins=$(grep -c "joins its client's upload in progress" "$LAB/coordinator.log" || true)
((joins > 0)) || lab_fail "no offer joined an upload in progress: the submits did not overlap"
lab_log "$joins offers joined an upload in progress"
# each client sent the bytes itself, once (an owner only of what it sent)
digest=$(grep -ho "#context sha256:[0-9a-f]*" "$LAB"/alice-1.err | head -1 | cut -d' ' -f2)
[[ -n $digest ]] || lab_fail "alice's submit named no context digest: $(cat "$LAB/alice-1.err")"
stored=$(grep -c "stored context $digest" "$LAB/coordinator.log" || true)
((stored == ${#clients[@]})) \
    || lab_fail "the context was stored $stored times, not once for each of ${#clients[@]} clients"
for c in "${clients[@]}"; do
    for i in $(seq 1 "$per"); do
        lab_index "$REGISTRY/$c/app:$i" >/dev/null || lab_fail "$REGISTRY/$c/app:$i was not pushed"
    done
done
grep -q "dropping upload" "$LAB/coordinator.log" \
    && lab_fail "an upload was dropped: $(grep "dropping upload" "$LAB/coordinator.log" | head -1)"
lab_alive coordinator || lab_fail "the coordinator died"
lab_log PASS
