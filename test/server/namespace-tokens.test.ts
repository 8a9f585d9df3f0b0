/**
 * Namespace tokens (`--namespace-token NAMESPACE=TOKEN`): a token given for one team's
 * namespace reads and writes that namespace only, through every protocol's routes, and no
 * server-wide route (metrics, the dashboard's figures, the counters' reset); a server token
 * keeps opening everything.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import { hasher, loadHasher } from '../../src/format/checksum.ts'
import { tempDir } from '../helpers.ts'
import { bearer, call, type ErrorAnswer, startCli, startServer } from './helpers.ts'

const octets = { 'content-type': 'application/octet-stream' }
const json = { 'content-type': 'application/json' }
const HASH = 'abcdef0123456789'

test('a namespace token opens its namespaces with the access it was given there, and nothing else', async () => {
  const { url } = await startServer({
    tokens: ['SERVER'],
    namespaceTokens: [
      { namespace: 'turbo:teamA', token: 'A', access: 'write' },
      { namespace: 'nx:web', token: 'A', access: 'read' },
      { namespace: 'turbo:teamB', token: 'B', access: 'write' },
      { namespace: 'ccache', token: 'C', access: 'write' },
      { namespace: 'api', token: 'R', access: 'read' },
    ],
  })
  const turbo = (team: string): string => `${url}/v8/artifacts/${HASH}?slug=${team}`
  const put = (at: string, token: string, body: string) => call(at, { method: 'PUT', body, headers: { ...octets, ...bearer(token) } })
  const forbidden = (answer: { status: number; json: <T>() => T }, code: string, what: string): void => {
    assert.equal(answer.status, 403, what)
    assert.equal(answer.json<ErrorAnswer>().error.code, code, what)
  }

  // Turborepo: each team's token, its own team
  assert.equal((await put(turbo('teamB'), 'B', 'from B')).status, 202)
  assert.equal((await put(turbo('teamA'), 'A', 'from A')).status, 202)
  assert.equal((await call(turbo('teamA'), { headers: bearer('A') })).text, 'from A')
  forbidden(await call(turbo('teamB'), { headers: bearer('A') }), 'ERR_FORBIDDEN_NAMESPACE', "A reads B's artifact")
  assert.equal((await call(turbo('teamB'), { method: 'HEAD', headers: bearer('A') })).status, 403, "A asks for B's artifact's size")
  forbidden(await put(turbo('teamB'), 'A', 'poisoned by A'), 'ERR_FORBIDDEN_NAMESPACE', "A overwrites B's artifact")
  forbidden(
    await call(`${url}/v8/artifacts?slug=teamB`, {
      method: 'POST',
      body: JSON.stringify({ hashes: [HASH] }),
      headers: { ...json, ...bearer('A') },
    }),
    'ERR_FORBIDDEN_NAMESPACE',
    "A asks which of B's artifacts exist",
  )
  assert.equal((await call(turbo('teamB'), { headers: bearer('B') })).text, 'from B', "B's artifact is B's")
  assert.equal((await call(turbo('teamB'), { headers: bearer('SERVER') })).text, 'from B', 'a server token reads every team')

  // Nx: A may only read nx:web; no other nx namespace
  assert.equal((await call(`${url}/nx/web/v1/cache/123`, { headers: bearer('A') })).status, 404, 'A reads nx:web (a miss)')
  const nxWrite = await call(`${url}/nx/web/v1/cache/123`, { method: 'PUT', body: 'x', headers: { ...octets, ...bearer('A') } })
  assert.equal(nxWrite.status, 403)
  assert.match(nxWrite.text, /may only read the namespace nx:web/)
  assert.equal((await call(`${url}/nx/other/v1/cache/123`, { headers: bearer('A') })).status, 403)
  assert.equal((await call(`${url}/v1/cache/123`, { headers: bearer('A') })).status, 403, 'the team-less nx namespace is another')

  // ccache and Bazel are two namespaces
  assert.equal((await put(`${url}/ccache/ab/cdef`, 'C', 'object')).status, 200)
  assert.equal((await call(`${url}/ccache/ab/cdef`, { headers: bearer('C') })).text, 'object')
  forbidden(await put(`${url}/ac/${'a'.repeat(64)}`, 'C', 'x'), 'ERR_FORBIDDEN_NAMESPACE', 'C writes Bazel')
  forbidden(
    await call(`${url}/ccache/ab/cdef`, { method: 'DELETE', headers: bearer('A') }),
    'ERR_FORBIDDEN_NAMESPACE',
    'A deletes a ccache object',
  )
  forbidden(await put(turbo('teamA'), 'C', 'x'), 'ERR_FORBIDDEN_NAMESPACE', 'C writes a team')

  // the cache API: R reads `api`, writes nothing, clears nothing
  assert.equal((await call(`${url}/api/cache/k`, { headers: bearer('R') })).status, 404)
  assert.equal((await call(`${url}/cache/stats`, { headers: bearer('R') })).status, 200)
  forbidden(
    await call(`${url}/api/cache/k`, { method: 'PUT', body: JSON.stringify({ value: 1 }), headers: { ...json, ...bearer('R') } }),
    'ERR_READ_ONLY_TOKEN',
    'R writes',
  )
  forbidden(await call(`${url}/cache/all`, { method: 'DELETE', headers: bearer('R') }), 'ERR_READ_ONLY_TOKEN', 'R clears')
  forbidden(await call(`${url}/api/cache/k`, { headers: bearer('A') }), 'ERR_FORBIDDEN_NAMESPACE', 'A reads api')

  // server-wide routes: every namespace's figures, the counters of all
  for (const [route, method] of [
    ['/metrics', 'GET'],
    ['/dashboard/data', 'GET'],
    ['/api/cache/metrics', 'GET'],
    ['/cache/stats/reset', 'POST'],
  ] as const) {
    for (const token of ['A', 'R'])
      forbidden(await call(`${url}${route}`, { method, headers: bearer(token) }), 'ERR_FORBIDDEN_NAMESPACE', `${token} ${route}`)
    assert.equal((await call(`${url}${route}`, { method, headers: bearer('SERVER') })).status, 200, `SERVER ${route}`)
  }
  // turbo's events count into the server's figures: a namespace token under its own team only
  const events = (team: string, token: string) =>
    call(`${url}/v8/artifacts/events?slug=${team}`, {
      method: 'POST',
      body: JSON.stringify([{ source: 'REMOTE', event: 'HIT', hash: HASH }]),
      headers: { ...json, ...bearer(token) },
    })
  assert.equal((await events('teamA', 'A')).status, 200)
  forbidden(await events('teamB', 'A'), 'ERR_FORBIDDEN_NAMESPACE', "A's events as team B")
  forbidden(await events('teamA', 'R'), 'ERR_FORBIDDEN_NAMESPACE', 'an api token posting turbo events')
  forbidden(await call(`${url}/cache/l1`, { method: 'DELETE', headers: bearer('A') }), 'ERR_FORBIDDEN_NAMESPACE', 'A empties api memory')
  assert.equal((await call(turbo('teamA'), { headers: bearer('nobody') })).status, 401)
  assert.equal((await call(turbo('teamA'))).status, 401)
})

test('a server read token that is also a namespace write token reads everywhere and writes its namespace', async () => {
  const { url } = await startServer({
    tokens: ['SERVER'],
    readTokens: ['BOTH'],
    namespaceTokens: [{ namespace: 'turbo:web', token: 'BOTH', access: 'write' }],
    memoryEntries: 0,
  })
  const put = (team: string) =>
    call(`${url}/v8/artifacts/${HASH}?slug=${team}`, { method: 'PUT', body: team, headers: { ...octets, ...bearer('BOTH') } })
  assert.equal((await put('web')).status, 202)
  assert.equal((await put('mobile')).status, 403)
  assert.equal((await call(`${url}/v8/artifacts/${HASH}?slug=web`, { headers: bearer('BOTH') })).text, 'web')
  assert.equal((await call(`${url}/v8/artifacts/${HASH}?slug=mobile`, { headers: bearer('BOTH') })).status, 404, 'reads any team')
  assert.equal((await call(`${url}/metrics`, { headers: bearer('BOTH') })).status, 200, 'a server read token reads the figures')
  assert.equal((await call(`${url}/cache/l1`, { method: 'DELETE', headers: bearer('BOTH') })).status, 403, 'without a memory tier too')
})

test('larder serve: --namespace-token and LARDER_NAMESPACE_TOKENS; a malformed one exits 2 without printing it', async () => {
  const dir = path.join(tempDir('larder-serve-ns-tokens'), 'cache')
  const bad = await startCli(['--dir', dir, 'serve', '--port', '0', '--namespace-token', 'S3CRET-NO-NAMESPACE'])
  assert.equal(await bad.exited, 2)
  assert.match(bad.stderr(), /--namespace-token \(value 1\): expected NAMESPACE=TOKEN/)
  assert.doesNotMatch(bad.stderr(), /S3CRET/)
  // commander's complaint about an option it does not know repeats `--flag=value` whole
  for (const args of [
    ['--namespace-token=turbo:web=S3CRET', 'serve'],
    ['serve', '--namespace-tokens=turbo:web=S3CRET'],
  ]) {
    const misplaced = await startCli(['--dir', dir, ...args, '--port', '0'])
    assert.equal(await misplaced.exited, 2)
    assert.match(misplaced.stderr(), /unknown option '--namespace-tokens?=…'/)
    assert.doesNotMatch(misplaced.stderr(), /S3CRET/)
  }
  const unknown = await startCli(['--dir', dir, 'serve', '--port', '0'], { LARDER_NAMESPACE_TOKENS: 'turbo:a=ok,team-b=S3CRET' })
  assert.equal(await unknown.exited, 2)
  assert.match(unknown.stderr(), /LARDER_NAMESPACE_TOKENS \(value 2\)/)
  assert.doesNotMatch(unknown.stderr(), /S3CRET/)

  const server = await startCli(['--dir', dir, 'serve', '--port', '0', '--namespace-read-token', 'turbo:a=RO'], {
    LARDER_NAMESPACE_TOKENS: 'turbo:a=RW, nx:web=RW',
  })
  const at = `${server.url}/v8/artifacts/${HASH}?slug=a`
  assert.equal((await call(at, { method: 'PUT', body: 'x', headers: { ...octets, ...bearer('RW') } })).status, 202)
  assert.equal((await call(at, { headers: bearer('RO') })).text, 'x')
  assert.equal((await call(at, { method: 'PUT', body: 'y', headers: { ...octets, ...bearer('RO') } })).status, 403)
  assert.equal((await call(`${server.url}/v8/artifacts/${HASH}?slug=b`, { headers: bearer('RW') })).status, 403)
  assert.equal(await server.stop('SIGINT'), 0)
})

/** Two valid turbo team names whose namespaces hash alike (xxhash64 of `turbo:<team>`, which
 *  names a namespace's directory): built by solving XXH64's invertible lane round, as a client
 *  can. Without the check they shared one directory, and each team read the other's artifacts. */
const TEAM_A = 'ciwebteam1xxxxxxxxxxxxxxxxxxxxxxxxAAAAAAAA-build-cache-of-the-ci'
const TEAM_B = 'ciYdsm3-ROxxxxxxxxxxxxxxxxxxxxxxxxwdRC7a.6-build-cache-of-the-ci'

test('a team whose name hashes like another team’s neither reads nor overwrites its artifacts, in this server or the next one over the directory', async () => {
  await loadHasher()
  assert.equal(hasher().h64ToString(`turbo:${TEAM_A}`), hasher().h64ToString(`turbo:${TEAM_B}`), 'the two names collide')
  const dir = path.join(tempDir('larder-serve'), 'cache')
  const namespaceTokens = [
    { namespace: `turbo:${TEAM_A}`, token: 'A', access: 'write' as const },
    { namespace: `turbo:${TEAM_B}`, token: 'B', access: 'write' as const },
  ]
  const turbo = (url: string, team: string): string => `${url}/v8/artifacts/${HASH}?slug=${team}`
  const first = await startServer({ dir, namespaceTokens })
  const stored = await call(turbo(first.url, TEAM_A), { method: 'PUT', body: 'team A', headers: { ...octets, ...bearer('A') } })
  assert.equal(stored.status, 202)
  const read = await call(turbo(first.url, TEAM_B), { headers: bearer('B') })
  assert.equal(read.status, 404, `team B read ${JSON.stringify(read.text)}`)
  const overwrite = await call(turbo(first.url, TEAM_B), { method: 'PUT', body: 'team B', headers: { ...octets, ...bearer('B') } })
  assert.equal(overwrite.status, 409)
  assert.equal(overwrite.json<ErrorAnswer>().error.code, 'ERR_NAMESPACE_COLLISION')
  assert.doesNotMatch(overwrite.text, new RegExp(TEAM_A), 'the other team is not named')
  assert.equal((await call(turbo(first.url, TEAM_A), { headers: bearer('A') })).text, 'team A')
  await first.close()
  // A server started later opens B first: the directory records A's name.
  const next = await startServer({ dir, namespaceTokens })
  assert.equal((await call(turbo(next.url, TEAM_B), { headers: bearer('B') })).status, 404)
  const later = await call(turbo(next.url, TEAM_B), { method: 'PUT', body: 'team B', headers: { ...octets, ...bearer('B') } })
  assert.equal(later.status, 409)
  assert.equal((await call(turbo(next.url, TEAM_A), { headers: bearer('A') })).text, 'team A')
  await next.close() // before tempDir's hook removes its directory
})
