// sdk.test.js - the official Couchbase Node.js SDK (couchbase 4.7.1, its
// stock connection string) against kvhost and ep_engine: bootstrap, SASL,
// KV in the default and in a named collection, durability, and errors.
//
//   KVHOST=... ENGINE=... node --test testsuite/sdk/
//
// Every server runs on 127.0.0.1 on a free port with a fresh data directory,
// and is stopped at the end.
'use strict'

const test = require('node:test')
const assert = require('node:assert')
const couchbase = require('couchbase')

const { PASSWORD, Server, connect, sleep } = require('./harness')

test('with a users file', async (t) => {
  const server = await new Server({ users: true }).start()
  t.after(() => server.stop())

  for (const mech of [null, 'PLAIN', 'SCRAM-SHA512', 'SCRAM-SHA256', 'SCRAM-SHA1']) {
    await t.test(`connect with ${mech || 'the default (SCRAM-SHA512)'}`, async () => {
      const cluster = await connect(server, {
        query: mech && `allowed_sasl_mechanisms=${mech}`, username: 'bob',
      })
      const coll = cluster.bucket('default').defaultCollection()
      await coll.upsert('login-' + (mech || 'default'), { by: mech })
      const r = await coll.get('login-' + (mech || 'default'))
      assert.deepStrictEqual(r.content, { by: mech })
      await cluster.close()
    })
  }

  await t.test('a wrong password is an authentication failure', async () => {
    await assert.rejects(connect(server, { password: 'wrong' }),
      couchbase.AuthenticationFailureError)
    await assert.rejects(connect(server, { username: 'nobody' }),
      couchbase.AuthenticationFailureError)
  })

  await t.test('a missing bucket is BucketNotFound', async () => {
    const cluster = await connect(server)
    const coll = cluster.bucket('nosuchbucket').defaultCollection()
    let err
    for (let i = 0; i < 20; i++) {
      try {
        await coll.get('x', { timeout: 500 })
      } catch (e) {
        err = e
        if (e instanceof couchbase.BucketNotFoundError) break
      }
    }
    assert.ok(err instanceof couchbase.BucketNotFoundError, String(err))
    await cluster.close()
  })

  server.collections('create', 'app')
  server.collections('create', 'app.users')
  const cluster = await connect(server)
  t.after(() => cluster.close())
  const bucket = cluster.bucket('default')

  for (const [name, coll] of [['_default._default', bucket.defaultCollection()],
    ['app.users', bucket.scope('app').collection('users')]]) {
    await t.test(`KV in ${name}`, async () => {
      const up = await coll.upsert('doc', { name: 'ann', n: 1 })
      assert.ok(up.cas)
      const got = await coll.get('doc')
      assert.deepStrictEqual(got.content, { name: 'ann', n: 1 })
      assert.strictEqual(String(got.cas), String(up.cas))
      await assert.rejects(coll.insert('doc', {}), couchbase.DocumentExistsError)
      await coll.insert('fresh', 'new')
      const rep = await coll.replace('doc', { name: 'ann', n: 2 }, { cas: got.cas })
      await assert.rejects(coll.replace('doc', { n: 3 }, { cas: got.cas }),
        couchbase.CasMismatchError)
      assert.deepStrictEqual((await coll.get('doc')).content, { name: 'ann', n: 2 })
      assert.ok(rep.cas)

      const ex = await coll.exists('doc')
      assert.strictEqual(ex.exists, true)
      assert.strictEqual((await coll.exists('never')).exists, false)

      await coll.touch('doc', 3600)
      const gat = await coll.getAndTouch('doc', 7200)
      assert.deepStrictEqual(gat.content, { name: 'ann', n: 2 })

      await coll.upsert('counter', '10')
      const inc = await coll.binary().increment('counter', 5)
      assert.strictEqual(Number(inc.value), 15)
      const created = await coll.binary().increment('made', 1, { initial: 7 })
      assert.strictEqual(Number(created.value), 7)
      await coll.upsert('text', 'abc', { transcoder: new couchbase.RawStringTranscoder() })
      await coll.binary().append('text', 'def')
      const text = await coll.get('text', { transcoder: new couchbase.RawStringTranscoder() })
      assert.strictEqual(text.content, 'abcdef')

      // getAndLock: a locked key refuses writes (the SDK retries a locked
      // answer until its timeout) and other locks, until unlock with its CAS.
      const locked = await coll.getAndLock('doc', 10)
      assert.deepStrictEqual(locked.content, { name: 'ann', n: 2 })
      const refused = await coll.upsert('doc', { n: 9 }, { timeout: 500 }).catch((e) => e)
      assert.ok(refused instanceof couchbase.AmbiguousTimeoutError, String(refused))
      assert.deepStrictEqual(refused.context.retry_reasons, ['key_value_locked'])
      const relock = await coll.getAndLock('doc', 10, { timeout: 500 }).catch((e) => e)
      assert.ok(relock instanceof couchbase.TimeoutError, String(relock))
      await coll.unlock('doc', locked.cas)
      await assert.rejects(coll.unlock('doc', locked.cas), couchbase.DocumentNotLockedError)
      const again = await coll.getAndLock('doc', 10)
      await coll.replace('doc', { name: 'ann', n: 3 }, { cas: again.cas })
      assert.deepStrictEqual((await coll.get('doc')).content, { name: 'ann', n: 3 })

      await coll.remove('doc')
      await assert.rejects(coll.get('doc'), couchbase.DocumentNotFoundError)
      await assert.rejects(coll.remove('doc'), couchbase.DocumentNotFoundError)
    })
  }

  await t.test('preserve expiry keeps the document\'s expiry', async () => {
    const coll = bucket.defaultCollection()
    await coll.upsert('kept', 'v1', { expiry: 2 })
    await coll.upsert('kept', 'v2', { preserveExpiry: true })
    await coll.upsert('reset', 'v1', { expiry: 2 })
    await coll.upsert('reset', 'v2')
    await coll.upsert('touched', 'v')
    await coll.touch('touched', 2)
    await coll.upsert('gat', 'v')
    await coll.getAndTouch('gat', 2)
    assert.strictEqual((await coll.get('kept')).content, 'v2')
    await sleep(3100)
    await assert.rejects(coll.get('kept'), couchbase.DocumentNotFoundError)
    assert.strictEqual((await coll.get('reset')).content, 'v2')
    await assert.rejects(coll.get('touched'), couchbase.DocumentNotFoundError)
    await assert.rejects(coll.get('gat'), couchbase.DocumentNotFoundError)
  })

  await t.test('1,000 upserts and gets from concurrent promises', async () => {
    const coll = bucket.scope('app').collection('users')
    const keys = Array.from({ length: 1000 }, (_, i) => `many-${i}`)
    await Promise.all(keys.map((k, i) => coll.upsert(k, { i })))
    const got = await Promise.all(keys.map((k) => coll.get(k)))
    got.forEach((r, i) => assert.deepStrictEqual(r.content, { i }))
  })

  await t.test('a dropped collection is not found', async () => {
    server.collections('create', 'app.temp')
    const coll = bucket.scope('app').collection('temp')
    await coll.upsert('x', 1)
    server.collections('drop', 'app.temp')
    const err = await coll.get('x', { timeout: 2000 }).catch((e) => e)
    assert.ok(err instanceof couchbase.CollectionNotFoundError, String(err))
  })
})

test('durable writes are on disk when acknowledged', async (t) => {
  // Plain writes wait a second for their batch: only a durable write's own
  // fsync can have put these on disk before the kill.
  const server = await new Server({ users: true, config: 'flusher_batch_delay_ms=1000' })
    .start()
  t.after(() => server.stop())
  server.collections('create', 'app')
  server.collections('create', 'app.orders')
  let cluster = await connect(server)
  let coll = cluster.bucket('default').scope('app').collection('orders')
  const levels = [couchbase.DurabilityLevel.PersistToMajority,
    couchbase.DurabilityLevel.MajorityAndPersistOnMaster]
  for (const [i, level] of levels.entries()) {
    await coll.upsert(`durable-${i}`, { level: i }, { durabilityLevel: level })
  }
  await coll.remove('durable-0', { durabilityLevel: levels[0] })
  await coll.upsert('durable-0', { level: 'again' }, { durabilityLevel: levels[0] })
  await server.kill9() // right after the acknowledgements
  await cluster.close().catch(() => {})
  await server.start()
  cluster = await connect(server)
  coll = cluster.bucket('default').scope('app').collection('orders')
  assert.deepStrictEqual((await coll.get('durable-0')).content, { level: 'again' })
  assert.deepStrictEqual((await coll.get('durable-1')).content, { level: 1 })
  await cluster.close()
})

test('without a users file: loopback, any login, no durability without disk', async (t) => {
  const server = await new Server({ users: false, data: false }).start()
  t.after(() => server.stop())
  for (const mech of ['PLAIN', 'SCRAM-SHA256', 'SCRAM-SHA1']) {
    const other = await connect(server, {
      query: `allowed_sasl_mechanisms=${mech}`, username: 'someone', password: 'x',
    })
    await other.bucket('default').defaultCollection().upsert(`by-${mech}`, mech)
    await other.close()
  }
  const cluster = await connect(server, { username: 'anyone', password: 'anything' })
  t.after(() => cluster.close())
  const coll = cluster.bucket('default').defaultCollection()
  await coll.upsert('open', 'door')
  assert.strictEqual((await coll.get('open')).content, 'door')
  await assert.rejects(
    coll.upsert('durable', 'x', { durabilityLevel: couchbase.DurabilityLevel.PersistToMajority }),
    couchbase.DurabilityLevelNotAvailableError)
  await assert.rejects(coll.get('durable'), couchbase.DocumentNotFoundError)
})
