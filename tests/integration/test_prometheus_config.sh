#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# deploy/prometheus/: the example scrape config and alert rules as Prometheus' own promtool
# reads them (check config, check rules), and the alerts fire on the series they are about
# and stay quiet on a healthy farm (promtool test rules, tests/data/prometheus/).
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
lab_init --no-binaries
command -v promtool >/dev/null || lab_fail "promtool is not installed (Debian: prometheus)"
src=$FARM_SOURCE_DIR/deploy/prometheus
cp "$src/prometheus.yml" "$src/farm-alerts.yml" "$LAB/"
cp "$FARM_SOURCE_DIR/tests/data/prometheus/farm-alerts-test.yml" "$LAB/"
echo "example-token" >"$LAB/farm-http.token"   # the config names it, next to itself
(cd "$LAB" && promtool check config prometheus.yml) || lab_fail "promtool check config failed"
(cd "$LAB" && promtool check rules farm-alerts.yml) || lab_fail "promtool check rules failed"
(cd "$LAB" && promtool test rules farm-alerts-test.yml) || lab_fail "promtool test rules failed"
lab_log "deploy/prometheus: config, rules and alert tests pass"
