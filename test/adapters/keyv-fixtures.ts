/** Cases the Keyv 5 and Keyv 6 tests share: what the store promises under either contract. */
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { Larder, isLarderError } from 'larder'
import { KeyvLarder } from 'larder/keyv'
import { tempDir } from '../helpers.ts'

/** A Keyv of either major, as the shared cases use it. */
export interface KeyvLike {
  get(key: string): Promise<unknown>
  get(keys: string[]): Promise<unknown[]>
  set(key: string, value: unknown, ttl?: number): Promise<unknown>
  setMany(entries: Array<{ key: string; value: unknown }>): Promise<unknown>
  has(key: string): Promise<boolean>
  delete(key: string): Promise<boolean>
  clear(): Promise<void>
  iterator?(namespace?: string): AsyncGenerator<unknown>
  on(event: 'error', listener: (error: unknown) => void): unknown
  disconnect(): Promise<void>
}

/** Makes a Keyv over `store`, in `namespace`. */
export type KeyvMaker = (store: KeyvLarder, namespace: string) => KeyvLike

/** clear() empties its namespace in every instance sharing the directory (a memory tier's
 *  copy included), and nothing else: not another namespace, not the cache's other entries. */
export async function clearCase(make: KeyvMaker): Promise<void> {
  const dir = tempDir('larder-keyv-clear')
  const a = await Larder.open({ dir })
  const b = await Larder.open({ dir, memory: true })
  const usersA = make(new KeyvLarder(a), 'users')
  const postsA = make(new KeyvLarder(a), 'posts')
  const usersB = make(new KeyvLarder(b), 'users')
  await usersA.set('1', 'ada')
  await postsA.set('1', 'hello')
  await a.set('not-keyv', 'kept')
  assert.equal(await usersB.get('1'), 'ada') // now held by b's memory tier too

  await usersA.clear()
  assert.equal(await usersB.get('1'), undefined, 'the other instance (memory tier included) sees the clear')
  assert.equal(await postsA.get('1'), 'hello')
  assert.equal(await b.get('not-keyv'), 'kept')
  await usersB.set('2', 'grace')
  assert.equal(await usersA.get('2'), 'grace', 'a set after the clear is kept')
  await Promise.all([a.close(), b.close()])
}

/** A failing disk (the directory replaced by a file after one value was stored): reads miss,
 *  writes are dropped, nothing throws into Keyv, and Keyv's `error` event hears of it. */
export async function failingDiskCase(make: KeyvMaker): Promise<void> {
  const dir = path.join(tempDir('larder-keyv-disk'), 'cache')
  const keyv = make(new KeyvLarder({ dir, breaker: { volumeThreshold: 2, resetTimeout: 60_000 } }), 'ns')
  const errors: unknown[] = []
  keyv.on('error', (error) => errors.push(error))
  await keyv.set('kept', 'value')
  fs.renameSync(dir, `${dir}.away`)
  fs.writeFileSync(dir, 'not a directory')

  assert.equal(await keyv.get('kept'), undefined)
  assert.deepEqual(await keyv.get(['kept', 'other']), [undefined, undefined])
  assert.equal(await keyv.has('kept'), false)
  await keyv.set('new', 'value')
  await keyv.setMany([{ key: 'a', value: 1 }])
  await keyv.delete('kept')
  await keyv.clear()
  const iterated: unknown[] = []
  for await (const entry of keyv.iterator!(undefined)) iterated.push(entry)
  assert.deepEqual(iterated, [])
  assert.ok(errors.length >= 1 && errors.every((e) => isLarderError(e, 'ERR_UNAVAILABLE')), `errors: ${errors.map(String).join('; ')}`)
  await keyv.disconnect()
}
