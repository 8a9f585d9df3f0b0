/**
 * The rule that decides whether a value read below the memory tier may be promoted while other
 * instances' changes are heard on the bus (tiers/promotion-guard.ts).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { HEARD_MAX, PromotionGuard } from '../../src/tiers/promotion-guard.ts'

test('a read with nothing heard since its ticket promotes', () => {
  const guard = new PromotionGuard()
  const ticket = guard.ticket()
  assert.equal(guard.mayPromote('k', 100, ticket), true)
})

test('changes heard of other keys, or of the very entry read, do not stop a promotion', () => {
  const guard = new PromotionGuard()
  const ticket = guard.ticket()
  for (let i = 0; i < 1000; i++) guard.heard(`other:${i}`, 500)
  guard.heard('k', 100) // the message about the entry that was read (created at 100)
  guard.heard('k', 50) // and an older one, arriving late
  assert.equal(guard.mayPromote('k', 100, ticket), true)
})

test('a newer change of the key heard while the read was in flight stops its promotion', () => {
  const guard = new PromotionGuard()
  const ticket = guard.ticket()
  guard.heard('k', 101)
  assert.equal(guard.mayPromote('k', 100, ticket), false)
  assert.equal(guard.mayPromote('k', 100, guard.ticket()), true, 'a read that began after the message is judged by itself')
})

test('a clear, tag invalidation or outage heard stops every promotion of a read begun before it', () => {
  const guard = new PromotionGuard()
  const ticket = guard.ticket()
  guard.heardAll()
  assert.equal(guard.mayPromote('k', 100, ticket), false)
  assert.equal(guard.mayPromote('k', 100, guard.ticket()), true)
})

test('a key forgotten past the bound counts as heard for the reads that began before it', () => {
  const guard = new PromotionGuard()
  const ticket = guard.ticket()
  guard.heard('k', 101)
  for (let i = 0; i < 2 * HEARD_MAX; i++) guard.heard(`other:${i}`, 1) // well past the bound: forgotten in bulk
  assert.equal(guard.mayPromote('k', 100, ticket), false)
  assert.equal(guard.mayPromote('unrelated', 100, ticket), false, 'it cannot tell which key it forgot')
  assert.equal(guard.mayPromote('k', 100, guard.ticket()), true)
})

// A memory tier's guard of the keys the change log names remembers fewer (memory-tier.ts).
test('a guard told to remember fewer keys forgets past its own bound, and judges what it remembers key by key', () => {
  const guard = new PromotionGuard(8)
  const ticket = guard.ticket()
  guard.heard('k', Infinity)
  for (let i = 0; i < 7; i++) guard.heard(`other:${i}`, Infinity)
  assert.equal(guard.mayPromote('k', 100, ticket), false, 'a change of its key, newer than any entry')
  assert.equal(guard.mayPromote('unrelated', 100, ticket), true, 'the 8 keys are remembered: others are judged by key')
  for (let i = 7; i < 11; i++) guard.heard(`other:${i}`, Infinity) // a quarter past 8: forgotten in bulk
  assert.equal(guard.mayPromote('unrelated', 100, ticket), false, 'it cannot tell which key it forgot')
  assert.equal(guard.mayPromote('unrelated', 100, guard.ticket()), true)
})

// A guard holds the strings of the keys it remembers: long keys are forgotten by their characters.
test('a guard forgets past its budget of key characters too, and still judges what it remembers key by key', () => {
  const guard = new PromotionGuard(1000, 400)
  const ticket = guard.ticket()
  guard.heard('k'.repeat(100), Infinity)
  guard.heard('k'.repeat(100), Infinity) // heard again: its characters count once
  for (let i = 0; i < 2; i++) guard.heard(`${i}`.repeat(100), Infinity) // 300 characters
  assert.equal(guard.mayPromote('k'.repeat(100), 100, ticket), false)
  assert.equal(guard.mayPromote('unrelated', 100, ticket), true, 'within its characters: others judged by key')
  guard.heard('x'.repeat(101), Infinity) // 401: past the budget, forgotten down to 300 at most
  assert.equal(guard.mayPromote('unrelated', 100, ticket), false, 'it cannot tell which key it forgot')
  const later = guard.ticket()
  guard.heard('y'.repeat(100), Infinity)
  assert.equal(guard.mayPromote('x'.repeat(101), 100, later), true, 'the newest are still remembered')
  assert.equal(guard.mayPromote('y'.repeat(100), 100, later), false)
})

// A clear of the local files heard on the bus runs partition by partition; a read meanwhile
// must not promote what it found (it would outlive the clear, and a clear of memory heard while
// it ran: seen once as a flaky test/redis/tiers.test.ts under load).
test('while a clear of the files holds the guard nothing is promoted, and after it no read begun before', () => {
  const guard = new PromotionGuard()
  const before = guard.ticket()
  guard.hold()
  const during = guard.ticket()
  assert.equal(guard.mayPromote('k', 1, before), false)
  assert.equal(guard.mayPromote('k', 1, during), false)
  guard.hold()
  guard.release()
  assert.equal(guard.mayPromote('k', 1, guard.ticket()), false, 'a second clear still holds')
  guard.release()
  assert.equal(guard.mayPromote('k', 1, before), false)
  assert.equal(guard.mayPromote('k', 1, during), false)
  assert.equal(guard.mayPromote('k', 1, guard.ticket()), true, 'a read begun after may promote')
})
