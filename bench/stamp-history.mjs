// A fleet's tag-stamp history in Redis (one stamp per tag invalidated; past 100,000 the first
// instance that reads them folds the oldest, keeping 90,000, in the background after its open)
// and what it costs an instance: open time, files written into a new directory, the longest
// event-loop stall while the stamps are merged, at open and after a reconnect (CLIENT KILL of
// larder's connections, as a failover would), then the hash once folded and a second
// instance's open. Starts its own redis-server on a free loopback port (persistence off), each
// case in its own process.
//
//   npm run build && node bench/stamp-history.mjs [--stamps 200000]
//
// Prints one line per case: dir false / a new directory.
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : fallback
}

if (process.argv[2] === 'case') {
  await runCase(JSON.parse(process.argv[3]))
  process.exit(0)
}

const STAMPS = arg('stamps', 200_000)
const port = await new Promise((resolve) => {
  const server = net.createServer().listen(0, '127.0.0.1', () => {
    const { port } = server.address()
    server.close(() => resolve(port))
  })
})
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'larder-stamps-'))
const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', work], {
  stdio: 'ignore',
})
try {
  for (let i = 0; i < 50; i++) {
    try {
      execFileSync('redis-cli', ['-p', String(port), 'ping'], { stdio: 'ignore' })
      break
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  for (const dir of [false, true]) {
    const args = { port, stamps: STAMPS, dir: dir ? path.join(work, `dir-${Date.now()}`) : false, namespace: `history-${dir}` }
    const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), 'case', JSON.stringify(args)], { encoding: 'utf8' })
    process.stdout.write(out)
  }
} finally {
  redis.kill()
  fs.rmSync(work, { recursive: true, force: true })
}

async function runCase({ port, stamps, dir, namespace }) {
  const { Larder } = await import(path.join(here, '..', 'dist', 'index.js'))
  const { Redis } = await import('ioredis')
  const url = `redis://127.0.0.1:${port}`
  const client = new Redis(url)
  // The namespace's stamp hash, found by making one stamp through larder, then filled with
  // stamps a day old and older, one distinct time each, plus that one of now.
  const before = new Set(await client.keys('*tags'))
  const seed = await Larder.open({ dir: false, namespace, redis: { url } })
  await seed.invalidateTags(['seed'])
  await seed.close()
  const key = (await client.keys('*tags')).find((k) => !before.has(k))
  const old = Date.now() - 86_400_000
  for (let j = 0; j < stamps; j += 1000) {
    const fields = []
    for (let i = j; i < Math.min(stamps, j + 1000); i++) fields.push(`tag:${i}`, String(old + i))
    await client.hset(key, ...fields)
  }
  let last = performance.now()
  let stall = 0
  const watch = setInterval(() => {
    const now = performance.now()
    stall = Math.max(stall, now - last)
    last = now
  }, 5)
  const begun = performance.now()
  const cache = await Larder.open({ dir: dir === false ? false : dir, namespace, redis: { url } })
  const openMs = performance.now() - begun
  const openStall = stall
  const files = dir === false ? 0 : countFiles(dir)
  // The fold goes on after open() resolves (it does not wait for it): wait for it here.
  let fields = await client.hlen(key)
  for (let waited = 0; fields > 100_000 && waited < 10_000; waited += 50) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    fields = await client.hlen(key)
  }
  const secondBegun = performance.now()
  const second = await Larder.open({ dir: false, namespace, redis: { url } })
  const secondMs = performance.now() - secondBegun
  await second.close()
  await new Promise((resolve) => setTimeout(resolve, 300))
  stall = 0
  await client.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes')
  await client.client('KILL', 'TYPE', 'pubsub')
  await new Promise((resolve) => setTimeout(resolve, 6000))
  clearInterval(watch)
  console.log(
    `${dir === false ? 'dir: false   ' : 'new directory'}  ${stamps} stamps: open ${Math.round(openMs)} ms, ` +
      `longest stall at open ${Math.round(openStall)} ms, after a reconnect ${Math.round(stall)} ms` +
      (dir === false ? '' : `, files in the directory ${files}`) +
      `; the hash after: ${fields} fields, a second instance opens in ${Math.round(secondMs)} ms`,
  )
  await cache.close()
  client.disconnect()
}

function countFiles(dir) {
  let n = 0
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) if (!entry.isDirectory()) n++
  return n
}
