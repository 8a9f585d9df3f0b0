#!/usr/bin/env node
// The "limit" of bench/serve.mjs: the least a correct artifact server can do on this machine,
// so that the bench can say what any server storing bytes on this disk could reach here.
//
// A bare node:http server, no framework, no checksum, no compression, no bookkeeping. Turbo's
// API v8 as the bench speaks it:
//   PUT  /v8/artifacts/:hash  the request piped into a temp file (createWriteStream), renamed
//                             over the artifact's path once it arrived whole (exactly its
//                             Content-Length: a client that went away leaves nothing behind)
//   GET  /v8/artifacts/:hash  open, fstat, 200 with Content-Length, createReadStream (1 MiB
//                             reads) piped out
//   HEAD /v8/artifacts/:hash  the same without the body
//   anything else, a miss     404
// The bearer token is checked (as both other servers do), and `slug` picks a directory, so
// that teams are kept apart as the others keep them.
//
//   node bench/serve-limit.mjs DIR PORT TOKEN     (prints "limit listening on http://…")
import { randomBytes, timingSafeEqual, createHash } from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'

const [dir, port, token] = process.argv.slice(2)
const digest = (text) => createHash('sha256').update(text).digest()
const expected = digest(`Bearer ${token}`)
const NAME = /^[A-Za-z0-9_-]{1,128}$/
const made = new Set() // the slug directories made so far
// Reads of 1 MiB, not createReadStream's 64 KiB: a sixteenth of the reads, thread-pool round
// trips and socket writes per MB (server CPU per MB about half at 20 MiB in --quick runs), so
// the floor is the cheapest plain stream, not its default.
const READ_SIZE = 1024 * 1024

function answer(response, status, body = '') {
  response.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) })
  response.end(body)
}

async function put(request, response, file, teamDir) {
  const length = Number(request.headers['content-length'])
  if (!Number.isSafeInteger(length)) return answer(response, 411, 'Content-Length required')
  if (!made.has(teamDir)) {
    fs.mkdirSync(teamDir, { recursive: true })
    made.add(teamDir)
  }
  const temp = path.join(teamDir, `.tmp-${randomBytes(6).toString('hex')}`)
  const out = fs.createWriteStream(temp, { flags: 'wx' })
  try {
    await pipeline(request, out)
    if (out.bytesWritten !== length) throw new Error(`${out.bytesWritten} of ${length} bytes`)
    await fs.promises.rename(temp, file)
  } catch (error) {
    await fs.promises.rm(temp, { force: true })
    if (!response.destroyed) answer(response, 400, String(error.message))
    return
  }
  answer(response, 200, '{}')
}

async function get(response, file, headOnly) {
  let handle
  try {
    handle = await fs.promises.open(file, 'r')
  } catch {
    return answer(response, 404, 'not found')
  }
  const { size } = await handle.stat()
  response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size })
  if (headOnly) {
    await handle.close()
    return response.end()
  }
  await pipeline(handle.createReadStream({ highWaterMark: READ_SIZE }), response).catch(() => {})
}

const server = http.createServer((request, response) => {
  const url = new URL(request.url, 'http://x')
  const auth = request.headers.authorization
  if (auth === undefined || !timingSafeEqual(digest(auth), expected)) return answer(response, 401, 'unauthorized')
  const match = /^\/+v8\/artifacts\/([^/]+)$/.exec(url.pathname)
  const slug = url.searchParams.get('slug') ?? url.searchParams.get('teamId') ?? ''
  if (match === null || !NAME.test(match[1]) || !NAME.test(slug)) {
    request.resume()
    return answer(response, 404, 'not found')
  }
  const teamDir = path.join(dir, slug)
  const file = path.join(teamDir, match[1])
  const done = (error) => {
    if (!response.headersSent) answer(response, 500, String(error.message))
    else response.destroy()
  }
  if (request.method === 'PUT') put(request, response, file, teamDir).catch(done)
  else if (request.method === 'GET' || request.method === 'HEAD') get(response, file, request.method === 'HEAD').catch(done)
  else {
    request.resume()
    answer(response, 404, 'not found')
  }
})

fs.mkdirSync(dir, { recursive: true })
server.listen(Number(port), '127.0.0.1', () => {
  process.stdout.write(`limit listening on http://127.0.0.1:${server.address().port}\n`)
})
process.on('SIGTERM', () => {
  server.close(() => process.exit(0))
  server.closeAllConnections()
})
