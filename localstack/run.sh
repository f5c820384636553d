#!/usr/bin/env bash
# The whole system on this machine: starts the emulators, provisions the stack,
# runs the listener and the API, publishes a few demo events, and stays up until
# Ctrl-C, then stops everything it started.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=env.sh
source "$here/env.sh"
export AH_RUN="${AH_RUN:-$AH_CACHE/run}"

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo "stopping..." >&2
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  bash "$here/stop.sh"
  echo "stopped" >&2
}
trap cleanup EXIT
trap 'cleanup; exit 0' INT TERM

echo "building..." >&2
cargo build --quiet --manifest-path "$root/Cargo.toml" --bins
bin="$root/target/debug"

eval "$(bash "$here/start.sh")"
echo "DynamoDB Local on $AWS_ENDPOINT_URL_DYNAMODB, SNS/SQS (moto) on $AWS_ENDPOINT_URL_SQS" >&2

eval "$("$bin/activity-listener" provision | sed 's/^/export /')"
echo "provisioned table $ACTIVITY_TABLE and queue $ACTIVITY_QUEUE_URL" >&2

"$bin/activity-listener" poll >>"$AH_RUN/listener.log" 2>&1 &
pids+=($!)
echo "listener polling $ACTIVITY_QUEUE_URL (logs: $AH_RUN/listener.log)" >&2

# Development-only secrets: the API refuses to run without real token checks.
export ACTIVITY_JWT_SECRET="${ACTIVITY_JWT_SECRET:-local-development-secret-not-for-production}"
export ACTIVITY_TOKEN_KEY="${ACTIVITY_TOKEN_KEY:-local-development-page-token-key}"
export ACTIVITY_API_ADDR="${ACTIVITY_API_ADDR:-127.0.0.1:3000}"
"$bin/activity-api" >>"$AH_RUN/api.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do
  curl -s -o /dev/null "http://$ACTIVITY_API_ADDR/api/v1/healthcheck/ping" && break
  sleep 0.25
done
token="$("$bin/activity-api" dev-token --sub developer --hours 12)"

# Demo data, published as the domain services would: a person created and renamed,
# a tenure created, the person added to it, and a rent transaction on it.
demo_tenure="5c0e2b3a-94d1-4f6e-8a27-1b3c4d5e6f70"
"$bin/activity-listener" publish --topic "$TOPIC_PERSON" "$here/demo/person.ndjson" >/dev/null
"$bin/activity-listener" publish --topic "$TOPIC_TENURE" "$here/demo/tenure.ndjson" >/dev/null
"$bin/activity-listener" publish --topic "$TOPIC_TRANSACTIONS" "$here/demo/transactions.ndjson" >/dev/null

cat >&2 <<EOF
API on http://$ACTIVITY_API_ADDR (logs: $AH_RUN/api.log)
  demo tenure's history:
          http://$ACTIVITY_API_ADDR/api/v1/activityhistory?targetId=$demo_tenure
  docs:   http://$ACTIVITY_API_ADDR/docs/
  token:  $token
  try:    curl -H "Authorization: Bearer $token" "http://$ACTIVITY_API_ADDR/api/v1/activityhistory?targetId=$demo_tenure"
EOF
echo "ready; press Ctrl-C to stop" >&2
# Wait on a child so Ctrl-C is handled at once.
sleep infinity &
pids+=($!)
wait "$!"
