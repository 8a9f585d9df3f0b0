/**
 * Keyv's own conformance suite (@keyv/test-suite: api, values, namespaces, and the iterator
 * tests it leaves out of the default export) against the built `larder/keyv`, as a consumer
 * gets it. Run by vitest, which the suite is written for; test/adapters/keyv.test.ts starts
 * it and checks its report. The cache directory comes from LARDER_KEYV_SUITE_DIR.
 *
 * Every store the suite makes is a new adapter over one directory, as processes sharing a
 * cache are: the suite's `clear()` between tests and its namespace tests then check that a
 * namespace is emptied for every instance, and only that namespace.
 */
import * as test from 'vitest'
import Keyv from 'keyv'
import keyvTestSuite, { keyvIteratorTests } from '@keyv/test-suite'
import { Larder } from 'larder'
import { KeyvLarder } from 'larder/keyv'

const dir = process.env.LARDER_KEYV_SUITE_DIR
if (dir === undefined) throw new Error('LARDER_KEYV_SUITE_DIR is not set')

const shared = await Larder.open({ dir: `${dir}/shared` })
test.afterAll(() => shared.close())

test.describe('a cache passed in, shared by every store', () => {
  keyvTestSuite(test, Keyv, () => new KeyvLarder(shared))
  test.describe('iterator', () => {
    keyvIteratorTests(test, Keyv, () => new KeyvLarder(shared))
  })
})

test.describe('options: each store opens its own instance on one directory', () => {
  keyvTestSuite(test, Keyv, () => new KeyvLarder({ dir: `${dir}/opened` }))
  test.describe('iterator', () => {
    keyvIteratorTests(test, Keyv, () => new KeyvLarder({ dir: `${dir}/opened` }))
  })
})
