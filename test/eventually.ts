import { setTimeout as delay } from 'node:timers/promises'

/**
 * Polls `check` until it returns true, for what is promised within a bound (another
 * process's change reaching a memory tier within about 5 ms): the assertion is that it
 * happens, never how soon, so a loaded machine cannot fail it. Throws `message` if it has
 * not happened after `giveUpMs` (far past any bound, so only a change that is never seen
 * fails).
 */
export async function eventually(check: () => Promise<boolean> | boolean, message: string, giveUpMs = 10_000): Promise<void> {
  const giveUpAt = Date.now() + giveUpMs
  while (!(await check())) {
    if (Date.now() > giveUpAt) throw new Error(`never happened: ${message}`)
    await delay(2)
  }
}
