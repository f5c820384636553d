#!/usr/bin/env bash
# Proves the README's run command from a clean start: runs localstack/run.sh,
# waits until the demo tenure's history is served by the API, posts an activity
# and waits until the listener has recorded it, fuzzes the running
# API from its OpenAPI document with schemathesis (no 5xx, every response as
# documented), stops it and checks that nothing it started is left running.
# run.sh runs in a session of its own, so whatever happens to this script (a
# failed check, Ctrl-C, SIGTERM) run.sh and everything it started are stopped.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=env.sh
source "$here/env.sh"
export AH_RUN="${AH_RUN:-$AH_CACHE/run}"
if ! command -v setsid >/dev/null 2>&1; then
  echo "error: 'setsid' is required to run run.sh in a session of its own; install it with: apt-get install -y util-linux" >&2
  exit 1
fi
bash "$here/install.sh" >/dev/null

# A zombie (exited, not yet reaped) counts as gone.
alive() { local s; s="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1; [[ "$s" != Z* ]]; }
# The live processes of a session, one pid a line.
session_members() { ps -e -o pid=,sid=,stat= | awk -v s="$1" '$2 == s && $3 !~ /^Z/ {print $1}'; }

log="$(mktemp)"
work="$(mktemp -d)"
run_pid=""     # run.sh, leader of its own session (its session id is its pid)
run_status=""  # its exit status, once reaped
run_killed=0   # 1 if it had to be killed after SIGTERM did not stop it in time
run_gone_before_stop=0 # 1 if it had already exited when it was to be stopped
started=()     # what run.sh started, from its pid files
schemathesis_pid=""

# SIGTERM to run.sh (what Ctrl-C does), up to 60 s for it to stop everything it
# started, then SIGKILL to its whole session and to every pid it recorded.
stop_run() {
  if [ -z "$run_pid" ] || [ -n "$run_status" ]; then return 0; fi
  alive "$run_pid" || run_gone_before_stop=1
  kill -TERM "$run_pid" 2>/dev/null || true
  local deadline=$((SECONDS + 60))
  while alive "$run_pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.25; done
  if alive "$run_pid"; then
    echo "error: run.sh did not stop within 60 s of SIGTERM; killing what it started" >&2
    run_killed=1
    kill_leftovers
  fi
  run_status=0
  wait "$run_pid" 2>/dev/null || run_status=$?
}
kill_leftovers() {
  local p
  for p in $(session_members "$run_pid") "${started[@]}"; do
    if alive "$p"; then kill -KILL "$p" 2>/dev/null || true; fi
  done
}
finish() {
  local rc=$?
  trap - EXIT
  trap '' INT TERM # let the cleanup finish (every wait in it is bounded)
  if [ -n "$schemathesis_pid" ] && alive "$schemathesis_pid"; then
    kill -TERM "$schemathesis_pid" 2>/dev/null || true
    for _ in $(seq 1 20); do alive "$schemathesis_pid" || break; sleep 0.25; done
    kill -KILL "$schemathesis_pid" 2>/dev/null || true
  fi
  if [ -n "$run_pid" ]; then
    stop_run
    kill_leftovers # nothing, unless a failed check already reported it
  fi
  rm -rf "$log" "$work"
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() { # message: prints it and run.sh's output so far, exits non-zero
  echo "$1" >&2
  cat "$log" >&2
  exit 1
}

setsid bash "$here/run.sh" >"$log" 2>&1 </dev/null &
run_pid=$!
# setsid makes run.sh a session leader without forking, as it is not a process
# group leader here; check that before relying on it.
sid=""
for _ in $(seq 1 20); do
  sid="$(ps -o sid= -p "$run_pid" 2>/dev/null | tr -d ' ' || true)"
  # A session of its own, or gone (reported below).
  if [ -z "$sid" ] || [ "$sid" = "$run_pid" ]; then break; fi
  sleep 0.25
done
if [ -n "$sid" ] && [ "$sid" != "$run_pid" ]; then
  fail "run.sh (pid $run_pid) did not get a session of its own"
fi

for _ in $(seq 1 600); do
  grep -q "ready; press Ctrl-C" "$log" && break
  alive "$run_pid" || fail "run.sh exited early:"
  sleep 1
done
grep -q "ready; press Ctrl-C" "$log" || fail "run.sh never got ready:"

# Everything run.sh started, as its pid files name it.
for name in dynamodb moto listener api; do
  pid="$(cat "$AH_RUN/$name.pid" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || fail "run.sh is ready but $AH_RUN/$name.pid names no pid:"
  alive "$pid" || fail "run.sh is ready but its $name (pid $pid) is not running:"
  started+=("$pid")
done

token="$(awk '$1 == "token:" {print $2}' "$log")"
url="$(grep -A1 "demo tenure's history" "$log" | tail -n 1 | tr -d ' ')"
if [ -z "$token" ] || [ -z "$url" ]; then
  fail "run.sh did not print the demo tenure's history URL and a token:"
fi
body=""
count=0
for _ in $(seq 1 60); do
  body="$(curl -s --max-time 5 -H "Authorization: Bearer $token" "$url" || true)"
  count="$(printf '%s' "$body" | python3 -c 'import json,sys
try: print(len(json.load(sys.stdin)["results"]))
except Exception: print(0)')"
  [ "$count" -ge 3 ] && break
  sleep 1
done
[ "$count" -ge 3 ] || fail "the demo tenure's history did not reach 3 activities within 60 s; last response: $body"

api="$(printf '%s' "$url" | sed 's#/api/v1/.*##')"

# Posting, as the README shows it: 202, then the listener records it.
posted_target="$(python3 -c 'import uuid; print(uuid.uuid4())')"
answer="$(curl -s --max-time 5 -H "Authorization: Bearer $token" -H "Content-Type: application/json" \
  -d "{\"type\":\"migrate\",\"targetType\":\"tenure\",\"targetId\":\"$posted_target\",\"newData\":{\"note\":\"migrated\"},\"authorDetails\":{\"fullName\":\"Developer\"}}" \
  "$api/api/v1/activityhistory" || true)"
lookup="$(printf '%s' "$answer" | python3 -c 'import json,sys
try: print(json.load(sys.stdin)["results"][0]["url"])
except Exception: print("")')"
[ -n "$lookup" ] || fail "posting an activity was not accepted: $answer"
for _ in $(seq 1 30); do
  status="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $token" "$lookup" || true)"
  [ "$status" = 200 ] && break
  sleep 1
done
[ "$status" = 200 ] || fail "the posted activity was not readable at $lookup within 30 s (last status $status)"
echo "posted activity recorded: $lookup"

# The viewer link run.sh printed opens the viewer page (its data needs the token).
viewer="$(awk '$1 == "viewer:" {print $2}' "$log")"
[[ "$viewer" == "$api/history/?targetId="*"#token=$token" ]] || fail "run.sh did not print the viewer link: $viewer"
curl -sf --max-time 5 "${viewer%%#*}" | grep -q 'activity-token-cookie' || fail "the viewer page was not served at ${viewer%%#*}"
echo "viewer served: ${viewer%%#*}"
schemathesis_status=0
# In the background and waited for, so Ctrl-C or SIGTERM is handled at once.
(cd "$work" && exec "$TOOLS_VENV/bin/schemathesis" run "$api/api/v1/openapi.json" \
  -H "Authorization: Bearer $token" --max-examples 50 --seed 1 \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
  ) &
schemathesis_pid=$!
wait "$schemathesis_pid" || schemathesis_status=$?
schemathesis_pid=""
stop_run
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

# Ctrl-C (SIGTERM here) must stop run.sh by itself, with a clean exit status, and
# leave nothing it started running: nothing in its session, none of its pids.
[ "$run_killed" = 0 ] || fail "run.sh had to be killed after SIGTERM:"
[ "$run_gone_before_stop" = 0 ] || fail "run.sh exited (status $run_status) before it was stopped:"
[ "$run_status" = 0 ] || fail "run.sh exited with status $run_status after SIGTERM:"
sleep 1
left=""
for p in $(session_members "$run_pid") "${started[@]}"; do
  if alive "$p"; then left="$left $p"; fi
done
if [ -n "$left" ]; then
  echo "processes left behind after Ctrl-C:$left" >&2
  for p in $left; do ps -o pid=,args= -p "$p" >&2 || true; done
  exit 1
fi
echo "run.sh stopped cleanly"
