-- First-seen check of event identities (source, id) for the dedupe horizon.
--
-- KEYS[1]  any key of the shard group (routing); all keys below share its hash tag.
-- ARGV[1]  JSON: {base, gens[] (newest first), expire_at, subshards,
--                 events: [[fingerprint, "partition:offset", content hash], ...]}
-- Returns  per event: 0 new (recorded now), 1 redelivery of the first sighting (same partition
--          and offset: forward again, the aggregate's watermark makes that harmless), 2 exact
--          duplicate, 3 conflicting duplicate (same identity, different content).
--
-- Values are "partition:offset:contenthash" in small generation hashes that expire as a whole,
-- so memory is bounded by the events of one horizon and no entry needs its own TTL.

local cfg = cjson.decode(ARGV[1])
local events = cfg.events
local CHUNK = 1000  -- arguments per call: unpack() has a stack limit

local function hmget(key, fps)
  local out = {}
  for s = 1, #fps, CHUNK do
    local vals = redis.call('HMGET', key, unpack(fps, s, math.min(s + CHUNK - 1, #fps)))
    for j = 1, #vals do out[s + j - 1] = vals[j] end
  end
  return out
end

-- 1. look every identity up, one HMGET per (subshard, generation) instead of one HGET per
--    (event, generation)
local by_sub = {}
for i, ev in ipairs(events) do
  local sub = tonumber(string.sub(ev[1], 1, 4), 16) % cfg.subshards
  local list = by_sub[sub]
  if not list then
    list = {}
    by_sub[sub] = list
  end
  list[#list + 1] = ev[1]
end
local found = {}
for sub, fps in pairs(by_sub) do
  local pending = fps
  for _, g in ipairs(cfg.gens) do
    if #pending == 0 then break end
    local vals = hmget(cfg.base .. g .. ':' .. sub, pending)
    local rest = {}
    for j, fp in ipairs(pending) do
      if vals[j] then found[fp] = vals[j] else rest[#rest + 1] = fp end
    end
    pending = rest
  end
end

-- 2. decide in batch order (a second copy inside this batch sees the first), then record the
--    new identities with one HSET and one EXPIREAT per hash
local out = {}
local new_by_key = {}
for i, ev in ipairs(events) do
  local fp, where, chash = ev[1], ev[2], ev[3]
  local first = found[fp]
  if not first then
    first = where .. ':' .. chash
    found[fp] = first
    local sub = tonumber(string.sub(fp, 1, 4), 16) % cfg.subshards
    local key = cfg.base .. cfg.gens[1] .. ':' .. sub
    local list = new_by_key[key]
    if not list then
      list = {}
      new_by_key[key] = list
    end
    list[#list + 1] = fp
    list[#list + 1] = first
    out[i] = 0
  elseif first == where .. ':' .. chash then
    out[i] = 1
  elseif string.sub(first, -#chash - 1) == ':' .. chash then
    out[i] = 2
  else
    out[i] = 3
  end
end
for key, pairs_ in pairs(new_by_key) do
  for s = 1, #pairs_, CHUNK do  -- CHUNK is even: field-value pairs stay together
    redis.call('HSET', key, unpack(pairs_, s, math.min(s + CHUNK - 1, #pairs_)))
  end
  redis.call('EXPIREAT', key, cfg.expire_at)
end
return out
