/**
 * larder/mikro-orm with the real MikroORM 7 (libsql driver), which needs Node >= 22.17: run by
 * the Node 24 pass, skipped on Node 20. MikroORM 7 lives in its own install
 * (test/adapters/mikro-orm-7/, put there by scripts/test-peers.mjs) beside the root's MikroORM
 * 6: each driver's peer dependency names its own @mikro-orm/core. What changed for adapters
 * in 7: `get(name, origin?)`, and the ORM's own keys have a new shape; the adapter is the same
 * class. Covered: a named result cached until clearCache (a count of 0 too), a result under
 * the ORM's own key, clear() leaving the cache's other entries, expiry, and results kept across
 * a restart of the ORM over another database. (Processes sharing results, failing disks and
 * values JSON cannot hold are the adapter's, whatever the version: mikro-orm.test.ts.)
 */
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { pathToFileURL } from 'node:url'
import { describe, test } from 'node:test'
import { Larder } from 'larder'
import { LarderCacheAdapter } from 'larder/mikro-orm'
import { tempDir } from '../helpers.ts'
import { kitOf, namedResultCase, openOrm, type LibsqlModule, type OrmKit, type User } from './mikro-orm-fixtures.ts'

const [major, minor] = process.versions.node.split('.').map(Number) as [number, number]
const supported = major > 22 || (major === 22 && minor >= 17)
const skip = supported ? false : `MikroORM 7 needs Node >= 22.17 (this is ${process.version}): the Node 24 pass runs these`
const INSTALL = path.join(import.meta.dirname, 'mikro-orm-7', 'node_modules', '@mikro-orm')

const versionOf = (name: string): string =>
  (JSON.parse(fs.readFileSync(path.join(INSTALL, name, 'package.json'), 'utf8')) as { version: string }).version

async function loadMikroOrm7(): Promise<OrmKit> {
  if (!fs.existsSync(path.join(INSTALL, 'libsql', 'package.json')))
    throw new Error(`MikroORM 7 is not installed in ${path.dirname(INSTALL)}: run \`node scripts/test-peers.mjs\``)
  return kitOf((await import(pathToFileURL(path.join(INSTALL, 'libsql', 'index.js')).href)) as LibsqlModule)
}

const kit = supported ? await loadMikroOrm7() : undefined
const namesOf = (users: User[]): string[] => users.map((u) => u.name)

describe('larder/mikro-orm on MikroORM 7 (libsql)', { skip }, () => {
  test('the driver and the core are MikroORM 7', () => {
    assert.match(versionOf('libsql'), /^7\./)
    assert.match(versionOf('core'), /^7\./)
  })

  test('a named result is served by larder (stale after a flush) until clearCache; a count of 0 is cached too', () => namedResultCase(kit))

  test("a result under MikroORM 7's own key is found again; clear() removes only this adapter's entries; the expiration is the ttl", async () => {
    const { UserSchema } = kit!
    const cache = await Larder.open({ dir: tempDir('larder-mikro7-keys') })
    const orm = await openOrm(LarderCacheAdapter.using(cache), {}, ['ann'], 30_000, kit)
    const find = async () => (await orm.em.fork().find(UserSchema, { name: { $ne: 'x'.repeat(5000) } }, { cache: true })).length
    const add = async (name: string) => {
      const em = orm.em.fork()
      em.create(UserSchema, { name } as User)
      await em.flush()
    }
    assert.equal(await find(), 1)
    await add('bob')
    assert.equal(await find(), 1, 'served from the cache')
    const [entry, ...others] = await cache.entries()
    assert.equal(others.length, 0)
    assert.ok(entry!.key.startsWith('mikro-orm:sha256:'), entry!.key)
    // Created as of the miss, expiring `expiration` after the store: that and the query's time apart.
    const lived = entry!.expiresAt! - entry!.createdAt
    assert.ok(lived >= 30_000 && lived < 31_000, `resultCache.expiration: ${lived}`)
    await cache.set('not-mikro-orm', 'kept')
    await orm.config.getResultCacheAdapter().clear()
    assert.equal(await find(), 2)
    assert.equal(await cache.get('not-mikro-orm'), 'kept')
    await orm.em.fork().find(UserSchema, {}, { cache: ['short', 40] })
    await add('cid')
    await sleep(80)
    assert.equal((await orm.em.fork().find(UserSchema, {}, { cache: ['short', 40] })).length, 3, 'expired after 40 ms')
    await orm.close()
    assert.equal(await cache.get('not-mikro-orm'), 'kept', 'orm.close() left the cache passed in open')
    await cache.close()
  })

  test('cached results survive a restart: an ORM over another database is answered from the directory', async () => {
    const { UserSchema } = kit!
    const dir = tempDir('larder-mikro7-restart')
    const all = (orm: Awaited<ReturnType<typeof openOrm>>) =>
      orm.em.fork().find(UserSchema, {}, { orderBy: { id: 'asc' }, cache: ['all-users', 60_000] })
    const first = await openOrm(LarderCacheAdapter, { dir }, ['ann', 'bob'], 60_000, kit)
    await all(first)
    await first.close()
    const second = await openOrm(LarderCacheAdapter, { dir }, ['zed'], 60_000, kit)
    assert.deepEqual(namesOf(await all(second)), ['ann', 'bob'])
    assert.deepEqual(namesOf(await second.em.fork().find(UserSchema, {})), ['zed'], 'the database itself holds other rows')
    await second.close()
  })
})
