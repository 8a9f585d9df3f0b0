// The floor under issue 13's 1 KiB goal (an encrypted get ≤ 1.15× an unencrypted one): in one
// process, CPU per warm file-tier get of ~1 KiB ORM rows, unencrypted and encrypted
// (alternating rounds over 20,000 entries each, the memory tier off), beside the bare
// AES-256-GCM open that an encrypted get cannot avoid: node:crypto's createDecipheriv, the two
// parts of authenticated data, the tag, update and final, on 20,000 distinct sealed payloads
// of the same size. (plain get + bare open) / plain get is the lowest ratio any encrypted get
// can reach on this machine and Node.
//
//   npm run build && node bench/encryption-floor.mjs [--n 20000] [--rounds 5]
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { smallKey, smallValue } from './data.mjs'

const here = path.dirname(new URL(import.meta.url).pathname)
const argv = process.argv.slice(2)
const flag = (name, fallback) => (argv.includes(name) ? Number(argv[argv.indexOf(name) + 1]) : fallback)
const n = flag('--n', 20_000)
const rounds = flag('--rounds', 5)
const { Larder } = await import(path.join(here, '..', 'dist', 'index.js'))

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'larder-encryption-floor-'))
const encryption = { keys: { bench: randomBytes(32) }, activeKey: 'bench' }
const keys = Array.from({ length: n }, (_, i) => smallKey(i))
const cpuPerOp = (run) => {
  const before = process.cpuUsage()
  run()
  const used = process.cpuUsage(before)
  return (used.user + used.system) / n
}
const asyncCpuPerOp = async (run) => {
  const before = process.cpuUsage()
  await run()
  const used = process.cpuUsage(before)
  return (used.user + used.system) / n
}
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

try {
  const caches = {}
  for (const [name, extra] of [
    ['plain', {}],
    ['encrypted', { encryption }],
  ]) {
    const dir = path.join(work, name)
    const writer = await Larder.open({ dir, maintenance: false, ...extra })
    for (let i = 0; i < n; i++) await writer.set(keys[i], smallValue(i))
    await writer.close()
    caches[name] = await Larder.open({ dir, memory: false, maintenance: false, ...extra })
  }
  // The payloads an encrypted get opens: the same sizes (the serialized rows), sealed alike.
  const boxes = keys.map((_, i) => {
    const plain = Buffer.from(JSON.stringify(smallValue(i)))
    const nonce = randomBytes(12)
    const head = randomBytes(120)
    const trailer = randomBytes(20)
    const cipher = createCipheriv('aes-256-gcm', encryption.keys.bench, nonce, { authTagLength: 16 })
    cipher.setAAD(head)
    cipher.setAAD(trailer)
    return { nonce, head, trailer, sealed: Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()]) }
  })
  const key = createSecretKey(encryption.keys.bench) // as larder holds its keys: made once
  const open = ({ nonce, head, trailer, sealed }) => {
    const end = sealed.length - 16
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 })
    decipher.setAAD(head)
    decipher.setAAD(trailer)
    decipher.setAuthTag(sealed.subarray(end))
    const first = decipher.update(sealed.subarray(0, end))
    decipher.final()
    return first
  }
  const samples = { plain: [], encrypted: [], open: [] }
  const order = keys.map((_, i) => (i * 7919) % n)
  for (let round = 0; round <= rounds; round++) {
    const taken = {}
    for (const name of ['plain', 'encrypted']) {
      taken[name] = await asyncCpuPerOp(async () => {
        for (const i of order) if ((await caches[name].get(keys[i])) === undefined) throw new Error(`${name} missed ${keys[i]}`)
      })
    }
    taken.open = cpuPerOp(() => {
      for (const i of order) open(boxes[i])
    })
    if (round === 0) continue // warm-up: the JIT and the page cache
    for (const name of Object.keys(samples)) samples[name].push(taken[name])
  }
  for (const cache of Object.values(caches)) await cache.close()
  const [plain, encrypted, bare] = [median(samples.plain), median(samples.encrypted), median(samples.open)]
  console.log(`# Encryption's floor on a 1 KiB get (node ${process.version}, ${n} entries, median of ${rounds} rounds after one warm-up)`)
  console.log('')
  console.log('| | CPU µs per op |')
  console.log('|---|---:|')
  console.log(`| file-tier get, unencrypted | ${plain.toFixed(1)} |`)
  console.log(`| file-tier get, encrypted | ${encrypted.toFixed(1)} |`)
  console.log(`| bare AES-256-GCM open of a 1 KiB payload (node:crypto) | ${bare.toFixed(1)} |`)
  console.log('')
  console.log(
    `Encrypted / unencrypted: ${(encrypted / plain).toFixed(2)}×. The floor, (unencrypted + bare open) / unencrypted: ${((plain + bare) / plain).toFixed(2)}×.`,
  )
  console.log(
    `Encryption's cost above the bare open: ${(encrypted - plain - bare).toFixed(1)} µs. Load average: ${os.loadavg()[0].toFixed(1)}.`,
  )
} finally {
  fs.rmSync(work, { recursive: true, force: true })
}
