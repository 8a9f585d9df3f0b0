// `npm run docs:options`: writes README.md's table of options (Configuration) from the option
// table, the one place options are declared for configuration. test/config-docs.test.ts fails
// when the README's copy is out of date.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { withOptionsTable } from '../src/config/options-doc.ts'

const readme = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'README.md')
fs.writeFileSync(readme, withOptionsTable(fs.readFileSync(readme, 'utf8')))
