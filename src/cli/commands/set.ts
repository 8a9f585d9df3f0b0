import fs from 'node:fs'
import { Command, Option } from 'commander'
import { collectTag, durationArgument } from '../arguments.js'
import { CliContext, CliFailure, EXIT } from '../context.js'
import { size } from '../format.js'
import { validateKey, validateTags } from '../../validate.js'

export function setCommand(): Command {
  return new Command('set')
    .description('store the bytes of FILE (or stdin, with - or no FILE) under KEY, streamed: any size, bounded memory')
    .argument('<key>', 'the key')
    .argument('[file]', 'a file to read, or - for stdin', '-')
    .addOption(
      new Option('--ttl <duration>', 'expire after this long (90s, 15m, 7d); default never').env('LARDER_TTL').argParser(durationArgument),
    )
    .addOption(new Option('--tag <tag>', 'tag the entry (repeatable)').argParser(collectTag))
    .action(async (key: string, file: string, flags: { ttl?: number; tag?: string[] }, command: Command) => {
      const ctx = new CliContext(command)
      // Refused before the cache is opened: a bad key or tag creates no cache (nor a directory).
      validateKey(key)
      if (flags.tag !== undefined) validateTags(flags.tag, 'tag')
      if (file === '-' && process.stdin.isTTY)
        throw new CliFailure('set reads the value from stdin: pipe it in, or name a FILE', EXIT.usage)
      let source: NodeJS.ReadableStream
      let bytes = 0
      if (file === '-') {
        source = process.stdin
      } else {
        // A pipe or a device reads as a stream too: `larder set key <(build)` names /dev/fd/63.
        const stat = fs.statSync(file, { throwIfNoEntry: false })
        if (stat === undefined) throw new CliFailure(`${file}: no such file`, EXIT.usage)
        if (stat.isDirectory()) throw new CliFailure(`${file}: is a directory, not a file`, EXIT.usage)
        if (!stat.isFile() && !stat.isFIFO() && !stat.isCharacterDevice())
          throw new CliFailure(`${file}: not a file, pipe or character device`, EXIT.usage)
        source = fs.createReadStream(file)
      }
      async function* counted(): AsyncGenerator<Buffer> {
        for await (const chunk of source) {
          const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
          bytes += buffer.length
          yield buffer
        }
      }
      await ctx.requireKeysIfSealed('write to it')
      await ctx.withCache('create', (cache) =>
        cache.setStream(key, counted(), {
          ...(flags.ttl !== undefined ? { ttl: flags.ttl } : {}),
          ...(flags.tag !== undefined ? { tags: flags.tag } : {}),
        }),
      )
      ctx.print(
        () => `stored ${JSON.stringify(key)} (${size(bytes)})`,
        () => ({ key, bytes }),
      )
    })
}
