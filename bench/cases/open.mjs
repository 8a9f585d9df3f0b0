// Opening the implementation a case measures, with larder's build snapshot and any diagnostic
// larder options passed through from the command line. Loading an implementation's modules is
// kept out of the timed part (`storeOpener` loads, the function it returns opens), since every
// case starts in a fresh process and module loading is not what is measured.
import { peer } from '../peers/index.mjs'

export async function storeOpener(args, larderOptions = {}) {
  const impl = peer(args.impl)
  const options = { larderModule: args.larderModule, larderOptions: { ...larderOptions, ...args.larderOptions } }
  await impl.prepare?.(options)
  return () => impl.open(args.dir, options)
}

export async function openStore(args, larderOptions = {}) {
  return (await storeOpener(args, larderOptions))()
}
