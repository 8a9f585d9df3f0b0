export { Larder } from './larder.js'
export type { ConfigChange, LarderEvents, OptionSource, Stats } from './larder.js'
export type { ConfigChoice } from './config/layered-options.js'
export type { ProfileName } from './config/profiles.js'
export type { EntriesOptions, GetOrSetOptions, GetStreamOptions, SetManyItem, SetOptions, SetValueOptions } from './call-options.js'
export { LarderError, isLarderError } from './errors.js'
export type { LarderErrorCode } from './errors.js'
export type {
  BreakerOptions,
  CompressionName,
  CustomSerializer,
  Duration,
  EvictionPolicy,
  LarderOptions,
  MaintenanceOptions,
  MemoryPressureOptions,
  MemoryTierOptions,
  ResolvedBreakerOptions,
  ResolvedMaintenanceOptions,
  ResolvedMemoryPressure,
  ResolvedOptions,
  SerializerName,
  Sharing,
  Size,
  StreamCompression,
} from './options.js'
export type {
  MaintenanceProgress,
  PruneOptions,
  PruneReport,
  UsageReport,
  VerifyOptions,
  VerifyReport,
  RekeyOptions,
  RekeyReport,
  WalkOptions,
} from './maintenance/maintainer.js'
export type { CodecName, EntryInfo } from './maintenance/listing.js'
export type { BreakerSnapshot, BreakerState } from './resilience/disk-breaker.js'
export type { ActivityReport } from './stats/activity-log.js'
export type { LatencySummary } from './stats/latency-window.js'
export type { StreamSource } from './store/stream-writer.js'
export type { CorruptReport } from './tiers/file-tier.js'
export type { PressureReading } from './facade/pressure.js'
import type { Keyring as KeyringClass } from './crypto/keys.js'
export type { EncryptionOptions } from './crypto/keys.js'
/** The validated encryption keys (`ResolvedOptions.encryption`): a type only, never a value
 *  (an alias, so the bundled declarations cannot present the class as a runtime export). */
export type Keyring = KeyringClass
