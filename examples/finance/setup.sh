#!/usr/bin/env bash
# A finance MCP server behind Gatehouse: analysts read, in business hours, from the EU; only the
# ledger service writes; customer PII is redacted from every response; secrets never pass.
# Usage: examples/finance/setup.sh <upstream MCP URL> [gatehouse binary]
# The country rule needs a MaxMind-format database: set policy.geoip_database (or
# GATEHOUSE_POLICY__GEOIP_DATABASE) before `gatehouse serve`.
set -euo pipefail
url=${1:?upstream MCP URL, e.g. http://127.0.0.1:9100/mcp}
gatehouse=${2:-gatehouse}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

$gatehouse servers add finance --url "$url" --pin-action block
$gatehouse clients create analyst-agent --description "research assistant used by analysts"
$gatehouse clients create ledger-service --description "posts approved transfers"
$gatehouse connections grant --client analyst-agent --server finance --tools 'get_*,list_*,search_*'
$gatehouse connections grant --client ledger-service --server finance --tools 'get_*,list_*,post_transfer'
$gatehouse policy import "$here/policies.json"
$gatehouse keys create --client analyst-agent --label analysts --expires-in 90d
$gatehouse keys create --client ledger-service --label ledger --expires-in 30d
