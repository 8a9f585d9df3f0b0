// What the benchmark measures: sizes for a full and a quick run, the steps (one case for each
// implementation that takes part), and how the report groups them into rows with targets.
// Workload numbers (W1–W7) follow issue #5.

export const CONFIGS = {
  full: {
    mode: 'full',
    runs: 3,
    smallN: 20_000,
    bigN: 1000,
    memKeys: 1000,
    memIters: 1_000_000,
    streamMiB: 256,
    procs: 4,
    procOps: 5000,
    procKeys: 1000,
    readRounds: 1000,
    readKeys: 200,
    pruneN: 100_000,
  },
  quick: {
    mode: 'quick',
    runs: 1,
    smallN: 1000,
    bigN: 100,
    memKeys: 1000,
    memIters: 300_000,
    streamMiB: 64,
    procs: 4,
    procOps: 500,
    procKeys: 200,
    readRounds: 100,
    readKeys: 200,
    pruneN: 20_000,
  },
}

// Which implementations take part where (names from peers/index.mjs, plus `map` and `machine`).
const FILE_STORES = [
  'larder',
  'cacache',
  'bentocache',
  'node-persist',
  'unstorage',
  'cache-manager-fs-hash',
  'keyv-file',
  'flat-cache',
  'raw-fs',
  'raw-fs-sync',
]
const MEMORY = ['larder', 'lru-cache', 'map']
const STREAMS = ['larder', 'cacache', 'raw-fs'] // the peers with a streaming API; others are n/a
const MULTI_PROCESS = ['larder', 'cacache', 'cache-manager-fs-hash', 'raw-fs'] // the peers that claim it
const PRUNE = ['larder', 'cacache', 'bentocache', 'raw-fs']

/** Peers that keep the whole cache in memory and persist it as one file: a "get from a new
 *  instance" is a memory read after loading the file, so the report also compares larder with
 *  the best peer that stores a file per entry, as larder does. */
export const WHOLE_FILE = new Set(['keyv-file', 'flat-cache'])

/** The limits: not peers, the ceiling a row is compared with. */
export const LIMITS = new Set(['raw-fs', 'raw-fs-sync', 'map', 'machine'])

/**
 * A step is one case run for each of `impls`. `makes` names a data directory the step leaves
 * for a later step of the same run that `uses` it. A `template` case writes a data set once per
 * implementation before the first run; each run measures a fresh copy of it.
 */
export function stepsFor(c) {
  return [
    { id: 'W1-set-seq', case: 'set1k', impls: FILE_STORES, args: { n: c.smallN, conc: 1 }, makes: 'small' },
    { id: 'W1-set-c16', case: 'set1k', impls: FILE_STORES, args: { n: c.smallN, conc: 16 } },
    { id: 'W2-get-seq', case: 'get1k', impls: FILE_STORES, args: { n: c.smallN, conc: 1 }, uses: 'small' },
    { id: 'W2-get-c16', case: 'get1k', impls: FILE_STORES, args: { n: c.smallN, conc: 16 }, uses: 'small' },
    { id: 'W2-get-mem', case: 'mem1k', impls: MEMORY, args: { keys: c.memKeys, iters: c.memIters } },
    { id: 'W3-miss', case: 'miss1k', impls: FILE_STORES, args: { n: c.smallN }, uses: 'small' },
    { id: 'W4-set', case: 'set64k', impls: FILE_STORES, args: { n: c.bigN }, makes: 'big' },
    { id: 'W4-get', case: 'get64k', impls: FILE_STORES, args: { n: c.bigN }, uses: 'big' },
    { id: 'W5-put-tar', case: 'streamPut', impls: STREAMS, args: { mib: c.streamMiB, kind: 'tar' }, makes: 'tar' },
    { id: 'W5-get-tar', case: 'streamGet', impls: STREAMS, args: { mib: c.streamMiB, kind: 'tar' }, uses: 'tar' },
    { id: 'W5-put-gz', case: 'streamPut', impls: STREAMS, args: { mib: c.streamMiB, kind: 'compressed' }, makes: 'gz' },
    { id: 'W5-get-gz', case: 'streamGet', impls: STREAMS, args: { mib: c.streamMiB, kind: 'compressed' }, uses: 'gz' },
    { id: 'W6-procs', case: 'multiProcess', impls: MULTI_PROCESS, args: { procs: c.procs, ops: c.procOps, keySpace: c.procKeys } },
    // Read-heavy, as an ORM's cache is: another process's write must cost a memory tier only
    // that key (larder with `memory: true`; the peers have no tier that other processes' writes
    // would not make stale).
    {
      id: 'W6-reads',
      case: 'multiProcess',
      impls: MULTI_PROCESS,
      args: { procs: c.procs, ops: c.readRounds, keySpace: c.readKeys, getsPerSet: 19, larderOptions: { memory: true } },
    },
    {
      id: 'W7-prune',
      case: 'prune',
      impls: PRUNE,
      args: { n: c.pruneN, prepared: true },
      template: { case: 'pruneSetup', args: { n: c.pruneN } },
    },
    { id: 'limits', case: 'limits', impls: ['machine'], args: { mib: c.streamMiB, bigN: c.bigN } },
  ]
}

const n = (x) => x.toLocaleString('en-US')

/**
 * The report's tables. A row shows one metric of one step for every implementation of the step.
 * `lowerIsBetter` flips "best". A row's `target` is one target or a list; each is checked on
 * medians and names the issue that set it (`issue`, default 5):
 *   { vsBest: f }      larder ≥ f × the best peer
 *   { vsBestPerEntry: f }  larder ≥ f × the best peer that stores a file per entry
 *   { vs: name, f }    larder ≥ f × that peer or limit (lowerIsBetter: larder ≤ f × it)
 *   { atMost: x }      larder's median ≤ x
 *   { zero: true }     larder's value is 0 in every run
 * Issue #14's goals are ratios to the limits measured in the same run: raw-fs-sync
 * (readFileSync + JSON.parse), raw-fs (async writeFile(temp) + rename), lru-cache.
 */
export function tablesFor(c) {
  return [
    {
      title: `W1–W3 · ~1 KiB ORM-like JSON values, ${n(c.smallN)} distinct keys (ops/s, higher is better)`,
      rows: [
        { label: 'W1 set, 1 in flight', step: 'W1-set-seq', metric: 'opsPerSec', target: { vsBest: 1 } },
        {
          label: 'W1 set, 16 in flight',
          step: 'W1-set-c16',
          metric: 'opsPerSec',
          target: [
            { vsBest: 1 },
            { vs: 'raw-fs', f: 1, issue: 14 },
            { vs: 'unstorage', f: 1, issue: 14 },
            { vs: 'node-persist', f: 1, issue: 14 },
          ],
        },
        {
          label: 'W2 get, new instance, 1 in flight',
          step: 'W2-get-seq',
          metric: 'opsPerSec',
          target: [{ vsBest: 4 }, { vs: 'raw-fs-sync', f: 0.6, issue: 14 }],
        },
        {
          label: 'W2 get, new instance, 16 in flight',
          step: 'W2-get-c16',
          metric: 'opsPerSec',
          target: [{ vsBest: 4 }, { vs: 'raw-fs-sync', f: 0.6, issue: 14 }],
        },
        { label: 'W3 miss, new instance, 1 in flight', step: 'W3-miss', metric: 'opsPerSec' },
      ],
    },
    {
      title: `W2 · memory tier: ${n(c.memIters)} awaited gets cycling over ${n(c.memKeys)} warm keys (ops/s)`,
      rows: [
        {
          label: 'W2 get, memory tier',
          step: 'W2-get-mem',
          metric: 'opsPerSec',
          target: [
            { vs: 'lru-cache', f: 0.7 },
            { vs: 'lru-cache', f: 0.8, issue: 14 },
          ],
        },
      ],
    },
    {
      title: `W4 · ~64 KiB semi-compressible JSON values, ${n(c.bigN)} keys, 1 in flight (ops/s)`,
      rows: [
        { label: 'W4 set', step: 'W4-set', metric: 'opsPerSec', target: [{ vsBest: 1 }, { vsBestPerEntry: 1, issue: 14 }] },
        { label: 'W4 get, new instance', step: 'W4-get', metric: 'opsPerSec', target: [{ vsBest: 1 }, { vsBestPerEntry: 1, issue: 14 }] },
        { label: 'W4 disk per entry (KiB, file sizes)', step: 'W4-set', metric: 'diskKiBPerEntry', lowerIsBetter: true, digits: 1 },
      ],
    },
    {
      title: `W5 · one ${n(c.streamMiB)} MiB artifact streamed in 1 MiB chunks (MB/s; RSS in MiB, lower is better). Peers without a streaming API: n/a`,
      rows: [
        { label: 'W5 put, tar-like (~50 % compressible)', step: 'W5-put-tar', metric: 'mbPerSec', target: { vs: 'cacache', f: 1 } },
        { label: 'W5 get, tar-like', step: 'W5-get-tar', metric: 'mbPerSec', target: { vs: 'cacache', f: 1 } },
        { label: 'W5 put, already compressed', step: 'W5-put-gz', metric: 'mbPerSec', target: { vs: 'cacache', f: 1 } },
        { label: 'W5 get, already compressed', step: 'W5-get-gz', metric: 'mbPerSec', target: { vs: 'cacache', f: 1 } },
        {
          label: 'W5 put tar-like: peak RSS growth',
          step: 'W5-put-tar',
          metric: 'rssGrowthMiB',
          lowerIsBetter: true,
          digits: 1,
          target: { atMost: 64, unit: 'MiB' },
        },
        {
          label: 'W5 get tar-like: peak RSS growth',
          step: 'W5-get-tar',
          metric: 'rssGrowthMiB',
          lowerIsBetter: true,
          digits: 1,
          target: { atMost: 64, unit: 'MiB' },
        },
        {
          label: 'W5 put compressed: peak RSS growth',
          step: 'W5-put-gz',
          metric: 'rssGrowthMiB',
          lowerIsBetter: true,
          digits: 1,
          target: { atMost: 64, unit: 'MiB' },
        },
        {
          label: 'W5 get compressed: peak RSS growth',
          step: 'W5-get-gz',
          metric: 'rssGrowthMiB',
          lowerIsBetter: true,
          digits: 1,
          target: { atMost: 64, unit: 'MiB' },
        },
      ],
    },
    {
      title: `W6 · ${c.procs} processes × ${n(c.procOps)} (set + get) on one directory, ${n(c.procKeys)} shared keys; peers that claim multi-process safety`,
      rows: [
        { label: 'W6 aggregate ops/s (sets + gets)', step: 'W6-procs', metric: 'opsPerSec', target: { vs: 'cacache', f: 1 } },
        {
          label: 'W6 torn reads (parse errors), all runs',
          step: 'W6-procs',
          metric: 'torn',
          total: true,
          lowerIsBetter: true,
          target: { zero: true },
        },
        {
          label: 'W6 wrong values served, all runs',
          step: 'W6-procs',
          metric: 'wrong',
          total: true,
          lowerIsBetter: true,
          target: { zero: true },
        },
        { label: 'W6 errors thrown, all runs', step: 'W6-procs', metric: 'errors', total: true, lowerIsBetter: true },
        {
          label: `W6 read-heavy ops/s (${c.procs} processes × ${n(c.readRounds)} rounds of a set and 19 gets over ${n(c.readKeys)} keys; larder with its memory tier)`,
          step: 'W6-reads',
          metric: 'opsPerSec',
        },
        {
          label: 'W6 read-heavy wrong values served, all runs',
          step: 'W6-reads',
          metric: 'wrong',
          total: true,
          lowerIsBetter: true,
          target: { zero: true },
        },
      ],
    },
    {
      title: `W7 · clean-up of ${n(c.pruneN)} ~1 KiB entries down to half (seconds, lower is better)`,
      rows: [
        {
          label: 'W7 clean-up wall time (s)',
          step: 'W7-prune',
          metric: 'seconds',
          lowerIsBetter: true,
          digits: 2,
          target: { atMost: 2, unit: 's' },
        },
        { label: 'W7 event-loop delay p99 (ms)', step: 'W7-prune', metric: 'loopDelayP99Ms', lowerIsBetter: true, digits: 1 },
        { label: 'W7 event-loop delay max (ms)', step: 'W7-prune', metric: 'loopDelayMaxMs', lowerIsBetter: true, digits: 1 },
      ],
    },
  ]
}

/** The machine-limits table: larder's per-byte work alone, on the same data. */
export function limitRowsFor(c) {
  return [
    { label: `raw DEFLATE level 1, tar-like ${c.streamMiB} MiB, 1 MiB blocks, 4 in flight (MB/s in)`, metric: 'deflate_tar_MBps' },
    { label: 'raw INFLATE of the same (MB/s out)', metric: 'inflate_tar_MBps' },
    { label: `raw DEFLATE level 1, already-compressed ${c.streamMiB} MiB (MB/s in)`, metric: 'deflate_compressed_MBps' },
    { label: 'raw INFLATE of the same (MB/s out)', metric: 'inflate_compressed_MBps' },
    { label: 'xxhash64 (xxhash-wasm h64), one thread (MB/s)', metric: 'h64_MBps' },
    { label: 'DEFLATE level 1 of one ~64 KiB JSON value, sync (ops/s)', metric: 'deflate_64k_opsPerSec' },
    { label: 'INFLATE of one ~64 KiB value, sync (ops/s)', metric: 'inflate_64k_opsPerSec' },
    { label: 'xxhash64 of one ~64 KiB value (ops/s)', metric: 'h64_64k_opsPerSec' },
  ]
}
