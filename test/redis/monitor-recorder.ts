import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { eventually } from './server.ts'

/**
 * What reaches a Redis server, seen with MONITOR: either the commands clients sent (`'clients'`)
 * or those the scripts ran inside it (`'scripts'`), each as [name in lower case, ...args].
 * `during` resolves to the commands `op` caused, once a marker sent after it shows: MONITOR
 * delivers late, and a command sent before `op` (its set-up) can arrive after `op` starts, so
 * an ECHO on each side bounds what belongs to `op`.
 *
 * The MONITOR connection is made here, not with ioredis's `monitor()`: ioredis marks a
 * connection as monitoring one microtask after MONITOR's OK, so a monitor line that arrives in
 * the same read as that OK is taken for a command's reply, and ioredis emits "Command queue
 * state error" on a connection `monitor()` has not yet handed us (an unhandled error event; one
 * CI run on Node 24 lost a whole suite to it). Lines in that window precede every mark, so
 * that error is ignored until monitoring starts; any other error fails the next `during`.
 */
export class MonitorRecorder {
  readonly #url: string
  readonly #which: 'clients' | 'scripts'
  #monitor: Redis | undefined
  #error: Error | undefined
  #marker: Redis | undefined
  readonly #seen: string[][] = []
  #marks = 0

  constructor(url: string, which: 'clients' | 'scripts') {
    this.#url = url
    this.#which = which
  }

  async start(): Promise<void> {
    this.#marker = new Redis(this.#url)
    const monitor = new Redis(this.#url, { monitor: true })
    this.#monitor = monitor
    let monitoring = false
    monitor.on('error', (error: Error) => {
      if (monitoring || !error.message.startsWith('Command queue state error')) this.#error ??= error
    })
    await new Promise<void>((resolve) => monitor.once('monitoring', () => resolve()))
    monitoring = true
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      const name = args[0]!.toLowerCase()
      if ((source === 'lua') === (this.#which === 'scripts') || name === 'echo') this.#seen.push([name, ...args.slice(1)])
    })
  }

  async during(op: () => Promise<unknown>): Promise<string[][]> {
    if (this.#error) throw this.#error
    const start = await this.#mark()
    await op()
    const end = await this.#mark()
    return this.#seen.slice(this.#indexOf(start) + 1, this.#indexOf(end))
  }

  async #mark(): Promise<string> {
    const mark = `mark-${++this.#marks}`
    await this.#marker!.echo(mark)
    assert.ok(await eventually(() => this.#indexOf(mark) >= 0))
    return mark
  }

  #indexOf(mark: string): number {
    return this.#seen.findIndex(([name, arg]) => name === 'echo' && arg === mark)
  }

  stop(): void {
    this.#monitor?.disconnect()
    this.#marker?.disconnect()
  }
}
