// Installs what some tests need beside the root's node_modules: MikroORM 7 for
// test/adapters/mikro-orm-7.test.ts (its driver's peer dependency names @mikro-orm/core 7,
// which cannot share one node_modules with the root's MikroORM 6). Run by `npm test` before
// the test files, so the README's set-up stays two commands; `npm ci` there once, again only
// when its lockfile changed. MikroORM 7 needs Node >= 22.17 to run, not to be installed: the
// Node 20 pass installs it (npm warns EBADENGINE) and the Node 24 pass runs it.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

const root = path.join(import.meta.dirname, '..')
for (const dir of ['test/adapters/mikro-orm-7']) {
  const place = path.join(root, dir)
  const lock = fs.readFileSync(path.join(place, 'package-lock.json'), 'utf8')
  // npm writes node_modules/.package-lock.json at each install: the same packages, unchanged.
  const installed = path.join(place, 'node_modules', '.package-lock.json')
  const stamp = path.join(place, 'node_modules', '.installed-from')
  if (fs.existsSync(installed) && fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === lock) continue
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
  execFileSync(npm, ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: place, stdio: 'inherit' })
  fs.writeFileSync(stamp, lock)
}
