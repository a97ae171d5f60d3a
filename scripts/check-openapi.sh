#!/usr/bin/env bash
# Checks openapi.json: valid OpenAPI 3.1 for a standard validator (npm
# @seriousme/openapi-schema-validator, installed under build/npm on first use), and every route
# of the binary's route table (`myloware routes`) documented with its method.
#   scripts/check-openapi.sh [BIN]
set -euo pipefail
bin=${1:-./myloware}
here=$(cd "$(dirname "$0")/.." && pwd)
npmdir="$here/build/npm"
pkg="@seriousme/openapi-schema-validator@2.11.0"
if [ ! -d "$npmdir/node_modules/@seriousme/openapi-schema-validator" ]; then
  mkdir -p "$npmdir"
  npm install --no-save --no-audit --no-fund --silent --prefix "$npmdir" "$pkg" >/dev/null
fi
NODE_PATH="$npmdir/node_modules" node --input-type=module -e '
import { createRequire } from "module";
const require = createRequire(process.env.NODE_PATH + "/");
const { Validator } = require("@seriousme/openapi-schema-validator");
const v = new Validator();
const r = await v.validate(process.argv[1]);
if (!r.valid) { console.error(JSON.stringify(r.errors, null, 2)); process.exit(1); }
' "$here/openapi.json"

missing=0
while read -r method pattern _; do
  m=$(tr 'A-Z' 'a-z' <<<"$method")
  if ! NODE_PATH= node -e '
    const doc = require(process.argv[1]);
    const p = doc.paths[process.argv[2]];
    process.exit(p && p[process.argv[3]] ? 0 : 1);' "$here/openapi.json" "$pattern" "$m"; then
    echo "openapi.json lacks $method $pattern" >&2
    missing=1
  fi
done < <("$bin" routes)
[ $missing -eq 0 ] || exit 1
echo "openapi.json is valid OpenAPI 3.1 and documents every route"
