/**
 * A key leaves the call-order queue as its change settles, before the caller's `await` of it
 * resumes, so a read right after an awaited set takes get()'s memory hit path (an already
 * resolved promise) instead of an async detour through the queue. A change is heard again as
 * it ends only when a read took a ticket while it ran.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Larder } from '../src/index.ts'
import { KeyOrder } from '../src/key-order.ts'
import { tempDir } from './helpers.ts'

const caches: Larder[] = []
after(() => Promise.all(caches.map((c) => c.close())))

test('a get right after an awaited set is a memory hit answered at once', async () => {
  const cache = await Larder.open({ dir: tempDir('larder-key-order'), memory: { maxEntries: 100 }, maintenance: false })
  caches.push(cache)
  let atOnce = 0
  for (let i = 0; i < 50; i++) {
    await cache.set(`k${i}`, i)
    let answered = false
    const read = cache.get(`k${i}`)
    void read.then(() => (answered = true))
    // Two turns of the microtask queue: enough for a promise that was already resolved.
    await Promise.resolve()
    await Promise.resolve()
    if (answered) atOnce++
    assert.equal(await read, i)
  }
  assert.equal(atOnce, 50, 'every get after an awaited set was answered from memory at once')
})

test('a change is heard again as it ends only when a read took a ticket while it ran', async () => {
  const order = new KeyOrder()
  const ran = (): { change: Promise<void>; end: () => void } => {
    let end!: () => void
    const change = order.change('k', () => new Promise<void>((resolve) => (end = resolve)))
    return { change, end }
  }
  // A ticket taken before the change, and one taken while it ran: both saw a change since.
  const before = order.ticket()
  const first = ran()
  const during = order.ticket()
  first.end()
  await first.change
  assert.equal(order.changedSince('k', before), true, 'a read begun before the change')
  assert.equal(order.changedSince('k', during), true, 'a read begun while it ran (it may have read what it replaced)')
  assert.equal(order.changedSince('k', order.ticket()), false, 'a read begun after it ended')
  // No ticket taken while the next one ran: a read begun after it is free to promote all the same.
  const second = ran()
  second.end()
  await second.change
  assert.equal(order.changedSince('k', order.ticket()), false)
  assert.equal(order.changedSince('other', before), false, 'another key was not changed')
})

test('a read that waited for earlier changes does not promote what a delete called after it, still running, removes', async () => {
  // clear(memory), get, delete, none awaited: the get runs once the clear is done, reads the
  // file below the empty memory tier, and the delete has begun (the memory tier's copy gone)
  // by the time the read ends. Before, the read put the value it found into memory then, and a
  // get after the delete resolved served the deleted value (4 % of rounds here).
  const cache = await Larder.open({ dir: tempDir('larder-key-order'), memory: { maxEntries: 100 }, maintenance: false })
  caches.push(cache)
  const big = (i: number): string => `v${i}-` + randomBytes(200_000).toString('base64') // read from disk asynchronously
  let served = 0
  let readFirst = 0
  for (let i = 0; i < 300; i++) {
    await cache.set('k', big(i))
    const [, read] = await Promise.all([cache.clear({ tier: 'memory' }), cache.get('k'), cache.delete('k')])
    // The get need not wait for a delete called after it: on a loaded machine the delete may
    // unlink first, and the get's miss is the newer state.
    if (read !== undefined) {
      assert.ok((read as string).startsWith(`v${i}-`), 'the get reads the value it was called after')
      readFirst++
    }
    if ((await cache.get('k')) !== undefined) served++
  }
  assert.equal(served, 0, 'a deleted value was served')
  assert.ok(readFirst > 0, 'some gets read the value before the delete removed it (the race was run)')
})
