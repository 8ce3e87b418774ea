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
local out = {}
for i, ev in ipairs(cfg.events) do
  local fp, where, chash = ev[1], ev[2], ev[3]
  local sub = tonumber(string.sub(fp, 1, 4), 16) % cfg.subshards
  local found = nil
  for _, g in ipairs(cfg.gens) do
    found = redis.call('HGET', cfg.base .. g .. ':' .. sub, fp)
    if found then break end
  end
  if not found then
    local key = cfg.base .. cfg.gens[1] .. ':' .. sub
    redis.call('HSET', key, fp, where .. ':' .. chash)
    redis.call('EXPIREAT', key, cfg.expire_at)
    out[i] = 0
  elseif found == where .. ':' .. chash then
    out[i] = 1
  elseif string.sub(found, -#chash - 1) == ':' .. chash then
    out[i] = 2
  else
    out[i] = 3
  end
end
return out
