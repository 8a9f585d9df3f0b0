/**
 * The bus's outbox (src/bus/outbox.ts): what an instance queues while Redis is away, and the
 * messages it sends on return. Pure data, no Redis: the end-to-end cases are in test/redis/.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Outbox } from '../src/bus/outbox.ts'

test('tags queued at one time go out as one message, at another time as another, each tag at its latest time', () => {
  const box = new Outbox(20_000)
  for (let i = 0; i < 9_999; i++) box.add({ from: 'a', op: 'tags', tags: [`t${i}`], at: 1_000 })
  box.add({ from: 'a', op: 'tags', tags: ['late', 't7'], at: 2_000 })
  const messages = box.take('me')
  assert.equal(messages.length, 2)
  const [first, second] = messages as { op: string; tags: string[]; at: number; from: string }[]
  assert.deepEqual(
    { op: first!.op, at: first!.at, from: first!.from, count: first!.tags.length, head: first!.tags.slice(0, 3) },
    { op: 'tags', at: 1_000, from: 'me', count: 9_998, head: ['t0', 't1', 't2'] },
  )
  assert.ok(!first!.tags.includes('t7'), 't7 went out at its latest time only')
  assert.deepEqual({ op: second!.op, at: second!.at, tags: second!.tags }, { op: 'tags', at: 2_000, tags: ['t7', 'late'] })
  assert.equal(box.size, 0)
  assert.deepEqual(box.take('me'), [])
})
