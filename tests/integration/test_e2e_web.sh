#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The coordinator's HTTP endpoint and an agent's --metrics, with a real Prometheus, a real
# headless Chromium and a real build (one linux/amd64 node with one slot, three builds):
# 1. A hostile client holds 200 HTTP connections open, sending nothing, for the whole
#    test: the builds still dispatch and finish, and the API still answers at once.
#    A request naming another Host (a DNS name rebound to 127.0.0.1) is refused, and so
#    is a POST (the API is read-only).
# 2. Chromium loads the page twice while the first build's RUN step prints a line a second
#    (name resolution off for everything but 127.0.0.1: the page needs no network): it
#    shows the node, the running build and its log lines, more lines the second time, and
#    the two builds waiting in the queue. A screenshot is kept in the build dir
#    (test-artifacts/web-page.png, taken while the second build runs). The last build's log, followed over HTTP (follow=1)
#    from before it started, streams every line and ends when the build does. After the
#    builds, /api/history and the page's history show all three completed, and the page
#    opened at /#BUILD shows that build's record (node, attempt, timed steps).
# 3. Prometheus scrapes the coordinator and the agent every second; its HTTP API then says
#    3 builds finished ok, the queue grew (to 2) and drained to 0, 3 queue waits and 3 jobs
#    done on the agent, and both targets up.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init
for c in prometheus chromium curl "$LAB_PYTHON"; do
    command -v "$c" >/dev/null || lab_fail "$c is not installed (LAB_DEPS has its package)"
done
export LAB_SKIP_BINFMT=1
lab_registry_start
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=x86-w"
hp=$(lab_free_port)
ap=$(lab_free_port)
pp=$(lab_free_port)
sed -i "/^  heartbeat:/a\\  http: 127.0.0.1:$hp" "$LAB/farm.yaml"
grep -q "^  http: 127.0.0.1:$hp" "$LAB/farm.yaml" || lab_fail "could not set coordinator.http"
lab_start_coordinator "$LAB/farm.yaml"
cpid=$LAB_LAST_PID
lab_wait_until 10 "the coordinator to serve HTTP on $hp" lab_port_owned "$hp" "$cpid"
grep -q "http: /metrics, the page and /api/ on http://127.0.0.1:$hp/ .*loopback only" "$LAB/coordinator.log" \
    || lab_fail "the coordinator did not say where it serves HTTP and who may read it"
lab_start_agent x86-w linux/amd64 --metrics "127.0.0.1:$ap"
lab_wait_nodes 1 30 x86-w
url=http://127.0.0.1:$hp

# --- Prometheus, scraping both every second
cat >"$LAB/prometheus.yml" <<EOF
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: farm-coordinator
    static_configs: [{targets: ["127.0.0.1:$hp"]}]
  - job_name: farm-agent
    static_configs: [{targets: ["127.0.0.1:$ap"]}]
EOF
lab_spawn prometheus "$LAB/prometheus.log" prometheus --config.file="$LAB/prometheus.yml" \
    --storage.tsdb.path="$LAB/prometheus-data" --web.listen-address="127.0.0.1:$pp"
lab_wait_until 30 "Prometheus to be ready" curl -fsS -o /dev/null "http://127.0.0.1:$pp/-/ready"
prom_api="http://127.0.0.1:$pp/api/v1"
# promql EXPR: the single value of an instant query ("" when there is none)
promql() {
    curl -fsS --get "$prom_api/query" --data-urlencode "query=$1" | "$LAB_PYTHON" -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if len(r) == 1 else "")'
}

# --- 1. a hostile client: 200 connections that send nothing, held to the end
lab_spawn hostile "$LAB/hostile.log" "$LAB_PYTHON" -c "
import socket, time
socks = [socket.create_connection(('127.0.0.1', $hp)) for _ in range(200)]
print('holding', len(socks), flush=True)
time.sleep(3600)"
lab_wait_until 10 "the hostile client's 200 connections" grep -q "holding 200" "$LAB/hostile.log"
t0=$(date +%s%N)
curl -fsS "$url/api/nodes" >"$LAB/nodes.json" || lab_fail "/api/nodes is not answered with 200 silent connections open"
ms=$((($(date +%s%N) - t0) / 1000000))
((ms < 2000)) || lab_fail "/api/nodes took $ms ms with 200 silent connections open"
"$LAB_PYTHON" -c 'import json,sys; n=json.load(open(sys.argv[1]))["nodes"]; assert n[0]["name"]=="x86-w" and n[0]["state"]=="ready", n' \
    "$LAB/nodes.json" || lab_fail "/api/nodes does not show x86-w ready: $(cat "$LAB/nodes.json")"
code=$(curl -s -o "$LAB/rebind.txt" -w '%{http_code}' -H "Host: farm.attacker.example" "$url/api/builds")
[[ $code == 403 ]] || lab_fail "a request for Host farm.attacker.example got $code, not 403"
grep -q "Host must be a loopback address" "$LAB/rebind.txt" || lab_fail "the Host refusal does not say why"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data 'x' "$url/api/builds")
[[ $code == 405 ]] || lab_fail "a POST got $code, not 405"

# --- 2. three builds on one slot; the page during the first
ctx=$LAB/ctx
lab_example_context "$ctx"
cat >>"$ctx/Dockerfile" <<'DEOF'
ARG ROUND
RUN for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14; do echo "farm-web: line $i of round $ROUND"; sleep 1; done
DEOF
bids=()
for r in 1 2 3; do
    lab_farmctl submit -t "$REGISTRY/team/web:$r" --platform linux/amd64 --progress plain \
        --build-arg ROUND=$r --detach "$ctx" >"$LAB/submit-$r.out" 2>"$LAB/submit-$r.err" \
        || { cat "$LAB/submit-$r.err" >&2; lab_fail "farmctl submit $r failed"; }
    bids+=("$(cat "$LAB/submit-$r.out")")
done
b1=${bids[0]}
lab_log "builds ${bids[*]}"
# the first build's log lines reach the coordinator
lines_of() { curl -fsS "$url/api/builds/$1/logs?platform=linux/amd64" \
    | "$LAB_PYTHON" -c 'import json,sys; print(sum("farm-web: line" in l["line"] for l in json.load(sys.stdin)["lines"]))'; }
deadline=$((SECONDS + 180))
until (($(lines_of "$b1") >= 2)); do
    ((SECONDS < deadline)) || lab_fail "no log line of $b1 reached /api/builds/$b1/logs in 180 s"
    sleep 0.5
done
mkdir -p "$FARM_BUILD_DIR/test-artifacts"
chrome() {
    chromium --headless --no-sandbox --disable-gpu --user-data-dir="$LAB/chrome" \
        --host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" \
        --virtual-time-budget=3000 "$@" 2>>"$LAB/chromium.log"
}
# log lines of build $1 in a dumped DOM $2
dom_lines() { "$LAB_PYTHON" - "$1" "$2" <<'PY'
import re, sys
dom = open(sys.argv[2]).read()
start = dom.find('<div class="build" data-build="%s">' % sys.argv[1])
if start < 0:
    print(-1)
    sys.exit()
end = min(i for i in (dom.find('<div class="build" data-build=', start + 1), dom.find("<h2>History"), len(dom)) if i >= 0)
print(len(re.findall(r"farm-web: line \d+", dom[start:end])))
PY
}
chrome --dump-dom "$url/" >"$LAB/page-1.html" || lab_fail "chromium could not load the page"
sleep 4
chrome --dump-dom "$url/" >"$LAB/page-2.html" || lab_fail "chromium could not load the page again"
n1=$(dom_lines "$b1" "$LAB/page-1.html")
n2=$(dom_lines "$b1" "$LAB/page-2.html")
lab_log "the page showed $n1 then $n2 log lines of $b1"
((n1 >= 1)) || lab_fail "the page shows no log line of the running build $b1 (see $LAB/page-1.html)"
((n2 > n1)) || lab_fail "the second load shows $n2 log lines of $b1, not more than the first's $n1"
grep -q '<tr data-node="x86-w"><td>x86-w</td><td class="state ready">ready</td><td>linux/amd64</td><td>1/1</td>' \
    "$LAB/page-1.html" || lab_fail "the page does not show node x86-w ready with 1/1 slots used"
for b in "${bids[@]:1}"; do
    grep -q "<tr data-build=\"$b\"><td>$b</td><td>linux/amd64</td>" "$LAB/page-1.html" \
        || lab_fail "the page's queue does not show the waiting build $b"
done
grep -q "cannot read the coordinator" "$LAB/page-2.html" && lab_fail "the page could not read the API"

# the last build's log followed over HTTP from before it starts: the stream ends by itself
# when the build does, holding every line of its RUN step
b3=${bids[2]}
curl -sSN --max-time 300 "$url/api/builds/$b3/logs?follow=1&platform=linux/amd64" >"$LAB/follow-3.ndjson" &
follow_pid=$!

# --- the builds finish: dispatched with the hostile connections still held
# (the screenshot: the first build in the history with its record open, the second
# running with its log, the third queued)
timeout 300 "$FARMCTL" wait --coordinator "$FARM_COORDINATOR" "$b1" >"$LAB/wait-$b1.out" 2>&1 \
    || { cat "$LAB/wait-$b1.out" >&2; lab_fail "build $b1 did not finish ok"; }
deadline=$((SECONDS + 120))
until (($(lines_of "${bids[1]}") >= 3)); do
    ((SECONDS < deadline)) || lab_fail "no log line of ${bids[1]} reached the API in 120 s"
    sleep 0.5
done
chrome --screenshot="$FARM_BUILD_DIR/test-artifacts/web-page.png" --window-size=1280,1400 "$url/#$b1" >/dev/null \
    || lab_fail "chromium could not take a screenshot"
[[ -s $FARM_BUILD_DIR/test-artifacts/web-page.png ]] || lab_fail "no screenshot written"
for b in "${bids[@]}"; do
    timeout 300 "$FARMCTL" wait --coordinator "$FARM_COORDINATOR" "$b" >"$LAB/wait-$b.out" 2>&1 \
        || { cat "$LAB/wait-$b.out" >&2; lab_fail "build $b did not finish ok"; }
done
lab_alive hostile || lab_fail "the hostile client ended before the builds did"
lab_log "three builds done with 200 silent HTTP connections held"
st=0
timeout 30 tail --pid="$follow_pid" -f /dev/null || lab_fail "the followed log of $b3 did not end with its build"
wait "$follow_pid" || st=$?
((st == 0)) || lab_fail "curl following $b3's log exited $st"
for i in 1 7 14; do
    grep -q "\"line\":\"[^\"]*farm-web: line $i of round 3\"" "$LAB/follow-3.ndjson" \
        || lab_fail "the followed log of $b3 lacks line $i (see $LAB/follow-3.ndjson)"
done
"$LAB_PYTHON" -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$LAB/follow-3.ndjson" \
    || lab_fail "the followed log is not one JSON object a line"

# the history: the API and the page, with one build's record opened by its link
curl -fsS "$url/api/history" >"$LAB/history.json" || lab_fail "/api/history failed"
"$LAB_PYTHON" - "$LAB/history.json" "${bids[@]}" <<'PY' || lab_fail "/api/history does not list the three builds completed: $(cat "$LAB/history.json")"
import json, sys
h = {b["build_id"]: b for b in json.load(open(sys.argv[1]))["builds"]}
for bid in sys.argv[2:]:
    assert h[bid]["status"] == "completed" and h[bid]["index_digest"].startswith("sha256:"), h.get(bid)
PY
chrome --dump-dom "$url/#$b1" >"$LAB/page-3.html" || lab_fail "chromium could not load the page after the builds"
for b in "${bids[@]}"; do
    grep -q "<tr data-build=\"$b\" class=\"pick\" title=\"show its record\"><td>$b</td><td class=\"state completed\">completed</td>" \
        "$LAB/page-3.html" || lab_fail "the page's history does not show $b completed (see $LAB/page-3.html)"
done
"$LAB_PYTHON" - "$LAB/page-3.html" "$b1" <<'PY' || lab_fail "the page does not show $b1's record (see $LAB/page-3.html)"
import re, sys
dom, bid = open(sys.argv[1]).read(), sys.argv[2]
rec = dom[dom.index('<div id="record"'):]
assert '<div id="record" class="build" data-build="%s">' % bid in dom, "no record box for the build"
assert "linux/amd64 — " in rec and "on x86-w" in rec, "no platform line naming the node"
assert re.search(r"[0-9.]+ s +(cached )? *STEP \d+/\d+: RUN for i in", rec), "no timed step"
assert "#1 on x86-w: done" in rec, "no attempt"
PY
grep -q '<div class="build" data-build=' "$LAB/page-3.html" \
    && lab_fail "the page still shows a running build after all three finished"

# --- 3. what Prometheus scraped
want() { # want EXPR VALUE [WAIT]
    local got="" deadline=$((SECONDS + ${3:-20}))
    while ((SECONDS < deadline)); do
        got=$(promql "$1") || got=""
        [[ $got == "$2" ]] && { lab_log "prometheus: $1 = $got"; return 0; }
        sleep 1
    done
    lab_fail "prometheus: $1 = \"$got\", want $2"
}
want 'farm_builds_finished_total{result="ok"}' 3
want 'farm_queue_length{platform="linux/amd64"}' 0
want 'max_over_time(farm_queue_length{platform="linux/amd64"}[15m])' 2
want 'farm_queue_wait_seconds_count{platform="linux/amd64"}' 3
want 'farm_job_duration_seconds_count{platform="linux/amd64",result="done"}' 3
want 'max_over_time(farm_jobs_running{platform="linux/amd64"}[15m])' 1
want 'farm_nodes{state="ready"}' 1
want 'farm_agent_jobs_finished_total{platform="linux/amd64",result="done"}' 3
want 'farm_agent_healthy' 1
want 'up{job="farm-coordinator"}' 1
want 'up{job="farm-agent"}' 1
rss=$(promql 'process_resident_memory_bytes{job="farm-coordinator"}')
[[ $rss =~ ^[0-9.e+]+$ ]] && "$LAB_PYTHON" -c "import sys; assert float(sys.argv[1]) > 1e6" "$rss" \
    || lab_fail "the coordinator's resident memory is \"$rss\""
lab_log "test_e2e_web: OK"
