/** Ways a Redis test looks at what larder left in Redis, from outside the instance under test. */
import { Redis } from 'ioredis'
import { Larder } from '../../src/index.ts'

/** What a fresh instance with no files and no bus reads of `key` from Redis (opened and closed here). */
export async function readFromRedis(url: string, prefix: string, key: string): Promise<unknown> {
  const reader = await Larder.open({ dir: false, memory: { maxEntries: 10 }, maintenance: false, bus: false, redis: { url, prefix } })
  try {
    return await reader.get(key)
  } finally {
    await reader.close()
  }
}

/** A plain subscriber of `channel` that pushes each message's text into `heard`; the caller quits it. */
export async function listenTo(url: string, channel: string, heard: string[]): Promise<Redis> {
  const listener = new Redis(url)
  listener.on('message', (_channel: string, text: string) => heard.push(text))
  await listener.subscribe(channel)
  return listener
}
