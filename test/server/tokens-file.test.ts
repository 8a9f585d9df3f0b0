/**
 * `larder serve --tokens-file`: tokens kept out of the command line (readable by every user in
 * `ps`) and the environment, in a file a secret store mounts, read again on SIGHUP and when it
 * changes: a token is added or revoked without a restart, and a file that does not parse (or
 * was emptied) changes nothing. Real server processes; no token text in any output.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { readTokensFile, TokensFileError } from '../../src/server/tokens-file.ts'
import { tempDir } from '../helpers.ts'
import { bearer, call, eventually, startCli } from './helpers.ts'

const octets = { 'content-type': 'application/octet-stream' }
const HASH = 'abcdef0123456789'

/** Written aside and renamed, as a secret store or an editor does. */
function writeTokens(file: string, text: string, mode = 0o600): void {
  fs.writeFileSync(`${file}.new`, text, { mode })
  fs.chmodSync(`${file}.new`, mode)
  fs.renameSync(`${file}.new`, file)
}

describe('readTokensFile', () => {
  test('reads server and namespace tokens, skipping comments and blank lines (CRLF too)', () => {
    const file = path.join(tempDir('larder-tokens'), 'tokens')
    writeTokens(file, '# the CI tokens\r\nwrite  W1\r\n\r\nread R1\n  write turbo:web TW  \nread nx:web NR\n# end\n')
    assert.deepEqual(readTokensFile(file), {
      tokens: ['W1'],
      readTokens: ['R1'],
      namespaceTokens: [
        { namespace: 'turbo:web', token: 'TW', access: 'write' },
        { namespace: 'nx:web', token: 'NR', access: 'read' },
      ],
    })
  })

  test('a mistake names the file and the line, never the text; no token, no file, a directory are refused', () => {
    const dir = tempDir('larder-tokens')
    const file = path.join(dir, 'tokens')
    const refused = (text: string | undefined, message: RegExp, at = file): void => {
      if (text !== undefined) writeTokens(at, text)
      assert.throws(
        () => readTokensFile(at),
        (error: unknown) => {
          assert.ok(error instanceof TokensFileError)
          assert.match(error.message, message)
          assert.doesNotMatch(error.message, /S3CRET/, 'no token text in the message')
          return true
        },
      )
    }
    refused('write W1\nadmin S3CRET\n', /tokens, line 2: expected "write" or "read"/)
    refused('write W1\nread team-b S3CRET\n', /line 2: the namespace is one of api, ccache/)
    refused('write turbo:web S3CRET extra\n', /line 1: expected "write <token>" or "write <namespace> <token>"/)
    refused('write\n', /line 1: expected "write <token>"/)
    // A namespace token whose token was left out, not a server token whose secret is the namespace.
    refused('write W1\nwrite turbo:web\n', /line 2: a namespace with no token: expected "write <namespace> <token>"/)
    refused('read api\n', /line 1: a namespace with no token: expected "read <namespace> <token>"/)
    refused('# nothing yet\n\n', /holds no token/)
    refused('', /holds no token/)
    refused(undefined, /cannot be read \(ENOENT\)/, path.join(dir, 'missing'))
    refused(undefined, /cannot be read \(EISDIR\)/, dir)
  })
})

describe('larder serve --tokens-file', () => {
  test('its tokens open the server as the flags would; the start names the file, warns when others can read it, and shows no token', async () => {
    const root = tempDir('larder-serve-tokens')
    const file = path.join(root, 'tokens')
    writeTokens(file, 'write S3CRET-W\nread S3CRET-R\nwrite turbo:web S3CRET-T\n', 0o644)
    // From the environment here; --token beside it still counts.
    const cli = await startCli(['serve', '--port', '0', '--dir', path.join(root, 'cache'), '--token', 'S3CRET-FLAG'], {
      LARDER_TOKENS_FILE: file,
    })
    assert.ok(cli.url !== '', cli.stderr())
    const at = (team: string): string => `${cli.url}/v8/artifacts/${HASH}?slug=${team}`
    const put = (url: string, token: string): Promise<{ status: number }> =>
      call(url, { method: 'PUT', body: 'x', headers: { ...octets, ...bearer(token) } })
    assert.equal((await put(at('web'), 'S3CRET-W')).status, 202)
    assert.equal((await put(at('web'), 'S3CRET-FLAG')).status, 202)
    assert.equal((await put(at('web'), 'S3CRET-R')).status, 403, 'a read token from the file may not write')
    assert.equal((await call(at('web'), { headers: bearer('S3CRET-R') })).status, 200)
    assert.equal((await put(at('web'), 'S3CRET-T')).status, 202, 'a namespace token from the file opens its namespace')
    assert.equal((await put(at('ios'), 'S3CRET-T')).status, 403, '… and no other')
    assert.equal((await call(at('web'), { headers: bearer('nobody') })).status, 401)

    await eventually(() => cli.stdout.includes(`tokens ${file}`), `the file is named:\n${cli.stdout.join('\n')}`)
    assert.ok(
      cli.stdout.some((line) => line.startsWith(`warning: ${file} can be read by other users`)),
      cli.stdout.join('\n'),
    )
    assert.ok(!cli.stdout.some((line) => line.startsWith('no token given')), 'the file counts as tokens given')
    assert.equal(await cli.stop(), 0)
    assert.doesNotMatch(cli.stdout.join('\n') + cli.stderr(), /S3CRET/)
  })

  test('a changed file adds and revokes tokens without a restart; one that does not parse, or holds none, changes nothing', async () => {
    const root = tempDir('larder-serve-tokens')
    const file = path.join(root, 'tokens')
    writeTokens(file, 'write S3CRET-OLD\n')
    const cli = await startCli(['serve', '--port', '0', '--dir', path.join(root, 'cache'), '--tokens-file', file])
    assert.ok(cli.url !== '', cli.stderr())
    const status = async (token: string): Promise<number> =>
      (await call(`${cli.url}/v8/artifacts/${HASH}?slug=web`, { method: 'PUT', body: 'x', headers: { ...octets, ...bearer(token) } }))
        .status
    assert.equal(await status('S3CRET-OLD'), 202)
    assert.equal(await status('S3CRET-NEW'), 401)

    writeTokens(file, '# rotated\nwrite S3CRET-NEW\n')
    await eventually(() => cli.stdout.includes('tokens reloaded (file changed): 1 tokens'), `reloaded:\n${cli.stdout.join('\n')}`)
    assert.equal(await status('S3CRET-NEW'), 202, 'the new token opens the server')
    assert.equal(await status('S3CRET-OLD'), 401, 'the old one is revoked')

    writeTokens(file, 'write S3CRET-NEW\nwrite turbo:nope! S3CRET-BAD\n')
    await eventually(
      () => cli.stdout.some((line) => /^tokens not reloaded \(file changed\): .*tokens, line 2: the namespace is one of/.test(line)),
      `the bad line is reported:\n${cli.stdout.join('\n')}`,
    )
    writeTokens(file, '')
    await eventually(
      () => cli.stdout.some((line) => /^tokens not reloaded \(file changed\): .*holds no token.*the server keeps its tokens$/.test(line)),
      `the empty file is refused:\n${cli.stdout.join('\n')}`,
    )
    assert.equal(await status('S3CRET-NEW'), 202, 'the tokens held are kept')
    assert.equal(await status('nobody'), 401, 'an emptied file does not open the server')
    assert.equal(await cli.stop(), 0)
    assert.doesNotMatch(cli.stdout.join('\n') + cli.stderr(), /S3CRET/)
  })

  test('a file mounted as Kubernetes mounts a Secret (a swapped ..data symlink) is read again when the secret changes', async () => {
    const root = tempDir('larder-serve-tokens')
    const mount = path.join(root, 'secret')
    fs.mkdirSync(mount)
    // tokens → ..data/tokens, ..data → ..<version>: an update writes a new version directory
    // and renames a new ..data over the old; no event in the mount names `tokens`.
    const version = (name: string, text: string): void => {
      fs.mkdirSync(path.join(mount, name))
      fs.writeFileSync(path.join(mount, name, 'tokens'), text, { mode: 0o600 })
    }
    version('..v1', 'write S3CRET-K1\n')
    fs.symlinkSync('..v1', path.join(mount, '..data'))
    fs.symlinkSync('..data/tokens', path.join(mount, 'tokens'))
    const file = path.join(mount, 'tokens')
    const cli = await startCli(['serve', '--port', '0', '--dir', path.join(root, 'cache'), '--tokens-file', file])
    assert.ok(cli.url !== '', cli.stderr())
    const status = async (token: string): Promise<number> =>
      (await call(`${cli.url}/v8/artifacts/${HASH}?slug=web`, { headers: bearer(token) })).status
    assert.equal(await status('S3CRET-K1'), 404)

    version('..v2', 'write S3CRET-K2\n')
    fs.symlinkSync('..v2', path.join(mount, '..data_tmp'))
    fs.renameSync(path.join(mount, '..data_tmp'), path.join(mount, '..data'))
    fs.rmSync(path.join(mount, '..v1'), { recursive: true })
    await eventually(() => cli.stdout.includes('tokens reloaded (file changed): 1 tokens'), `reloaded:\n${cli.stdout.join('\n')}`)
    assert.equal(await status('S3CRET-K2'), 404, 'the new token opens the server')
    assert.equal(await status('S3CRET-K1'), 401, 'the old one is revoked')
    assert.equal(await cli.stop(), 0)
    assert.doesNotMatch(cli.stdout.join('\n') + cli.stderr(), /S3CRET/)
  })

  test('a change is read while another file beside it changes all the time (a log written every 50 ms)', async () => {
    const root = tempDir('larder-serve-tokens')
    const file = path.join(root, 'tokens')
    const log = path.join(root, 'serve.log')
    writeTokens(file, 'write S3CRET-A\nwrite S3CRET-B\n')
    const cli = await startCli(['serve', '--port', '0', '--dir', path.join(root, 'cache'), '--tokens-file', file])
    assert.ok(cli.url !== '', cli.stderr())
    const busy = setInterval(() => fs.appendFileSync(log, 'a line\n'), 50)
    try {
      const status = async (token: string): Promise<number> =>
        (await call(`${cli.url}/v8/artifacts/${HASH}?slug=web`, { headers: bearer(token) })).status
      assert.equal(await status('S3CRET-B'), 404)
      writeTokens(file, 'write S3CRET-A\n')
      await eventually(() => cli.stdout.includes('tokens reloaded (file changed): 1 tokens'), `reloaded:\n${cli.stdout.join('\n')}`, 5000)
      assert.equal(await status('S3CRET-B'), 401, 'revoked while the log went on')
    } finally {
      clearInterval(busy)
    }
    assert.equal(await cli.stop(), 0)
  })

  test('with --no-watch-config only SIGHUP reads it again', async () => {
    const root = tempDir('larder-serve-tokens')
    const file = path.join(root, 'tokens')
    writeTokens(file, 'write S3CRET-A\n')
    const cli = await startCli(['serve', '--port', '0', '--dir', path.join(root, 'cache'), '--tokens-file', file, '--no-watch-config'])
    assert.ok(cli.url !== '', cli.stderr())
    const status = async (token: string): Promise<number> =>
      (await call(`${cli.url}/v8/artifacts/${HASH}?slug=web`, { headers: bearer(token) })).status
    writeTokens(file, 'read S3CRET-B\n')
    // A reload the watcher would have made is not made: A still opens, B does not.
    await new Promise((resolve) => setTimeout(resolve, 500))
    assert.equal(await status('S3CRET-B'), 401)
    cli.child.kill('SIGHUP')
    await eventually(() => cli.stdout.includes('tokens reloaded (SIGHUP): 1 tokens'), `reloaded:\n${cli.stdout.join('\n')}`)
    assert.equal(await status('S3CRET-B'), 404, 'B reads (a miss)')
    assert.equal(await status('S3CRET-A'), 401)
    assert.equal(await cli.stop(), 0)
  })

  test('a file that cannot be used at start exits 2, naming the line and not the token', async () => {
    const root = tempDir('larder-serve-tokens')
    const file = path.join(root, 'tokens')
    writeTokens(file, 'write S3CRET-ONE\nsuper S3CRET-TWO\n')
    const bad = await startCli(['serve', '--port', '0', '--dir', path.join(root, 'cache'), '--tokens-file', file])
    assert.equal(await bad.exited, 2)
    assert.match(bad.stderr(), /--tokens-file: .*tokens, line 2: expected "write" or "read"/)
    const missing = await startCli(['serve', '--port', '0', '--dir', path.join(root, 'cache'), '--tokens-file', path.join(root, 'none')])
    assert.equal(await missing.exited, 2)
    assert.match(missing.stderr(), /--tokens-file: .*none: cannot be read \(ENOENT\)/)
    assert.doesNotMatch(bad.stderr() + missing.stderr(), /S3CRET/)
  })
})
