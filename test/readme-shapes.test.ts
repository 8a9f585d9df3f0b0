/**
 * The shapes README's table of methods gives for what `prune`, `verify`, `info`, `usage`,
 * `activity` and `warm` resolve to, held to what they really resolve to: a field the code
 * adds or drops and the table does not say fails here.
 */
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { Larder } from '../src/index.ts'
import { tempDir } from './helpers.ts'

const readme = fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'README.md'), 'utf8')

/** The fields of the first `{ … }` after `| \`<method>(` in the methods table: `[name, optional]`,
 *  nested objects (`byAge: [{ … }]`, `lastRun: { … }`) as their name only. */
function documentedFields(method: string): Array<[string, boolean]> {
  const row = readme.split('\n').find((line) => line.startsWith(`| \`${method}(`))
  assert.ok(row !== undefined, `README's methods table has no row for ${method}`)
  const result = row.slice(row.indexOf(' | ', 2) + 3)
  const start = result.indexOf('`{ ') + 1
  let depth = 0
  let end = start
  for (; end < result.length; end++) {
    if ('{['.includes(result[end]!)) depth++
    if ('}]'.includes(result[end]!) && --depth === 0) break
  }
  const inner = result.slice(start + 1, end)
  const fields: Array<[string, boolean]> = []
  depth = 0
  let part = ''
  for (const char of inner + ',') {
    if ('{['.includes(char)) depth++
    if ('}]'.includes(char)) depth--
    if (char === ',' && depth === 0) {
      const name = /^\s*(\w+)(\?)?/.exec(part)!
      fields.push([name[1]!, name[2] === '?'])
      part = ''
    } else part += char
  }
  return fields
}

function assertShape(method: string, value: object): void {
  const fields = documentedFields(method)
  const actual = Object.keys(value).sort()
  const required = fields.filter(([, optional]) => !optional).map(([name]) => name)
  const allowed = new Set(fields.map(([name]) => name))
  assert.deepEqual(
    actual.filter((name) => !allowed.has(name)),
    [],
    `${method}() resolves to fields README's table of methods does not list`,
  )
  assert.deepEqual(
    required.filter((name) => !actual.includes(name)).sort(),
    [],
    `README's table of methods lists fields ${method}() does not resolve to`,
  )
}

test("what prune, verify, info, usage, activity and warm resolve to has the fields README's table of methods lists", async () => {
  const dir = tempDir('larder-shapes')
  const cache = await Larder.open({ dir, maintenance: false })
  await cache.set('a', { a: 1 }, { tags: ['t'] })
  assertShape('info', (await cache.info('a'))!)
  assertShape('usage', await cache.usage())
  assertShape('verify', await cache.verify())
  assertShape('prune', await cache.prune({ pattern: 'b*', dryRun: true, listKeys: true }))
  assertShape('warm', await cache.warm(['a', 'b'], { loader: (keys) => keys.map(() => 1) }))
  await cache.close()
  const reader = await Larder.open({ dir, readOnly: true })
  assertShape('activity', await reader.activity())
  await reader.close()
})

test("README's on(event, listener) row names every event LarderEvents declares, and no other", () => {
  const declared = fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'facade', 'events.ts'), 'utf8')
  const body = declared.slice(declared.indexOf('export interface LarderEvents {'))
  const events = [...body.slice(0, body.indexOf('\n}')).matchAll(/^ {2}(\w+): \[/gm)].map((m) => m[1]!).sort()
  const row = readme.split('\n').find((line) => line.startsWith('| `on(event, listener)` |'))!
  const named = [...row.slice(row.indexOf(' | ', 2) + 3).matchAll(/(?:^|, )`(\w+)`(?= \(|,)/g)].map((m) => m[1]!).sort()
  assert.deepEqual(named, events)
})
