#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A registry served over TLS with a certificate from a private CA the test makes: with
# farm.yaml's registries.HOST.ca the agent pushes, the coordinator stitches, and buildah
# pulls a base image FROM it. Without ca: the push fails on the certificate.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
lab_init
export LAB_SKIP_BINFMT=1
command -v openssl >/dev/null || lab_fail "openssl not installed"

# the CA and the registry's certificate (SAN IP 127.0.0.1)
t=$LAB/tls
mkdir -p "$t"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=farm test CA" \
    -keyout "$t/ca.key" -out "$t/ca.pem" 2>/dev/null || lab_fail "openssl: CA"
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$t/reg.key" -out "$t/reg.csr" \
    2>/dev/null || lab_fail "openssl: CSR"
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$t/ext.cnf"
openssl x509 -req -in "$t/reg.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial -days 2 \
    -extfile "$t/ext.cnf" -out "$t/reg.pem" 2>/dev/null || lab_fail "openssl: sign"
port=$(lab_free_port)
mkdir -p "$LAB/registry/data"
cat >"$LAB/registry/config.yml" <<YEOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $LAB/registry/data
http:
  addr: 127.0.0.1:$port
  tls:
    certificate: $t/reg.pem
    key: $t/reg.key
YEOF
lab_spawn registry "$LAB/registry.log" /usr/bin/docker-registry serve "$LAB/registry/config.yml"
REGISTRY=127.0.0.1:$port
export REGISTRY
deadline=$((SECONDS + 30))
until [[ $(curl -s --cacert "$t/ca.pem" -o /dev/null -w '%{http_code}' --max-time 2 \
        "https://$REGISTRY/v2/" || true) == 200 ]]; do
    lab_alive registry || lab_fail "docker-registry exited; see $LAB/registry.log"
    ((SECONDS < deadline)) || lab_fail "the TLS registry did not answer within 30s"
    sleep 0.1
done
TLSREG=$REGISTRY

# farm.yaml: the registry with ca:, not insecure
lab_farm_yaml "$LAB/farm.yaml" "linux/amd64=amd64-1"
sed -i "s|^  \"$TLSREG\": {insecure: true}|  \"$TLSREG\": {ca: $t/ca.pem}|" "$LAB/farm.yaml"
grep -q "ca: $t/ca.pem" "$LAB/farm.yaml" || lab_fail "could not edit farm.yaml"
lab_start_coordinator "$LAB/farm.yaml"
lab_start_agent amd64-1 linux/amd64
lab_wait_nodes 1 30 amd64-1
lab_example_context "$LAB/ctx"

lab_farmctl submit -t "$TLSREG/team/base:1" --platform linux/amd64 --progress plain "$LAB/ctx" \
    >"$LAB/base.out" 2>"$LAB/base.err" || { cat "$LAB/base.err"; lab_fail "push over TLS with ca: failed"; }
mkdir -p "$t/skopeo-certs" && cp "$t/ca.pem" "$t/skopeo-certs/ca.crt"
skopeo inspect --raw --cert-dir "$t/skopeo-certs" "docker://$TLSREG/team/base:1" \
    | grep -q 'image.index.v1+json' || lab_fail "no index under team/base:1"

mkdir -p "$LAB/ctx2"
printf 'FROM %s/team/base:1\nRUN echo tls-derived > /etc/farm-derived\n' "$TLSREG" >"$LAB/ctx2/Dockerfile"
lab_farmctl submit -t "$TLSREG/team/derived:1" --platform linux/amd64 --progress plain "$LAB/ctx2" \
    >"$LAB/derived.out" 2>"$LAB/derived.err" \
    || { cat "$LAB/derived.err"; lab_fail "a FROM of an image in the TLS registry failed"; }
curl -s --cacert "$t/ca.pem" "https://$TLSREG/v2/team/derived/tags/list" | grep -q '"1"' \
    || lab_fail "no team/derived:1"

# without ca: the certificate is not trusted and the push fails saying so
lab_stop coordinator TERM
sed -i "s|  \"$TLSREG\": {ca: $t/ca.pem}|  \"$TLSREG\": {}|" "$LAB/farm.yaml"
lab_start_coordinator "$LAB/farm.yaml"
lab_wait_nodes 1 30 amd64-1
rc=0
lab_farmctl submit -t "$TLSREG/team/noca:1" --platform linux/amd64 --progress plain "$LAB/ctx" \
    >"$LAB/noca.out" 2>"$LAB/noca.err" || rc=$?
(( rc != 0 )) || lab_fail "a push to a registry with a private CA worked without ca:"
grep -qi "certificate" "$LAB/noca.err" || { cat "$LAB/noca.err"; lab_fail "the failure does not name the certificate"; }
lab_log "PASS"
