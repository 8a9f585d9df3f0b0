import { LarderError } from '../errors.js'

/**
 * Which errors say "Redis is unwell", for the Redis tier's own breaker: every error a Redis
 * command rejects with that is not a LarderError. A connection refused or reset, a command
 * that timed out (ioredis' `commandTimeout`, or the breaker's own timeout), a client that is
 * not connected ("Stream isn't writeable", "Connection is closed"), and replies that mean a
 * server cannot serve (LOADING, BUSY, CLUSTERDOWN, TRYAGAIN, MASTERDOWN, a full server's OOM):
 * all of them mean the next command is likely to fail too. A corrupt value is not an error at
 * all (the tier reads it as a miss), so nothing of the cache's own making reaches the breaker;
 * nor does a value of another type under one of our keys (WRONGTYPE, also read as a miss).
 */
export function isRedisFailure(error: unknown): boolean {
  return !(error instanceof LarderError) && !isWrongType(error)
}

/** Redis's answer to a string command on a key holding another type (a hash, a list…): the
 *  key holds something not ours, which the tier treats as a damaged value; Redis is well. */
export function isWrongType(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('WRONGTYPE')
}
