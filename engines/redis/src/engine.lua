-- The Redis engine's one script: every write (and every read that must skip expired
-- entries or keep totals exact) runs here, atomically on the server. Called as
--   EVALSHA sha 1 <P>:t <op> <P> <args...>
-- where <P> is the store's prefix `sqc{NAME}`: the hash tag `{NAME}` puts every key of a
-- store in one hash slot, so one script sees them all, also on a Redis Cluster.
--
-- Keys of a store (n: a namespace id, 0 the default one):
--   P:t            hash  size (all namespaces), c:n / s:n (count / bytes of n), tick, nsseq
--   P:kind         string "cache" | "index"
--   P:md           hash  store metadata
--   P:ns           hash  namespace name -> id
--   P:v:n:KEY      string the value, with the server's own TTL (PXAT) when it expires
--   P:m:n          hash  KEY -> "VERSION SIZE EXPIRE_MS|- -|+TAG"
--   P:k:n          zset  KEY (score 0): byte order, prefixes, pages
--   P:x:n          zset  KEY by expiry (ms): purge
--   P:lru          zset  "n:KEY" by recency tick: eviction under max_size
--   P:g:n:TAG      set   keys tagged TAG
--   P:l:NAME       string lock owner, with the lock's TTL

local op = ARGV[1]
local P = ARGV[2]
local T = P .. ':t'

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function vkey(n, key) return P .. ':v:' .. n .. ':' .. key end

-- Changes of the totals, applied once at the end of the script (or before a read).
local D = {}
local function add_total(f, d) if d ~= 0 then D[f] = (D[f] or 0) + d end end
local function flush_totals()
  for f, d in pairs(D) do
    if d ~= 0 then redis.call('HINCRBY', T, f, d) end
  end
  D = {}
end

-- Ticks: one counter gives entry versions (only equality matters) and the LRU order
-- (monotonic across scripts); reserved 64 at a time.
local TICK, TICK_END = 1, 0
local function tick()
  if TICK > TICK_END then
    TICK_END = redis.call('HINCRBY', T, 'tick', 64)
    TICK = TICK_END - 63
  end
  local t = TICK
  TICK = TICK + 1
  return t
end

local function meta(n, key)
  local m = redis.call('HGET', P .. ':m:' .. n, key)
  if not m then return nil end
  local ver, sz, exp, tag = string.match(m, '^(%d+) (%d+) (%S+) (.*)$')
  local e = nil
  if exp ~= '-' then e = exp end
  local t = nil
  if string.sub(tag, 1, 1) == '+' then t = string.sub(tag, 2) end
  return { ver = ver, sz = tonumber(sz), exp = e, tag = t, raw = m }
end

local function remove(n, key, m)
  redis.call('DEL', vkey(n, key))
  redis.call('HDEL', P .. ':m:' .. n, key)
  redis.call('ZREM', P .. ':k:' .. n, key)
  if m.exp then redis.call('ZREM', P .. ':x:' .. n, key) end
  redis.call('ZREM', P .. ':lru', n .. ':' .. key)
  if m.tag then redis.call('SREM', P .. ':g:' .. n .. ':' .. m.tag, key) end
  add_total('c:' .. n, -1)
  add_total('s:' .. n, 0 - m.sz)
  add_total('size', 0 - m.sz)
end

-- The live entry at key (nil: absent; an expired one is removed on the way).
local function live(n, key, now)
  local m = meta(n, key)
  if not m then return nil end
  if (m.exp and tonumber(m.exp) <= now) or redis.call('EXISTS', vkey(n, key)) == 0 then
    remove(n, key, m)
    return nil
  end
  return m
end


local function put_meta(n, key, ver, sz, exp, tag)
  local e = '-'
  if exp then e = exp end
  local t = '-'
  if tag then t = '+' .. tag end
  redis.call('HSET', P .. ':m:' .. n, key, ver .. ' ' .. sz .. ' ' .. e .. ' ' .. t)
end

-- Writes an entry (replacing any: only what differs is changed); exp is absolute ms
-- (a string) or nil, tag nil or a string.
local function write(n, key, val, exp, tag, now)
  local old = meta(n, key)
  if exp and tonumber(exp) <= now then
    if old then remove(n, key, old) end
    return
  end
  local vk = vkey(n, key)
  if exp then
    redis.call('SET', vk, val, 'PXAT', exp)
    redis.call('ZADD', P .. ':x:' .. n, exp, key)
  else
    redis.call('SET', vk, val)
    if old and old.exp then redis.call('ZREM', P .. ':x:' .. n, key) end
  end
  local sz = string.len(val)
  local t = tick()
  put_meta(n, key, t, sz, exp, tag)
  if old and old.tag and old.tag ~= tag then
    redis.call('SREM', P .. ':g:' .. n .. ':' .. old.tag, key)
  end
  if tag and not (old and old.tag == tag) then
    redis.call('SADD', P .. ':g:' .. n .. ':' .. tag, key)
  end
  redis.call('ZADD', P .. ':lru', t, n .. ':' .. key)
  if old then
    add_total('s:' .. n, sz - old.sz)
    add_total('size', sz - old.sz)
  else
    redis.call('ZADD', P .. ':k:' .. n, 0, key)
    add_total('c:' .. n, 1)
    add_total('s:' .. n, sz)
    add_total('size', sz)
  end
end

-- Removes the least recently used entries until the store holds at most max bytes.
local function evict(max)
  if max <= 0 then return 0 end
  flush_totals()
  local size = tonumber(redis.call('HGET', T, 'size') or '0')
  local count = 0
  while size > max do
    local r = redis.call('ZRANGE', P .. ':lru', 0, 0)
    if #r == 0 then break end
    local n, key = string.match(r[1], '^(%d+):(.*)$')
    local m = meta(n, key)
    if m then
      remove(n, key, m)
      size = size - m.sz
      count = count + 1
    else
      redis.call('ZREM', P .. ':lru', r[1])
    end
  end
  return count
end

-- Removes the expired entries of namespace n; how many.
local function purge(n, now)
  local gone = redis.call('ZRANGEBYSCORE', P .. ':x:' .. n, '-inf', now)
  for _, key in ipairs(gone) do
    local m = meta(n, key)
    if m then remove(n, key, m) else redis.call('ZREM', P .. ':x:' .. n, key) end
  end
  return #gone
end

local function ns_ids()
  local ids = { '0' }
  for _, id in ipairs(redis.call('HVALS', P .. ':ns')) do table.insert(ids, id) end
  return ids
end

-- Expiries stay strings (exact ms; Lua numbers print large values in exponent form).
local function opt_exp(s) if s == '' then return nil end return s end
local function opt_tag(s) if s == '' then return nil end return string.sub(s, 2) end

-- Bounds of the keys of n starting with prefix, strictly after `after` ('' : none;
-- keys are UTF-8, so no key has the byte 0xFF after the prefix).
local function bounds(prefix, after, has_after)
  local lo = '[' .. prefix
  if has_after == '1' and after >= prefix then lo = '(' .. after end
  local hi = '+'
  if prefix ~= '' then hi = '(' .. prefix .. '\255' end
  return lo, hi
end

local function count_of(n)
  flush_totals()
  return tonumber(redis.call('HGET', T, 'c:' .. n) or '0')
end

local function dispatch()
if op == 'open' then
  -- ARGV[3]: the kind to create ('' : open only). Returns the stored kind or nil.
  local k = redis.call('GET', P .. ':kind')
  if not k and ARGV[3] ~= '' then
    redis.call('SET', P .. ':kind', ARGV[3])
    k = ARGV[3]
  end
  return k
elseif op == 'ns' then
  local id = redis.call('HGET', P .. ':ns', ARGV[3])
  if not id then
    if ARGV[4] ~= '1' then return nil end
    id = redis.call('HINCRBY', T, 'nsseq', 1)
    redis.call('HSET', P .. ':ns', ARGV[3], id)
  end
  return tonumber(id)
elseif op == 'set' then
  -- n key value exp tag max
  local now = now_ms()
  write(ARGV[3], ARGV[4], ARGV[5], opt_exp(ARGV[6]), opt_tag(ARGV[7]), now)
  return evict(tonumber(ARGV[8]))
elseif op == 'setmany' then
  -- n exp tag max key1 value1 key2 value2 ...
  local now = now_ms()
  local n, exp, tag = ARGV[3], opt_exp(ARGV[4]), opt_tag(ARGV[5])
  for i = 7, #ARGV, 2 do write(n, ARGV[i], ARGV[i + 1], exp, tag, now) end
  return evict(tonumber(ARGV[6]))
elseif op == 'add' then
  local now = now_ms()
  if live(ARGV[3], ARGV[4], now) then return 0 end
  write(ARGV[3], ARGV[4], ARGV[5], opt_exp(ARGV[6]), opt_tag(ARGV[7]), now)
  evict(tonumber(ARGV[8]))
  return 1
elseif op == 'del' then
  local m = live(ARGV[3], ARGV[4], now_ms())
  if not m then return 0 end
  remove(ARGV[3], ARGV[4], m)
  return 1
elseif op == 'entry' or op == 'pop' then
  -- {value, meta} of a live entry, nil when absent.
  local n, key = ARGV[3], ARGV[4]
  local m = live(n, key, now_ms())
  if not m then return nil end
  local v = redis.call('GET', vkey(n, key))
  if op == 'pop' then remove(n, key, m) end
  return { v, m.raw }
elseif op == 'info' then
  local m = live(ARGV[3], ARGV[4], now_ms())
  if not m then return nil end
  return m.raw
elseif op == 'touch' then
  -- n key exp ('' : never)
  local n, key = ARGV[3], ARGV[4]
  local now = now_ms()
  local m = live(n, key, now)
  if not m then return 0 end
  local exp = opt_exp(ARGV[5])
  if exp and tonumber(exp) <= now then
    remove(n, key, m)
    return 1
  end
  if exp then
    redis.call('PEXPIREAT', vkey(n, key), exp)
    redis.call('ZADD', P .. ':x:' .. n, exp, key)
  else
    redis.call('PERSIST', vkey(n, key))
    redis.call('ZREM', P .. ':x:' .. n, key)
  end
  put_meta(n, key, m.ver, m.sz, exp, m.tag)
  return 1
elseif op == 'incr' then
  -- n key delta (fits an i64) init (default + delta, '' : overflows) max.
  -- {0, value} | {1} not a counter | {2} overflow
  local n, key = ARGV[3], ARGV[4]
  local now = now_ms()
  local m = live(n, key, now)
  local vk = vkey(n, key)
  if not m then
    if ARGV[6] == '' then return { 2 } end
    write(n, key, ARGV[6], nil, nil, now)
    evict(tonumber(ARGV[7]))
    return { 0, ARGV[6] }
  end
  local r = redis.pcall('INCRBY', vk, ARGV[5])
  if type(r) == 'table' and r.err then
    if string.find(r.err, 'overflow') then return { 2 } end
    if string.find(r.err, 'not an integer') then return { 1 } end
    return redis.error_reply(r.err)
  end
  local v = redis.call('GET', vk)
  local sz = string.len(v)
  local t = tick()
  put_meta(n, key, t, sz, m.exp, m.tag)
  add_total('s:' .. n, sz - m.sz)
  add_total('size', sz - m.sz)
  redis.call('ZADD', P .. ':lru', t, n .. ':' .. key)
  evict(tonumber(ARGV[7]))
  return { 0, v }
elseif op == 'cas' then
  -- n key expected ('' : absent) has_new new exp tag max
  local n, key = ARGV[3], ARGV[4]
  local now = now_ms()
  local m = live(n, key, now)
  local cur = ''
  if m then cur = m.ver end
  if cur ~= ARGV[5] then return 0 end
  if ARGV[6] == '1' then
    write(n, key, ARGV[7], opt_exp(ARGV[8]), opt_tag(ARGV[9]), now)
    evict(tonumber(ARGV[10]))
  elseif m then
    remove(n, key, m)
  end
  return 1
elseif op == 'commit' then
  -- max nreads (n key version)* (S n key value exp tag | D n key)*
  local now = now_ms()
  local max = tonumber(ARGV[3])
  local nreads = tonumber(ARGV[4])
  local i = 5
  for _ = 1, nreads do
    local m = live(ARGV[i], ARGV[i + 1], now)
    local cur = ''
    if m then cur = m.ver end
    if cur ~= ARGV[i + 2] then return 0 end
    i = i + 3
  end
  while i <= #ARGV do
    if ARGV[i] == 'S' then
      write(ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], opt_exp(ARGV[i + 4]), opt_tag(ARGV[i + 5]), now)
      i = i + 6
    else
      local m = live(ARGV[i + 1], ARGV[i + 2], now)
      if m then remove(ARGV[i + 1], ARGV[i + 2], m) end
      i = i + 3
    end
  end
  evict(max)
  return 1
elseif op == 'len' then
  purge(ARGV[3], now_ms())
  return count_of(ARGV[3])
elseif op == 'keys' then
  -- n prefix has_after after limit
  local n = ARGV[3]
  purge(n, now_ms())
  local lo, hi = bounds(ARGV[4], ARGV[6], ARGV[5])
  return redis.call('ZRANGEBYLEX', P .. ':k:' .. n, lo, hi, 'LIMIT', 0, ARGV[7])
elseif op == 'count' then
  local n = ARGV[3]
  purge(n, now_ms())
  if ARGV[4] == '' then return count_of(n) end
  local lo, hi = bounds(ARGV[4], '', '0')
  return redis.call('ZLEXCOUNT', P .. ':k:' .. n, lo, hi)
elseif op == 'delprefix' or op == 'clear' then
  local n = ARGV[3]
  purge(n, now_ms())
  local prefix = ''
  if op == 'delprefix' then prefix = ARGV[4] end
  local lo, hi = bounds(prefix, '', '0')
  local count = 0
  while true do
    local batch = redis.call('ZRANGEBYLEX', P .. ':k:' .. n, lo, hi, 'LIMIT', 0, 500)
    if #batch == 0 then break end
    for _, key in ipairs(batch) do
      local m = meta(n, key)
      if m then
        remove(n, key, m)
        count = count + 1
      else
        redis.call('ZREM', P .. ':k:' .. n, key)
      end
    end
  end
  return count
elseif op == 'evicttag' then
  local n, tag = ARGV[3], ARGV[4]
  local now = now_ms()
  local set = P .. ':g:' .. n .. ':' .. tag
  local count = 0
  for _, key in ipairs(redis.call('SMEMBERS', set)) do
    local m = live(n, key, now)
    if m and m.tag == tag then
      remove(n, key, m)
      count = count + 1
    end
  end
  redis.call('DEL', set)
  return count
elseif op == 'expire' then
  local now = now_ms()
  local count = 0
  for _, n in ipairs(ns_ids()) do count = count + purge(n, now) end
  return count
elseif op == 'evict' then
  return evict(tonumber(ARGV[3]))
elseif op == 'recency' then
  -- "n:KEY"... : reads since the last flush, oldest first (entries gone meanwhile skipped).
  for i = 3, #ARGV do
    redis.call('ZADD', P .. ':lru', 'XX', tick(), ARGV[i])
  end
  return 0
elseif op == 'totals' then
  flush_totals()
  return { redis.call('HGET', T, 'size') or '0', redis.call('HGET', T, 's:' .. ARGV[3]) or '0' }
elseif op == 'trylock' then
  -- name owner ms
  local lk = P .. ':l:' .. ARGV[3]
  if redis.call('SET', lk, ARGV[4], 'NX', 'PX', ARGV[5]) then return 1 end
  if redis.call('GET', lk) == ARGV[4] then
    redis.call('PEXPIRE', lk, ARGV[5])
    return 1
  end
  return 0
elseif op == 'unlock' then
  local lk = P .. ':l:' .. ARGV[3]
  if redis.call('GET', lk) == ARGV[4] then redis.call('DEL', lk) end
  return 0
elseif op == 'check' then
  -- fix ('1'|'0'). {totals_ok (0|1), dangling entries, fixed (0|1), removed keys...}
  local fix = ARGV[3] == '1'
  local ok = 1
  local dangling = 0
  local removed = {}
  local all = 0
  for _, n in ipairs(ns_ids()) do
    local count, size = 0, 0
    local h = redis.call('HGETALL', P .. ':m:' .. n)
    for i = 1, #h, 2 do
      local key = h[i]
      local m = meta(n, key)
      local lost = redis.call('EXISTS', vkey(n, key)) == 0 and not (m.exp and tonumber(m.exp) <= now_ms())
      if lost then
        dangling = dangling + 1
        if fix then
          remove(n, key, m)
          table.insert(removed, key)
        end
      end
      if not (lost and fix) then
        count = count + 1
        size = size + m.sz
      end
    end
    all = all + size
    flush_totals()
    if count ~= count_of(n) or size ~= tonumber(redis.call('HGET', T, 's:' .. n) or '0') then
      ok = 0
      if fix then
        redis.call('HSET', T, 'c:' .. n, count)
        redis.call('HSET', T, 's:' .. n, size)
      end
    end
  end
  if all ~= tonumber(redis.call('HGET', T, 'size') or '0') then
    ok = 0
    if fix then redis.call('HSET', T, 'size', all) end
  end
  local fixed = 0
  if fix and (ok == 0 or dangling > 0) then fixed = 1 end
  local out = { ok, dangling, fixed }
  for _, k in ipairs(removed) do table.insert(out, k) end
  return out
end
return redis.error_reply('sciqlop-cache: unknown operation ' .. tostring(op))
end

local result = dispatch()
flush_totals()
return result
