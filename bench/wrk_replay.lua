-- Replay pre-built HTTP requests with wrk (4.x, LuaJIT): every request exactly once, none repeated.
--
--   wrk -t T -c C -d LIMIT -s bench/wrk_replay.lua URL -- REQUESTS_FILE T RESULT_FILE
--
-- REQUESTS_FILE (written by bench/_common.py):
--   wrk-replay 1 <count>\n   then <count> records, each  <byte length>\n<raw HTTP/1.1 request bytes>
--
-- Thread k of T (numbered in setup(), which wrk calls for each thread just before that thread's init())
-- keeps records k+1, k+1+T, k+1+2T, ... and sends them in order. Once its slice is sent, request()
-- answers "": wrk then writes nothing on that connection and never gets a response on it, so the
-- connection idles and no extra request is sent or timed. When the thread has the answer to every
-- request of its slice it writes REQUESTS_FILE.done.<k> and stops its event loop; the caller, seeing
-- all T markers, sends SIGINT so that wrk stops waiting for the duration and runs done().
--
-- wrk calls request() once more in thread 0 before any thread runs, only to check that the request
-- parses; that call gets the thread's first record without consuming it.
--
-- wrk runs init() for thread k+1 (which reads the whole file) after thread k has started, so a thread
-- waits in its first request() until the last thread's init() is done (it writes
-- REQUESTS_FILE.ready.<T-1>), then 100 ms more: meanwhile the idle server accepts every connection
-- (accepting them under load delays the first requests of the late ones by up to ~100 ms). All threads
-- then start sending within a few milliseconds. None of this waiting is in any latency or in the
-- elapsed time (wrk starts a request's clock after request() returns).
--
-- done() writes RESULT_FILE (JSON): wrk's summary, what each thread sent and got (status codes,
-- distinct bodies of the 200 answers, CLOCK_MONOTONIC of its first send and of its last answer, its
-- CPU time in between) and the latency histogram as wrk holds it at the end: microsecond bins, after
-- wrk's own correction for coordinated omission (stats_correct, applied to every run); the caller
-- undoes that correction.

local ffi = require("ffi")

ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } wrk_replay_timespec;
int clock_gettime(int clock_id, wrk_replay_timespec *tp);
int usleep(unsigned int usec);
typedef struct { uint64_t count; uint64_t limit; uint64_t min; uint64_t max; } wrk_replay_stats_head;
]])

local CLOCK_MONOTONIC = 1
local CLOCK_THREAD_CPUTIME_ID = 3
local MAX_DISTINCT_BODIES = 16
local START_BARRIER_TIMEOUT_NS = 60e9
local START_SETTLE_US = 100000
local timespec = ffi.new("wrk_replay_timespec")

local function clock_ns(clock_id)
   ffi.C.clock_gettime(clock_id, timespec)
   return tonumber(timespec.tv_sec) * 1e9 + tonumber(timespec.tv_nsec)
end

-- ------------------------------------------------------------------------------------------------
-- setup and done: the main Lua state
-- ------------------------------------------------------------------------------------------------

local threads = {}

function setup(thread)
   thread:set("replay_id", #threads)
   threads[#threads + 1] = thread
end

local function json_string(s)
   local escaped = s:gsub('[%c"\\]', function(c)
      if c == '"' then
         return '\\"'
      elseif c == "\\" then
         return "\\\\"
      end
      return string.format("\\u%04x", c:byte())
   end)
   return '"' .. escaped .. '"'
end

local function json(value)
   local kind = type(value)
   if kind == "nil" then
      return "null"
   elseif kind == "boolean" then
      return tostring(value)
   elseif kind == "number" then
      if value ~= value or value == math.huge or value == -math.huge then
         return "null"
      elseif value == math.floor(value) and math.abs(value) < 2 ^ 63 then
         return string.format("%.0f", value)
      end
      return string.format("%.17g", value)
   elseif kind == "string" then
      return json_string(value)
   end
   local parts = {}
   if value[1] ~= nil then
      for i = 1, #value do
         parts[i] = json(value[i])
      end
      return "[" .. table.concat(parts, ",") .. "]"
   end
   for k, v in pairs(value) do
      parts[#parts + 1] = json_string(tostring(k)) .. ":" .. json(v)
   end
   return "{" .. table.concat(parts, ",") .. "}"
end

-- Non-empty bins of wrk's latency histogram as a flat list {value_us, count, value_us, count, ...}.
-- Read straight from wrk's `stats` struct (one pass over min..max) when its layout checks out against
-- what the stats object reports; else through latency(i), which rescans the histogram on every call.
local function histogram(latency)
   local flat = {}
   local ok, head = pcall(function()
      return ffi.cast("wrk_replay_stats_head **", latency)[0]
   end)
   if ok and head ~= nil and tonumber(head.min) == latency.min and tonumber(head.max) == latency.max then
      local data = ffi.cast("uint64_t *", head + 1)
      local total = 0
      for v = tonumber(head.min), tonumber(head.max) do
         local c = data[v]
         if c ~= 0 then
            flat[#flat + 1] = v
            flat[#flat + 1] = tonumber(c)
            total = total + tonumber(c)
         end
      end
      if total == tonumber(head.count) then
         return flat, "struct"
      end
      flat = {}
   end
   for i = 1, #latency do
      local v, c = latency(i)
      flat[#flat + 1] = v
      flat[#flat + 1] = c
   end
   return flat, "stats_value_at"
end

function done(summary, latency, requests)
   local per_thread = {}
   for i, t in ipairs(threads) do
      per_thread[i] = {
         id = t:get("replay_id"),
         count = t:get("replay_count"),
         sent = t:get("replay_sent"),
         answered = t:get("replay_answered"),
         parked = t:get("replay_parked"),
         finished = t:get("replay_finished"),
         first_send_ns = t:get("replay_first_send_ns"),
         last_answer_ns = t:get("replay_last_answer_ns"),
         cpu_ns = t:get("replay_cpu_ns"),
         statuses = t:get("replay_statuses"),
         bodies = t:get("replay_bodies"),
      }
   end
   local flat, source = histogram(latency)
   local result = {
      summary = {
         duration_us = summary.duration,
         requests = summary.requests,
         bytes = summary.bytes,
         errors = summary.errors,
      },
      threads = per_thread,
      histogram = flat,
      histogram_source = source,
      wrk_corrected_us = {
         p50 = latency:percentile(50),
         p90 = latency:percentile(90),
         p99 = latency:percentile(99),
         max = latency.max,
      },
   }
   local path = threads[1]:get("replay_result_path")
   local f = assert(io.open(path, "w"))
   f:write(json(result), "\n")
   f:close()
end

-- ------------------------------------------------------------------------------------------------
-- init, request, response: one Lua state per wrk thread
-- ------------------------------------------------------------------------------------------------

local slice = {}
local count = 0
local cursor = 1
local verify_pending = false
local marker_path = nil
local last_ready_path = nil
local cpu_start_ns = nil

function init(args)
   local path, nthreads = args[1], tonumber(args[2])
   replay_result_path = args[3]
   assert(path and nthreads and replay_result_path, "usage: -- REQUESTS_FILE THREADS RESULT_FILE")
   local id = replay_id
   local f = assert(io.open(path, "rb"))
   local magic, version, total = f:read("*l"):match("^(%S+) (%d+) (%d+)$")
   assert(magic == "wrk-replay" and version == "1", "not a wrk-replay v1 file: " .. path)
   for i = 0, tonumber(total) - 1 do
      local size = tonumber(f:read("*l"))
      local raw = f:read(size)
      assert(raw and #raw == size, "truncated record " .. i .. " in " .. path)
      if i % nthreads == id then
         count = count + 1
         slice[count] = raw
      end
   end
   f:close()
   assert(count > 0, "thread " .. id .. " has no request (more threads than requests?)")
   marker_path = path .. ".done." .. id
   last_ready_path = path .. ".ready." .. (nthreads - 1)
   verify_pending = id == 0

   replay_count = count
   replay_sent = 0
   replay_answered = 0
   replay_parked = 0
   replay_finished = false
   replay_statuses = {}
   replay_bodies = {}
   replay_distinct_bodies = 0

   local ready = assert(io.open(path .. ".ready." .. id, "w"))
   ready:write("ready\n")
   ready:close()
end

local function wait_for_all_threads()
   local deadline = clock_ns(CLOCK_MONOTONIC) + START_BARRIER_TIMEOUT_NS
   while clock_ns(CLOCK_MONOTONIC) < deadline do
      local f = io.open(last_ready_path, "r")
      if f then
         f:close()
         ffi.C.usleep(START_SETTLE_US)
         return
      end
      ffi.C.usleep(200)
   end
   error("wrk_replay: the last thread never finished init()")
end

function request()
   if verify_pending then
      verify_pending = false
      return slice[1]
   end
   local i = cursor
   if i > count then
      replay_parked = replay_parked + 1
      return ""
   end
   cursor = i + 1
   replay_sent = i
   if i == 1 then
      wait_for_all_threads()
      cpu_start_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID)
      replay_first_send_ns = clock_ns(CLOCK_MONOTONIC)
   end
   return slice[i]
end

function response(status, headers, body)
   replay_last_answer_ns = clock_ns(CLOCK_MONOTONIC)
   local answered = replay_answered + 1
   replay_answered = answered
   replay_statuses[status] = (replay_statuses[status] or 0) + 1
   if status == 200 then
      local key = body
      if replay_bodies[key] == nil then
         if replay_distinct_bodies >= MAX_DISTINCT_BODIES then
            key = "<other bodies>"
         else
            replay_distinct_bodies = replay_distinct_bodies + 1
         end
      end
      replay_bodies[key] = (replay_bodies[key] or 0) + 1
   end
   if answered == count then
      replay_cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu_start_ns
      replay_finished = true
      local marker = assert(io.open(marker_path, "w"))
      marker:write("done\n")
      marker:close()
      wrk.thread:stop()
   end
end
