/**
 * Reads while another process writes large values that its worker compresses after their set
 * (compress-later.test.ts): `compress-reader.ts <dir> <keys> <ms>`. Every key `k<i>` holds a
 * value whose id is i plus a multiple of 1000, with rows that say its id; anything else is
 * wrong. Prints { hits, misses, wrong, corrupt } as JSON.
 */
import { Larder } from '../../src/index.ts'

const [dir, keysText, msText] = process.argv.slice(2) as [string, string, string]
const keys = Number(keysText)
const cache = await Larder.open({ dir, maintenance: false, memory: false, readOnly: true })
const until = Date.now() + Number(msText)
let hits = 0
let misses = 0
const wrong: string[] = []
while (Date.now() < until) {
  for (let i = 0; i < keys; i++) {
    const value = (await cache.get(`k${i}`)) as { id: number; rows: string[] } | undefined
    if (value === undefined) {
      misses++
      continue
    }
    hits++
    const right =
      value.id % 1000 === i &&
      value.rows.length === 800 &&
      value.rows.every((row, r) => row === `row ${r} of value ${value.id}: the quick brown fox jumps over the lazy dog`)
    if (!right && wrong.length < 10) wrong.push(`k${i}: ${JSON.stringify(value).slice(0, 80)}`)
  }
}
const { corrupt } = await cache.stats()
await cache.close()
process.stdout.write(JSON.stringify({ hits, misses, wrong, corrupt }))
