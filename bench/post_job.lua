-- wrk script: POST /jobs with a small job body.
wrk.method = "POST"
wrk.body = '{"kind":"bench.noop","args":{"n":1}}'
wrk.headers["Content-Type"] = "application/json"

local statuses = {}
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

done = function(summary, latency, requests)
  for status, n in pairs(statuses) do
    io.write(string.format("status %d: %d\n", status, n))
  end
end
