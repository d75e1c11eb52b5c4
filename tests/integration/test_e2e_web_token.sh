#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# coordinator.http off the loopback address, behind coordinator.http_token_file:
# 1. without the token file the coordinator refuses to start (exit 78), naming the line of
#    farm.yaml and the fix; with an empty token file likewise;
# 2. with it, it says at start that every request needs the token and that the address
#    is not loopback; requests without a token or with a wrong one get 401 and are told
#    how to send it, a Host that is not loopback is fine with the token (the token is what
#    a rebinding page cannot send), and the token never appears in its log.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
lab_init
command -v curl >/dev/null || lab_fail "curl is not installed"
export LAB_SKIP_BINFMT=1 LAB_KEYS=0
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=x86-t"
hp=$(lab_free_port)
sed -i "/^  heartbeat:/a\\  http: 0.0.0.0:$hp" "$LAB/farm.yaml"
line=$(grep -n "^  http: 0.0.0.0:$hp" "$LAB/farm.yaml" | cut -d: -f1)
[[ -n $line ]] || lab_fail "could not set coordinator.http"

# --- 1. no token file: refused at start
st=0
timeout 20 "$FARM_COORDINATOR_BIN" --config "$LAB/farm.yaml" >"$LAB/refused.log" 2>&1 || st=$?
((st == 78)) || lab_fail "the coordinator exited $st without http_token_file, not 78"
grep -q "farm.yaml:$line:9: coordinator.http is \"0.0.0.0:$hp\", which is not a loopback address, but coordinator.http_token_file is not set" \
    "$LAB/refused.log" || { cat "$LAB/refused.log" >&2; lab_fail "the refusal does not name the line and the fix"; }
token=t0k-$RANDOM$RANDOM$RANDOM
: >"$LAB/http.token"
chmod 0600 "$LAB/http.token"
sed -i "/^  http: 0.0.0.0:/a\\  http_token_file: $LAB/http.token" "$LAB/farm.yaml"
st=0
timeout 20 "$FARM_COORDINATOR_BIN" --config "$LAB/farm.yaml" >"$LAB/empty.log" 2>&1 || st=$?
((st == 78)) || lab_fail "the coordinator exited $st with an empty token file, not 78"
grep -q "http_token_file $LAB/http.token is empty; write a token in it" "$LAB/empty.log" \
    || { cat "$LAB/empty.log" >&2; lab_fail "the empty token file's refusal does not say so"; }

# a token file others may read is refused (README's `openssl rand -hex 32 > FILE` under
# umask 022 makes one)
echo "$token" >"$LAB/http.token"
chmod 0644 "$LAB/http.token"
st=0
timeout 20 "$FARM_COORDINATOR_BIN" --config "$LAB/farm.yaml" >"$LAB/open.log" 2>&1 || st=$?
((st == 78)) || lab_fail "the coordinator exited $st with a world-readable token file, not 78"
grep -q "http_token_file $LAB/http.token may be read by group or others.*run chmod 600" "$LAB/open.log" \
    || { cat "$LAB/open.log" >&2; lab_fail "the world-readable token file's refusal does not say so"; }
grep -qF "$token" "$LAB/open.log" && lab_fail "the refusal printed the token"
chmod 0600 "$LAB/http.token"

# --- 2. with the token
lab_start_coordinator "$LAB/farm.yaml"
lab_wait_until 10 "the coordinator to serve HTTP on $hp" lab_port_owned "$hp" "$LAB_LAST_PID"
grep -q "every request needs the bearer token of $LAB/http.token; the address is not loopback" \
    "$LAB/coordinator.log" || lab_fail "the coordinator did not say at start that its HTTP needs a token off loopback"
code=$(curl -s -o "$LAB/no-token.txt" -w '%{http_code}' "http://127.0.0.1:$hp/api/nodes")
[[ $code == 401 ]] || lab_fail "a request without a token got $code, not 401"
grep -q "this endpoint needs a token: send \"Authorization: Bearer TOKEN\"" "$LAB/no-token.txt" \
    || lab_fail "the 401 does not say how to send the token: $(cat "$LAB/no-token.txt")"
code=$(curl -s -o "$LAB/bad-token.txt" -w '%{http_code}' -H "Authorization: Bearer ${token}x" "http://127.0.0.1:$hp/metrics")
[[ $code == 401 ]] || lab_fail "a wrong token got $code, not 401"
grep -q "the token is wrong" "$LAB/bad-token.txt" || lab_fail "the 401 does not say the token is wrong"
code=$(curl -s -o "$LAB/nodes.json" -w '%{http_code}' -H "Authorization: Bearer $token" \
    -H "Host: farm.example:$hp" "http://127.0.0.1:$hp/api/nodes")
[[ $code == 200 ]] || lab_fail "the right token got $code, not 200"
grep -q '"name":"x86-t"' "$LAB/nodes.json" || lab_fail "/api/nodes with the token does not list x86-t"
code=$(curl -s -o "$LAB/metrics.txt" -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$hp/metrics")
[[ $code == 200 ]] && grep -q '^farm_nodes{state="unknown"} 1$' "$LAB/metrics.txt" \
    || lab_fail "/metrics with the token: $code, no farm_nodes line"
lab_stop coordinator TERM 10
if grep -qF "$token" "$LAB/coordinator.log"; then lab_fail "the token appears in the coordinator's log"; fi
lab_log "test_e2e_web_token: OK"
