-- bench:site's client: requests /page/1 .. /page/N with Zipf popularity (s = 1), page i with
-- probability proportional to 1/i, as readers spread over a site's pages. Each thread counts the
-- X-Cache header every setup sets (HIT, MISS, anything else) and non-200 answers; done() prints one
-- line site.bench.ts parses.
-- wrk -s zipf.lua URL -- <pages>

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  -- A different seed per thread, or every thread would request the same pages in the same order.
  thread:set("id", #threads)
end

local cdf, pages

function init(args)
  pages = tonumber(args[1]) or 20000
  -- The cumulative distribution once; each request is then a binary search over it.
  cdf = {}
  local total = 0
  for i = 1, pages do
    total = total + 1 / i
    cdf[i] = total
  end
  for i = 1, pages do
    cdf[i] = cdf[i] / total
  end
  math.randomseed(os.time() + id * 7919)
  hits, misses, other, failed = 0, 0, 0, 0
end

function request()
  local r = math.random()
  local lo, hi = 1, pages
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < r then lo = mid + 1 else hi = mid end
  end
  return wrk.format(nil, "/page/" .. lo)
end

function response(status, headers, body)
  if status ~= 200 then failed = failed + 1 end
  local cache = headers["X-Cache"]
  if cache == "HIT" then
    hits = hits + 1
  elseif cache == "MISS" then
    misses = misses + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local h, m, o, f = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    h = h + thread:get("hits")
    m = m + thread:get("misses")
    o = o + thread:get("other")
    f = f + thread:get("failed")
  end
  local e = summary.errors
  io.write(string.format(
    "SITEBENCH requests=%d duration_us=%d p50_us=%d p99_us=%d hits=%d misses=%d other=%d non200=%d errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    h, m, o, f, e.connect + e.read + e.write + e.timeout))
end
