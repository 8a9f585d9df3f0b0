/**
 * The child side of harness.ts's RPC: answers each request `{ id, op, ...args }` with
 * `{ id, ok: true, result }` or `{ id, ok: false, error }`, closes its caches and exits on
 * `{ op: 'exit' }` (or when the parent goes away), and announces `{ type: 'ready' }`.
 */
export function serveRequests(handle: (message: Record<string, unknown>) => Promise<unknown>, closeAll: () => Promise<unknown>): void {
  process.on('message', (raw) => {
    const message = raw as Record<string, unknown>
    if (message.op === 'exit') {
      void closeAll().finally(() => process.exit(0))
      return
    }
    handle(message).then(
      (result) => process.send!({ id: message.id, ok: true, result }),
      (error: unknown) => {
        const e = error as { message?: string; code?: string; name?: string; stack?: string }
        process.send!({ id: message.id, ok: false, error: { message: e.stack ?? e.message ?? String(error), code: e.code, name: e.name } })
      },
    )
  })
  // The parent's going away must not leave this process behind.
  process.on('disconnect', () => process.exit(0))
  process.send!({ type: 'ready' })
}
