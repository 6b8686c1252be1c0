// bench-cluster.js - how soon a vbucket's new owner serves the SDK after a
// map change: for each trial a vbucket of node 0 is given to node 1
// (scripts/cluster move), then the SDK upserts a key of that vbucket until
// node 1 holds it (a GET straight to node 1, in the binary protocol).
//
//   CLUSTER_DIR=... CLUSTER_PORT=... node bench-cluster.js TRIALS
'use strict'

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const path = require('node:path')
const couchbase = require('couchbase')
const { ROOT, vbucketOf } = require('./harness')

const trials = Number(process.argv[2] || 5)
const base = Number(process.env.CLUSTER_PORT)
const dir = process.env.CLUSTER_DIR

// A GET of key (default collection, no HELLO) on vbucket vb at port: status.
function rawGet(port, key, vb) {
  return new Promise((resolve, reject) => {
    const k = Buffer.from(key)
    const h = Buffer.alloc(24)
    h[0] = 0x80
    h[1] = 0x00
    h.writeUInt16BE(k.length, 2)
    h.writeUInt16BE(vb, 6)
    h.writeUInt32BE(k.length, 8)
    const s = net.connect(port, '127.0.0.1', () => s.write(Buffer.concat([h, k])))
    let got = Buffer.alloc(0)
    s.on('data', (d) => {
      got = Buffer.concat([got, d])
      if (got.length >= 24 && got.length >= 24 + got.readUInt32BE(8)) {
        s.destroy()
        resolve(got.readUInt16BE(6))
      }
    })
    s.on('error', reject)
  })
}

async function main() {
  const sdk = await couchbase.connect(`couchbase://127.0.0.1:${base}`,
    { username: 'bench', password: 'bench' })
  const coll = sdk.bucket('default').defaultCollection()
  await coll.upsert('warm', 'up')
  const times = []
  for (let t = 0; t < trials; t++) {
    const map = JSON.parse(fs.readFileSync(path.join(dir, 'map.json')))
    const vb = map.vbuckets.indexOf(0)
    let key
    for (let i = 0; ; i++) {
      if (vbucketOf(`move-${t}-${i}`) === vb) { key = `move-${t}-${i}`; break }
    }
    const r = spawnSync(path.join(ROOT, 'scripts', 'cluster'), ['move', '1', String(vb)])
    if (r.status !== 0) throw new Error(String(r.stderr))
    const t0 = process.hrtime.bigint()
    for (;;) {
      await coll.upsert(key, 'moved', { timeout: 2000 })
      if ((await rawGet(base + 10, key, vb)) === 0) break
    }
    times.push(Number(process.hrtime.bigint() - t0) / 1e6)
  }
  times.sort((a, b) => a - b)
  console.log(`map change to the first SDK write served by the new owner, ${trials} trials:` +
    ` median ${times[Math.floor(times.length / 2)].toFixed(1)} ms, range ` +
    `${times[0].toFixed(1)}-${times[times.length - 1].toFixed(1)} ms`)
  await sdk.close()
}

main().catch((e) => { console.error(e); process.exit(1) })
