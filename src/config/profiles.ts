import type { LarderOptions } from '../options.js'

export type ProfileName = 'development' | 'production' | 'test'
export const PROFILE_NAMES: readonly ProfileName[] = ['development', 'production', 'test']

/** Where the `test` profile's directory goes: replaced at open by a fresh `mkdtemp` under
 *  `os.tmpdir()`, which close() removes (see layered-options.ts). */
export const FRESH_TEMP_DIR = Symbol('a fresh temp dir')

/**
 * The presets, the lowest layer above the defaults: every other source overrides them, one
 * option at a time (README, Configuration, has this table):
 * - `development`: today's defaults, nothing changed.
 * - `production`: entries fsynced before their rename (a power cut loses nothing written),
 *   the memory tier on, automatic maintenance on (the default interval).
 * - `test`: a fresh directory per cache, removed at close, so tests never see each other's
 *   entries or a developer's; no maintenance timer (a test's timing is its own); the memory
 *   tier on with no ttl of its own, so a value leaves memory exactly when its entry expires.
 */
export const PROFILES: Readonly<Record<ProfileName, Omit<LarderOptions, 'dir'> & { dir?: typeof FRESH_TEMP_DIR }>> = {
  development: {},
  production: { durable: true, memory: true, maintenance: {} },
  test: { dir: FRESH_TEMP_DIR, maintenance: false, memory: { ttl: 0 } },
}

export function isProfileName(value: unknown): value is ProfileName {
  return typeof value === 'string' && (PROFILE_NAMES as readonly string[]).includes(value)
}
