import { pipeline } from 'node:stream/promises'
import { Command } from 'commander'
import { CliContext, CliFailure } from '../context.js'

/** Codecs whose stored bytes are the value itself: written to stdout byte for byte. */
const RAW_CODECS = new Set(['bytes', 'text', 'stream', 'custom'])

export function getCommand(): Command {
  return new Command('get')
    .description('write a value to stdout: the bytes of raw and streamed entries (streamed, any size), JSON for other values; exit 1 on a miss')
    .argument('<key>', 'the key')
    .action(async (key: string, _flags: object, command: Command) => {
      const ctx = new CliContext(command)
      await ctx.withCache(async (cache) => {
        const info = await cache.info(key)
        if (info !== undefined && RAW_CODECS.has(info.codec)) {
          const stream = await cache.getStream(key)
          if (stream !== undefined) {
            await pipeline(stream, process.stdout, { end: false })
            return
          }
        } else if (info !== undefined) {
          const value = await cache.get(key)
          if (value !== undefined) {
            process.stdout.write(JSON.stringify(value) + '\n')
            return
          }
        }
        throw new CliFailure(`no entry for key ${JSON.stringify(key)}`)
      })
    })
}
