/**
 * `larder serve --tls-cert/--tls-key`: HTTPS, so tokens and artifacts do not cross a network
 * in clear; a renewed certificate taken on SIGHUP without a restart (a bad pair keeps the old
 * one); mistakes exit 2 at start. Real server processes, real TLS handshakes (node:https and
 * node:tls with the fixture's certificates as the only trusted ones: fixtures/tls/).
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import path from 'node:path'
import tls from 'node:tls'
import { tempDir } from '../helpers.ts'
import { eventually, root, startCli } from './helpers.ts'

const fixture = (name: string): string => path.join(root, 'fixtures', 'tls', name)
const TOKEN = 'S3CRET-TLS'
const HASH = 'abcdef0123456789'

/** One HTTPS request trusting `ca` only: status and body. */
function request(url: string, ca: Buffer, init: { method?: string; body?: string } = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method: init.method ?? 'GET',
        ca,
        agent: false,
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/octet-stream' },
      },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => (text += chunk))
        res.on('end', () => resolve({ status: res.statusCode!, text }))
      },
    )
    req.on('error', reject)
    req.end(init.body)
  })
}

/** The common name of the certificate a new connection to `url` is shown. */
function presented(url: string): Promise<string> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: hostname, port: Number(port), rejectUnauthorized: false }, () => {
      const cn = socket.getPeerCertificate().subject.CN
      socket.end()
      resolve(Array.isArray(cn) ? cn.join(',') : (cn ?? ''))
    })
    socket.on('error', reject)
  })
}

/** A plain-HTTP request to the HTTPS port: it gets no HTTP answer. */
function plainAnswer(url: string): Promise<number | string> {
  return new Promise((resolve) => {
    const req = http.get(url.replace(/^https:/, 'http:'), { agent: false }, (res) => {
      res.resume()
      resolve(res.statusCode!)
    })
    req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'))
    req.setTimeout(5000, () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })))
  })
}

describe('larder serve over HTTPS', () => {
  test('serves the protocols over TLS with the given certificate; a renewed one is taken on SIGHUP; a bad pair keeps the old', async () => {
    const dir = tempDir('larder-serve-tls')
    const cert = path.join(dir, 'cert.pem')
    const key = path.join(dir, 'key.pem')
    fs.copyFileSync(fixture('cert-a.pem'), cert)
    fs.copyFileSync(fixture('key-a.pem'), key)
    fs.chmodSync(key, 0o600)
    const cli = await startCli(['serve', '--port', '0', '--dir', path.join(dir, 'cache'), '--token', TOKEN, '--tls-cert', cert], {
      LARDER_TLS_KEY: key,
    })
    assert.match(cli.url, /^https:\/\/127\.0\.0\.1:\d+$/, cli.stderr())
    const certA = fs.readFileSync(fixture('cert-a.pem'))
    const certB = fs.readFileSync(fixture('cert-b.pem'))
    const artifact = `${cli.url}/v8/artifacts/${HASH}?slug=web`

    assert.equal((await request(artifact, certA, { method: 'PUT', body: 'over tls' })).status, 202)
    assert.deepEqual(await request(artifact, certA), { status: 200, text: 'over tls' })
    assert.equal(await presented(cli.url), 'larder test a')
    await assert.rejects(request(artifact, certB), 'a client trusting another certificate refuses the server')
    assert.notEqual(await plainAnswer(cli.url), 200, 'plain HTTP is not served on that port')
    await eventually(() => cli.stdout.includes(`tls ${cert}`), `the certificate is named:\n${cli.stdout.join('\n')}`)
    assert.ok(!cli.stdout.some((line) => line.startsWith('warning:')), 'the key is 0600: no warning')

    // Renewed: files replaced in place, then SIGHUP.
    fs.copyFileSync(fixture('cert-b.pem'), cert)
    fs.copyFileSync(fixture('key-b.pem'), key)
    cli.child.kill('SIGHUP')
    await eventually(() => cli.stdout.includes(`tls reloaded (SIGHUP): ${cert}`), `reloaded:\n${cli.stdout.join('\n')}`)
    assert.equal(await presented(cli.url), 'larder test b')
    assert.deepEqual(await request(artifact, certB), { status: 200, text: 'over tls' })

    // Half renewed (the certificate of one pair, the key of another): refused, b kept.
    fs.copyFileSync(fixture('cert-a.pem'), cert)
    cli.child.kill('SIGHUP')
    await eventually(
      () =>
        cli.stdout.some(
          (line) => line.startsWith('tls not reloaded (SIGHUP): --tls-cert') && line.endsWith('the server keeps its certificate'),
        ),
      `refused:\n${cli.stdout.join('\n')}`,
    )
    assert.equal(await presented(cli.url), 'larder test b')
    assert.equal((await request(artifact, certB)).status, 200)

    assert.equal(await cli.stop(), 0)
    assert.doesNotMatch(cli.stdout.join('\n') + cli.stderr(), /S3CRET|PRIVATE KEY/)
  })

  test('mistakes at start exit 2 naming the file: one flag without the other, a file that is not there, a pair that does not match', async () => {
    const dir = tempDir('larder-serve-tls')
    const start = (args: string[]) => startCli(['serve', '--port', '0', '--dir', path.join(dir, 'cache'), ...args])
    const alone = await start(['--tls-cert', fixture('cert-a.pem')])
    assert.equal(await alone.exited, 2)
    assert.match(alone.stderr(), /--tls-cert and --tls-key go together/)
    const missing = await start(['--tls-cert', path.join(dir, 'none.pem'), '--tls-key', fixture('key-a.pem')])
    assert.equal(await missing.exited, 2)
    assert.match(missing.stderr(), /--tls-cert: .*none\.pem: cannot be read \(ENOENT\)/)
    const mismatched = await start(['--tls-cert', fixture('cert-a.pem'), '--tls-key', fixture('key-b.pem')])
    assert.equal(await mismatched.exited, 2)
    assert.match(mismatched.stderr(), /not a usable pair/)
    const notPem = await start(['--tls-cert', fixture('key-a.pem'), '--tls-key', fixture('cert-a.pem')])
    assert.equal(await notPem.exited, 2)
    assert.match(notPem.stderr(), /not a usable pair/)
    assert.doesNotMatch(alone.stderr() + missing.stderr() + mismatched.stderr() + notPem.stderr(), /PRIVATE KEY|BEGIN/)
  })
})
