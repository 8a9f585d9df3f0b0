/**
 * The CLI's environment: an empty variable counts as unset, as it does for the library
 * (`config: true`). A blanked `LARDER_DIR=` in a CI file must not point larder at the current
 * directory, nor an empty `LARDER_MAX_SIZE=` stop every command with a usage error.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
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

test('the config file and LARDER_… variables decide how the CLI writes entries, as for the application; a mistake in either stops it, naming its source', async () => {
  const cwd = await mkdtemp(path.join(tmpdir(), 'larder-cli-config-'))
  dirs.push(cwd)
  const zeros = Buffer.alloc(20_000) // deflate would store it in a few dozen bytes
  const file = path.join(cwd, 'larder.config.json')
  const described = async (dir: string, env: Record<string, string> = {}): Promise<{ compression: string; mode: number }> => {
    const set = await runBin(BIN, ['set', 'zeros'], { cwd, env, input: zeros })
    assert.equal(set.code, 0, set.stderr)
    const listed = await runBin(BIN, ['ls', '--json'], { cwd, env: { ...env, LARDER_DIR: dir } })
    const [entry] = JSON.parse(listed.text) as Array<{ compression: string }>
    return { compression: entry!.compression, mode: (await stat(dir)).mode & 0o777 }
  }
  // The file's options, beyond dir; Redis, named there too, is the application's: no command connects to it.
  await writeFile(file, JSON.stringify({ dir: 'c1', compression: 'none', shared: 'group', redis: { url: 'redis://127.0.0.1:1' } }))
  assert.deepEqual(await described(path.join(cwd, 'c1')), { compression: 'none', mode: 0o770 })
  // A variable, over the file.
  await writeFile(file, JSON.stringify({ dir: 'c2', compression: 'deflate' }))
  assert.deepEqual(await described(path.join(cwd, 'c2'), { LARDER_COMPRESSION: 'none' }), { compression: 'none', mode: 0o700 })

  for (const [options, env, named] of [
    [{ dir: 'c3', maxSize: 'lots' }, {}, /larder\.config\.json: maxSize/],
    [{ dir: 'c3', maxSizee: 1 }, {}, /larder\.config\.json: maxSizee/],
    [{ dir: 'c3' }, { LARDER_COMPRESSION: 'zip' }, /LARDER_COMPRESSION/],
  ] as const) {
    await writeFile(file, JSON.stringify(options))
    const run = await runBin(BIN, ['set', 'k'], { cwd, env, input: 'v' })
    assert.equal(run.code, 2, run.stderr)
    assert.match(run.stderr, named)
    assert.ok(!existsSync(path.join(cwd, 'c3')), 'nothing written')
  }
})
