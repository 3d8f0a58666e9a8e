-- wrk script: OAuth client-credentials token requests (form POST, HTTP Basic).
--   TOKEN_PATH  endpoint path (/oauth/token for Gatehouse, /token for oidc-provider)
--   BASIC       base64 of client_id:client_secret
--   RESOURCE    the RFC 8707 resource to ask a token for
local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end
wrk.method = "POST"
wrk.path = os.getenv("TOKEN_PATH") or "/oauth/token"
wrk.body = "grant_type=client_credentials&resource=" .. urlencode(os.getenv("RESOURCE") or "")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. (os.getenv("BASIC") or "")
done = function(summary, latency, requests)
  io.write(string.format("RESULT reqs=%d dur_us=%d rps=%.1f p50_us=%d p99_us=%d mean_us=%.1f err_status=%d err_conn=%d err_read=%d err_timeout=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency.mean,
    summary.errors.status, summary.errors.connect, summary.errors.read, summary.errors.timeout))
end
