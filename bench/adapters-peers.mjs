// Peer stores the adapters' benchmark measures but the project cannot depend on: @keyv/sqlite
// runs over the native sqlite3 package, whose install script package.json does not allow. It is
// installed on demand into a directory outside the repository (never its node_modules), once:
//
//   $LARDER_BENCH_PEERS, default ~/.cache/larder-bench-peers
//   npm install --prefix <that> @keyv/sqlite@4.0.8     (sqlite3 5.1.7 builds from source: minutes)
//
// sqlite3 5 is a Node-API addon, so one build serves Node 20 and 24. Anything that goes wrong
// (no network, no compiler) makes the row a skip with the reason, never a failed run.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'

/** The version measured; bump it here (and the directory's install follows). */
export const KEYV_SQLITE = '@keyv/sqlite@4.0.8'

export const peersDir = process.env.LARDER_BENCH_PEERS ?? path.join(os.homedir(), '.cache', 'larder-bench-peers')

/** The installed version of `name` in the peers directory, or undefined. */
function installedVersion(name) {
  try {
    return JSON.parse(fs.readFileSync(path.join(peersDir, 'node_modules', name, 'package.json'), 'utf8')).version
  } catch {
    return undefined
  }
}

/** Whether @keyv/sqlite loads from the peers directory, with the version asked for. */
function loads() {
  if (installedVersion('@keyv/sqlite') !== KEYV_SQLITE.split('@')[2]) return false
  try {
    createRequire(path.join(peersDir, 'package.json'))('@keyv/sqlite')
    return true
  } catch {
    return false
  }
}

/**
 * Makes @keyv/sqlite loadable from `peersDir` (installing it the first time): resolves to
 * `{ dir, versions }`, or to a string saying why the row is skipped.
 */
export function keyvSqlitePeer(log = (line) => process.stderr.write(`${line}\n`)) {
  if (!loads()) {
    log(`bench: installing ${KEYV_SQLITE} into ${peersDir} (sqlite3 builds from source once: a few minutes)`)
    try {
      fs.mkdirSync(peersDir, { recursive: true })
      if (!fs.existsSync(path.join(peersDir, 'package.json')))
        fs.writeFileSync(path.join(peersDir, 'package.json'), '{ "name": "larder-bench-peers", "private": true }\n')
      execFileSync('npm', ['install', '--prefix', peersDir, '--no-audit', '--no-fund', KEYV_SQLITE], {
        stdio: ['ignore', 'ignore', 'pipe'],
        timeout: 900_000,
      })
    } catch (error) {
      const reason = String(error.stderr ?? error.message)
        .trim()
        .split('\n')
        .slice(-3)
        .join(' ')
      return `@keyv/sqlite could not be installed into ${peersDir}: ${reason}`
    }
    if (!loads()) return `@keyv/sqlite was installed into ${peersDir} but does not load (its sqlite3 build?)`
  }
  return { dir: peersDir, versions: `@keyv/sqlite ${installedVersion('@keyv/sqlite')}, sqlite3 ${installedVersion('sqlite3')}` }
}

/** @keyv/sqlite's store class, loaded from the peers directory (in a case process). */
export function loadKeyvSqlite(dir) {
  return createRequire(path.join(dir, 'package.json'))('@keyv/sqlite').KeyvSqlite
}
