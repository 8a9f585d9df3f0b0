/**
 * Parent-side helper for tests that run larder in real child processes. Each child is
 * `node <script> ...args` (its compiled build, or the source through tsx: `runScript`), run
 * from the repository root with an IPC channel using the 'advanced' serialization (Maps, Dates,
 * BigInts and Buffers cross it intact).
 *
 * Messages from a child are either RPC replies (`{ id, ok, result | error }`) or events
 * (`{ type, ... }`), which `next(type)` hands out in arrival order.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { childScript, runScript, repoRoot } from './shared.ts'

export interface ChildEvent {
  type: string
  [field: string]: unknown
}

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

export class Child {
  readonly proc: ChildProcess
  readonly exited: Promise<Exit>
  readonly name: string
  #stderr = ''
  #nextId = 1
  #pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>()
  #events: ChildEvent[] = []
  #waiters: { type: string; resolve(e: ChildEvent): void; reject(e: Error): void }[] = []
  #exit: Exit | undefined

  constructor(script: string, args: string[] = [], nodeFlags: string[] = []) {
    this.name = `${script} ${args.join(' ')}`.trim()
    this.proc = spawn(process.execPath, [...nodeFlags, ...runScript(childScript(script)), ...args], {
      cwd: repoRoot,
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      serialization: 'advanced',
    })
    this.proc.stderr!.setEncoding('utf8')
    this.proc.stderr!.on('data', (text: string) => {
      this.#stderr += text
    })
    this.proc.on('message', (message: unknown) => this.#onMessage(message as Record<string, unknown>))
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.#exit = { code, signal }
        const error = new Error(
          `child ${this.name} exited (code ${code}, signal ${signal}) with messages pending${this.#stderr ? `; stderr:\n${this.#stderr}` : ''}`,
        )
        for (const p of this.#pending.values()) p.reject(error)
        this.#pending.clear()
        for (const w of this.#waiters) w.reject(error)
        this.#waiters = []
        resolve({ code, signal })
      })
    })
  }

  get stderr(): string {
    return this.#stderr
  }

  #onMessage(message: Record<string, unknown>): void {
    if (typeof message.id === 'number') {
      const p = this.#pending.get(message.id)
      if (p === undefined) return
      this.#pending.delete(message.id)
      if (message.ok) p.resolve(message.result)
      else {
        const e = message.error as { message: string; code?: string; name?: string }
        p.reject(Object.assign(new Error(`in child ${this.name}: ${e.message}`), { code: e.code, childName: e.name }))
      }
      return
    }
    const event = message as ChildEvent
    const i = this.#waiters.findIndex((w) => w.type === event.type)
    if (i >= 0) this.#waiters.splice(i, 1)[0]!.resolve(event)
    else this.#events.push(event)
  }

  /** Sends an RPC request; resolves with the child's result. */
  call<T = unknown>(op: string, payload: Record<string, unknown> = {}): Promise<T> {
    if (this.#exit !== undefined) return Promise.reject(new Error(`child ${this.name} already exited`))
    const id = this.#nextId++
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve, reject })
      this.proc.send({ id, op, ...payload })
    })
  }

  /** The next event of `type` (one that already arrived, or the next to arrive). */
  next(type: string): Promise<ChildEvent> {
    const i = this.#events.findIndex((e) => e.type === type)
    if (i >= 0) return Promise.resolve(this.#events.splice(i, 1)[0]!)
    if (this.#exit !== undefined)
      return Promise.reject(new Error(`child ${this.name} exited before sending "${type}"; stderr:\n${this.#stderr}`))
    return new Promise((resolve, reject) => this.#waiters.push({ type, resolve, reject }))
  }

  /** Whether an event of `type` has arrived and not been taken. */
  has(type: string): boolean {
    return this.#events.some((e) => e.type === type)
  }

  /** SIGKILL, then wait until it is gone. */
  async kill(): Promise<Exit> {
    if (this.#exit === undefined) this.proc.kill('SIGKILL')
    return this.exited
  }

  /** Asks an RPC child to exit cleanly and waits for it; kills it if it has not gone in `ms`. */
  async shutdown(ms = 5000): Promise<Exit> {
    if (this.#exit !== undefined) return this.#exit
    this.proc.send({ id: 0, op: 'exit' })
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), ms)
    try {
      return await this.exited
    } finally {
      clearTimeout(timer)
    }
  }
}

/** Starts a child; with `ready`, also waits for its `{ type: 'ready' }` event. */
export async function startChild(script: string, args: string[] = [], ready = true, nodeFlags: string[] = []): Promise<Child> {
  const child = new Child(script, args, nodeFlags)
  if (ready) await child.next('ready')
  return child
}
