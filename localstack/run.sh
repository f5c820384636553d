#!/usr/bin/env bash
# The whole system on this machine: starts the emulators, provisions the stack,
# runs the listener and the API, publishes a few demo events, and stays up until
# Ctrl-C, then stops everything it started. Pid files and logs go to $AH_RUN
# (default ~/.cache/activity-history/run). Exits 0 when stopped by Ctrl-C or
# SIGTERM once ready; non-zero if a step fails, if the listener or the API dies,
# or if something it started could not be stopped.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=env.sh
source "$here/env.sh"
export AH_RUN="${AH_RUN:-$AH_CACHE/run}"
mkdir -p "$AH_RUN"

# A zombie (exited, not yet reaped) counts as gone.
alive() { local s; s="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1; [[ "$s" != Z* ]]; }

# Prints an error naming a log, the log's last lines, and exits non-zero (the EXIT
# trap then stops everything started so far).
fail() { # message log
  echo "error: $1; see $2" >&2
  if [ -f "$2" ]; then
    echo "--- last lines of $2:" >&2
    tail -n 20 "$2" >&2 || true
  fi
  exit 1
}

# Exports the NAME=value lines (optionally prefixed with "export ") that a command
# printed, refusing anything else, then checks that the named variables are set.
load_env() { # what text required-name...
  local what="$1" text="$2" line key
  shift 2
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    line="${line#export }"
    key="${line%%=*}"
    if [[ "$line" != *=* || ! "$key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
      echo "error: unexpected line from $what: $line" >&2
      exit 1
    fi
    export "$key=${line#*=}"
  done <<<"$text"
  for key in "$@"; do
    if [ -z "${!key:-}" ]; then
      echo "error: $what did not print $key" >&2
      exit 1
    fi
  done
}

pids=() # the listener and the API
ready=0
# shellcheck disable=SC2317 # run from the traps below
cleanup() {
  local status=0 p
  echo "stopping..." >&2
  for p in "${pids[@]}"; do
    if alive "$p"; then kill -TERM "$p" 2>/dev/null || true; fi
  done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 60); do alive "$p" || break; sleep 0.25; done
    if alive "$p"; then
      # Our own programs must shut down on SIGTERM: report it, not just kill them.
      echo "error: pid $p ($(ps -o args= -p "$p" 2>/dev/null || true)) did not stop within 15 s of SIGTERM; sending SIGKILL" >&2
      kill -KILL "$p" 2>/dev/null || true
      status=1
    fi
    wait "$p" 2>/dev/null || true
  done
  # stop.sh stops the emulators (and anything else its pid files name that still
  # runs), and removes the pid files of what is gone.
  bash "$here/stop.sh" || status=1
  echo "stopped" >&2
  return "$status"
}
# shellcheck disable=SC2317 # run from the traps below
on_exit() {
  local rc=$?
  trap - EXIT
  trap '' INT TERM # let the cleanup finish (every wait in it is bounded)
  if ! cleanup; then
    echo "error: something run.sh started did not stop cleanly" >&2
    [ "$rc" -ne 0 ] || rc=1
  fi
  exit "$rc"
}
# shellcheck disable=SC2317 # run from the traps below
on_signal() { # status when interrupted before ready
  if [ "$ready" = 1 ]; then exit 0; fi
  echo "interrupted before the system was ready" >&2
  exit "$1"
}
trap on_exit EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

echo "building..." >&2
cargo build --quiet --manifest-path "$root/Cargo.toml" --bins
bin="$root/target/debug"

# Captured first: a failing command inside "$(...)" fails the script here, where
# eval "$(...)" would have evaluated empty output and carried on.
emulators="$(bash "$here/start.sh")"
load_env "localstack/start.sh" "$emulators" \
  AWS_ENDPOINT_URL_DYNAMODB AWS_ENDPOINT_URL_SQS AWS_ENDPOINT_URL_SNS
echo "DynamoDB Local on $AWS_ENDPOINT_URL_DYNAMODB, SNS/SQS (moto) on $AWS_ENDPOINT_URL_SQS" >&2

provisioned="$("$bin/activity-listener" provision)" || { echo "error: activity-listener provision failed" >&2; exit 1; }
load_env "activity-listener provision" "$provisioned" \
  ACTIVITY_TABLE ACTIVITY_QUEUE_URL TOPIC_PERSON TOPIC_TENURE TOPIC_TRANSACTIONS
echo "provisioned table $ACTIVITY_TABLE and queue $ACTIVITY_QUEUE_URL" >&2

# Development-only key the API signs posted activities with, and the listener checks.
export ACTIVITY_INGEST_KEY="${ACTIVITY_INGEST_KEY:-local-development-ingest-key-not-for-production}"
"$bin/activity-listener" poll >>"$AH_RUN/listener.log" 2>&1 &
listener_pid=$!
pids+=("$listener_pid")
echo "$listener_pid" >"$AH_RUN/listener.pid"
echo "listener polling $ACTIVITY_QUEUE_URL (logs: $AH_RUN/listener.log)" >&2

# Development-only secrets: the API refuses to run without real token checks.
export ACTIVITY_JWT_SECRET="${ACTIVITY_JWT_SECRET:-local-development-secret-not-for-production}"
export ACTIVITY_TOKEN_KEY="${ACTIVITY_TOKEN_KEY:-local-development-page-token-key}"
export ACTIVITY_API_ADDR="${ACTIVITY_API_ADDR:-127.0.0.1:3000}"
# Posting enabled: activities posted by members of the writers' group go to the
# listener's queue, like the demo events.
export ACTIVITY_INGEST_QUEUE_URL="${ACTIVITY_INGEST_QUEUE_URL:-$ACTIVITY_QUEUE_URL}"
export ACTIVITY_WRITER_GROUPS="${ACTIVITY_WRITER_GROUPS:-history-writers}"
# Something else answering on the API's port would pass the health check below.
if (exec 3<>"/dev/tcp/${ACTIVITY_API_ADDR%:*}/${ACTIVITY_API_ADDR##*:}") 2>/dev/null; then
  echo "error: $ACTIVITY_API_ADDR is already in use (another local stack? run localstack/stop.sh)" >&2
  exit 1
fi
"$bin/activity-api" >>"$AH_RUN/api.log" 2>&1 &
api_pid=$!
pids+=("$api_pid")
echo "$api_pid" >"$AH_RUN/api.pid"

health="http://$ACTIVITY_API_ADDR/api/v1/healthcheck/ping"
deadline=$((SECONDS + 30))
until curl -sf --max-time 2 -o /dev/null "$health"; do
  alive "$api_pid" || fail "the API exited before answering on $health" "$AH_RUN/api.log"
  [ "$SECONDS" -lt "$deadline" ] || fail "the API did not answer on $health within 30 s" "$AH_RUN/api.log"
  sleep 0.25
done
alive "$api_pid" || fail "the API exited right after answering on $health" "$AH_RUN/api.log"
token="$("$bin/activity-api" dev-token --sub developer --groups "$ACTIVITY_WRITER_GROUPS" --hours 12)" || { echo "error: activity-api dev-token failed" >&2; exit 1; }
[ -n "$token" ] || { echo "error: activity-api dev-token printed no token" >&2; exit 1; }

# Demo data, published as the domain services would: a person created and renamed,
# a tenure created, the person added to it, and a rent transaction on it.
demo_tenure="5c0e2b3a-94d1-4f6e-8a27-1b3c4d5e6f70"
"$bin/activity-listener" publish --topic "$TOPIC_PERSON" "$here/demo/person.ndjson" >/dev/null
"$bin/activity-listener" publish --topic "$TOPIC_TENURE" "$here/demo/tenure.ndjson" >/dev/null
"$bin/activity-listener" publish --topic "$TOPIC_TRANSACTIONS" "$here/demo/transactions.ndjson" >/dev/null

alive "$listener_pid" || fail "the listener exited" "$AH_RUN/listener.log"
alive "$api_pid" || fail "the API exited" "$AH_RUN/api.log"

cat >&2 <<EOF
API on http://$ACTIVITY_API_ADDR (logs: $AH_RUN/api.log)
  demo tenure's history:
          http://$ACTIVITY_API_ADDR/api/v1/activityhistory?targetId=$demo_tenure
  viewer: http://$ACTIVITY_API_ADDR/history/?targetId=$demo_tenure#token=$token
  docs:   http://$ACTIVITY_API_ADDR/docs/
  token:  $token
  try:    curl -H "Authorization: Bearer $token" "http://$ACTIVITY_API_ADDR/api/v1/activityhistory?targetId=$demo_tenure"
  post:   curl -H "Authorization: Bearer $token" -H "Content-Type: application/json" \\
            -d '{"type":"migrate","targetType":"tenure","targetId":"$demo_tenure","newData":{"note":"migrated"},"authorDetails":{"fullName":"Developer"}}' \\
            "http://$ACTIVITY_API_ADDR/api/v1/activityhistory"
EOF
ready=1
echo "ready; press Ctrl-C to stop" >&2
# Waits on the listener and the API, so Ctrl-C (or SIGTERM) is handled at once,
# and a listener or API that dies is reported instead of run.sh staying up.
# They are its only children by now.
while alive "$listener_pid" && alive "$api_pid"; do wait -n || true; done
alive "$listener_pid" || fail "the listener exited unexpectedly" "$AH_RUN/listener.log"
fail "the API exited unexpectedly" "$AH_RUN/api.log"
