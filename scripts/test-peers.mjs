// Installs what some tests need beside the root's node_modules, a major version the root
// holds another major of: MikroORM 7 for test/adapters/mikro-orm-7.test.ts (its driver's peer
// dependency names @mikro-orm/core 7, the root has 6), Keyv 6 for
// test/adapters/keyv-6.test.ts (the root has Keyv 5, which cache-manager and cacheable take)
// and undici 8 for test/adapters/undici-8.test.ts (the root has 7, the one Node bundles).
// Run by `npm test` before the test files, so the README's set-up stays two commands; `npm ci`
// in each place once, again only when its lockfile changed. Both need Node >= 22 to run, not
// to be installed: the Node 20 pass installs them (npm warns EBADENGINE), the Node 24 pass runs them.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

const root = path.join(import.meta.dirname, '..')
for (const dir of ['test/adapters/mikro-orm-7', 'test/adapters/keyv-6', 'test/adapters/undici-8']) {
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
