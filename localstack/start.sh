#!/usr/bin/env bash
# Starts DynamoDB Local and moto server in the background, waits until both
# answer, and prints the environment that points the SDK at them.
#   DDB_PORT   DynamoDB Local port (default 8000)
#   MOTO_PORT  moto server port, SNS and SQS (default 4566)
# Pid files and logs go to $AH_RUN (default ~/.cache/activity-history/run);
# localstack/stop.sh stops what this started.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=env.sh
source "$here/env.sh"
bash "$here/install.sh" >/dev/null
if ! command -v curl >/dev/null 2>&1; then
  echo "error: curl is required to wait for the emulators; install it with: apt-get install -y curl" >&2
  exit 1
fi

DDB_PORT="${DDB_PORT:-8000}"
MOTO_PORT="${MOTO_PORT:-4566}"
AH_RUN="${AH_RUN:-$AH_CACHE/run}"
mkdir -p "$AH_RUN"

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$DDB_PORT" "$MOTO_PORT"; do
  if port_busy "$p"; then
    echo "error: port $p on 127.0.0.1 is already in use (another local stack? run localstack/stop.sh)" >&2
    exit 1
  fi
done

# DynamoDB Local listens on every interface; it has no option to bind to loopback only.
(cd "$DDB_DIR" && exec java -Djava.library.path=./DynamoDBLocal_lib -Xmx1g -jar DynamoDBLocal.jar \
  -inMemory -sharedDb -disableTelemetry -port "$DDB_PORT" \
  >"$AH_RUN/dynamodb.log" 2>&1 </dev/null) &
echo $! >"$AH_RUN/dynamodb.pid"
"$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$AH_RUN/moto.log" 2>&1 </dev/null &
echo $! >"$AH_RUN/moto.pid"

wait_for() { # name url log-name: fails (and stops both) unless it answers within 60 s
  local pid deadline=$((SECONDS + 60))
  pid="$(cat "$AH_RUN/$3.pid")"
  while [ "$SECONDS" -lt "$deadline" ]; do
    # --max-time: a port that accepts but never answers must not hang the wait.
    if curl -s --max-time 2 -o /dev/null "$2"; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "error: $1 exited before answering on $2; see $AH_RUN/$3.log" >&2
      bash "$here/stop.sh" >/dev/null 2>&1 || true
      exit 1
    fi
    sleep 0.25
  done
  echo "error: $1 did not answer on $2 within 60 s; see $AH_RUN/$3.log" >&2
  bash "$here/stop.sh" >/dev/null 2>&1 || true
  exit 1
}
wait_for "DynamoDB Local" "http://127.0.0.1:$DDB_PORT/" dynamodb
wait_for "moto server" "http://127.0.0.1:$MOTO_PORT/moto-api/" moto

cat <<ENV
export AWS_EC2_METADATA_DISABLED=true
export AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
export AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export AWS_REGION=$AWS_REGION
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$DDB_PORT
export AWS_ENDPOINT_URL_SQS=http://127.0.0.1:$MOTO_PORT
export AWS_ENDPOINT_URL_SNS=http://127.0.0.1:$MOTO_PORT
ENV
