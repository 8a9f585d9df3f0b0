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
        // The prompt puts the terminal in raw mode: Ctrl-C arrives as a key, not as SIGINT, and
        // readline's own answer was a rejection ("Aborted with Ctrl+C", exit 1). It interrupts
        // the run as Ctrl-C does everywhere else (exit 130); Ctrl-D (no answer) is a "no".
        const interrupt = new AbortController()
        rl.on('SIGINT', () => interrupt.abort())
        let answer = ''
        try {
          answer = await rl.question(`Remove every entry in ${ctx.dir}? [y/N] `, { signal: interrupt.signal })
        } catch (error) {
          if (interrupt.signal.aborted) throw new CliFailure('interrupted', EXIT.interrupted, 'ERR_ABORTED')
          if ((error as Error).name !== 'AbortError') throw error
          process.stderr.write('\n') // the prompt's line, left open by Ctrl-D
        } finally {
          rl.close()
        }
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
