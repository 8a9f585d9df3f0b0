import { pipeline } from 'node:stream/promises'
import { inspect, isDeepStrictEqual } from 'node:util'
import { Command } from 'commander'
import { CliContext, CliFailure, EXIT } from '../context.js'
import { size } from '../format.js'
import { writeDocument } from '../output.js'

/** Codecs whose stored bytes are the value itself: written to stdout byte for byte. A custom
 *  serializer's entries too, unless the config file gives the command that serializer. */
const RAW_CODECS = new Set(['bytes', 'text', 'stream', 'custom'])
/** With --json a raw value is held whole to become one document (base64): up to this size.
 *  Larger values stream only without --json. */
const JSON_RAW_LIMIT = 64 * 1024 * 1024

/** How a value without a faithful JSON form is shown to a person: all of it, on one line. */
const SHOWN = { depth: null, maxArrayLength: null, maxStringLength: null, breakLength: Infinity, colors: false } as const

/** The value as JSON if JSON holds it as it is (it parses back deeply equal), else undefined:
 *  a v8 or msgpack value may hold a Map (JSON: `{}`), a BigInt or a cycle (JSON: throws). */
function faithfulJson(value: unknown): string | undefined {
  let text: string | undefined
  try {
    text = JSON.stringify(value)
  } catch {
    return undefined
  }
  return text !== undefined && isDeepStrictEqual(JSON.parse(text), value) ? text : undefined
}

export function getCommand(): Command {
  return new Command('get')
    .description(
      'write a value to stdout: the bytes of raw and streamed entries (streamed, any size), JSON for other values; exit 1 on a miss. With --json: { key, codec, encoding: "json" | "base64", value }',
    )
    .argument('<key>', 'the key')
    .action(async (key: string, _flags: object, command: Command) => {
      const ctx = new CliContext(command)
      const miss = (): CliFailure => new CliFailure(`no entry for key ${JSON.stringify(key)}`, EXIT.failed, 'ERR_NOT_FOUND')
      await ctx.withCache('read', async (cache) => {
        // A damaged entry is told as damaged, whatever its size or codec (a read of it is a miss).
        // An entry sealed under a key this run was not given is not damaged (verify counts it
        // intact): a miss, whose message says which keys to give.
        let damaged: string | undefined
        let sealed = false
        cache.on('corrupt', ({ reason, detail }) => {
          if (reason === 'key' && detail === 'missing key') sealed = true
          else damaged = reason.replace(/^Corrupt cache entry: /, '')
        })
        const absent = (): CliFailure => {
          if (damaged !== undefined) {
            return new CliFailure(
              `the entry for key ${JSON.stringify(key)} is damaged (${damaged}): nothing written`,
              EXIT.failed,
              'ERR_CORRUPT',
            )
          }
          if (sealed) {
            return new CliFailure(
              `the entry for key ${JSON.stringify(key)} is sealed under an encryption key this command was not given (LARDER_ENCRYPTION_KEYS): nothing written`,
              EXIT.failed,
              'ERR_NOT_FOUND',
            )
          }
          return miss()
        }
        const info = await cache.info(key)
        if (info === undefined) throw absent()
        // The application's own serializer (a larder.config.mjs can give it) decodes its entries.
        const decoded =
          !RAW_CODECS.has(info.codec) || (info.codec === 'custom' && typeof (await ctx.entryOptions()).serializer === 'object')
        if (decoded) {
          const value = await cache.get(key)
          if (value === undefined) throw absent()
          const json = faithfulJson(value)
          if (ctx.json) {
            if (json === undefined) {
              throw new CliFailure(
                `the value of ${JSON.stringify(key)} (codec ${info.codec}) has no faithful JSON form (it holds a Map, Set, BigInt, Date, typed array, undefined or a cycle); without --json it is shown as Node prints it`,
                EXIT.failed,
                'ERR_NOT_JSON',
              )
            }
            writeDocument({ key, codec: info.codec, encoding: 'json', value })
          } else process.stdout.write((json ?? inspect(value, SHOWN)) + '\n')
          return
        }
        if (ctx.json && info.logicalSize > JSON_RAW_LIMIT) {
          throw new CliFailure(
            `the value of ${JSON.stringify(key)} is ${size(info.logicalSize)}; --json holds raw values up to ${size(JSON_RAW_LIMIT)}: use get without --json to stream it`,
            EXIT.failed,
            'ERR_TOO_LARGE',
          )
        }
        // Checked whole before the first byte goes out: what reads stdout (`| tar x`) cannot
        // take back bytes it was given, and the exit status of a pipe is often its last
        // command's. A damaged entry writes nothing.
        const stream = await cache.getStream(key, { verifyFirst: true })
        if (stream === undefined) throw absent()
        if (!ctx.json) {
          await pipeline(stream, process.stdout, { end: false })
          return
        }
        // Held whole (and so checked whole) before anything is written: the document is never
        // cut short by a value that fails its checksum at the end.
        const chunks: Buffer[] = []
        for await (const chunk of stream) chunks.push(chunk as Buffer)
        writeDocument({ key, codec: info.codec, encoding: 'base64', value: Buffer.concat(chunks).toString('base64') })
      })
    })
}
