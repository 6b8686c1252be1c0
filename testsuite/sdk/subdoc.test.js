// subdoc.test.js - the SDK's sub-document API against kvhost (ABI v4):
// lookupIn and mutateIn on a nested document in a named collection, get with
// a projection, counters from many concurrent promises, and the errors.
'use strict'

const test = require('node:test')
const assert = require('node:assert')
const couchbase = require('couchbase')

const { Server, connect } = require('./harness')

test('sub-document', async (t) => {
  const server = await new Server({ users: true }).start()
  t.after(() => server.stop())
  server.collections('create', 'app')
  server.collections('create', 'app.users')
  const cluster = await connect(server)
  t.after(() => cluster.close())
  const coll = cluster.bucket('default').scope('app').collection('users')
  const doc = { name: 'Ann', address: { city: 'Oslo', zip: '0150' }, tags: ['a', 'b'], n: 1 }
  await coll.upsert('ann', doc)

  await t.test('lookupIn: get, exists, count', async () => {
    const r = await coll.lookupIn('ann', [
      couchbase.LookupInSpec.get('address.city'),
      couchbase.LookupInSpec.exists('tags'),
      couchbase.LookupInSpec.count('tags'),
      couchbase.LookupInSpec.exists('nope'),
    ])
    assert.strictEqual(r.content[0].value, 'Oslo')
    assert.strictEqual(r.content[1].value, true)
    assert.strictEqual(r.content[2].value, 2)
    assert.strictEqual(r.content[3].value, false)
  })

  await t.test('mutateIn: upsert, arrayAppend, increment, remove, all or nothing', async () => {
    const r = await coll.mutateIn('ann', [
      couchbase.MutateInSpec.upsert('address.street', 'Main 1'),
      couchbase.MutateInSpec.arrayAppend('tags', 'c'),
      couchbase.MutateInSpec.increment('n', 41),
      couchbase.MutateInSpec.remove('address.zip'),
    ])
    assert.strictEqual(r.content[2].value, 42)
    const got = (await coll.get('ann')).content
    assert.deepStrictEqual(got, { name: 'Ann', address: { city: 'Oslo', street: 'Main 1' },
      tags: ['a', 'b', 'c'], n: 42 })
    await assert.rejects(coll.mutateIn('ann', [
      couchbase.MutateInSpec.upsert('x', 1),
      couchbase.MutateInSpec.insert('name', 'dup'),
    ]), couchbase.PathExistsError)
    assert.deepStrictEqual((await coll.get('ann')).content, got)
    await assert.rejects(coll.mutateIn('ann', [couchbase.MutateInSpec.replace('a.b.c', 1)]),
      couchbase.PathNotFoundError)
    await assert.rejects(coll.lookupIn('missing', [couchbase.LookupInSpec.get('a')]),
      couchbase.DocumentNotFoundError)
  })

  await t.test('get with a projection', async () => {
    const r = await coll.get('ann', { project: ['name', 'address.city'] })
    assert.deepStrictEqual(r.content, { name: 'Ann', address: { city: 'Oslo' } })
  })

  await t.test('counters from 200 concurrent promises add up', async () => {
    await coll.upsert('counter', { hits: 0 })
    await Promise.all([...Array(200).keys()].map(() =>
      coll.mutateIn('counter', [couchbase.MutateInSpec.increment('hits', 1)])))
    assert.deepStrictEqual((await coll.get('counter')).content, { hits: 200 })
  })

  await t.test('xattrs: written with mutateIn, read with lookupIn, kept by upsert', async () => {
    await coll.upsert('tagged', { body: 1 })
    await coll.mutateIn('tagged', [
      couchbase.MutateInSpec.upsert('meta.by', 'sdk', { xattr: true, createPath: true }),
      couchbase.MutateInSpec.upsert('meta.cas', couchbase.MutateInSpec.CasPlaceholder,
        { xattr: true }),
      couchbase.MutateInSpec.increment('body', 1),
    ])
    const r = await coll.lookupIn('tagged', [
      couchbase.LookupInSpec.get('meta.by', { xattr: true }),
      couchbase.LookupInSpec.get('meta.cas', { xattr: true }),
      couchbase.LookupInSpec.get('$document.value_bytes', { xattr: true }),
      couchbase.LookupInSpec.get('body'),
    ])
    assert.strictEqual(r.content[0].value, 'sdk')
    assert.match(r.content[1].value, /^0x[0-9a-f]{16}$/)
    assert.strictEqual(r.content[2].value, JSON.stringify({ body: 2 }).length)
    assert.strictEqual(r.content[3].value, 2)
    // A get answers the body alone; an upsert keeps the attributes.
    assert.deepStrictEqual((await coll.get('tagged')).content, { body: 2 })
    await coll.upsert('tagged', { body: 3 })
    const kept = await coll.lookupIn('tagged', [couchbase.LookupInSpec.get('meta.by',
      { xattr: true })])
    assert.strictEqual(kept.content[0].value, 'sdk')
  })

  await t.test('get withExpiry and preserveExpiry on mutateIn', async () => {
    const before = Math.floor(Date.now() / 1000)
    await coll.upsert('ttl', { a: 1 }, { expiry: 3600 })
    const r = await coll.get('ttl', { withExpiry: true })
    assert.deepStrictEqual(r.content, { a: 1 })
    // The SDK gives the expiry as seconds since the epoch (a Date in some versions).
    const secs = (x) => (x instanceof Date ? x.getTime() / 1000 : x)
    const at = secs(r.expiryTime)
    assert.ok(at >= before + 3590 && at <= before + 3610, `expiry ${at} vs ${before}`)
    await coll.mutateIn('ttl', [couchbase.MutateInSpec.upsert('b', 2)],
      { preserveExpiry: true })
    const kept = await coll.get('ttl', { withExpiry: true })
    assert.strictEqual(secs(kept.expiryTime), at)
    assert.deepStrictEqual(kept.content, { a: 1, b: 2 })
    await coll.mutateIn('ttl', [couchbase.MutateInSpec.upsert('c', 3)])
    const none = await coll.get('ttl', { withExpiry: true })
    assert.ok(!none.expiryTime, `no expiry after a plain mutateIn: ${none.expiryTime}`)
  })

  await t.test('durable mutateIn: PersistToMajority answers once on disk', async () => {
    await coll.upsert('durable', { n: 0 })
    const r = await coll.mutateIn('durable', [couchbase.MutateInSpec.increment('n', 5)],
      { durabilityLevel: couchbase.DurabilityLevel.PersistToMajority })
    assert.strictEqual(r.content[0].value, 5)
    assert.deepStrictEqual((await coll.get('durable')).content, { n: 5 })
  })

  await t.test('mutateIn upsertDocument makes a missing document', async () => {
    await coll.mutateIn('made', [couchbase.MutateInSpec.upsert('a.b', 1, { createPath: true })],
      { storeSemantics: couchbase.StoreSemantics.Upsert })
    assert.deepStrictEqual((await coll.get('made')).content, { a: { b: 1 } })
  })
})
