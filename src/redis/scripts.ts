import { createHash } from 'node:crypto'
import { MAX_TAGS_BYTES } from '../format/entry-format.js'
import type { RedisClient } from './connection.js'

/**
 * The Lua scripts the Redis tier runs, each atomic on its one key (or one hash), so they work
 * unchanged on a cluster. Run by EVALSHA, falling back to EVAL once per connection when the
 * server does not know the script yet (NOSCRIPT): no `defineCommand` on a caller's client.
 *
 * Every value larder keeps under a key of its own starts with a 16-byte head whose bytes 8–15
 * are a float64 LE time: an entry (magic `LRDR`, the entry format's createdAt) or a tombstone
 * (magic `LRDT`, when the key was deleted). That time is the key's version: a write or a
 * delete older than what the key holds changes nothing, so a write that arrives late (a
 * write-back batch, a retried command, a slower instance) never undoes a newer one.
 */
export interface Script {
  lua: string
  sha: string
}

function script(lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') }
}

/** The version (bytes 8–15 as float64 LE) of what KEYS[1] holds, or -1 if nothing of ours,
 *  and its magic ('' when none, or not a string). A value of another type, a hash say, is not
 *  ours either: GETRANGE fails on it (WRONGTYPE), caught by pcall, which costs less than asking
 *  TYPE first on every write. The magic and the version come out of one `struct.unpack` of the
 *  16 bytes (4 characters, 4 skipped, a double): no substring is made and interned per write. */
const VERSION_OF = `
local function version(key)
  local head = redis.pcall('GETRANGE', key, 0, 15)
  if type(head) ~= 'string' or #head ~= 16 then return -1, '' end
  local magic, at = struct.unpack('<c4xxxxd', head)
  if magic == 'LRDR' or magic == 'LRDT' then return at, magic end
  return -1, magic
end
`

/** KEYS[1] = ARGV[1] (an entry file's bytes), expiring at ARGV[2] (ms since the epoch;
 *  0 = never), unless it holds something newer, or another value of the same version (two
 *  instances' writes stamped alike: the first to arrive stays, so every writer learns from its
 *  answer whether its copies are Redis's; the same bytes again, a write retried, are stored).
 *  1 = stored, 0 = kept the newer. The version of each is its creation time, read from its
 *  head (bytes 8–15) as the double it is: not sent as decimal text, whose formatting (a time
 *  with a fraction of a millisecond: the creation clock's) cost a set more than its parse
 *  costs here. With ARGV[3] (a channel) it then publishes ARGV[4] (the bus message of this
 *  write) there, whichever was kept: one command instead of two, and no instance hears of the
 *  write before Redis holds it.
 *
 *  A key Redis does not hold (a cache's usual write: the fill after a miss) is written by one
 *  `SET … NX`, with no version to read; only when that finds the key taken is its version read
 *  and the write made if newer. Measured in Redis's own `usec_per_call` (issue 10, W8 speed 4,
 *  7 interleaved rounds of 3,000 calls): a new key 18.5 → 12.8 µs (median), a key overwritten
 *  16.8 → 18.2 (one more call, the NX that fails). */
export const SET_IF_NEWER = script(`${VERSION_OF}
local function put(...)
  if ARGV[2] == '0' then return redis.call('SET', KEYS[1], ARGV[1], ...) end
  return redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2], ...)
end
local stored = 1
if not put('NX') then
  local held = version(KEYS[1])
  local mine = struct.unpack('<d', ARGV[1], 9)
  if held > mine or (held == mine and redis.call('GET', KEYS[1]) ~= ARGV[1]) then stored = 0 else put() end
end
if ARGV[3] then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return stored`)

/** Replaces KEYS[1] by the tombstone ARGV[1] (deleted at ARGV[2]) for ARGV[3] ms, unless it
 *  holds something newer. -1 = kept the newer; 0 = no entry was there (nothing, a tombstone,
 *  not ours); an entry replaced: `{ 1, createdAt, expiresAt, tags }` from its head (the times
 *  as exact decimal text, the tags NUL-separated), for the caller to judge whether it was live
 *  (an entry stays in Redis through its grace, and after a tag invalidated it) in the same
 *  round trip. Its head is the entry format's (format/entry-format.ts): bytes 8–15 createdAt,
 *  16–23 expiresAt, 24–27 the key's length, 28–31 the tags' length, the key and tags after
 *  the fixed header (32 bytes in version 1, 64 in version 2). */
export const DELETE_IF_OLDER = script(`${VERSION_OF}
local at, magic = version(KEYS[1])
if at > tonumber(ARGV[2]) then return -1 end
local replaced = 0
if magic == 'LRDR' then
  local head = redis.call('GETRANGE', KEYS[1], 0, 31)
  local fixed = ({ 32, 64 })[string.byte(head, 5)]
  if #head == 32 and fixed ~= nil then
    local created, expires, keyLength, tagsLength = struct.unpack('<ddI4I4', head, 9)
    if tagsLength <= ${MAX_TAGS_BYTES} then
      local tags = ''
      if tagsLength > 1 then
        local from = fixed + keyLength
        tags = redis.call('GETRANGE', KEYS[1], from, from + tagsLength - 2)
      end
      replaced = { 1, string.format('%.17g', created), string.format('%.17g', expires), tags }
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return replaced`)

/** Unlinks KEYS[1] unless it holds something of ours created (or deleted) at or after ARGV[1]:
 *  a clear that Redis missed, run when it is back, removes what was there before the clear
 *  and keeps what was written since. 1 = removed. */
export const UNLINK_IF_OLDER = script(`${VERSION_OF}
if version(KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
return redis.call('UNLINK', KEYS[1])`)

/** Deletes KEYS[1] only if it is still ARGV[1] bytes long and ends with the 8 bytes ARGV[2]
 *  (the checksum of the value judged corrupt): a value written since stays. ARGV[1] = -1:
 *  only if it still holds a value of another type than a string (a hash, a list…). */
export const DELETE_IF_SAME = script(`
local kind = redis.call('TYPE', KEYS[1]).ok
if ARGV[1] == '-1' then
  if kind ~= 'string' and kind ~= 'none' then return redis.call('DEL', KEYS[1]) end
  return 0
end
if kind ~= 'string' then return 0 end
local length = redis.call('STRLEN', KEYS[1])
if length ~= tonumber(ARGV[1]) then return 0 end
if length >= 8 and redis.call('GETRANGE', KEYS[1], length - 8, length - 1) ~= ARGV[2] then return 0 end
return redis.call('DEL', KEYS[1])`)

/** Deletes KEYS[1] only if it still holds a string longer than ARGV[1] bytes that does not
 *  begin with ARGV[2] (an entry's magic): a foreign value too long to read whole (RedisTier.get
 *  reads at most maxValueSize + 1 bytes). A value written since stays: one within the bound,
 *  and another instance's larger entry. */
export const DELETE_IF_LONGER = script(`
if redis.call('TYPE', KEYS[1]).ok ~= 'string' then return 0 end
if redis.call('STRLEN', KEYS[1]) <= tonumber(ARGV[1]) then return 0 end
if redis.call('GETRANGE', KEYS[1], 0, 3) == ARGV[2] then return 0 end
return redis.call('DEL', KEYS[1])`)

/** KEYS[1] = ARGV[3], its expiry kept, only if it still holds the string of ARGV[1] bytes that
 *  ends in the 8 bytes ARGV[2] (an entry's checksum, which covers all of it): `rekey`'s swap
 *  of a value it read for the same entry sealed under another key. 1 = replaced, 0 = it had
 *  changed (rewritten, deleted, expired) and stays as it is. */
export const REPLACE_IF_SAME = script(`
if redis.call('TYPE', KEYS[1]).ok ~= 'string' then return 0 end
local length = redis.call('STRLEN', KEYS[1])
if length ~= tonumber(ARGV[1]) or length < 8 then return 0 end
if redis.call('GETRANGE', KEYS[1], length - 8, length - 1) ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'KEEPTTL')
return 1`)

/** Raises each tag's stamp in the hash KEYS[1] (ARGV: tag, time, tag, time…) to the time given,
 *  never lowers it. What is not ours there is replaced, as a foreign entry value is: a key of
 *  another type (HGET would fail WRONGTYPE on it, and every invalidation with it), and a field
 *  that is not a finite number (`inf`, `9e999`, `nan`: no time is greater, so it was never
 *  raised, while readers drop it as no stamp, and the tag's invalidations went unseen). */
export const RAISE_STAMPS = script(`
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'hash' and kind ~= 'none' then redis.call('DEL', KEYS[1]) end
for i = 1, #ARGV, 2 do
  local old = tonumber(redis.call('HGET', KEYS[1], ARGV[i])) or 0
  if old ~= old or old == math.huge or old == -math.huge then old = 0 end
  if tonumber(ARGV[i + 1]) > old then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return 1`)

/** Raises the tag-stamp floor KEYS[1] (a string: a time) to ARGV[1], never lowers it. What is
 *  not ours there (another type, or not a finite time) is replaced, as RAISE_STAMPS does. */
export const RAISE_FLOOR = script(`
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'string' and kind ~= 'none' then redis.call('DEL', KEYS[1]) end
local old = tonumber(redis.call('GET', KEYS[1])) or 0
if old ~= old or old == math.huge or old == -math.huge then old = 0 end
if tonumber(ARGV[1]) > old then redis.call('SET', KEYS[1], ARGV[1]) end
return 1`)

/** Removes from the stamp hash KEYS[1] each field of ARGV[2…] whose stamp is at or below the
 *  floor ARGV[1] (a field raised above it since stays). The number removed. */
export const FOLD_STAMPS = script(`
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then return 0 end
local floor = tonumber(ARGV[1])
local removed = 0
for i = 2, #ARGV do
  local at = tonumber(redis.call('HGET', KEYS[1], ARGV[i]))
  if at ~= nil and at <= floor then
    redis.call('HDEL', KEYS[1], ARGV[i])
    removed = removed + 1
  end
end
return removed`)

/** Takes the lock KEYS[1] for the holder's token ARGV[1], for ARGV[2] ms, if it is free. 1 =
 *  taken; else the token of the one holding it (0 if it is not text), so a waiter knows when
 *  the holder it waited for has let it go, even if another took it since. A lock of ours always
 *  expires: a value there without an expiry is foreign (planted, or a key of the caller's under
 *  our name), and is removed first, or every locked getOrSet of the key waited its full bound
 *  behind it, for good. */
export const TAKE_LOCK = script(`
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return 1 end
if redis.call('PTTL', KEYS[1]) ~= -1 then
  local holder = redis.pcall('GET', KEYS[1])
  if type(holder) == 'string' then return holder end
  return 0
end
redis.call('DEL', KEYS[1])
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return 1 end
return 0`)

/** Deletes the lock KEYS[1] only if it still holds this holder's token ARGV[1]. */
export const RELEASE_LOCK = script(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

/** Runs `s` by its SHA, loading it with EVAL when the server does not know it. */
export function runScript(client: RedisClient, s: Script, keys: (string | Buffer)[], args: (string | Buffer | number)[]): Promise<unknown> {
  // Not an async function: the reply's own promise with one handler, on every set's path.
  try {
    return client.evalsha(s.sha, keys.length, ...keys, ...args).catch((error: unknown) => {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error
      return client.eval(s.lua, keys.length, ...keys, ...args)
    })
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)))
  }
}
