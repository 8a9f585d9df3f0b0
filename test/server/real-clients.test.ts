/**
 * End to end with the real clients: the `turbo` and `nx` CLIs from npm (dev dependencies) in
 * scratch workspaces, and Debian's `ccache` compiling C files with `gcc`, each against a real
 * `larder serve` process on a loopback port. First run: misses and uploads; second run, local
 * caches removed: remote hits. Cut off from the internet: telemetry, update notifiers and
 * Nx Cloud off, every API URL on loopback, HOME in the scratch folder.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { Larder } from '../../src/index.ts'
import { tempDir } from '../helpers.ts'
import { root, startCli, type CliServer } from './helpers.ts'

const run = promisify(execFile)
const TOKEN = 'e2e-token'

async function sh(file: string, args: string[], cwd: string, env: Record<string, string>): Promise<string> {
  try {
    const { stdout, stderr } = await run(file, args, { cwd, env, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 })
    return stdout + stderr
  } catch (error) {
    const e = error as Error & { stdout?: string; stderr?: string }
    throw new Error(`${file} ${args.join(' ')} failed: ${e.message}\n--- stdout\n${e.stdout ?? ''}\n--- stderr\n${e.stderr ?? ''}`, {
      cause: error,
    })
  }
}

/** A clean environment: PATH and nothing of the host's caches, npm or CI settings. */
function isolated(home: string, extra: Record<string, string>): Record<string, string> {
  fs.mkdirSync(home, { recursive: true })
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, '.config'),
    XDG_CACHE_HOME: path.join(home, '.cache'),
    npm_config_update_notifier: 'false',
    NO_UPDATE_NOTIFIER: '1',
    DO_NOT_TRACK: '1',
    ...extra,
  }
}

function write(dir: string, files: Record<string, string>): void {
  for (const [name, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true })
    fs.writeFileSync(path.join(dir, name), content)
  }
}

/** A workspace of two packages, b depending on a, each building dist/out.txt. */
function workspace(dir: string, extra: Record<string, string>): void {
  const build = (name: string): string =>
    `require('fs').mkdirSync('dist',{recursive:true});require('fs').writeFileSync('dist/out.txt','${name} built')\n`
  write(dir, {
    '.gitignore': 'node_modules\n.turbo\n.nx\ndist\n',
    '.npmrc': 'update-notifier=false\nfund=false\naudit=false\n',
    'packages/a/package.json': JSON.stringify({ name: 'a', version: '1.0.0', scripts: { build: 'node build.js' } }),
    'packages/a/build.js': build('a'),
    'packages/b/package.json': JSON.stringify({
      name: 'b',
      version: '1.0.0',
      scripts: { build: 'node build.js' },
      dependencies: { a: '1.0.0' },
    }),
    'packages/b/build.js': build('b'),
    ...extra,
  })
}

async function server(): Promise<CliServer & { dir: string }> {
  const dir = path.join(tempDir('larder-e2e'), 'cache')
  const s = await startCli(['--dir', dir, 'serve', '--port', '0', '--token', TOKEN, '--log-requests'])
  assert.match(s.url, /^http:\/\/127\.0\.0\.1:\d+$/)
  return Object.assign(s, { dir })
}

test('turbo 2.x: the first run uploads, the second (local cache removed) is a REMOTE hit with its outputs restored', async () => {
  const s = await server()
  const ws = tempDir('larder-turbo')
  workspace(ws, {
    'package.json': JSON.stringify({ name: 'ws', private: true, packageManager: 'npm@10.0.0', workspaces: ['packages/*'] }),
    'turbo.json': JSON.stringify({ tasks: { build: { dependsOn: ['^build'], outputs: ['dist/**'] } } }),
  })
  const env = isolated(path.join(ws, 'home'), {
    TURBO_API: s.url,
    TURBO_TOKEN: TOKEN,
    TURBO_TEAM: 'e2e',
    TURBO_TELEMETRY_DISABLED: '1',
    TURBO_NO_UPDATE_NOTIFIER: '1',
  })
  const turbo = path.join(root, 'node_modules', '.bin', 'turbo')
  const first = await sh(turbo, ['run', 'build', '--summarize'], ws, env)
  assert.match(first, /cache miss, executing/)
  type TurboSummary = { tasks: { taskId: string; cache: { status: string; source?: string } }[] }
  const summaries = (): TurboSummary[] =>
    fs
      .readdirSync(path.join(ws, '.turbo', 'runs'))
      .map((f) => JSON.parse(fs.readFileSync(path.join(ws, '.turbo', 'runs', f), 'utf8')) as TurboSummary)
  assert.deepEqual(
    summaries()[0]!.tasks.map((t) => t.cache.status),
    ['MISS', 'MISS'],
  )
  // The request log names routes, not the hashes (the clients' business).
  assert.equal((s.stderr().match(/PUT \/v8\/artifacts\/:hash 202/g) ?? []).length, 2, s.stderr())

  for (const local of ['.turbo', 'packages/a/.turbo', 'packages/b/.turbo', 'packages/a/dist', 'packages/b/dist'])
    fs.rmSync(path.join(ws, local), { recursive: true, force: true })
  const second = await sh(turbo, ['run', 'build', '--summarize'], ws, env)
  assert.match(second, /FULL TURBO/)
  const tasks = summaries()[0]!.tasks
  assert.deepEqual(
    tasks.map((t) => [t.cache.status, t.cache.source]),
    [
      ['HIT', 'REMOTE'],
      ['HIT', 'REMOTE'],
    ],
  )
  assert.equal(fs.readFileSync(path.join(ws, 'packages/b/dist/out.txt'), 'utf8'), 'b built')
  assert.equal((s.stderr().match(/GET \/v8\/artifacts\/:hash 200/g) ?? []).length, 2)
  assert.equal(await s.stop(), 0)
})

test('nx ≥ 20.8 (self-hosted remote cache): the first run uploads, the second (.nx removed) reads [remote cache] and restores the outputs', async () => {
  const s = await server()
  const ws = tempDir('larder-nx')
  workspace(ws, {
    'package.json': JSON.stringify({ name: 'ws', private: true, workspaces: ['packages/*'] }),
    'nx.json': JSON.stringify({ targetDefaults: { build: { cache: true, outputs: ['{projectRoot}/dist'], dependsOn: ['^build'] } } }),
  })
  // nx must be found in the workspace's own node_modules: links to this repository's copy.
  fs.mkdirSync(path.join(ws, 'node_modules'))
  for (const name of ['nx', '@nx']) fs.symlinkSync(path.join(root, 'node_modules', name), path.join(ws, 'node_modules', name))
  const env = isolated(path.join(ws, 'home'), {
    NX_SELF_HOSTED_REMOTE_CACHE_SERVER: s.url,
    NX_SELF_HOSTED_REMOTE_CACHE_ACCESS_TOKEN: TOKEN,
    NX_DAEMON: 'false',
    NX_TUI: 'false',
    NX_NO_CLOUD: 'true',
    NX_SKIP_NX_CACHE: 'false',
  })
  const nx = [path.join(ws, 'node_modules', 'nx', 'dist', 'bin', 'nx.js'), 'run-many', '-t', 'build', '--output-style=static']
  const first = await sh(process.execPath, nx, ws, env)
  assert.match(first, /Successfully ran target build for 2 projects/)
  assert.equal((s.stderr().match(/PUT \/v1\/cache\/:hash 200/g) ?? []).length, 2, s.stderr())

  for (const local of ['.nx', 'packages/a/dist', 'packages/b/dist']) fs.rmSync(path.join(ws, local), { recursive: true, force: true })
  const second = await sh(process.execPath, nx, ws, env)
  assert.equal((second.match(/\[remote cache\]/g) ?? []).length, 2, second)
  assert.match(second, /2\/2 hit/)
  assert.equal(fs.readFileSync(path.join(ws, 'packages/a/dist/out.txt'), 'utf8'), 'a built')
  assert.equal(await s.stop(), 0)
})

test('ccache (HTTP remote storage, bearer token): the first build misses and uploads, the second (local cache removed) hits the remote for every file', async (t) => {
  if (spawnSync('ccache', ['--version']).status !== 0 || spawnSync('gcc', ['--version']).status !== 0) {
    t.skip('ccache or gcc is not installed (.ci/run installs both)')
    return
  }
  const s = await server()
  const work = tempDir('larder-ccache')
  const files = ['f1', 'f2', 'f3']
  write(work, Object.fromEntries(files.map((f, i) => [`src/${f}.c`, `int ${f}(int x) { return x * ${i + 2} + 1; }\n`])))
  for (const layout of ['subdirs', 'bazel']) {
    const env = isolated(path.join(work, 'home'), {
      CCACHE_DIR: path.join(work, `local-${layout}`),
      CCACHE_CONFIGPATH: path.join(work, 'ccache.conf'),
      CCACHE_REMOTE_STORAGE: `${s.url}/ccache|layout=${layout}|bearer-token=${TOKEN}`,
      CCACHE_NOHASHDIR: '1',
      CCACHE_BASEDIR: work,
    })
    fs.writeFileSync(path.join(work, 'ccache.conf'), '')
    const stats = async (): Promise<Record<string, number>> =>
      Object.fromEntries(
        (await sh('ccache', ['--print-stats'], work, env))
          .trim()
          .split('\n')
          .map((l) => l.split('\t'))
          .map(([k, v]): [string, number] => [String(k), Number(v)]),
      )
    const compileAll = async (): Promise<void> => {
      for (const f of files) await sh('ccache', ['gcc', '-c', `src/${f}.c`, '-o', `${f}-${layout}.o`], work, env)
    }
    await compileAll()
    const first = await stats()
    assert.equal(first.remote_storage_hit, 0, layout)
    assert.equal(first.remote_storage_miss, 3, layout)
    assert.ok(first.remote_storage_write! >= 3, `${layout}: ${JSON.stringify(first)}`)
    fs.rmSync(path.join(work, `local-${layout}`), { recursive: true, force: true })
    await compileAll()
    const second = await stats()
    assert.equal(second.remote_storage_hit, 3, `${layout}: ${JSON.stringify(second)}`)
    assert.equal(second.remote_storage_error, 0)
  }
  assert.equal(await s.stop(), 0)
  // The log names the route only (`/ccache/*`): the keys stored say which layouts came.
  const stored = await Larder.open({ dir: s.dir, namespace: 'ccache', readOnly: true })
  const keys = (await stored.entries()).map((e) => e.key)
  await stored.close()
  assert.ok(
    keys.some((k) => /^ac\/[0-9a-f]{64}$/.test(k)),
    `the bazel layout went through /ccache/ac/: ${keys.join(' ')}`,
  )
})
