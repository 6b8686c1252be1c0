// tls.test.js - the SDK over TLS (couchbases://) against kvhost's TLS
// listener: a certificate chain made by the test with openssl, the CA as the
// SDK's trust store; another CA is refused.
'use strict'

const test = require('node:test')
const assert = require('node:assert')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const couchbase = require('couchbase')

const { Server, connect, makeCerts } = require('./harness')

test('TLS', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvhost_tls.'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const good = makeCerts(dir, 'good')
  const other = makeCerts(dir, 'other')
  const server = await new Server({ users: true, tls: good }).start()
  t.after(() => server.stop())
  const url = `couchbases://127.0.0.1:${server.tlsPort}`

  await t.test('couchbases:// with the CA as trust store: KV works', async () => {
    const cluster = await connect(server, { url, trustStorePath: good.ca, username: 'bob' })
    const coll = cluster.bucket('default').defaultCollection()
    await coll.upsert('over-tls', { secure: true })
    const r = await coll.get('over-tls')
    assert.deepStrictEqual(r.content, { secure: true })
    await cluster.close()
  })

  await t.test('SCRAM over TLS too', async () => {
    const cluster = await connect(server, {
      url: url + '?allowed_sasl_mechanisms=SCRAM-SHA512', trustStorePath: good.ca,
    })
    const r = await cluster.bucket('default').defaultCollection().get('over-tls')
    assert.deepStrictEqual(r.content, { secure: true })
    await cluster.close()
  })

  await t.test('a server certificate of another CA is refused', async (st) => {
    let err
    try {
      const cluster = await connect(server, {
        url, trustStorePath: other.ca,
        timeouts: { kvTimeout: 2000, connectTimeout: 3000 },
      })
      await cluster.bucket('default').defaultCollection().get('over-tls',
        { timeout: 2000 })
      await cluster.close()
    } catch (e) {
      err = e
      st.diagnostic(`refused: ${e.constructor.name}: ${e.message}`)
    }
    assert.ok(err instanceof couchbase.CouchbaseError,
      'connected through a certificate of another CA')
  })
})
