-- The floor of bench/queue: what Redis alone does for a batch of K tasks with the same commands as
-- nfldb's enqueue and work scripts (Sources/NFLDBQueue/QueueScripts.swift) — enqueue K tasks, claim
-- them (reap and promote checks, one INCRBY for the tokens, HMGET + HSET per task, one ZREM/ZADD per
-- batch) and acknowledge them (HMGET + HSET + PEXPIRE per task, one ZREM per batch) — in one script
-- call, with no worker, no handler and no PostgreSQL. ARGV[1]: a batch id (redis-benchmark's
-- __rand_int__), ARGV[2]: K.
local p = 'floor:'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local q, k = 'bench', tonumber(ARGV[2])
local ids = {}
-- enqueue
for i = 1, k do
  local id = ARGV[1] .. ':' .. i
  ids[i] = id
  redis.call('HSET', p .. 'task:' .. id, 'id', id, 'type', 'noop', 'queue', q, 'priority', 0, 'payload', '{}', 'max_attempts', 5,
    'attempts', 0, 'state', 'ready', 'enqueued_ms', now, 'score', now, 'token', 0, 'idem', '', 'cid', '', 'v', 1, 'history', '[]')
  redis.call('ZADD', p .. 'ready:' .. q, now, id)
  redis.call('SADD', p .. 'queues', q)
end
-- claim
redis.call('ZRANGEBYSCORE', p .. 'inflight:' .. q, '-inf', now, 'LIMIT', 0, 100)
redis.call('ZRANGEBYSCORE', p .. 'delayed:' .. q, '-inf', now, 'LIMIT', 0, 100)
local head = redis.call('ZRANGE', p .. 'ready:' .. q, 0, k - 1, 'WITHSCORES')
local token = redis.call('INCRBY', p .. 'token', k) - k
local leased = {}
for i = 1, #head, 2 do
  local id = head[i]
  local key = p .. 'task:' .. id
  local f = redis.call('HMGET', key, 'type', 'payload', 'max_attempts', 'enqueued_ms', 'cid', 'v', 'idem', 'priority', 'attempts', 'state')
  token = token + 1
  redis.call('HSET', key, 'attempts', 1, 'state', 'running', 'token', token, 'lease_until', now + 30000, 'worker', 'w', 'started_ms', now)
  leased[#leased + 1] = now + 30000
  leased[#leased + 1] = id
  ids[(i + 1) / 2] = id
end
local taken = {}
for i = 1, #head, 2 do taken[#taken + 1] = head[i] end
redis.call('ZREM', p .. 'ready:' .. q, unpack(taken))
redis.call('ZADD', p .. 'inflight:' .. q, unpack(leased))
-- acknowledge
for _, id in ipairs(taken) do
  local key = p .. 'task:' .. id
  local g = redis.call('HMGET', key, 'state', 'token', 'lease_until', 'queue', 'attempts', 'worker', 'history')
  local e = cjson.encode({attempt = 1, worker = 'w', outcome = 'succeeded', at_ms = now})
  redis.call('HSET', key, 'state', 'succeeded', 'finished_ms', now, 'history', '[' .. e .. ']')
  redis.call('PEXPIRE', key, 3600000)
end
redis.call('ZREM', p .. 'inflight:' .. q, unpack(taken))
return #taken
