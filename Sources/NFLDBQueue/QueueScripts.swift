import NFLDBRedis

/// The queue's Lua scripts. Every state change of a task is one of these, so it is atomic on the
/// server. Keys are derived inside the scripts from the prefix (ARGV[1]); this is fine for one
/// server or Sentinel, not for Redis Cluster (the keys would need one hash tag).
///
/// Key layout (prefix `nfldb:q:`):
/// - `task:ID` hash: id, type, queue, priority, payload, v (schema), attempts, max_attempts, state
///   (ready|delayed|running|succeeded|dead|cancelled), enqueued_ms, score, token, lease_until, worker,
///   error, history (JSON array, one entry per finished attempt), idem, cid (correlation id).
/// - `ready:Q` zset, score `enqueued_ms - priority × aging_ms` (lowest first). Because every task ages
///   at the same rate, ordering by this fixed score is ordering by the effective priority
///   `priority + waited/aging` at any claim time: aging without rewriting scores.
/// - `inflight:Q` zset, score = lease deadline (ms, Redis clock). `delayed:Q` zset, score = due time.
/// - `dead:Q` list of task ids (never trimmed). `queues` set. `token` counter (fencing tokens).
/// - `idem:KEY` string → task id, with the idempotency TTL.
/// - `idemrq:KEY` string → the fingerprint of the request that key was first used for (same TTL),
///   so a reuse for another request is refused after the task's hash has left Redis too.
enum QueueScripts {
    /// Shared prelude: server clock in ms, and a helper that appends to a task's history.
    static let prelude = """
    local p = ARGV[1]
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    -- A history that is not a JSON array (written by hand, truncated) is replaced by a note keeping its
    -- first 200 bytes, never an error: a script that fails half-way keeps its earlier writes (no rollback).
    local function resetHistory(key, h)
      redis.log(redis.LOG_WARNING, 'nfldb queue: ' .. key .. ': history is not a JSON array; replaced')
      return {{outcome = 'history reset', reason = 'the history field was not a JSON array', was = string.sub(h, 1, 200), at_ms = now}}
    end
    -- The keys of queue q must be nfldb's types (or absent): checked before a script writes anything, so a
    -- key written by something else fails the call whole, naming the key and what to do.
    local function badQueueKey(q)
      for _, kind in ipairs({{'ready:', 'zset'}, {'delayed:', 'zset'}, {'inflight:', 'zset'}, {'dead:', 'list'}}) do
        local k = p .. kind[1] .. q
        local t = redis.call('TYPE', k)['ok']
        if t ~= kind[2] and t ~= 'none' then
          return 'WRONGTYPE the queue key ' .. k .. ' holds a ' .. t .. ', not a ' .. kind[2] .. ' (queue ' .. q .. '): check it with redis-cli TYPE '
            .. k .. ' and, if nothing but nfldb should own it, delete it (redis-cli DEL ' .. k .. ')'
        end
      end
      return nil
    end
    local function record(key, entry)
      local h = redis.call('HGET', key, 'history')
      local list = {}
      if h and h ~= '' then
        local ok, decoded = pcall(cjson.decode, h)
        if ok and type(decoded) == 'table' then list = decoded else list = resetHistory(key, h) end
      end
      list[#list + 1] = entry
      redis.call('HSET', key, 'history', cjson.encode(list))
    end
    -- Due delayed tasks (retries after their backoff) of queue q back to ready, at most limit.
    local function promote(q, limit)
      local due = redis.call('ZRANGEBYSCORE', p .. 'delayed:' .. q, '-inf', now, 'LIMIT', 0, limit)
      for _, id in ipairs(due) do
        redis.call('ZREM', p .. 'delayed:' .. q, id)
        local key = p .. 'task:' .. id
        if redis.call('HGET', key, 'state') == 'delayed' then
          redis.call('HSET', key, 'state', 'ready')
          redis.call('ZADD', p .. 'ready:' .. q, redis.call('HGET', key, 'score'), id)
        end
      end
    end
    local function reap(q, limit)
      local n = 0
      local expired = redis.call('ZRANGEBYSCORE', p .. 'inflight:' .. q, '-inf', now, 'LIMIT', 0, limit)
      for _, id in ipairs(expired) do
        local key = p .. 'task:' .. id
        redis.call('ZREM', p .. 'inflight:' .. q, id)
        local f = redis.call('HMGET', key, 'attempts', 'max_attempts', 'score', 'worker', 'state')
        if f[5] == 'running' then
          local attempts = tonumber(f[1]) or 0
          record(key, {attempt = attempts, worker = f[4], outcome = 'lease expired', at_ms = now})
          if attempts >= (tonumber(f[2]) or 1) then
            local err = 'lease expired on all ' .. attempts .. ' attempts (the worker died or stalled each time: a poison task?)'
            redis.call('HSET', key, 'state', 'dead', 'error', err, 'finished_ms', now)
            redis.call('RPUSH', p .. 'dead:' .. q, id)
          else
            redis.call('HSET', key, 'state', 'ready')
            redis.call('ZADD', p .. 'ready:' .. q, f[3], id)
          end
          n = n + 1
        end
      end
      return n
    end

    """

    /// ARGV: prefix, id, type, queue, priority, payload, max_attempts, idempotency key ('' = none),
    /// idempotency TTL ms, aging ms, correlation id, schema version, request fingerprint.
    /// Returns {id, 1} when enqueued, {existing id, 0} for a known idempotency key of the same
    /// request, {existing id, 2} when the key's task was submitted with another fingerprint (type,
    /// queue or payload differ) and still exists to compare with.
    static let enqueue = RedisScript(prelude + """
    local id, q = ARGV[2], ARGV[4]
    local bad = badQueueKey(q)
    if bad then return redis.error_reply(bad) end
    -- Sent again after a failover: the first attempt did run (same id), so do nothing twice.
    if redis.call('EXISTS', p .. 'task:' .. id) == 1 then return {id, 1} end
    if ARGV[8] ~= '' then
      local existing = redis.call('GET', p .. 'idem:' .. ARGV[8])
      if existing then
        local rq = redis.call('GET', p .. 'idemrq:' .. ARGV[8])
        if not rq then rq = redis.call('HGET', p .. 'task:' .. existing, 'rq') end
        if rq and rq ~= '' and ARGV[13] and ARGV[13] ~= '' and rq ~= ARGV[13] then return {existing, 2} end
        return {existing, 0}
      end
      redis.call('SET', p .. 'idem:' .. ARGV[8], id, 'PX', ARGV[9])
      if ARGV[13] and ARGV[13] ~= '' then redis.call('SET', p .. 'idemrq:' .. ARGV[8], ARGV[13], 'PX', ARGV[9]) end
    end
    local score = now - tonumber(ARGV[5]) * tonumber(ARGV[10])
    local key = p .. 'task:' .. id
    redis.call('HSET', key, 'id', id, 'type', ARGV[3], 'queue', q, 'priority', ARGV[5], 'payload', ARGV[6],
      'max_attempts', ARGV[7], 'attempts', 0, 'state', 'ready', 'enqueued_ms', now, 'score', score, 'token', 0,
      'idem', ARGV[8], 'cid', ARGV[11], 'v', ARGV[12], 'history', '[]', 'rq', ARGV[13] or '')
    redis.call('ZADD', p .. 'ready:' .. q, score, id)
    redis.call('SADD', p .. 'queues', q)
    return {id, 1}
    """)

    /// ARGV: prefix, lease ms, worker, queue… Reaps expired leases and promotes due retries of
    /// these queues, then claims the task with the lowest score across them.
    /// Returns nil, or {id, type, queue, payload, attempts, max_attempts, token, enqueued_ms, cid, v, idem, priority}.
    static let claim = RedisScript(prelude + """
    local lease, worker = tonumber(ARGV[2]), ARGV[3]
    for i = 4, #ARGV do
      local bad = badQueueKey(ARGV[i])
      if bad then return redis.error_reply(bad) end
    end
    local best, bestScore, bestQueue = nil, nil, nil
    for i = 4, #ARGV do
      local q = ARGV[i]
      reap(q, 100)
      promote(q, 100)
      local head = redis.call('ZRANGE', p .. 'ready:' .. q, 0, 0, 'WITHSCORES')
      if head[1] and (bestScore == nil or tonumber(head[2]) < bestScore) then
        best, bestScore, bestQueue = head[1], tonumber(head[2]), q
      end
    end
    if not best then return nil end
    redis.call('ZREM', p .. 'ready:' .. bestQueue, best)
    local key = p .. 'task:' .. best
    local token = redis.call('INCR', p .. 'token')
    local attempts = redis.call('HINCRBY', key, 'attempts', 1)
    redis.call('HSET', key, 'state', 'running', 'token', token, 'lease_until', now + lease, 'worker', worker, 'started_ms', now)
    redis.call('ZADD', p .. 'inflight:' .. bestQueue, now + lease, best)
    local f = redis.call('HMGET', key, 'type', 'payload', 'max_attempts', 'enqueued_ms', 'cid', 'v', 'idem', 'priority')
    return {best, f[1], bestQueue, f[2], attempts, f[3], token, f[4], f[5], f[6], f[7], f[8]}
    """)

    /// Checks that ARGV[2] (id) is running under token ARGV[3] with an unexpired lease.
    /// Sets `key`, `q`, `status` ('ok', 'cancelled', 'lost').
    static let fence = """
    local id, token = ARGV[2], ARGV[3]
    local key = p .. 'task:' .. id
    local f = redis.call('HMGET', key, 'state', 'token', 'lease_until', 'queue', 'attempts', 'worker')
    local q = f[4]
    if q then
      local bad = badQueueKey(q)
      if bad then return redis.error_reply(bad) end
    end
    local status = 'ok'
    if f[1] == 'cancelled' then status = 'cancelled'
    elseif f[1] ~= 'running' or f[2] ~= token or tonumber(f[3]) < now then status = 'lost' end

    """

    /// ARGV: prefix, id, token, lease ms. Returns 'ok' (extended), 'cancelled' or 'lost'.
    static let heartbeat = RedisScript(prelude + fence + """
    if status ~= 'ok' then return status end
    redis.call('HSET', key, 'lease_until', now + tonumber(ARGV[4]))
    redis.call('ZADD', p .. 'inflight:' .. q, now + tonumber(ARGV[4]), id)
    return 'ok'
    """)

    /// ARGV: prefix, id, token, completed TTL ms. Returns 'ok', 'cancelled' or 'lost' (nothing changed).
    static let complete = RedisScript(prelude + fence + """
    if status ~= 'ok' then return status end
    record(key, {attempt = tonumber(f[5]), worker = f[6], outcome = 'succeeded', at_ms = now})
    redis.call('HSET', key, 'state', 'succeeded', 'finished_ms', now)
    redis.call('ZREM', p .. 'inflight:' .. q, id)
    redis.call('PEXPIRE', key, ARGV[4])
    return 'ok'
    """)

    /// ARGV: prefix, id, token, error, permanent (1/0), backoff base ms, backoff max ms, jitter 0…1.
    /// Returns 'retry', 'dead', 'cancelled' or 'lost'.
    static let fail = RedisScript(prelude + fence + """
    if status ~= 'ok' then return status end
    local attempts = tonumber(f[5])
    record(key, {attempt = attempts, worker = f[6], outcome = 'failed', error = ARGV[4], at_ms = now})
    redis.call('ZREM', p .. 'inflight:' .. q, id)
    local max = tonumber(redis.call('HGET', key, 'max_attempts'))
    if ARGV[5] == '1' or attempts >= max then
      redis.call('HSET', key, 'state', 'dead', 'error', ARGV[4], 'finished_ms', now)
      redis.call('RPUSH', p .. 'dead:' .. q, id)
      return 'dead'
    end
    local delay = math.min(tonumber(ARGV[7]), tonumber(ARGV[6]) * 2 ^ (attempts - 1))
    delay = math.floor(delay / 2 + delay / 2 * tonumber(ARGV[8]))
    redis.call('HSET', key, 'state', 'delayed', 'error', ARGV[4], 'due_ms', now + delay)
    redis.call('ZADD', p .. 'delayed:' .. q, now + delay, id)
    return 'retry'
    """)

    /// ARGV: prefix, id, token. Gives a claimed task back (graceful shutdown): ready again, the
    /// attempt not counted. Returns 'ok', 'cancelled' or 'lost'.
    static let release = RedisScript(prelude + fence + """
    if status ~= 'ok' then return status end
    redis.call('ZREM', p .. 'inflight:' .. q, id)
    redis.call('HINCRBY', key, 'attempts', -1)
    redis.call('HSET', key, 'state', 'ready')
    redis.call('ZADD', p .. 'ready:' .. q, redis.call('HGET', key, 'score'), id)
    return 'ok'
    """)

    /// ARGV: prefix, id. Returns the state before: 'ready'/'delayed' (now cancelled), 'running' (the worker
    /// learns at its next heartbeat), or the terminal state / 'missing' (nothing changed).
    static let cancel = RedisScript(prelude + """
    local id = ARGV[2]
    local key = p .. 'task:' .. id
    local f = redis.call('HMGET', key, 'state', 'queue')
    if not f[1] then return 'missing' end
    if f[1] == 'ready' or f[1] == 'delayed' or f[1] == 'running' then
      local bad = badQueueKey(f[2])
      if bad then return redis.error_reply(bad) end
      redis.call('ZREM', p .. 'ready:' .. f[2], id)
      redis.call('ZREM', p .. 'delayed:' .. f[2], id)
      redis.call('ZREM', p .. 'inflight:' .. f[2], id)
      redis.call('HSET', key, 'state', 'cancelled', 'finished_ms', now)
      record(key, {outcome = 'cancelled', was = f[1], at_ms = now})
    end
    return f[1]
    """)

    /// ARGV: prefix. Reaps expired leases of every known queue. Returns how many tasks moved.
    static let recover = RedisScript(prelude + """
    local n = 0
    local queues = redis.call('SMEMBERS', p .. 'queues')
    -- Every queue's keys first: a reap that fails half-way would leave a task 'ready' in no set.
    for _, q in ipairs(queues) do
      local bad = badQueueKey(q)
      if bad then return redis.error_reply(bad) end
    end
    for _, q in ipairs(queues) do
      local moved = reap(q, 1000)
      n = n + moved
      while moved == 1000 do moved = reap(q, 1000); n = n + moved end
    end
    return n
    """)

    /// ARGV: prefix, queue, id. Moves a dead task back to ready with a fresh attempt budget.
    /// Returns 'ok' or 'missing'.
    static let requeue = RedisScript(prelude + """
    local q, id = ARGV[2], ARGV[3]
    local key = p .. 'task:' .. id
    local bad = badQueueKey(q)
    if bad then return redis.error_reply(bad) end
    if redis.call('LREM', p .. 'dead:' .. q, 1, id) == 0 then return 'missing' end
    record(key, {outcome = 'requeued', at_ms = now})
    redis.call('HSET', key, 'state', 'ready', 'attempts', 0)
    redis.call('ZADD', p .. 'ready:' .. q, redis.call('HGET', key, 'score'), id)
    return 'ok'
    """)

    /// ARGV: prefix. Per queue: {queue, ready, delayed, in_flight, expired leases, dead, oldest ready enqueued_ms or -1, now}.
    static let stats = RedisScript(prelude + """
    local out = {}
    for _, q in ipairs(redis.call('SMEMBERS', p .. 'queues')) do
      -- A key of the wrong type would fail ZCARD with Redis's bare WRONGTYPE: name the key and the fix instead.
      local bad = badQueueKey(q)
      if bad then return redis.error_reply(bad) end
      local oldest = -1
      for _, id in ipairs(redis.call('ZRANGE', p .. 'ready:' .. q, 0, -1)) do
        local e = tonumber(redis.call('HGET', p .. 'task:' .. id, 'enqueued_ms'))
        if e and (oldest < 0 or e < oldest) then oldest = e end
      end
      out[#out + 1] = {q, redis.call('ZCARD', p .. 'ready:' .. q), redis.call('ZCARD', p .. 'delayed:' .. q),
        redis.call('ZCARD', p .. 'inflight:' .. q), redis.call('ZCOUNT', p .. 'inflight:' .. q, '-inf', now),
        redis.call('LLEN', p .. 'dead:' .. q), oldest, now}
    end
    return out
    """)

    /// The worker's one call per round trip: acknowledges finished tasks (fenced, like ``complete``),
    /// then claims up to N tasks (like ``claim``: reaps expired leases, promotes due retries, takes the
    /// lowest scores across the queues, one fencing token and a lease from the server clock each).
    /// ARGV: prefix, lease ms, worker, N to claim (0 = none), completed TTL ms, queue count Q, Q queues,
    /// then (id, token) pairs to acknowledge.
    /// Returns {ack statuses ('ok'|'cancelled'|'lost', one per pair), claimed tasks flattened (12 fields each,
    /// in the order of ``claim``)}. An ack of a task already succeeded under the same token answers 'ok' again,
    /// so a call repeated after a lost connection counts right.
    static let work = RedisScript(prelude + """
    local lease, worker, want, ttl, nq = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
    if want > 0 then
      for qi = 1, nq do
        local bad = badQueueKey(ARGV[6 + qi])
        if bad then return redis.error_reply(bad) end
      end
    end
    -- The acknowledged tasks' queues too, before any write (a failed ZREM after the HSET would leave
    -- the batch half-acknowledged).
    local checked = {}
    for i = 7 + nq, #ARGV, 2 do
      local q = redis.call('HGET', p .. 'task:' .. ARGV[i], 'queue')
      if q and not checked[q] then
        local bad = badQueueKey(q)
        if bad then return redis.error_reply(bad) end
        checked[q] = true
      end
    end
    local acks, zrem = {}, {}
    for i = 7 + nq, #ARGV, 2 do
      local id, token = ARGV[i], ARGV[i + 1]
      local key = p .. 'task:' .. id
      local f = redis.call('HMGET', key, 'state', 'token', 'lease_until', 'queue', 'attempts', 'worker', 'history')
      local status = 'ok'
      if f[1] == 'cancelled' then status = 'cancelled'
      elseif f[1] == 'succeeded' and f[2] == token then status = 'ok'
      elseif f[1] ~= 'running' or f[2] ~= token or tonumber(f[3]) < now then status = 'lost'
      else
        local e = cjson.encode({attempt = tonumber(f[5]), worker = f[6], outcome = 'succeeded', at_ms = now})
        local h = f[7]
        if not h or h == '' or h == '[]' or h == '{}' then h = '[' .. e .. ']'
        elseif string.sub(h, 1, 1) == '[' and string.sub(h, -1) == ']' then h = string.sub(h, 1, -2) .. ',' .. e .. ']'
        else h = string.sub(cjson.encode(resetHistory(key, h)), 1, -2) .. ',' .. e .. ']' end
        redis.call('HSET', key, 'state', 'succeeded', 'finished_ms', now, 'history', h)
        redis.call('PEXPIRE', key, ttl)
        local list = zrem[f[4]]
        if not list then list = {}; zrem[f[4]] = list end
        list[#list + 1] = id
      end
      acks[#acks + 1] = status
    end
    for q, ids in pairs(zrem) do redis.call('ZREM', p .. 'inflight:' .. q, unpack(ids)) end
    local out = {}
    if want > 0 then
      local cands = {}
      for qi = 1, nq do
        local q = ARGV[6 + qi]
        reap(q, 100)
        promote(q, 100)
        local head = redis.call('ZRANGE', p .. 'ready:' .. q, 0, want - 1, 'WITHSCORES')
        for j = 1, #head, 2 do cands[#cands + 1] = {head[j], tonumber(head[j + 1]), qi, j} end
      end
      if nq > 1 then
        table.sort(cands, function(a, b)
          if a[2] ~= b[2] then return a[2] < b[2] end
          if a[3] ~= b[3] then return a[3] < b[3] end
          return a[4] < b[4]
        end)
      end
      local n = math.min(want, #cands)
      if n > 0 then
        local token = redis.call('INCRBY', p .. 'token', n) - n
        local until_ms = now + lease
        local taken, leased = {}, {}
        for i = 1, n do
          local id, q = cands[i][1], ARGV[6 + cands[i][3]]
          local key = p .. 'task:' .. id
          local t = taken[q]
          if not t then t = {}; taken[q] = t; leased[q] = {} end
          t[#t + 1] = id
          local f = redis.call('HMGET', key, 'type', 'payload', 'max_attempts', 'enqueued_ms', 'cid', 'v', 'idem', 'priority', 'attempts', 'state')
          if f[10] == 'ready' then
            token = token + 1
            local attempts = (tonumber(f[9]) or 0) + 1
            redis.call('HSET', key, 'attempts', attempts, 'state', 'running', 'token', token, 'lease_until', until_ms, 'worker', worker, 'started_ms', now)
            local l = leased[q]
            l[#l + 1] = until_ms
            l[#l + 1] = id
            local k = #out
            out[k + 1], out[k + 2], out[k + 3], out[k + 4], out[k + 5], out[k + 6] = id, f[1], q, f[2], attempts, f[3]
            out[k + 7], out[k + 8], out[k + 9], out[k + 10], out[k + 11], out[k + 12] = token, f[4], f[5], f[6], f[7], f[8]
          end
        end
        for q, ids in pairs(taken) do
          redis.call('ZREM', p .. 'ready:' .. q, unpack(ids))
          if #leased[q] > 0 then redis.call('ZADD', p .. 'inflight:' .. q, unpack(leased[q])) end
        end
      end
    end
    return {acks, out}
    """)

    /// ARGV: prefix, lease ms, then (id, token) pairs. Extends each lease that is still ours; returns one status
    /// per pair: 'ok', 'cancelled' or 'lost'.
    static let heartbeatMany = RedisScript(prelude + """
    local lease = tonumber(ARGV[2])
    local out = {}
    for i = 3, #ARGV, 2 do
      local id, token = ARGV[i], ARGV[i + 1]
      local key = p .. 'task:' .. id
      local f = redis.call('HMGET', key, 'state', 'token', 'lease_until', 'queue')
      local status = 'ok'
      if f[1] == 'cancelled' then status = 'cancelled'
      elseif f[1] ~= 'running' or f[2] ~= token or tonumber(f[3]) < now then status = 'lost'
      else
        -- Checked before the HSET: a lease extended in the hash but not in inflight:Q would never be reaped.
        local bad = badQueueKey(f[4])
        if bad then return redis.error_reply(bad) end
        redis.call('HSET', key, 'lease_until', now + lease)
        redis.call('ZADD', p .. 'inflight:' .. f[4], now + lease, id)
      end
      out[#out + 1] = status
    end
    return out
    """)

    /// ARGV: prefix, queue, id… Deletes these dead tasks: each one still in `dead:Q` is removed
    /// from it (LREM), its hash deleted, and its idempotency key too when that key still names it
    /// (a purged task's key would otherwise turn a resubmission into "the existing task" for a
    /// task that no longer exists). One script per batch: a task dead-lettered meanwhile is not in
    /// the batch and stays listed. Returns how many were deleted.
    static let purge = RedisScript(prelude + """
    local q = ARGV[2]
    local bad = badQueueKey(q)
    if bad then return redis.error_reply(bad) end
    local removed = 0
    for i = 3, #ARGV do
      local id = ARGV[i]
      if redis.call('LREM', p .. 'dead:' .. q, 1, id) > 0 then
        local key = p .. 'task:' .. id
        local idem = redis.call('HGET', key, 'idem')
        if idem and idem ~= '' and redis.call('GET', p .. 'idem:' .. idem) == id then
          redis.call('DEL', p .. 'idem:' .. idem, p .. 'idemrq:' .. idem)
        end
        redis.call('DEL', key)
        removed = removed + 1
      end
    end
    return removed
    """)

    static let all: [RedisScript] = [enqueue, claim, heartbeat, complete, fail, release, cancel, recover, requeue, stats, work, heartbeatMany, purge]
}
