import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import http from 'node:http'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Larder } from '../../src/index.ts'
import { tempDir } from '../helpers.ts'
import { bearer, type CacheAnswer, call, eventually, startCli, tempFiles } from './helpers.ts'

test('larder serve: the first stdout line is exactly "larder listening on http://HOST:PORT" with the port --port 0 got; without a token it says it serves loopback only', async () => {
  const dir = path.join(tempDir('larder-serve-cli'), 'cache')
  const server = await startCli(['--dir', dir, 'serve', '--port', '0'])
  assert.match(server.stdout[0]!, /^larder listening on http:\/\/127\.0\.0\.1:\d+$/)
  const port = Number(server.stdout[0]!.split(':').at(-1))
  assert.ok(port > 0)
  assert.match(server.stdout[1]!, /no token given: serving this machine only \(loopback\)/)
  assert.equal((await call(`${server.url}/healthz`)).status, 200)
  assert.equal(await server.stop('SIGINT'), 0)
})

test('larder serve: a non-loopback host without a token refuses to start (exit 2, nothing listening)', async () => {
  const dir = path.join(tempDir('larder-serve-cli'), 'cache')
  const server = await startCli(['--dir', dir, 'serve', '--host', '0.0.0.0', '--port', '0'])
  assert.equal(await server.exited, 2)
  assert.deepEqual(server.stdout, [])
  assert.match(server.stderr(), /refusing to listen on 0\.0\.0\.0 without a token/)
  assert.doesNotMatch(server.stderr(), /\n\s+at /)
})

test('larder serve: an --origin with a password in it refuses to start (exit 2), and never prints it', async () => {
  const dir = path.join(tempDir('larder-serve-cli'), 'cache')
  const server = await startCli(['--dir', dir, 'serve', '--port', '0', '--origin', 'http://svc:S3CRET-PW@127.0.0.1:9/base'])
  assert.equal(await server.exited, 2)
  assert.deepEqual(server.stdout, [])
  assert.match(server.stderr(), /--origin: a user or password in the URL is never sent/)
  assert.doesNotMatch(server.stderr(), /S3CRET/)
})

test("larder serve: an --idle-timeout past Node's timers (24 days) refuses to start (exit 2): it would cut every connection after 1 ms", async () => {
  const dir = path.join(tempDir('larder-serve-cli'), 'cache')
  const server = await startCli(['--dir', dir, 'serve', '--port', '0', '--idle-timeout', '30d'])
  assert.equal(await server.exited, 2)
  assert.deepEqual(server.stdout, [])
  assert.match(server.stderr(), /--idle-timeout.*at most 24 days/)
})

test('larder --json serve: stdout is one JSON document of the start (its URL in `listening`); a reload says so on stderr', async () => {
  const dir = path.join(tempDir('larder-serve-cli'), 'cache')
  const server = await startCli(['--json', '--dir', dir, 'serve', '--port', '0'])
  type Start = { listening: string; cache: string; dashboard: string; notes: string[] }
  const start = (): Start => JSON.parse(server.stdout.join('\n')) as Start
  await eventually(
    () => {
      try {
        return start().listening !== undefined
      } catch {
        return false
      }
    },
    `one JSON document on stdout, got ${JSON.stringify(server.stdout)}`,
  )
  const { listening, cache, dashboard, notes } = start()
  assert.match(listening, /^http:\/\/127\.0\.0\.1:\d+$/)
  assert.equal(cache, dir)
  assert.equal(dashboard, `${listening}/`)
  assert.match(notes[0]!, /^no token given: serving this machine only/)
  assert.equal((await call(`${listening}/healthz`)).status, 200)
  server.child.kill('SIGHUP')
  await eventually(() => server.stderr().includes('config reloaded (SIGHUP): no config file'), `reloaded: ${server.stderr()}`)
  assert.equal(await server.stop(), 0)
  assert.equal(start().listening, listening, 'stdout is still that one document')
})

test('larder serve: a --max-body that is not a whole number of bytes (0, 0.5) or a --max-teams of 0 refuses to start (exit 2), naming the flag', async () => {
  const dir = path.join(tempDir('larder-serve-cli'), 'cache')
  const cases: [string[], Record<string, string>, RegExp][] = [
    [['--max-body', '0'], {}, /--max-body.*'0' is invalid\. a whole number of bytes, at least 1/],
    [['--max-body', '0.5'], {}, /--max-body.*'0\.5' is invalid/],
    [[], { LARDER_MAX_BODY: '0' }, /--max-body.*LARDER_MAX_BODY.* is invalid/],
    [['--max-teams', '0'], {}, /--max-teams.*'0' is invalid\. at least 1/],
  ]
  for (const [flags, env, message] of cases) {
    const server = await startCli(['--dir', dir, 'serve', '--port', '0', ...flags], env)
    assert.equal(server.url, '', `${flags.join(' ')} did not start`)
    assert.equal(await server.exited, 2, `${flags.join(' ')}: ${server.stderr()}`)
    assert.match(server.stderr(), message)
    assert.equal(server.stderr().trim().split('\n').length, 1, 'one line')
  }
})

test('larder serve: readOnly from the config file or LARDER_READ_ONLY refuses to start (exit 2): every upload would be a 500', async () => {
  const root = tempDir('larder-serve-cli')
  fs.writeFileSync(path.join(root, 'larder.config.json'), JSON.stringify({ readOnly: true }))
  const fromFile = await startCli(['--dir', path.join(root, 'cache'), 'serve', '--port', '0'], {}, root)
  assert.equal(fromFile.url, '', 'it did not start')
  assert.equal(await fromFile.exited, 2)
  assert.deepEqual(fromFile.stdout, [])
  assert.match(fromFile.stderr(), /readOnly: a server stores what it is sent/)
  const fromEnv = await startCli(['--dir', path.join(root, 'other'), 'serve', '--port', '0'], { LARDER_READ_ONLY: '1' })
  assert.equal(fromEnv.url, '', 'it did not start')
  assert.equal(await fromEnv.exited, 2)
  assert.match(fromEnv.stderr(), /readOnly: a server stores what it is sent/)
})

test('larder serve: options come from the environment (LARDER_PORT, LARDER_TOKEN comma-separated, LARDER_READ_TOKEN, CACHE_L1_MAX_ENTRIES)', async () => {
  const dir = path.join(tempDir('larder-serve-cli'), 'cache')
  const server = await startCli(['--dir', dir, 'serve'], {
    LARDER_PORT: '0',
    LARDER_TOKEN: 'one, two',
    LARDER_READ_TOKEN: 'ro',
    CACHE_L1_MAX_ENTRIES: '0',
  })
  assert.match(server.stdout[0]!, /^larder listening on http:\/\/127\.0\.0\.1:\d+$/)
  assert.ok(!server.stdout.some((l) => l.includes('no token')))
  const put = { method: 'PUT', body: JSON.stringify({ value: 1 }), headers: { 'content-type': 'application/json' } }
  assert.equal((await call(`${server.url}/api/cache/k`, put)).status, 401)
  assert.equal((await call(`${server.url}/api/cache/k`, { ...put, headers: { ...put.headers, ...bearer('two') } })).status, 200)
  assert.equal((await call(`${server.url}/api/cache/k`, { ...put, headers: { ...put.headers, ...bearer('ro') } })).status, 403)
  const got = (await call(`${server.url}/api/cache/k`, { headers: bearer('ro') })).json<CacheAnswer>()
  assert.equal(got.source, 'file', 'CACHE_L1_MAX_ENTRIES=0 turned the memory tier off')
  assert.equal(await server.stop(), 0)
})

test('larder serve: SIGTERM finishes the upload in flight, stores it, closes the cache and exits 0', async () => {
  const dir = path.join(tempDir('larder-serve-cli'), 'cache')
  const server = await startCli(['--dir', dir, 'serve', '--port', '0'])
  const body = Buffer.alloc(3 * 1024 * 1024, 7)
  let sendRest = (): void => {}
  const answered = new Promise<number>((resolve, reject) => {
    const request = http.request(
      `${server.url}/v8/artifacts/abcdef0123456789?slug=t`,
      { method: 'PUT', headers: { 'content-type': 'application/octet-stream', 'content-length': String(body.length) } },
      (response) => {
        response.resume()
        resolve(response.statusCode!)
      },
    )
    request.on('error', reject)
    request.write(body.subarray(0, 2 * 1024 * 1024))
    sendRest = () => request.end(body.subarray(2 * 1024 * 1024))
  })
  // The upload is being written (its temp file is on disk) before the signal.
  await eventually(() => tempFiles(dir).length > 0, "the upload's temp file")
  server.child.kill('SIGTERM')
  await new Promise((resolve) => server.child.stderr!.once('data', resolve)) // "stopping …"
  sendRest()
  assert.equal(await answered, 202)
  assert.equal(await server.exited, 0)
  assert.match(server.stderr(), /SIGTERM: stopping/)
  const cache = await Larder.open({ dir, namespace: 'turbo:t', readOnly: true, serializer: 'raw' })
  const info = await cache.info('abcdef0123456789')
  assert.ok(info !== undefined, 'the upload in flight was stored')
  assert.ok(info.logicalSize > body.length)
  await cache.close()
})

test('larder serve: no token appears in its output, whatever the requests', async () => {
  const dir = path.join(tempDir('larder-serve-cli'), 'cache')
  const server = await startCli(['--dir', dir, 'serve', '--port', '0', '--token', 'TOPSECRET', '--log-requests'])
  await call(`${server.url}/v8/artifacts/abcdef0123456789?slug=t`, { headers: bearer('TOPSECRET') })
  await call(`${server.url}/v8/artifacts/abcdef0123456789?slug=t`, { headers: bearer('TOPSECRET-WRONG') })
  await call(`${server.url}/v1/cache/1`, {
    method: 'PUT',
    body: 'x',
    headers: { 'content-type': 'application/octet-stream', ...bearer('TOPSECRET') },
  })
  assert.equal(await server.stop(), 0)
  const output = server.stdout.join('\n') + server.stderr()
  assert.match(output, /GET \/v8\/artifacts\/:hash 404/, 'the route, not the path')
  assert.doesNotMatch(output, /abcdef0123456789/, 'no artifact hash is logged')
  assert.doesNotMatch(output, /TOPSECRET/)
})

test('the package ships the server and its dashboard assets (no CDN: the page is served from the package)', async () => {
  const { execFileSync } = await import('node:child_process')
  const { root } = await import('./helpers.ts')
  const packed = JSON.parse(
    execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }),
  ) as { files: { path: string }[] }[]
  const files = packed[0]!.files.map((f) => f.path)
  for (const file of ['dist/cli.js', 'dist/dashboard/index.html', 'dist/dashboard/dashboard.js', 'dist/dashboard/dashboard.css']) {
    assert.ok(files.includes(file), `${file} missing from the package`)
  }
  const page = (await import('node:fs')).readFileSync(path.join(root, 'dist/dashboard/index.html'), 'utf8')
  assert.doesNotMatch(page, /(src|href)="(https?:)?\/\//, "every asset of the page is the server's own")
})

test('larder serve: LARDER_NAMESPACE in the environment is ignored, said once on stderr, and serve starts; a --namespace flag is still a usage error (exit 2)', async () => {
  const dir = path.join(tempDir('larder-serve-cli'), 'cache')
  const server = await startCli(['--dir', dir, 'serve', '--port', '0'], { LARDER_NAMESPACE: 'app' })
  assert.match(server.stdout[0]!, /^larder listening on http:\/\/127\.0\.0\.1:\d+$/)
  const put = { method: 'PUT', body: JSON.stringify({ value: 1 }), headers: { 'content-type': 'application/json' } }
  assert.equal((await call(`${server.url}/api/cache/k`, put)).status, 200)
  assert.equal((await call(`${server.url}/api/cache/k`)).json<CacheAnswer>().value, 1)
  assert.equal(server.stderr().match(/LARDER_NAMESPACE is ignored/g)?.length, 1, server.stderr())
  assert.equal(await server.stop('SIGINT'), 0)
  const flagged = await startCli(['--dir', dir, 'serve', '--port', '0', '--namespace', 'app'])
  assert.equal(await flagged.exited, 2)
  assert.deepEqual(flagged.stdout, [])
  assert.match(flagged.stderr(), /--namespace does not apply/)
})

test("larder --json serve on a port in use: exit 1 and one error document, its code one README's --json paragraph names", async () => {
  const taken = http.createServer()
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
  const port = (taken.address() as { port: number }).port
  try {
    const dir = path.join(tempDir('larder-serve-cli'), 'cache')
    const server = await startCli(['--json', '--dir', dir, 'serve', '--port', String(port)])
    assert.equal(await server.exited, 1)
    // 'exit' can come before the last of stdout is read.
    if (!server.child.stdout!.closed) await once(server.child.stdout!, 'close')
    const { error } = JSON.parse(server.stdout.join('\n')) as { error: { code: string; message: string } }
    assert.match(error.message, /the port is in use/)
    const readme = fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'README.md'), 'utf8')
    const paragraph = readme.slice(readme.indexOf('**`--json`**'))
    assert.ok(
      paragraph.slice(0, paragraph.indexOf('\n\n')).includes(`\`${error.code}\``),
      `README's --json paragraph does not name ${error.code}`,
    )
  } finally {
    await new Promise((resolve) => taken.close(resolve))
  }
})
