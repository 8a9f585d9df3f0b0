/**
 * A deliberate answer other than success: a status, a stable code and a message that names
 * the field or limit at fault. The error handler (app.ts) turns it into
 * `{ error: { code, message } }`; nothing else about the error (no stack, no cause) ever
 * reaches a client.
 */
export class HttpError extends Error {
  readonly statusCode: number
  readonly code: string

  constructor(statusCode: number, code: string, message: string) {
    super(message)
    this.statusCode = statusCode
    this.code = code
  }
}

export const badRequest = (code: string, message: string): HttpError => new HttpError(400, code, message)

/** The body every error answer carries, whatever the protocol (Nx's 401 aside: see auth.ts). */
export function errorBody(code: string, message: string): { error: { code: string; message: string } } {
  return { error: { code, message } }
}
