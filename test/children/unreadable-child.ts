/**
 * Run by test/hostile-dir.test.ts as an unprivileged user (root reads every file): `fill DIR`
 * writes 20 entries (`fill-sealed DIR`: sealed under key a); `maintain DIR` runs verify (no
 * repair), entries, usage and a prune, `rekey DIR` a rekey to key b, and each prints what
 * every call answered (or its error) as one JSON line.
 */
import { Larder } from '../../src/index.ts'
import { A_THEN_B, ONLY_A } from '../encryption-helpers.ts'

const [mode, dir] = process.argv.slice(2) as [string, string]
const encryption = mode === 'fill-sealed' ? ONLY_A : mode === 'rekey' ? A_THEN_B : undefined
const cache = await Larder.open({ dir, memory: false, maintenance: false, ...(encryption === undefined ? {} : { encryption }) })

const settle = async (call: () => Promise<unknown>) => {
  try {
    return await call()
  } catch (error) {
    return { error: (error as Error).message }
  }
}

if (mode === 'fill' || mode === 'fill-sealed') {
  for (let i = 0; i < 20; i++) await cache.set(`key ${i}.`, `value ${i}`)
} else if (mode === 'rekey') {
  process.stdout.write(JSON.stringify({ rekey: await settle(() => cache.rekey()) }) + '\n')
} else {
  const verify = await settle(() => cache.verify({ repair: false }))
  const entries = await settle(async () => (await cache.entries()).length)
  const usage = await settle(() => cache.usage())
  const activity = await settle(() => cache.activity())
  const prune = await settle(() => cache.prune({ maxEntries: 5 }))
  process.stdout.write(JSON.stringify({ verify, entries, usage, activity, prune }) + '\n')
}
await cache.close()
