#!/usr/bin/env bash
# Proves the README's run command from a clean start: runs localstack/run.sh,
# waits until the demo tenure's history is served by the API, fuzzes the running
# API from its OpenAPI document with schemathesis (no 5xx, every response as
# documented), stops it and checks that nothing it started is left running.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=env.sh
source "$here/env.sh"
bash "$here/install.sh" >/dev/null
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

bash "$here/run.sh" >"$log" 2>&1 &
run_pid=$!
stop() {
  kill -TERM "$run_pid" 2>/dev/null || true
  wait "$run_pid" 2>/dev/null || true
}

for _ in $(seq 1 600); do
  grep -q "ready; press Ctrl-C" "$log" && break
  if ! kill -0 "$run_pid" 2>/dev/null; then
    echo "run.sh exited early:" >&2; cat "$log" >&2; exit 1
  fi
  sleep 1
done
grep -q "ready; press Ctrl-C" "$log" || { echo "run.sh never got ready:" >&2; cat "$log" >&2; stop; exit 1; }

token="$(awk '/token:/ {print $2}' "$log")"
url="$(grep -A1 "demo tenure's history" "$log" | tail -n 1 | tr -d ' ')"
body=""
for _ in $(seq 1 60); do
  body="$(curl -s -H "Authorization: Bearer $token" "$url" || true)"
  count="$(printf '%s' "$body" | python3 -c 'import json,sys
try: print(len(json.load(sys.stdin)["results"]))
except Exception: print(0)')"
  [ "$count" -ge 3 ] && break
  sleep 1
done

api="$(printf '%s' "$url" | sed 's#/api/v1/.*##')"
schemathesis_status=0
(cd "$(mktemp -d)" && "$TOOLS_VENV/bin/schemathesis" run "$api/api/v1/openapi.json" \
  -H "Authorization: Bearer $token" --max-examples 50 --seed 1 \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
  ) || schemathesis_status=$?
stop
if [ "$schemathesis_status" -ne 0 ]; then
  echo "schemathesis found problems (exit $schemathesis_status)" >&2
  exit 1
fi

printf '%s' "$body" | python3 -c '
import json, sys
page = json.load(sys.stdin)
got = [(a["type"], a["targetType"]) for a in page["results"]]
want = [("create", "tenure"), ("create", "tenurePerson"), ("create", "tenure")]
assert sorted(got) == sorted(want), f"demo tenure history was {got}"
rent = [a for a in page["results"] if a["sourceDomain"] == "Transactions"]
assert rent and rent[0]["newData"]["transactionType"] == "Rent", page
print("demo tenure history served:", got)
'

sleep 1
left="$(pgrep -f 'DynamoDBLocal.jar|moto_server|target/debug/activity-(api|listener)' || true)"
if [ -n "$left" ]; then
  echo "processes left behind after Ctrl-C: $left" >&2
  exit 1
fi
echo "run.sh stopped cleanly"
