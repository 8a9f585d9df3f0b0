/**
 * The CLI's environment: an empty variable counts as unset, as it does for the library
 * (`config: true`). A blanked `LARDER_DIR=` in a CI file must not point larder at the current
 * directory, nor an empty `LARDER_MAX_SIZE=` stop every command with a usage error.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Larder } from '../src/index.ts'
import { repoRoot, runBin } from './cli-runner.ts'

const BIN = process.env.CHECK_BIN ?? path.join(repoRoot, 'dist', 'cli.js')
const dirs: string[] = []
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))))

test('empty LARDER_… variables count as unset: the default directory, no usage error', async () => {
  const cwd = await mkdtemp(path.join(tmpdir(), 'larder-cli-env-'))
  dirs.push(cwd)
  const cache = await Larder.open({ dir: path.join(cwd, 'node_modules', '.cache', 'larder') })
  await cache.set('k', 'v')
  await cache.close()
  const run = await runBin(BIN, ['stats', '--json'], { cwd, env: { LARDER_DIR: '', LARDER_MAX_SIZE: ' ', LARDER_NAMESPACE: '' } })
  assert.equal(run.code, 0, run.stderr)
  const stats = JSON.parse(run.text) as { dir: string; entries: number }
  assert.equal(stats.dir, path.join(cwd, 'node_modules', '.cache', 'larder'), 'the default directory, not the current one')
  assert.equal(stats.entries, 1)
})
