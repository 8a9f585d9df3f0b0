/**
 * Another process that keeps tags/ over a tiny bound and folds it, again and again, while the
 * test process invalidates and reads (tag-floor.test.ts):
 *   stamp-folder.ts <dir> <ms>
 * for `ms`, each round invalidates a few tags of its own (distinct, so the count stays over
 * the bound), raises some of the test's tags too (`t0`..`t6`, racing the test's own stamps of
 * them), and folds with a bound of 6 stamps, keeping 3. Prints the folds it made and the
 * stamps they removed.
 */
import { Larder } from '../../src/index.ts'
import { foldStamps } from '../../src/maintenance/stamp-fold.ts'
import { Layout } from '../../src/store/layout.ts'

const [dir, ms] = process.argv.slice(2) as [string, string]
const cache = await Larder.open({ dir, maintenance: false, memory: false })
const { tagsDir } = new Layout(dir, '')
const until = Date.now() + Number(ms)
let folds = 0
let folded = 0
for (let round = 0; Date.now() < until; round++) {
  await cache.invalidateTags([`own:${round}:a`, `own:${round}:b`])
  if (round % 3 === 0) await cache.invalidateTags([`t${round % 7}`])
  const out = foldStamps({ task: 'fold-stamps', root: dir, tagsDir, shared: false, max: 6, keep: 3, dryRun: false })
  if (out.folded > 0) folds++
  folded += out.folded
  await new Promise((resolve) => setImmediate(resolve))
}
await cache.close()
process.stdout.write(`${JSON.stringify({ folds, folded })}\n`)
