#!/usr/bin/env bash
# Issue #8 benchmark: passportd replay / live tailing / incident API against mtail and a
# plain serde_json parse, on seeded corpora. Not part of `cargo test`.
#
#   scripts/bench.sh            full sizes (100k, 1M, 3M Azure records; 5 x 1M; 1M Passport)
#   scripts/bench.sh --quick    small sizes, for a smoke run (a few minutes)
#   options: --runs N (runs per small figure, default 3), --runs-large N (default 1),
#            --keep (leave the temp dir), --no-write (do not update BENCHMARKS.md)
#
# Needs: cargo, mtail, wrk, python3, /usr/bin/time, unshare (poll-mode latency).
# Every figure is the median of its runs; the load average is printed next to each.
set -euo pipefail

QUICK=0 RUNS=3 RUNS_LARGE=1 KEEP=0 WRITE=1
ARGS="$*"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --runs) RUNS="$2"; shift ;;
    --runs-large) RUNS_LARGE="$2"; shift ;;
    --keep) KEEP=1 ;;
    --no-write) WRITE=0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
for tool in mtail wrk python3 /usr/bin/time unshare; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y mtail wrk hyperfine time)" >&2; exit 2; }
done

if [ "$QUICK" = 1 ]; then
  AZ_SIZES="20000 100000"; MULTI_N=100000; MULTI_K=3; PP_N=200000
  LAT_N=40; LAT_RATE=10; LAT_N_POLL=40; API_INC=10000; API_EV=200000; WRK_D=5s; DEEP_PAGES=50
  NEED_GB=3
else
  # Six 1M files into one store: the last one goes into a store already holding 5M.
  AZ_SIZES="100000 1000000 3000000"; MULTI_N=1000000; MULTI_K=6; PP_N=1000000
  LAT_N=10000; LAT_RATE=100; LAT_N_POLL=200; API_INC=100000; API_EV=5000000; WRK_D=15s; DEEP_PAGES=500
  # Corpora are generated just before use and deleted after (3M Azure is ~8 GB).
  NEED_GB=20
fi

TMP="${BENCH_TMP:-$(mktemp -d /tmp/passportd-bench.XXXXXX)}"
mkdir -p "$TMP"
cleanup() {
  [ -n "${SERVE_PID:-}" ] && kill "$SERVE_PID" 2>/dev/null || true
  [ "$KEEP" = 1 ] || rm -rf "$TMP"
}
trap cleanup EXIT
FREE_GB=$(df -BG --output=avail "$TMP" | tail -1 | tr -dc 0-9)
if [ "$FREE_GB" -lt "$NEED_GB" ]; then
  echo "need ~${NEED_GB} GB free under $TMP, have ${FREE_GB} GB" >&2
  exit 2
fi

echo "== build (release)" >&2
cargo build --release --locked --bins >&2
BIN="$ROOT/target/release/passportd"
GEN="$ROOT/target/release/passportd-corpus"

ROWS="$TMP/rows.md"
: >"$ROWS"
load() { cut -d' ' -f1 /proc/loadavg; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "n/a"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
row() { echo "| $* |" >>"$ROWS"; echo "| $* |" >&2; }
count_lines() { wc -l <"$1" | tr -d ' '; }

# replay FILE DB -> prints "rate rss_mb" (records per second of input lines, peak RSS MB)
replay_once() {
  local file="$1" db="$2" n t
  n=$(count_lines "$file")
  PASSPORTD_STORAGE__PATH="$db" PASSPORTD_LOG__LEVEL=warn /usr/bin/time -f "%e %M" -o "$TMP/time.txt" \
    "$BIN" replay --json "$file" >"$TMP/replay.json"
  t=$(cat "$TMP/time.txt")
  awk -v n="$n" -v e="${t% *}" -v m="${t#* }" 'BEGIN {printf "%.0f %.1f\n", n / (e > 0 ? e : 0.001), m / 1024}'
}

# bench_replay LABEL FILE RUNS: fresh store per run, median rate and RSS
bench_replay() {
  local label="$1" file="$2" runs="$3" rates="" rsss="" r l
  l=$(load)
  for _ in $(seq "$runs"); do
    rm -f "$TMP/fresh.db"*
    r=$(replay_once "$file" "$TMP/fresh.db")
    rates="$rates ${r% *}"; rsss="$rsss ${r#* }"
  done
  RATE=$(echo $rates | tr ' ' '\n' | median)
  RSS=$(echo $rsss | tr ' ' '\n' | median)
  MT=$(bench_mtail "$file" "$runs")
  RATIO=$(awk -v a="$RATE" -v b="$MT" 'BEGIN {printf "%.1f", (b > 0 ? a / b : 0)}')
  row "$label | $(count_lines "$file") | $RATE | $RSS | $MT | ${RATIO}x | $runs | $l"
}

bench_mtail() {
  local file="$1" runs="$2" n rates="" e
  n=$(count_lines "$file")
  for _ in $(seq "$runs"); do
    /usr/bin/time -f "%e" -o "$TMP/mt.txt" mtail --one_shot --one_shot_format json --logtostderr \
      --progs "$ROOT/scripts/bench/aadsts.mtail" --logs "$file" >/dev/null 2>&1
    e=$(tail -1 "$TMP/mt.txt")
    rates="$rates $(awk -v n="$n" -v e="$e" 'BEGIN {printf "%.0f", n / (e > 0 ? e : 0.001)}')"
  done
  echo $rates | tr ' ' '\n' | median
}

echo "== corpora under $TMP" >&2
# The smallest Azure corpus stays (latency templates, serde reference); larger ones are
# generated when their turn comes and removed after.
AZ_SMALL=$(echo $AZ_SIZES | awk '{print $1}')
AZ_REF=$(echo $AZ_SIZES | awk '{print $2}')
"$GEN" azure "$AZ_SMALL" "$TMP/azure-$AZ_SMALL.json" --seed 1
"$GEN" passport-ndjson "$PP_N" "$TMP/passport.ndjson" --seed 7
"$GEN" passport-syslog "$PP_N" "$TMP/passport-syslog.log" --seed 7

echo "== replay into a fresh store (records/s = input records / wall time)" >&2
echo "| replay input | records | passportd rec/s | peak RSS MB | mtail rec/s | ratio | runs | load |" >>"$ROWS"
echo "|---|---|---|---|---|---|---|---|" >>"$ROWS"
for n in $AZ_SIZES; do
  runs=$RUNS; [ "$n" -ge 1000000 ] && runs=$RUNS_LARGE
  [ -f "$TMP/azure-$n.json" ] || "$GEN" azure "$n" "$TMP/azure-$n.json" --seed 1
  bench_replay "azure diagnostic, fresh store" "$TMP/azure-$n.json" "$runs"
  # Keep the second size for the serde reference below.
  [ "$n" = "$AZ_SMALL" ] || [ "$n" = "$AZ_REF" ] || rm -f "$TMP/azure-$n.json"
done
rm -f "$TMP/fresh.db"*
bench_replay "passport ndjson (5 % AADSTS)" "$TMP/passport.ndjson" "$RUNS"
bench_replay "passport syslog (5 % AADSTS)" "$TMP/passport-syslog.log" "$RUNS"

echo "== $MULTI_K files of $MULTI_N one after another into the same store" >&2
echo "" >>"$ROWS"
echo "| same store, file # | events already stored | passportd rec/s | peak RSS MB | load |" >>"$ROWS"
echo "|---|---|---|---|---|" >>"$ROWS"
rm -f "$TMP/multi.db"*
for k in $(seq "$MULTI_K"); do
  "$GEN" azure "$MULTI_N" "$TMP/multi-$k.json" --seed $((100 + k)) --start-ms $((1772582400000 + k * 86400000))
  before=$(( (k - 1) * MULTI_N ))
  l=$(load)
  r=$(replay_once "$TMP/multi-$k.json" "$TMP/multi.db")
  row "$k | $before | ${r% *} | ${r#* } | $l"
  rm -f "$TMP/multi-$k.json"
done
rm -f "$TMP/multi.db"*

echo "== physical reference: typed serde_json parse" >&2
echo "" >>"$ROWS"
echo "| serde_json typed parse (1 thread) | records | rec/s | load |" >>"$ROWS"
echo "|---|---|---|---|" >>"$ROWS"
for f in "$TMP/azure-$AZ_REF.json" "$TMP/passport.ndjson"; do
  l=$(load)
  rates=""
  for _ in $(seq "$RUNS"); do
    rates="$rates $("$GEN" parse "$f" | python3 -c 'import json,sys; print(json.load(sys.stdin)["records_per_s"])')"
  done
  row "$(basename "$f") | $(count_lines "$f") | $(echo $rates | tr ' ' '\n' | median) | $l"
done

PORT=$((20000 + RANDOM % 20000))
serve() { # serve CONFIG [unshare]
  if [ "${2:-}" = poll ]; then
    # A private user namespace with inotify disabled: passportd falls back to polling
    # without touching the host's limits.
    unshare -Ur sh -c "echo 0 > /proc/sys/user/max_inotify_instances && exec '$BIN' serve --config '$1'" \
      >"$TMP/serve.log" 2>&1 &
  else
    "$BIN" serve --config "$1" >"$TMP/serve.log" 2>&1 &
  fi
  SERVE_PID=$!
  for _ in $(seq 200); do curl -fs "http://127.0.0.1:$PORT/metrics" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "passportd serve did not come up; log:" >&2; cat "$TMP/serve.log" >&2; return 1
}
stop() { kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true; SERVE_PID=; }

echo "== live tailing latency (append -> visible in /metrics)" >&2
echo "" >>"$ROWS"
echo "| live latency | appends (rate) | p50 ms | p99 ms | max ms | load |" >>"$ROWS"
echo "|---|---|---|---|---|---|" >>"$ROWS"
head -50 "$TMP/azure-$(echo $AZ_SIZES | awk '{print $1}').json" >"$TMP/templates.json"
for mode in notify poll; do
  rm -f "$TMP/live.db"* "$TMP/live.json"
  : >"$TMP/live.json"
  cat >"$TMP/live.toml" <<EOF
[server]
listen = "127.0.0.1:$PORT"
[storage]
path = "$TMP/live.db"
[log]
level = "warn"
[[sources]]
name = "live"
paths = ["$TMP/live.json"]
format = "azure-diagnostic"
poll_interval = "1s"
EOF
  serve "$TMP/live.toml" "$mode"
  l=$(load)
  # Each append waits until it is visible, so poll mode (up to 1 s each) gets fewer.
  n=$LAT_N rate=$LAT_RATE
  [ "$mode" = poll ] && n=$LAT_N_POLL rate=10
  out=$(python3 "$ROOT/scripts/bench/latency.py" "http://127.0.0.1:$PORT/metrics" "$TMP/live.json" "$n" "$rate" live \
    <"$TMP/templates.json")
  stop
  row "$mode$([ "$mode" = poll ] && echo ' (poll_interval 1s)') | $n ($rate/s) | $(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["p50_ms"], "|", d["p99_ms"], "|", d["max_ms"])') | $l"
done

echo "== incident API under wrk ($API_INC incidents, $API_EV events seeded with SQL)" >&2
rm -f "$TMP/api.db"*
"$GEN" seed-store "$TMP/api.db" --incidents "$API_INC" --events "$API_EV" >&2
cat >"$TMP/api.toml" <<EOF
[server]
listen = "127.0.0.1:$PORT"
[storage]
path = "$TMP/api.db"
[log]
level = "warn"
EOF
serve "$TMP/api.toml"
BASE="http://127.0.0.1:$PORT"
CURSOR=$(python3 - "$BASE" "$DEEP_PAGES" <<'EOF'
import json, sys, urllib.request, urllib.parse
base, pages = sys.argv[1], int(sys.argv[2])
cursor = None
for _ in range(pages):
    q = "/api/v1/incidents?status=all&limit=50" + ("&cursor=" + urllib.parse.quote(cursor) if cursor else "")
    d = json.load(urllib.request.urlopen(base + q))
    if not d.get("next_cursor"):
        break
    cursor = d["next_cursor"]
print(cursor or "")
EOF
)
echo "" >>"$ROWS"
echo "| API (wrk -t2 -c4 -d$WRK_D, max rate) | req/s | p50 ms | p99 ms | load |" >>"$ROWS"
echo "|---|---|---|---|---|" >>"$ROWS"
for what in "first page|/api/v1/incidents?status=all&limit=50" "page $DEEP_PAGES (cursor)|/api/v1/incidents?status=all&limit=50&cursor=$CURSOR"; do
  l=$(load)
  wrk -t2 -c4 -d"$WRK_D" --latency "$BASE${what#*|}" >"$TMP/wrk.txt" 2>&1 || true
  rps=$(awk '/Requests\/sec/ {print $2}' "$TMP/wrk.txt")
  p50=$(awk '$1 == "50%" {print $2}' "$TMP/wrk.txt")
  p99=$(awk '$1 == "99%" {print $2}' "$TMP/wrk.txt")
  row "${what%%|*} | $rps | $p50 | $p99 | $l"
done
stop

CPU=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
RAM=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
COMMIT=$(git rev-parse --short HEAD)$(git diff --quiet || echo "+dirty")
MODE=$([ "$QUICK" = 1 ] && echo "--quick" || echo "full")
{
  echo "<!-- bench:begin (written by scripts/bench.sh; edit outside the markers) -->"
  echo "## Latest run ($MODE)"
  echo ""
  echo "$(date -u +%Y-%m-%dT%H:%MZ), commit \`$COMMIT\`, $(nproc) cores ($CPU), $RAM RAM, $(mtail --version 2>&1 | head -1)."
  echo "Command: \`scripts/bench.sh $ARGS\`. Load = 1-minute load average when the figure started"
  echo "(the machine is shared). Rates are input records (lines) per second of wall time, each"
  echo "the median of its runs; RSS is the peak resident set (\`/usr/bin/time -f %M\`)."
  echo ""
  cat "$ROWS"
  echo ""
  echo "mtail program: \`scripts/bench/aadsts.mtail\`, run as \`mtail --one_shot --progs … --logs FILE\`."
  echo "<!-- bench:end -->"
} >"$TMP/section.md"
cat "$TMP/section.md"
if [ "$WRITE" = 1 ]; then
  python3 - "$ROOT/BENCHMARKS.md" "$TMP/section.md" <<'EOF'
import re, sys, pathlib
doc, section = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]).read_text()
text = doc.read_text() if doc.exists() else "# Benchmarks\n\n"
pat = re.compile(r"<!-- bench:begin.*?<!-- bench:end -->\n?", re.S)
text = pat.sub(lambda _: section, text) if pat.search(text) else text.rstrip() + "\n\n" + section
doc.write_text(text)
EOF
  echo "BENCHMARKS.md updated" >&2
fi
