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

-- Each user is read once (HGETALL, GET of the profile), its counters are summed here in Lua,
-- and it is written once (one HSET of every changed field): a few calls per user instead of
-- several per event, which is most of this script's cost.
local users = {}
local order = {}

local function state_of(user)
  local st = users[user]
  if st == nil then
    local ukey = base .. 'u:' .. user
    local flat = redis.call('HGETALL', ukey)
    local h = {}
    for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
    st = {key = ukey, h = h, rows = {}, dirty = {}, touched = false, prof = nil, prof_dirty = false}
    st.prof = redis.call('GET', base .. 'pf:' .. user)
    users[user] = st
    order[#order + 1] = user
  end
  return st
end

local function add_into(st, field, pairs_)
  if #pairs_ == 0 then return end
  local t = st.rows[field]
  if t == nil then
    t = parse(st.h[field])
    st.rows[field] = t
  end
  for j = 1, #pairs_, 2 do
    local i = pairs_[j]
    t[i] = (t[i] or 0) + pairs_[j + 1]
  end
  st.dirty[field] = true
end

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
    local st = state_of(entry[1])
    if not skip then
      st.touched = true
      local day = entry[2]
      if day >= cfg.first_day then
        add_into(st, tostring(day), entry[3])
      end
      add_into(st, 't', entry[4])
      local prof = entry[5]
      if prof then
        local cur = st.prof
        local new_order = string.match(prof, '^([^\030]*)')
        if not cur or string.match(cur, '^([^\030]*)') < new_order then
          st.prof = prof
          st.prof_dirty = true
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
  local st = users[user]
  local h = st.h
  if st.touched then
    local sets, dels = {}, {}
    if h.v == nil then  -- a user seen for the first time: tracked from now on
      h.v = '0'
      sets[#sets + 1] = 'v'
      sets[#sets + 1] = '0'
      redis.call('INCR', base .. 'n')
    end
    for field in pairs(st.dirty) do
      local v = fmt(st.rows[field])
      if v == '' then
        if h[field] ~= nil then dels[#dels + 1] = field end
        h[field] = nil
      else
        h[field] = v
        sets[#sets + 1] = field
        sets[#sets + 1] = v
      end
    end
    if #sets > 0 then redis.call('HSET', st.key, unpack(sets)) end
    if #dels > 0 then redis.call('HDEL', st.key, unpack(dels)) end
    if st.prof_dirty then redis.call('SET', base .. 'pf:' .. user, st.prof) end
  end
  local flat = {}
  for f, v in pairs(h) do
    flat[#flat + 1] = f
    flat[#flat + 1] = v
  end
  out[#out + 1] = {user, flat, st.prof or false}
end
return out
