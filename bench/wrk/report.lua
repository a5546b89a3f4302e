-- wrk script for every scenario.
--
-- WRK_BODY_BYTES=N turns each request into a POST of N bytes
-- (application/octet-stream). done() prints one line starting with
-- "BENCH_JSON " that bench.py parses: requests, duration, latency
-- percentiles (microseconds) and the error counters.

local body_bytes = tonumber(os.getenv("WRK_BODY_BYTES") or "")
if body_bytes and body_bytes > 0 then
  wrk.method = "POST"
  wrk.body = string.rep("x", body_bytes)
  wrk.headers["Content-Type"] = "application/octet-stream"
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
