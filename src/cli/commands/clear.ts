import readline from 'node:readline/promises'
import { Command } from 'commander'
import { CliContext, CliFailure, EXIT } from '../context.js'

export function clearCommand(): Command {
  return new Command('clear')
    .description('remove every entry of the namespace (asks first on a terminal; needs --yes otherwise)')
    .option('-y, --yes', 'do not ask')
    .action(async (flags: { yes?: boolean }, command: Command) => {
      const ctx = new CliContext(command)
      await ctx.checkConfigAndDir('maintain') // before asking: a folder that is not a cache is not cleared
      if (flags.yes !== true) {
        if (!process.stdin.isTTY || !process.stderr.isTTY) {
          throw new CliFailure('clear removes every entry: pass --yes to confirm when not on a terminal', EXIT.usage)
        }
        const rl = readline.createInterface({ input: process.stdin, output: process.stderr })
        const answer = await rl.question(`Remove every entry in ${ctx.dir}? [y/N] `)
        rl.close()
        if (!/^y(es)?$/i.test(answer.trim())) {
          ctx.print(
            () => 'nothing removed',
            () => ({ cleared: false }),
          )
          return
        }
      }
      await ctx.withCache('maintain', (cache) => cache.clear())
      ctx.print(
        () => `cleared ${ctx.dir}`,
        () => ({ cleared: true }),
      )
    })
}
