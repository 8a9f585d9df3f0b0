/**
 * A TCP relay in front of a test's redis-server, on a free loopback port: the network between
 * one instance and Redis, which a test can cut (`down`, `up`), slow for one command (`hold`:
 * the client's bytes holding a command name wait `ms` before they go on, as a server slow to
 * answer that command) or silence (`silence`: sockets stay open, bytes are lost both ways, as
 * a half-dead link or a broken proxy). Everything else passes unchanged, both ways.
 */
import net from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'
import { freePort } from './server.ts'

export interface RedisRelay {
  url: string
  /** Drops every connection and refuses new ones. */
  down(): Promise<void>
  /** Accepts connections again, and ends a silence. */
  up(): Promise<void>
  /** Drops the bytes of every connection ('all'), or of those that sent a SUBSCRIBE (the bus's),
   *  both ways, keeping the sockets open, new ones too, until up(). */
  silence(which?: 'all' | 'subscriber'): void
  /** Holds back what the client sends when it names `command`: `ms` at most, or until release(). */
  hold(command: string, ms: number): void
  /** How many chunks are held back now (a test waits for the command it holds to be sent). */
  holding(): number
  /** No more holding: what is held goes on now. */
  release(): void
  close(): Promise<void>
}

export async function startRelay(targetPort: number): Promise<RedisRelay> {
  const port = await freePort()
  const sockets = new Set<net.Socket>()
  let holds: { command: string; ms: number }[] = []
  // Not Promise.withResolvers: Node 20 has none.
  let release = (): void => {}
  let released = new Promise<void>((resolve) => (release = resolve))
  let server: net.Server | undefined
  let silenced: 'none' | 'all' | 'subscriber' = 'none'
  let holding = 0
  const listen = (): Promise<void> =>
    new Promise((resolve) => {
      if (server !== undefined) return resolve() // only silenced: still listening
      server = net.createServer((client) => {
        const upstream = net.connect(targetPort, '127.0.0.1')
        sockets.add(client).add(upstream)
        let subscriber = false
        const lost = (): boolean => silenced === 'all' || (silenced === 'subscriber' && subscriber)
        // One chunk at a time, in order: a held chunk delays those behind it, as a slow server would.
        let queue = Promise.resolve()
        client.on('data', (chunk: Buffer) => {
          const text = chunk.toString('latin1').toLowerCase()
          if (text.includes('subscribe')) subscriber = true
          if (lost()) return
          const held = holds.find((h) => text.includes(h.command))
          const until = released
          if (held !== undefined) holding++
          queue = queue.then(async () => {
            if (held !== undefined) {
              await Promise.race([delay(held.ms), until])
              holding--
            }
            if (!upstream.destroyed) upstream.write(chunk)
          })
        })
        upstream.on('data', (chunk: Buffer) => {
          if (!lost()) client.write(chunk)
        })
        const end = (): void => {
          client.destroy()
          upstream.destroy()
          sockets.delete(client)
          sockets.delete(upstream)
        }
        client.on('error', end).on('close', end)
        upstream.on('error', end).on('close', end)
      })
      server.listen(port, '127.0.0.1', () => resolve())
    })
  const down = (): Promise<void> =>
    new Promise((resolve) => {
      if (server === undefined) return resolve()
      server.close(() => resolve())
      server = undefined
      for (const socket of sockets) socket.destroy()
    })
  await listen()
  return {
    url: `redis://127.0.0.1:${port}`,
    down,
    up: () => {
      silenced = 'none'
      return listen()
    },
    silence: (which = 'all') => {
      silenced = which
    },
    hold: (command, ms) => void holds.push({ command: command.toLowerCase(), ms }),
    holding: () => holding,
    release: () => {
      holds = []
      release()
      released = new Promise<void>((resolve) => (release = resolve))
    },
    close: down,
  }
}
