#!/usr/bin/env bash
# Validate everything under deploy/ with the real tools.
#
#   scripts/check-deploy.sh            # from the repository root (or anywhere inside it)
#
# Needs: promtool (Debian package `prometheus`), amtool (`prometheus-alertmanager`),
# python3. Optional: systemd-analyze (skipped with a message when missing), hadolint.
# Runs every check, prints each one, and exits 1 if any failed (2 if a tool is missing).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

deploy=deploy
rules=$deploy/prometheus/passportd.rules.yml
rules_test=$deploy/prometheus/passportd.rules.test.yml
prom_cfg=$deploy/prometheus/prometheus.yml
e2e_dir=$deploy/prometheus/test
e2e_rules=$e2e_dir/passportd-e2e.rules.yml
e2e_prom=$e2e_dir/prometheus-e2e.yml
e2e_am=$e2e_dir/alertmanager-e2e.yml
am_cfg=$deploy/alertmanager/alertmanager.yml
dashboard=$deploy/grafana/passportd.json
runbook=$deploy/RUNBOOK.md
unit=$deploy/systemd/passportd.service
dockerfile=$deploy/docker/Dockerfile
runbook_base='https://github.com/passportd/passportd/blob/main/deploy/RUNBOOK.md#'

failures=()
passed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# check "description" command... : run one check, show its output indented, record result.
# NB: errexit does not apply inside a command run as an `if` condition, so the multi-step
# check functions below end every step with `|| return 1`.
check() {
  local what=$1
  shift
  printf '==> %s\n' "$what"
  if "$@" >"$tmp/out" 2>&1; then
    sed 's/^/    /' "$tmp/out"
    printf '    ok\n'
    passed=$((passed + 1))
  else
    sed 's/^/    /' "$tmp/out"
    printf '    FAILED: %s\n' "$what"
    failures+=("$what")
  fi
}

need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "check-deploy: $1 not found; install $2" >&2
    exit 2
  fi
}
need promtool "the Debian package prometheus"
need amtool "the Debian package prometheus-alertmanager"
need python3 "python3"
echo "promtool: $(promtool --version 2>&1 | head -n1)"
echo "amtool:   $(amtool --version 2>&1 | head -n1)"

for f in "$rules" "$rules_test" "$prom_cfg" "$e2e_rules" "$e2e_prom" "$e2e_am" "$am_cfg" \
  "$dashboard" "$runbook" "$unit" "$dockerfile"; do
  [[ -f $f ]] || failures+=("missing file $f")
done

# --- Prometheus rules --------------------------------------------------------------------
check "promtool check rules (production)" promtool check rules "$rules"
check "promtool test rules (unit tests)" promtool test rules "$rules_test"
check "promtool check rules (e2e copy)" promtool check rules "$e2e_rules"
check "e2e rules are generated from the production rules (make-e2e-rules.py --check)" \
  python3 "$e2e_dir/make-e2e-rules.py" --check

# Alerts: same set in both files; severity label, summary/description/runbook_url
# annotations; every runbook_url anchor exists in RUNBOOK.md.
alerts_lint() {
  python3 - "$runbook" "$runbook_base" "$rules" "$e2e_rules" <<'PY'
import re, sys
runbook, base, *files = sys.argv[1:]
text = open(runbook, encoding="utf-8").read()
anchors = set(re.findall(r'<a\s+(?:id|name)="([^"]+)"', text))
for h in re.findall(r'^#{1,6}\s+(.+?)\s*#*\s*$', text, re.M):
    slug = re.sub(r'[^\w\- ]', '', h.strip().lower()).replace(' ', '-')
    anchors.add(slug)
errors, names = [], {}
for path in files:
    src = open(path, encoding="utf-8").read()
    blocks = re.split(r'\n\s*- (?=alert:|record:)', src)
    found = []
    for b in blocks:
        m = re.match(r'alert:\s*(\S+)', b)
        if not m:
            continue
        name = m.group(1)
        found.append(name)
        sev = re.search(r'^\s+severity:\s*(\S+)', b, re.M)
        if not sev or sev.group(1) not in ("page", "ticket", "warning"):
            errors.append(f"{path}: {name}: severity label missing or not page/ticket/warning")
        for ann in ("summary", "description", "runbook_url"):
            if not re.search(rf'^\s+{ann}:', b, re.M):
                errors.append(f"{path}: {name}: annotation {ann} missing")
        url = re.search(r'runbook_url:\s*"?([^"\s]+)"?', b)
        if url:
            u = url.group(1)
            if not u.startswith(base):
                errors.append(f"{path}: {name}: runbook_url {u} does not start with {base}")
            anchor = u.split('#', 1)[-1]
            if anchor != name.lower():
                errors.append(f"{path}: {name}: runbook anchor #{anchor} is not #{name.lower()}")
            if anchor not in anchors:
                errors.append(f"{path}: {name}: anchor #{anchor} not found in {runbook}")
    names[path] = found
    print(f"{path}: {len(found)} alerts: {', '.join(found)}")
a, b = (set(v) for v in names.values())
if a != b:
    errors.append(f"alert names differ between {files[0]} and {files[1]}: {sorted(a ^ b)}")
for e in errors:
    print("ERROR:", e)
sys.exit(1 if errors else 0)
PY
}
check "alert labels/annotations and RUNBOOK.md anchors" alerts_lint

# --- Prometheus configuration ------------------------------------------------------------
check "promtool check config (example prometheus.yml)" promtool check config "$prom_cfg"
check "promtool check config (e2e template, placeholders as-is)" promtool check config "$e2e_prom"
render_and_check() {
  "$e2e_dir/render-e2e.sh" "$tmp/e2e" 127.0.0.1:9477 127.0.0.1:9093 http://127.0.0.1:9095/e2e || return 1
  if grep -n '__PASSPORTD__\|__ALERTMANAGER__' "$tmp/e2e/prometheus.yml"; then
    echo "placeholders left after rendering"
    return 1
  fi
  promtool check config "$tmp/e2e/prometheus.yml" || return 1
  amtool check-config "$tmp/e2e/alertmanager.yml" || return 1
}
check "render-e2e.sh output (placeholders substituted)" render_and_check

# --- Alertmanager --------------------------------------------------------------------------
check "amtool check-config (alertmanager.yml)" amtool check-config "$am_cfg"
check "amtool check-config (alertmanager-e2e.yml)" amtool check-config "$e2e_am"
routes_test() {
  local sev expect got
  for sev in page ticket warning; do
    expect=passportd-$sev
    got=$(amtool config routes test --config.file="$am_cfg" alertname=PassportdTest severity="$sev" 2>/dev/null)
    echo "severity=$sev -> $got"
    [[ $got == "$expect" ]] || { echo "expected $expect"; return 1; }
  done
}
check "alertmanager routing by severity (amtool config routes test)" routes_test

# --- Grafana dashboard ---------------------------------------------------------------------
check "dashboard is valid JSON (python3 -m json.tool)" python3 -m json.tool "$dashboard" /dev/null
# Every PromQL expression in the dashboard parses. Grafana variables are substituted the
# way a test against a real Prometheus must do it: $source -> .*, $__rate_interval -> 1m.
dashboard_exprs() {
  python3 - "$dashboard" "$tmp/dashboard.rules.yml" <<'PY' || return 1
import json, re, sys
dash = json.load(open(sys.argv[1], encoding="utf-8"))
exprs = []
def walk(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if k == "expr" and isinstance(v, str):
                exprs.append(v)
            else:
                walk(v)
    elif isinstance(o, list):
        for v in o:
            walk(v)
walk(dash)
bad = []
out = ["groups:", "  - name: dashboard-exprs", "    rules:"]
for i, e in enumerate(exprs):
    q = e.replace("$__rate_interval", "1m").replace("$source", ".*")
    if "$" in q:
        bad.append(f"unsupported Grafana variable in: {e}")
    out.append(f"      - record: dashboard:expr_{i}")
    out.append("        expr: " + json.dumps(q))
open(sys.argv[2], "w", encoding="utf-8").write("\n".join(out) + "\n")
if dash.get("schemaVersion", 0) < 36:
    bad.append(f"schemaVersion {dash.get('schemaVersion')} is too old")
names = {v.get("name") for v in dash.get("templating", {}).get("list", [])}
for v in ("datasource", "source"):
    if v not in names:
        bad.append(f"template variable ${v} missing")
print(f"{len(exprs)} expressions extracted (substituted: $source -> .*, $__rate_interval -> 1m)")
for b in bad:
    print("ERROR:", b)
sys.exit(1 if bad or not exprs else 0)
PY
  promtool check rules "$tmp/dashboard.rules.yml" || return 1
}
check "every dashboard expr is valid PromQL (promtool check rules)" dashboard_exprs

# --- systemd -------------------------------------------------------------------------------
if command -v systemd-analyze >/dev/null 2>&1; then
  verify_unit() {
    # verify insists that ExecStart= exists and is executable. If passportd is not
    # installed here, verify a copy whose binary path points at a dummy executable.
    local u=$unit
    if [[ ! -x /usr/local/bin/passportd ]]; then
      echo "/usr/local/bin/passportd not installed: verifying a copy that runs a dummy binary"
      printf '#!/bin/sh\nexit 0\n' >"$tmp/passportd" || return 1
      chmod 0755 "$tmp/passportd" || return 1
      mkdir -p "$tmp/unit" || return 1
      sed "s#/usr/local/bin/passportd#$tmp/passportd#g" "$unit" >"$tmp/unit/passportd.service" || return 1
      u=$tmp/unit/passportd.service
    fi
    systemd-analyze verify "$u" || return 1
    if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
      # exposure must stay below 3.0 ("OK"); exits non-zero above the threshold
      systemd-analyze security --offline=yes --threshold=30 "$u" >"$tmp/security" || { cat "$tmp/security"; return 1; }
      tail -n1 "$tmp/security"
    fi
  }
  check "systemd-analyze verify (passportd.service)" verify_unit
else
  echo "==> systemd-analyze not available: SKIPPED systemd unit verification"
fi

# --- Dockerfile ----------------------------------------------------------------------------
dockerfile_lint() {
  local d
  for d in '^FROM rust:.*bookworm AS builder' 'cargo build --release --locked' \
    '^USER ' '^EXPOSE 9477' '^VOLUME \["/var/lib/passportd"\]' '^ENTRYPOINT \["/usr/local/bin/passportd", "serve"\]'; do
    grep -Eq "$d" "$dockerfile" || { echo "Dockerfile lacks: $d"; return 1; }
  done
  echo "multi-stage, --locked, non-root, volume, port and entrypoint present"
  if command -v hadolint >/dev/null 2>&1; then hadolint "$dockerfile" || return 1; else echo "(hadolint not installed: structural checks only)"; fi
}
check "Dockerfile structure" dockerfile_lint

echo
if ((${#failures[@]})); then
  echo "check-deploy: ${#failures[@]} check(s) FAILED (${passed} passed):"
  printf '  - %s\n' "${failures[@]}"
  exit 1
fi
echo "check-deploy: all ${passed} checks passed"
