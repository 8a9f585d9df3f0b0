/**
 * `commandTimeout` for the commands of a connection larder opened, kept by one timer per
 * client instead of one per command.
 *
 * ioredis arms a Node timer for every command (Command#setTimeout) and clears it when the reply
 * comes: with one command in flight at a time, each set or get through Redis created a timer
 * list, inserted it in the timers' priority queue and took it out again, a few µs of CPU per
 * command (W8: a write-through set spent ~14 µs of its own beyond a bare EVALSHA). Here each
 * command is a slot in a queue in send order with its deadline, and one timer is armed for the
 * oldest unanswered one. A settled command leaves the queue as the next one is sent, so the
 * queue holds what is in flight (and the replies Redis has not yet given), nothing more.
 *
 * A command past its deadline is judged once the loop has read what arrived (an immediate,
 * which runs after the poll for I/O). ioredis's own timer rejected from the timer, and timers
 * run before that poll: after a stall of this process longer than the timeout (a burst of
 * write-back sets that never yields, a long synchronous task, a GC pause), every command sent
 * before it timed out although its reply was waiting to be read; a write-back batch failed
 * whole, its failures opened the breaker, and `flush()` and `close()` gave up on the queue.
 * Now a command answered meanwhile resolves, and one still unanswered is handed to `late`
 * (connection.ts keepInStep: rejected with ioredis's message, its connection dropped).
 */
export class CommandDeadlines {
  readonly #late: (command: WatchedCommand) => void
  /** Commands in send order from #head on, and their deadlines (performance.now() ms). */
  #commands: (WatchedCommand | undefined)[] = []
  #deadlines: number[] = []
  #head = 0
  /** Armed while the queue holds a command (settled or not): fires at the head's deadline. */
  #timer: NodeJS.Timeout | undefined

  /** `late`: called with each command still unanswered past its deadline once the loop has
   *  read what arrived; it rejects the command (and drops its connection). */
  constructor(late: (command: WatchedCommand) => void) {
    this.#late = late
  }

  /**
   * Watches `command` (just being sent) for `ms`. ioredis calls this as the command's
   * `setTimeout` each time the command is sent (a cluster's redirection sends it again): the
   * first deadline stands, as with ioredis's own timer.
   */
  watch(command: WatchedCommand, ms: number): void {
    if (command._commandTimeoutTimer !== undefined) return
    // ioredis's `_clearTimers`, run when the command settles (resolved or rejected), clears
    // this mark (clearTimeout ignores an object that is not a timer) and deletes it: a command
    // without it is settled.
    command._commandTimeoutTimer = WATCHING
    this.#dropSettled()
    this.#commands.push(command)
    this.#deadlines.push(performance.now() + ms)
    if (this.#timer === undefined) this.#arm(ms)
  }

  /** Commands held in the queue, settled or not (a test's view: what is in flight, at most,
   *  once the next command is sent). */
  get size(): number {
    return this.#commands.length - this.#head
  }

  /** Whether `command` is still watched: sent, and neither answered nor failed yet. */
  static unsettled(command: WatchedCommand): boolean {
    return command._commandTimeoutTimer === WATCHING
  }

  /** Forgets the settled commands at the head of the queue (replies come in send order, so
   *  usually every command before the one being sent). */
  #dropSettled(): void {
    const commands = this.#commands
    while (this.#head < commands.length && !CommandDeadlines.unsettled(commands[this.#head]!)) commands[this.#head++] = undefined
    this.#compact()
  }

  #compact(): void {
    if (this.#head === this.#commands.length) {
      this.#commands.length = 0
      this.#deadlines.length = 0
      this.#head = 0
    } else if (this.#head >= COMPACT_AFTER && this.#head * 2 >= this.#commands.length) {
      this.#commands = this.#commands.slice(this.#head)
      this.#deadlines = this.#deadlines.slice(this.#head)
      this.#head = 0
    }
  }

  #arm(ms: number): void {
    this.#timer = setTimeout(this.#check, Math.max(1, ms))
    // A command in flight holds the process by its socket: this timer need not.
    this.#timer.unref()
  }

  /** The timer: the commands past their deadline are judged after the next poll; the timer
   *  is armed again for the oldest unanswered one left. */
  readonly #check = (): void => {
    this.#timer = undefined
    const now = performance.now()
    const due: WatchedCommand[] = []
    const commands = this.#commands
    while (this.#head < commands.length) {
      const command = commands[this.#head]!
      if (CommandDeadlines.unsettled(command)) {
        if (this.#deadlines[this.#head]! > now) break
        due.push(command)
      }
      commands[this.#head++] = undefined
    }
    this.#compact()
    if (this.#head < this.#commands.length) this.#arm(this.#deadlines[this.#head]! - now)
    if (due.length > 0)
      setImmediate(() => {
        for (const command of due) if (CommandDeadlines.unsettled(command)) this.#late(command)
      })
  }
}

/** What of an ioredis Command the deadlines use: the timer field its `_clearTimers` clears
 *  and deletes when the command settles. */
export interface WatchedCommand {
  _commandTimeoutTimer?: unknown
}

/** The mark of a watched command (in the field of ioredis's own timer, see `watch`). */
const WATCHING: object = Object.freeze({})

/** Settled slots at the head kept before the queue is copied down (a queue that never empties:
 *  commands always in flight). */
const COMPACT_AFTER = 1024
