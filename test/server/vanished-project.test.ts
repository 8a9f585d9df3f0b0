/**
 * Found by an adversarial review (2026-12-06): a project deleted while `larder serve` ran was
 * brought back, every parent of the cache directory, by the first upload to a team namespace
 * not open yet (opened on that upload, or reopened after being closed to make room): each new
 * instance took the project for a cache that never had its directory. Nothing outside the
 * cache directory is created: the uploads are skipped as on a failing disk.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { tempDir } from '../helpers.ts'
import { bearer, call, startCli } from './helpers.ts'

test('larder serve: a project deleted under the running server stays deleted, whichever team uploads next (open, reopened or new)', async () => {
  const project = path.join(tempDir('larder-serve-project'), 'project')
  const dir = path.join(project, 'node_modules', '.cache', 'larder')
  const server = await startCli(['--dir', dir, 'serve', '--port', '0', '--token', 'w', '--max-teams', '1'])
  try {
    const upload = async (hash: string, team: string): Promise<number> =>
      (
        await call(`${server.url}/v8/artifacts/${hash}?slug=${team}`, {
          method: 'PUT',
          headers: { ...bearer('w'), 'content-type': 'application/octet-stream' },
          body: `artifact ${hash}`,
        })
      ).status
    assert.equal(await upload('aaaa', 'a'), 202)
    assert.equal(await upload('bbbb', 'b'), 202) // team a is closed to make room
    fs.rmSync(project, { recursive: true })
    for (const [hash, team] of [
      ['bbb2', 'b'], // open
      ['aaa2', 'a'], // reopened
      ['cccc', 'c'], // never opened
    ]) {
      const status = await upload(hash!, team!)
      assert.notEqual(status, 202, `team ${team}: the upload is not reported stored`)
      assert.equal(fs.existsSync(project), false, `team ${team}'s upload leaves the project deleted`)
      const read = await call(`${server.url}/v8/artifacts/${hash}?slug=${team}`, { headers: bearer('w') })
      assert.equal(read.status, 404, `team ${team}: a read is a miss`)
    }
    assert.equal(fs.existsSync(project), false)
  } finally {
    assert.equal(await server.stop(), 0)
  }
  assert.equal(fs.existsSync(project), false, 'stopping the server writes nothing there either')
})
