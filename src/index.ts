export { Larder } from './larder.js'
export type { GetOrSetOptions, LarderEvents, SetManyItem, SetOptions, Stats } from './larder.js'
export { LarderError, isLarderError } from './errors.js'
export type { LarderErrorCode } from './errors.js'
export type {
  BreakerOptions, CompressionName, CustomSerializer, Duration, EvictionPolicy, LarderOptions,
  MemoryTierOptions, SerializerName, Size,
} from './options.js'
export type { BreakerSnapshot, BreakerState } from './resilience/disk-breaker.js'
export type { LatencySummary } from './stats/latency-window.js'
export type { StreamSource } from './store/stream-writer.js'
