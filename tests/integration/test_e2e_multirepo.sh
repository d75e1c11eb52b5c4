#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Tags in several repositories in one submit, on real parts: two docker-registry
# processes, a real farm building linux/amd64 and linux/arm64.
# 1. `-t REG1/team/app:1 -t REG2/mirror/app:1 -t REG1/team/copy:1`: one build, one index;
#    each repository holds every child (manifest and config) and the index under its tag;
#    on REG1 the second repository got its blobs by cross-repository mount (the
#    registry's log has the 201s of the mount requests); farmctl and the metadata file name
#    every repository.
# 2. The stitch cannot reach REG2 (iptables cuts the coordinator's user, root, off it; the
#    agents, another user, still push there): the build fails naming REG2, and neither
#    tag moved: REG1's and REG2's :1 still name the first index, :2 exists in neither.
# 3. REG2 read-only: the nodes' pushes there are refused; the build fails, no tag moves.
# (1b: --amend into a repository of REG2 that lacks the kept image is refused naming it.)
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"   # FARM_SOURCE_DIR, FARM_BUILD_DIR default there
lab_init
[[ $(id -u) == 0 ]] || lab_fail "this test cuts the coordinator off a registry with iptables: run it as root"
for tool in skopeo curl iptables; do
    command -v "$tool" >/dev/null || lab_fail "$tool is not installed"
done
export LAB_SKIP_BINFMT=1
lab_registry_start
REG1=$REGISTRY

# reg2_start [readonly]: a second docker-registry, storage in $LAB/registry2/data (kept
# across restarts), on $REG2's port once chosen
reg2_start() {
    local ro=false port=${REG2_PORT:-} pid code deadline bin=/usr/bin/docker-registry
    [[ ${1:-} == readonly ]] && ro=true
    [[ -x $bin ]] || bin=$(command -v docker-registry) || lab_fail "docker-registry not installed"
    [[ -n $port ]] || port=$(lab_free_port)
    mkdir -p "$LAB/registry2/data"
    cat >"$LAB/registry2/config.yml" <<EOC
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $LAB/registry2/data
  maintenance:
    uploadpurging:
      enabled: false
    readonly:
      enabled: $ro
http:
  addr: 127.0.0.1:$port
EOC
    lab_spawn registry2 "$LAB/registry2.log" "$bin" serve "$LAB/registry2/config.yml"
    pid=$LAB_LAST_PID
    deadline=$((SECONDS + 30))
    until code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/v2/") \
        && [[ $code == 200 ]] && lab_port_owned "$port" "$pid"; do
        lab_alive registry2 || lab_fail "the second docker-registry exited; see $LAB/registry2.log"
        ((SECONDS < deadline)) || lab_fail "the second registry did not answer within 30s"
        sleep 0.1
    done
    REG2_PORT=$port
    REG2=127.0.0.1:$port
}
reg2_start

lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=x86-1" "linux/arm64=arm-1"
# the second registry is plain HTTP too
sed -i "/^registries:/a\\  \"$REG2\": {insecure: true}" "$LAB/farm.yaml"
grep -q "\"$REG2\": {insecure: true}" "$LAB/farm.yaml" || lab_fail "farm.yaml lacks $REG2"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent x86-1 linux/amd64
lab_start_agent arm-1 linux/arm64
lab_wait_nodes 2 30 x86-1 arm-1

A=$REG1/team/app B=$REG2/mirror/app C=$REG1/team/copy

# ctx NAME: a small context of its own (no RUN step: no emulation needed)
ctx() {
    mkdir -p "$LAB/$1"
    printf 'FROM scratch\nCOPY f /f\n' >"$LAB/$1/Dockerfile"
    echo "$1" >"$LAB/$1/f"
}
# submit NAME TAG REFS...: farmctl submit of context NAME to each REF:TAG; exit status in rc_NAME
submit() {
    local name=$1 tag=$2 r rc=0
    local -a args=()
    shift 2
    for r in "$@"; do args+=(-t "$r:$tag"); done
    lab_farmctl submit "${args[@]}" --platform linux/amd64,linux/arm64 --progress plain \
        --metadata-file "$LAB/$name.json" "$LAB/$name" >"$LAB/$name.out" 2>"$LAB/$name.err" || rc=$?
    printf -v "rc_$name" '%s' "$rc"
}
digest_of() { lab_index "$1" | sha256sum | sed 's/^/sha256:/; s/ .*//'; }
# absent REF: the registry has no manifest under REF (host/repo:tag)
absent() {
    local host=${1%%/*} rest=${1#*/} code
    code=$(curl -s -o /dev/null -w '%{http_code}' \
        -H 'Accept: application/vnd.oci.image.index.v1+json' \
        "http://$host/v2/${rest%:*}/manifests/${rest##*:}")
    [[ $code == 404 ]]
}
# children REF: "digest config-digest" of each child of the index at REF
children() {
    local d
    for d in $(lab_index "$1" | "$LAB_PYTHON" -c 'import json,sys
print(" ".join(m["digest"] for m in json.load(sys.stdin)["manifests"]))'); do
        echo "$d $(skopeo inspect --raw --tls-verify=false "docker://${1%:*}@$d" \
            | "$LAB_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["config"]["digest"])')"
    done
}

# --- 1. three repositories on two registries
ctx one
submit one 1 "$A" "$B" "$C"
cat "$LAB/one.err" >&2
((rc_one == 0)) || lab_fail "the submit to three repositories failed (exit $rc_one)"
idx=$(cat "$LAB/one.out")
[[ $idx =~ ^sha256:[0-9a-f]{64}$ ]] || lab_fail "farmctl printed no index digest"
for r in "$A" "$B" "$C"; do
    got=$(digest_of "$r:1") || lab_fail "$r:1 is not there"
    [[ $got == "$idx" ]] || lab_fail "$r:1 names $got, not the build's index $idx"
done
n=$(children "$A:1" | wc -l)
((n == 2)) || lab_fail "the index has $n children, not 2"
children "$A:1" >"$LAB/children"
while read -r child cfg; do
    for r in "$A" "$B" "$C"; do
        host=${r%%/*} repo=${r#*/}
        got=$(skopeo inspect --raw --tls-verify=false "docker://$r@$child" | sha256sum | sed 's/^/sha256:/; s/ .*//') \
            || lab_fail "child $child is not in $r"
        [[ $got == "$child" ]] || lab_fail "$r@$child serves bytes hashing to $got"
        code=$(curl -s -o /dev/null -w '%{http_code}' -I "http://$host/v2/$repo/blobs/$cfg")
        [[ $code == 200 ]] || lab_fail "the config $cfg of child $child is not in $r (HTTP $code)"
    done
done <"$LAB/children"
# every child has the platform its index entry claims, in each repository
for r in "$A" "$B" "$C"; do
    for arch in amd64 arm64; do
        got=$(skopeo inspect --tls-verify=false --override-arch "$arch" "docker://$r:1" \
            | "$LAB_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["Architecture"])')
        [[ $got == "$arch" ]] || lab_fail "$r:1 for $arch is a $got image"
    done
done
# team/copy is on REG1 with team/app: its blobs were mounted, not sent again
grep -F '/v2/team/copy/blobs/uploads/?mount=sha256:' "$LAB/registry.log" | grep -F 'from=team/app' \
    | grep -q 'http.response.status=201' \
    || lab_fail "no cross-repository mount into team/copy answered 201 in $LAB/registry.log"
grep -q 'farm: mounted' "$LAB/one.err" || lab_fail "no job's log says it mounted a blob"
# farmctl and the metadata file name every repository
for r in "$A" "$B" "$C"; do
    grep -Fq "$r:1" "$LAB/one.err" || lab_fail "farmctl does not name $r:1"
    grep -Fq "$r@$idx" "$LAB/one.err" || lab_fail "farmctl does not list $r among the repositories"
done
"$LAB_PYTHON" - "$LAB/one.json" "$A" "$B" "$C" <<'PY' || lab_fail "the metadata file does not name the three repositories"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["farm.repositories"] == sys.argv[2:], d.get("farm.repositories")
names = d["image.name"].split(",")
assert names == [r + ":1" for r in sys.argv[2:]], names
PY
lab_log "one submit, three repositories on two registries: index $idx under each tag, every child in each"

# --- 1b. --amend into a repository of another registry that lacks the kept image: refused
# naming it (the images are not copied across registries); no tag moves
ctx amend
rc_amend=0
lab_farmctl submit -t "$A:1" -t "$REG2/fresh/app:1" --amend --platform linux/arm64 \
    --progress plain "$LAB/amend" >"$LAB/amend.out" 2>"$LAB/amend.err" || rc_amend=$?
((rc_amend != 0)) || lab_fail "an amend into another registry lacking the kept image succeeded"
amd=$(lab_index "$A:1" | "$LAB_PYTHON" -c 'import json,sys
print([m["digest"] for m in json.load(sys.stdin)["manifests"] if m["platform"]["architecture"] == "amd64"][0])')
grep -q "kept index entry 1 (linux/amd64, $amd) refused.*is not in $REG2/fresh/app" "$LAB/amend.err" \
    || { cat "$LAB/amend.err" >&2; lab_fail "the refusal does not name the repository lacking the kept image"; }
got=$(digest_of "$A:1")
[[ $got == "$idx" ]] || lab_fail "$A:1 moved to $got after a refused amend"
absent "$REG2/fresh/app:1" || lab_fail "$REG2/fresh/app:1 exists after a refused amend"
lab_log "--amend into another registry lacking the kept image: refused, no tag moved"

# --- 2. the stitch cannot reach REG2: no tag moves anywhere
cut=(OUTPUT -p tcp -d 127.0.0.1 --dport "$REG2_PORT" -m owner --uid-owner 0 -j REJECT)
iptables -I "${cut[@]}" || lab_fail "iptables cannot add the rule that cuts root off $REG2"
lab_on_exit "iptables -D ${cut[*]} 2>/dev/null"
ctx two
submit two 1 "$A" "$B"
iptables -D "${cut[@]}"
cat "$LAB/two.err" >&2
((rc_two != 0)) || lab_fail "the build succeeded although the stitch could not reach $REG2"
grep -q "$REG2" "$LAB/two.err" || lab_fail "the failure does not name $REG2"
grep -q "push to $REG2" "$LAB/coordinator.log" && lab_fail "a node failed to push to $REG2: the cut hit the agents, not the stitch"
for r in "$A" "$B"; do
    got=$(digest_of "$r:1") || lab_fail "$r:1 is gone"
    [[ $got == "$idx" ]] || lab_fail "$r:1 moved to $got although the build failed in $REG2"
done
lab_log "the stitch could not reach $REG2: the build failed, neither :1 moved"

# --- 3. REG2 read-only: the nodes' pushes are refused there; nothing moves
lab_stop registry2
reg2_start readonly
ctx three
submit three 2 "$A" "$B"
cat "$LAB/three.err" >&2
((rc_three != 0)) || lab_fail "the build succeeded although $REG2 is read-only"
grep -q "$REG2" "$LAB/three.err" || lab_fail "the failure does not name $REG2"
absent "$A:2" || lab_fail "$A:2 exists although the build failed in $REG2"
absent "$B:2" || lab_fail "$B:2 exists although $REG2 is read-only"
got=$(digest_of "$A:1")
[[ $got == "$idx" ]] || lab_fail "$A:1 moved to $got"
lab_log "$REG2 read-only: the build failed, no tag in either registry"
lab_log "PASS"
