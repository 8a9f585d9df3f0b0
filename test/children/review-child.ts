/**
 * A second process for test/maintenance-review.test.ts:
 *   review-child.ts set-on-go <dir> <key> <value>   prints "ready", waits for a line on stdin,
 *                                                   stores value under key, prints "done", exits
 *   review-child.ts burst <dir> <maxSize> <count> <set|setMany>
 *                                                   writes count 30 KB values in one burst under a
 *                                                   size budget, closes, prints {"prunes":n}
 *   review-child.ts verify-remount-ro <dir> <mountpoint>
 *                                                   runs verify --repair on the cache in dir, and
 *                                                   remounts the bind mount read-only once it holds
 *                                                   the lock; prints the error code; exits
 */
import { execFileSync } from 'node:child_process'
import { createInterface } from 'node:readline'
import { randomBytes } from 'node:crypto'
import { Larder } from '../../src/index.ts'

const [mode, dir, ...rest] = process.argv.slice(2)

if (mode === 'set-on-go') {
  const [key, value] = rest as [string, string]
  const cache = await Larder.open({ dir: dir!, maintenance: false })
  const lines = createInterface({ input: process.stdin })
  process.stdout.write('ready\n')
  for await (const _ of lines) break
  await cache.set(key, value)
  await cache.close()
  process.stdout.write('done\n')
  lines.close()
} else if (mode === 'burst') {
  const [maxSize, count, how] = rest as [string, string, string]
  const cache = await Larder.open({ dir: dir!, maxSize, maintenance: { interval: 0 } })
  let prunes = 0
  cache.on('prune', () => prunes++)
  const value = (i: number) => ({ i, pad: randomBytes(15_000).toString('hex') })
  if (how === 'setMany') await cache.setMany(Array.from({ length: Number(count) }, (_, i) => ({ key: `burst:${i}`, value: value(i) })))
  else for (let i = 0; i < Number(count); i++) await cache.set(`burst:${i}`, value(i))
  await cache.close()
  process.stdout.write(JSON.stringify({ prunes }) + '\n')
} else if (mode === 'verify-remount-ro') {
  const [mountpoint] = rest as [string]
  const cache = await Larder.open({ dir: dir!, maintenance: false })
  let remounted = false
  const code = await cache
    .verify({
      repair: true,
      onProgress: () => {
        if (remounted) return
        remounted = true
        execFileSync('mount', ['-o', 'remount,ro,bind', mountpoint])
      },
    })
    .then(
      () => 'ok',
      (error: { code?: string }) => error.code,
    )
  process.stdout.write(`${code}\n`)
  process.exit(0) // as a CLI run would: the process is gone, its lock left behind
} else {
  throw new Error(`unknown mode ${mode}`)
}
