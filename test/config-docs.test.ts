import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { withOptionsTable } from '../src/config/options-doc.ts'

test("README's table of options is the one generated from the option table (npm run docs:options)", () => {
  const readme = fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'README.md'), 'utf8')
  assert.equal(readme, withOptionsTable(readme), 'README.md is out of date: run npm run docs:options')
})
