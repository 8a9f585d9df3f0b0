/**
 * Each namespace records its name (meta/name) when a cache opens, so `larder stats` without
 * --namespace lists every namespace of a directory, by name, with its entries and size.
 * Before, on a directory whose entries all sat in named namespaces (as `larder serve` makes:
 * turbo:<team>, nx, api…), it reported 0 entries and gave no hint why.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { Larder } from '../../src/index.ts'
import { tempDir } from '../helpers.ts'
import { BIN } from './helpers.ts'

/** `larder stats --json`: the figures of one namespace, and with no --namespace the list of them all. */
interface StatsReport {
  entries: number
  namespaces?: { name: string | null; directory: string; entries: number; size: number }[]
}

function stats(dir: string, ...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LARDER_')))
  const result = spawnSync(process.execPath, [BIN, '--dir', dir, ...args, 'stats'], { encoding: 'utf8', env })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}

async function fill(dir: string, namespace: string, n: number): Promise<void> {
  const cache = await Larder.open({ dir, namespace })
  for (let i = 0; i < n; i++) await cache.set(`k${i}`, 'v'.repeat(500))
  await cache.close()
}

test('larder stats without --namespace lists every namespace by name with its entries and size', async () => {
  const dir = path.join(tempDir('larder-ns'), 'cache')
  await fill(dir, 'turbo:web', 3)
  await fill(dir, 'api', 5)
  const json = stats(dir, '--json')
  assert.equal(json.code, 0, json.stderr)
  const report = JSON.parse(json.stdout) as StatsReport
  assert.equal(report.entries, 0, 'the default namespace is empty')
  const byName = Object.fromEntries((report.namespaces ?? []).map((n) => [String(n.name), n] as const))
  assert.deepEqual(Object.keys(byName).sort(), ['api', 'turbo:web'])
  assert.equal(byName['api']?.entries, 5)
  assert.equal(byName['turbo:web']?.entries, 3)
  assert.ok((byName['api']?.size ?? 0) > 2500)
  const human = stats(dir)
  assert.match(human.stdout, /namespaces \(the figures above are the default namespace's; --namespace NAME reports one\)/)
  assert.match(human.stdout, /^api\s+5\s/m)
  assert.match(human.stdout, /^turbo:web\s+3\s/m)
  const one = JSON.parse(stats(dir, '--namespace', 'api', '--json').stdout) as StatsReport
  assert.equal(one.entries, 5)
  assert.equal(one.namespaces, undefined, 'with --namespace, that namespace only')
})

test('the name is recorded in meta/name at open; a namespace without one is listed by its directory; a read-only open records nothing', async () => {
  const dir = path.join(tempDir('larder-ns'), 'cache')
  await fill(dir, 'team/α', 1)
  const nsDir = fs.readdirSync(path.join(dir, 'v1')).find((d) => d.startsWith('ns-'))!
  const nameFile = path.join(dir, 'v1', nsDir, 'meta', 'name')
  assert.equal(fs.readFileSync(nameFile, 'utf8'), 'team/α')
  fs.rmSync(nameFile)
  const ro = await Larder.open({ dir, namespace: 'team/α', readOnly: true })
  await ro.close()
  assert.ok(!fs.existsSync(nameFile), 'read-only: nothing written')
  const listed = (JSON.parse(stats(dir, '--json').stdout) as StatsReport).namespaces ?? []
  assert.deepEqual(
    listed.map((n) => [n.name, n.directory]),
    [[null, nsDir]],
  )
  assert.match(stats(dir).stdout, new RegExp(`${nsDir} \\(name not recorded\\)\\s+1`))
  await fill(dir, 'team/α', 1)
  assert.equal(fs.readFileSync(nameFile, 'utf8'), 'team/α', 'the next writing open records it')
})

test('a link planted at meta/name is replaced, never written through', async () => {
  const base = tempDir('larder-ns')
  const dir = path.join(base, 'cache')
  await fill(dir, 'x', 1)
  const nsDir = fs.readdirSync(path.join(dir, 'v1')).find((d) => d.startsWith('ns-'))!
  const nameFile = path.join(dir, 'v1', nsDir, 'meta', 'name')
  const canary = path.join(base, 'canary')
  fs.writeFileSync(canary, 'untouched')
  fs.rmSync(nameFile)
  fs.symlinkSync(canary, nameFile)
  await fill(dir, 'x', 1)
  assert.equal(fs.readFileSync(canary, 'utf8'), 'untouched')
  assert.ok(!fs.lstatSync(nameFile).isSymbolicLink())
  assert.equal(fs.readFileSync(nameFile, 'utf8'), 'x')
})
