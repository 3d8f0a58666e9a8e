-- wrk script: MCP tools/call with a DPoP-bound access token, a fresh proof per request.
--   MCP_PATH  gateway path; AUTHZ  "DPoP <token>"
--   PROOFS    file of proofs, one per line (bench/dpop_proofs.py); each is single use
--   FIRST     line of PROOFS where this run's share starts (earlier runs used the ones before)
--   BLOCK     lines per thread: thread k takes lines FIRST+k*BLOCK .. FIRST+(k+1)*BLOCK-1, so
--             threads never share a proof whatever their pace
wrk.method = "POST"
wrk.path = os.getenv("MCP_PATH") or "/mcp"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["Authorization"] = os.getenv("AUTHZ") or ""

local next_thread = 0
setup = function(thread)
  thread:set("thread_index", next_thread)
  next_thread = next_thread + 1
end

local proofs = {}
local n = 0
local headers = {}
init = function(args)
  local block = tonumber(os.getenv("BLOCK") or "0")
  local from = tonumber(os.getenv("FIRST") or "0") + thread_index * block
  local line_no = 0
  for line in io.lines(os.getenv("PROOFS")) do
    if line_no >= from + block then break end
    if line_no >= from then proofs[#proofs + 1] = line end
    line_no = line_no + 1
  end
  for k, v in pairs(wrk.headers) do headers[k] = v end
end
request = function()
  n = n + 1
  -- Past its last proof a thread reuses them: those requests are refused as replays and
  -- show as status errors in the result, never as faster answers.
  headers["DPoP"] = proofs[((n - 1) % #proofs) + 1]
  return wrk.format(nil, nil, headers, nil)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT reqs=%d dur_us=%d rps=%.1f p50_us=%d p99_us=%d mean_us=%.1f err_status=%d err_conn=%d err_read=%d err_timeout=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency.mean,
    summary.errors.status, summary.errors.connect, summary.errors.read, summary.errors.timeout))
end
