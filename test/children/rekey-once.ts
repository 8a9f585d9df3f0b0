/**
 * One rekey of `<dir>` from key `old` to key `new` (the keys test/review-fixes-2.test.ts
 * uses), then exit: `rekey-once.ts <dir>`.
 */
import { Larder } from '../../src/index.ts'

const cache = await Larder.open({
  dir: process.argv[2]!,
  encryption: { keys: { old: 'a'.repeat(64), new: 'b'.repeat(64) }, activeKey: 'new' },
})
await cache.rekey()
await cache.close()
