// bench.js - the Couchbase SDK's throughput against a kvhost: `inflight`
// operations kept in flight from one Node process (get/upsert mix over 10,000
// keys of 100 B), for `seconds`; then the cost of a connect. Prints one line
// per measurement; nothing passes or fails.
//
//   node bench.js PORT SECONDS GET_PCT INFLIGHT [USERS_PORT]
'use strict'

const couchbase = require('couchbase')

const [port, seconds, getPct, inflight, usersPort] = process.argv.slice(2).map(Number)
const KEYS = 10000
const VALUE = 'x'.repeat(100)

function percentile(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : 0
}

async function throughput() {
  const cluster = await couchbase.connect(`couchbase://127.0.0.1:${port}`,
    { username: 'bench', password: 'bench' })
  const coll = cluster.bucket('default').defaultCollection()
  const raw = { transcoder: new couchbase.RawStringTranscoder() }
  for (let k = 0; k < KEYS; k += 500) {
    await Promise.all(Array.from({ length: Math.min(500, KEYS - k) },
      (_, i) => coll.upsert(`sdk:${k + i}`, VALUE, raw)))
  }
  const lat = []
  let done = 0
  const end = Date.now() + seconds * 1000
  async function worker(seed) {
    let x = seed
    while (Date.now() < end) {
      x = (x * 1103515245 + 12345) & 0x7fffffff
      const key = `sdk:${x % KEYS}`
      const t0 = process.hrtime.bigint()
      if (x % 100 < getPct) await coll.get(key, raw)
      else await coll.upsert(key, VALUE, raw)
      lat.push(Number(process.hrtime.bigint() - t0) / 1000)
      done++
    }
  }
  const t0 = Date.now()
  await Promise.all(Array.from({ length: inflight }, (_, i) => worker(i + 1)))
  const secs = (Date.now() - t0) / 1000
  lat.sort((a, b) => a - b)
  console.log(`${(done / secs).toFixed(0)} ops/s  p50 ${percentile(lat, 0.5).toFixed(1)} us` +
    `  p99 ${percentile(lat, 0.99).toFixed(1)} us  (sdk, ${inflight} in flight, ` +
    `${getPct}% gets)`)
  await cluster.close()
}

// The time from connect to the first answer, SCRAM-SHA512 (the client pays
// PBKDF2 over the stored iteration count; the server only HMACs) against the
// same with the open server.
async function connectCost(cport, username, password, rounds) {
  const times = []
  for (let i = 0; i < rounds; i++) {
    const t0 = process.hrtime.bigint()
    const cluster = await couchbase.connect(`couchbase://127.0.0.1:${cport}`,
      { username, password })
    await cluster.bucket('default').defaultCollection().exists('probe')
    times.push(Number(process.hrtime.bigint() - t0) / 1e6)
    await cluster.close()
  }
  times.sort((a, b) => a - b)
  return `p50 ${percentile(times, 0.5).toFixed(1)} ms, p99 ${percentile(times, 0.99).toFixed(1)} ms`
}

;(async () => {
  await throughput()
  if (usersPort) {
    const scram = await connectCost(usersPort, 'bench', 'bench pw', 20)
    const open = await connectCost(port, 'bench', 'bench', 20)
    console.log(`connect to first answer: SCRAM-SHA512 ${scram}; no users file ${open}`)
  }
})().catch((e) => { console.error(e); process.exit(1) })
