/**
 * Run by test/hostile-dir.test.ts as an unprivileged user (root reads every file): `fill DIR`
 * writes 20 entries; `maintain DIR` runs verify (no repair), entries, usage and a prune and prints what
 * each answered (or its error) as one JSON line.
 */
import { Larder } from '../../src/index.ts'

const [mode, dir] = process.argv.slice(2) as [string, string]
const cache = await Larder.open({ dir, memory: false, maintenance: false })
if (mode === 'fill') {
  for (let i = 0; i < 20; i++) await cache.set(`key ${i}.`, `value ${i}`)
} else {
  const settle = async (call: () => Promise<unknown>) => {
    try {
      return await call()
    } catch (error) {
      return { error: (error as Error).message }
    }
  }
  const verify = await settle(() => cache.verify({ repair: false }))
  const entries = await settle(async () => (await cache.entries()).length)
  const usage = await settle(() => cache.usage())
  const prune = await settle(() => cache.prune({ maxEntries: 5 }))
  process.stdout.write(JSON.stringify({ verify, entries, usage, prune }) + '\n')
}
await cache.close()
