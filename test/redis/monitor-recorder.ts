import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { eventually } from './server.ts'

/**
 * What reaches a Redis server, seen with MONITOR: either the commands clients sent (`'clients'`)
 * or those the scripts ran inside it (`'scripts'`), each as [name in lower case, ...args].
 * `during` resolves to the commands `op` caused, once a marker sent after it shows: MONITOR
 * delivers late, and a command sent before `op` (its set-up) can arrive after `op` starts, so
 * an ECHO on each side bounds what belongs to `op`.
 */
export class MonitorRecorder {
  readonly #url: string
  readonly #which: 'clients' | 'scripts'
  #monitor: Redis | undefined
  #source: Redis | undefined
  #marker: Redis | undefined
  readonly #seen: string[][] = []
  #marks = 0

  constructor(url: string, which: 'clients' | 'scripts') {
    this.#url = url
    this.#which = which
  }

  async start(): Promise<void> {
    this.#marker = new Redis(this.#url)
    this.#source = new Redis(this.#url)
    this.#monitor = await this.#source.monitor()
    this.#monitor.on('monitor', (_time: string, args: string[], source: string) => {
      const name = args[0]!.toLowerCase()
      if ((source === 'lua') === (this.#which === 'scripts') || name === 'echo') this.#seen.push([name, ...args.slice(1)])
    })
  }

  async during(op: () => Promise<unknown>): Promise<string[][]> {
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
    this.#source?.disconnect()
    this.#marker?.disconnect()
  }
}
