// cluster.test.js - the SDK against three kvhost nodes on loopback with one
// cluster map (scripts/cluster): it routes every key to its vbucket's node
// from the config the nodes serve; a map change moves vbuckets; a stopped
// node fails its vbuckets' operations and no others.
'use strict'

const test = require('node:test')
const assert = require('node:assert')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const couchbase = require('couchbase')

const { ROOT, KVHOST, ENGINE, freeBase, sleep, vbucketOf, nodeStats } = require('./harness')

const NODES = 3

function cluster(env, ...args) {
  const r = spawnSync(path.join(ROOT, 'scripts', 'cluster'), args, { env })
  assert.strictEqual(r.status, 0, String(r.stderr) + String(r.stdout))
  return String(r.stdout)
}

// Items per vbucket of one node (its "vbucket" stats).
function vbucketItems(port) {
  const st = nodeStats(port, 'vbucket')
  const items = new Map()
  for (const [k, v] of Object.entries(st)) {
    const m = /^vb_(\d+):items$/.exec(k)
    if (m) items.set(Number(m[1]), Number(v))
  }
  return items
}

test('three nodes, one map', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvhost_cluster.'))
  const base = await freeBase(NODES)
  const env = { ...process.env, CLUSTER_DIR: dir, CLUSTER_PORT: String(base), KVHOST, ENGINE }
  cluster(env, 'start', String(NODES))
  t.after(() => {
    cluster(env, 'stop')
    fs.rmSync(dir, { recursive: true, force: true })
  })
  const ports = [...Array(NODES).keys()].map((i) => base + 10 * i)
  const mapOf = () => JSON.parse(fs.readFileSync(path.join(dir, 'map.json')))
  const servers = ports.map((p) => `127.0.0.1:${p}`).join(',')
  for (const what of ['app', 'app.users']) {
    const r = spawnSync('python3', [path.join(ROOT, 'scripts', 'ep-collections'), '-s',
      servers, 'create', what])
    assert.strictEqual(r.status, 0, String(r.stderr))
  }
  const sdk = await couchbase.connect(`couchbase://127.0.0.1:${base}`, {
    username: 'any', password: 'any',
    timeouts: { kvTimeout: 5000, kvDurableTimeout: 5000, connectTimeout: 10000 },
  })
  t.after(() => sdk.close())
  const coll = sdk.bucket('default').scope('app').collection('users')
  const durable = { durabilityLevel: couchbase.DurabilityLevel.PersistToMajority }

  await t.test('3,000 durable writes land on their vbuckets\' nodes', async () => {
    for (let i = 0; i < 3000; i += 100) {
      await Promise.all([...Array(100).keys()].map((j) =>
        coll.upsert(`user-${i + j}`, { n: i + j }, durable)))
    }
    for (let i = 0; i < 3000; i += 100) {
      const got = await Promise.all([...Array(100).keys()].map((j) =>
        coll.get(`user-${i + j}`)))
      got.forEach((r, j) => assert.deepStrictEqual(r.content, { n: i + j }))
    }
    const map = mapOf()
    let total = 0
    ports.forEach((port, node) => {
      for (const [vb, n] of vbucketItems(port)) {
        assert.strictEqual(map.vbuckets[vb], node, `node ${node} holds vbucket ${vb}`)
        total += n
      }
    })
    assert.strictEqual(total, 3000)
  })

  await t.test('a map change moves 10 vbuckets: new keys land on the new owner',
    async () => {
      const moved = [...Array(10).keys()] // vbuckets 0-9, node 0's
      cluster(env, 'move', '1', ...moved.map(String))
      const keys = []
      for (let i = 0; keys.length < 50; i++)
        if (moved.includes(vbucketOf(`moved-${i}`))) keys.push(`moved-${i}`)
      // The SDK learns the new map from not_my_vbucket (or its config poll).
      for (const k of keys) await coll.upsert(k, { moved: true }, durable)
      for (const k of keys) assert.deepStrictEqual((await coll.get(k)).content, { moved: true })
      const on1 = vbucketItems(ports[1])
      const count = moved.reduce((s, vb) => s + (on1.get(vb) || 0), 0)
      assert.strictEqual(count, keys.length, 'the new keys are on node 1')
    })

  await t.test('a stopped node fails its vbuckets, the others serve', async (st) => {
    const map = mapOf()
    const on = (node) => {
      const out = []
      for (let i = 0; out.length < 20; i++)
        if (map.vbuckets[vbucketOf(`user-${i}`)] === node) out.push(`user-${i}`)
      return out
    }
    cluster(env, 'stop-node', '2')
    for (const k of on(2).slice(0, 5)) {
      await assert.rejects(coll.get(k, { timeout: 1000 }), (e) => {
        st.diagnostic(`${k} while its node is down: ${e.constructor.name}: ${e.message}`)
        return e instanceof couchbase.CouchbaseError
      }, k)
    }
    for (const k of [...on(0), ...on(1)]) assert.ok((await coll.get(k)).content)
    cluster(env, 'start-node', '2')
    let ok = false
    for (let i = 0; i < 60 && !ok; i++) {
      try {
        await Promise.all(on(2).map((k) => coll.get(k, { timeout: 1000 })))
        ok = true
      } catch (e) {
        await sleep(500)
      }
    }
    assert.ok(ok, 'node 2\'s keys are served again after its restart')
  })
})
