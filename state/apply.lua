-- Apply one batch of signal messages of one ssi.signals partition, atomically and idempotently.
--
-- KEYS[1]  the partition's watermark hash; every other key shares its hash tag (one slot).
-- ARGV[1]  JSON: {base, first_day, require_init,
--                 events: [{p: source partition, o: source offset,
--                           u: [[user, day, [i,amt,...], [ti,amt,...], profile|false], ...]}]}
-- Returns  {applied_events, 0, replayed_events, users...}: users are every user the batch
--          names, each as {user, flat HGETALL, profile or false}.
--
-- Idempotency: the ingest agent forwards each ssi.activity partition in offset order, so per
-- (this partition, source partition) every event not above the stored watermark was applied
-- before -- a redelivered signals batch or an event the ingest agent forwarded again after a
-- crash -- and is skipped. Memory: one number per source partition.

local cfg = cjson.decode(ARGV[1])
-- A partition whose watermark hash has no "init" field was never initialised, or Redis lost its
-- data: applying on top would publish scores built from a fraction of the window with versions
-- starting again at 1. The worker asks for the check; `ssi rebuild` (or a first start on an
-- empty deployment) sets the field.
if cfg.require_init and redis.call('HEXISTS', KEYS[1], 'init') == 0 then
  return redis.error_reply('STATELOST the state of this partition is missing: run ssi rebuild')
end
local base = cfg.base
local wms = {}
local function wm_of(p)
  local key = 's' .. p
  if wms[key] == nil then
    wms[key] = tonumber(redis.call('HGET', KEYS[1], key) or '-1')
  end
  return wms[key]
end
local tops = {}

local function parse(s)
  local t = {}
  if not s then return t end
  local i = 1
  for v in string.gmatch(s .. ',', '([^,]*),') do
    t[i] = tonumber(v) or 0
    i = i + 1
  end
  return t
end

local function fmtnum(x)
  if x == math.floor(x) and math.abs(x) < 1e15 then return string.format('%d', x) end
  return string.format('%.17g', x)
end

local function fmt(t)
  local last = 0
  for i, v in pairs(t) do if v ~= 0 and i > last then last = i end end
  local out = {}
  for i = 1, last do
    local v = t[i] or 0
    if v == 0 then out[i] = '' else out[i] = fmtnum(v) end
  end
  return table.concat(out, ',')
end

local function add_into(key, field, pairs_)
  if #pairs_ == 0 then return end
  local t = parse(redis.call('HGET', key, field))
  for j = 1, #pairs_, 2 do
    local i = pairs_[j]
    t[i] = (t[i] or 0) + pairs_[j + 1]
  end
  local s = fmt(t)
  if s == '' then redis.call('HDEL', key, field) else redis.call('HSET', key, field, s) end
end

local seen_users = {}
local order = {}
local applied, dups, replayed = 0, 0, 0

for _, ev in ipairs(cfg.events) do
  local skip = false
  local key = 's' .. ev.p
  local top = tops[key] or wm_of(ev.p)
  if ev.o <= top then
    replayed = replayed + 1
    skip = true
  else
    tops[key] = ev.o
    applied = applied + 1
  end
  for _, entry in ipairs(ev.u) do
    local user = entry[1]
    if not seen_users[user] then
      seen_users[user] = true
      order[#order + 1] = user
    end
    if not skip then
      local ukey = base .. 'u:' .. user
      if redis.call('HSETNX', ukey, 'v', '0') == 1 then
        redis.call('INCR', base .. 'n')
      end
      local day = entry[2]
      if day >= cfg.first_day then
        add_into(ukey, tostring(day), entry[3])
      end
      add_into(ukey, 't', entry[4])
      local prof = entry[5]
      if prof then
        local pkey = base .. 'pf:' .. user
        local cur = redis.call('GET', pkey)
        local new_order = string.match(prof, '^([^\030]*)')
        if not cur or string.match(cur, '^([^\030]*)') < new_order then
          redis.call('SET', pkey, prof)
        end
      end
    end
  end
end

for key, top in pairs(tops) do
  redis.call('HSET', KEYS[1], key, string.format('%d', top))
end

local out = {applied, dups, replayed}
for _, user in ipairs(order) do
  local ukey = base .. 'u:' .. user
  local prof = redis.call('GET', base .. 'pf:' .. user)
  out[#out + 1] = {user, redis.call('HGETALL', ukey), prof or false}
end
return out
