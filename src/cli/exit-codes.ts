/** The bin's exit codes: 0 ok, 1 the work failed, 2 a usage error, 130 interrupted. A file of
 *  its own, so the bin can name them before it loads any command (bin.ts). */
export const EXIT = { ok: 0, failed: 1, usage: 2, interrupted: 130 } as const
