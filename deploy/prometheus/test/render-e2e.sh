#!/usr/bin/env bash
# Render the end-to-end Prometheus and Alertmanager configurations into one directory.
#
#   deploy/prometheus/test/render-e2e.sh OUTDIR PASSPORTD_ADDR ALERTMANAGER_ADDR [WEBHOOK_URL]
#
# Writes OUTDIR/prometheus.yml (prometheus-e2e.yml with __PASSPORTD__ and __ALERTMANAGER__
# replaced by the given host:port), OUTDIR/passportd-e2e.rules.yml (next to it, because
# rule_files is relative to the configuration file) and OUTDIR/alertmanager.yml
# (alertmanager-e2e.yml with its webhook http://127.0.0.1:19095/alerts replaced by
# WEBHOOK_URL when given). Then, for example:
#   prometheus --config.file=OUTDIR/prometheus.yml --storage.tsdb.path=OUTDIR/data \
#              --web.listen-address=127.0.0.1:39090
#   alertmanager --config.file=OUTDIR/alertmanager.yml --storage.path=OUTDIR/am \
#              --web.listen-address=ALERTMANAGER_ADDR --cluster.listen-address=
set -euo pipefail
if [[ $# -lt 3 ]]; then
  echo "usage: $0 OUTDIR PASSPORTD_ADDR ALERTMANAGER_ADDR [WEBHOOK_URL]" >&2
  exit 2
fi
out=$1
passportd=$2
alertmanager=$3
webhook=${4:-http://127.0.0.1:19095/alerts}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$out"
sed -e "s#__PASSPORTD__#${passportd}#g" -e "s#__ALERTMANAGER__#${alertmanager}#g" \
  "$here/prometheus-e2e.yml" >"$out/prometheus.yml"
cp "$here/passportd-e2e.rules.yml" "$out/passportd-e2e.rules.yml"
sed -e "s#http://127.0.0.1:19095/alerts#${webhook}#g" \
  "$here/alertmanager-e2e.yml" >"$out/alertmanager.yml"
echo "rendered $out/prometheus.yml, $out/passportd-e2e.rules.yml, $out/alertmanager.yml"
