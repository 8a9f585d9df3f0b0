import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { withOptionsTable } from '../src/config/options-doc.ts'
import { resolveOptions } from '../src/options.ts'

test("README's table of options is the one generated from the option table (npm run docs:options)", () => {
  const readme = fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'README.md'), 'utf8')
  assert.equal(readme, withOptionsTable(readme), 'README.md is out of date: run npm run docs:options')
})

/** The README's Options table, `option` → its `default` cell. */
function documentedDefaults(readme: string): Map<string, string> {
  const section = readme.slice(readme.indexOf('### Options'), readme.indexOf('### Stats'))
  const cells = new Map<string, string>()
  for (const line of section.split('\n')) {
    const match = /^\| `(\w+)` \| (.+?) \|/.exec(line)
    if (match !== null) cells.set(match[1]!, match[2]!)
  }
  return cells
}

/** A default cell's first code span as an option value: `'32KiB'`, `1`, `false`, or an object
 *  literal of the README's kind (`{ interval: '1h', workers: 1 }`, bare durations as `10s`). */
function documentedValue(cell: string): unknown {
  const code = /`([^`]+)`/.exec(cell)![1]!
  const json = code
    .replace(/'/g, '"')
    .replace(/(\w+):/g, '"$1":')
    .replace(/: (\d+(?:ms|s|m|h|d))\b/g, ': "$1"')
  return JSON.parse(json)
}

test("the README's Options table gives each option's real default (given as documented, it resolves as left out)", () => {
  const readme = fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'README.md'), 'utf8')
  const cells = documentedDefaults(readme)
  const dir = path.join(os.tmpdir(), 'larder-docs-defaults')
  // Options whose cell is one value; `memoryPressure`'s holds with the memory tier on.
  const literal = ['readOnly', 'namespace', 'defaultTtl', 'compression', 'compressionLevel', 'compressThreshold', 'compressLater']
  const more = ['streamCompression', 'serializer', 'maxValueSize', 'memory', 'failOpen', 'breaker', 'durable', 'maintenance']
  const checked = [...literal, ...more, 'writeStrategy', 'writeBack', 'shared', 'memoryPressure'] as const
  for (const name of checked) {
    const cell = cells.get(name)
    assert.ok(cell !== undefined, `README's Options table has no row for ${name}`)
    const base = name === 'memoryPressure' ? { dir, memory: true } : { dir }
    const resolved = resolveOptions(base) as unknown as Record<string, unknown>
    const given = resolveOptions({ ...base, [name]: documentedValue(cell) }) as unknown as Record<string, unknown>
    assert.deepEqual(given[name], resolved[name], `README's default for ${name} (${cell}) is not the one options.ts fills in`)
  }
})
