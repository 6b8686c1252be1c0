// bench-subdoc.js - one field of a 16 KB document through the Couchbase SDK:
// lookupIn of that field, or get of the whole document, over 1,000 documents
// with 64 operations in flight, for `seconds`. Prints the operations done and
// their rate; scripts/bench-sdk adds the bytes kvhost sent per operation.
//
//   node bench-subdoc.js PORT SECONDS get|lookup [load]
'use strict'

const couchbase = require('couchbase')

const [port, seconds] = process.argv.slice(2, 4).map(Number)
const mode = process.argv[4]
const load = process.argv[5] === 'load'
const DOCS = 1000
const INFLIGHT = 64

async function main () {
  const cluster = await couchbase.connect(`couchbase://127.0.0.1:${port}`,
    { username: 'bench', password: 'bench' })
  const coll = cluster.bucket('default').defaultCollection()
  if (load) {
    // 16 KB: a name, a nested field and 16,000 bytes of padding.
    const doc = { name: 'n', profile: { city: 'Oslo', zip: '0150' }, pad: 'p'.repeat(16000) }
    for (let k = 0; k < DOCS; k += 250) {
      await Promise.all(Array.from({ length: Math.min(250, DOCS - k) },
        (_, i) => coll.upsert(`big:${k + i}`, doc)))
    }
    await cluster.close()
    return
  }
  let done = 0
  const end = Date.now() + seconds * 1000
  async function worker (seed) {
    let x = seed
    while (Date.now() < end) {
      x = (x * 1103515245 + 12345) & 0x7fffffff
      const key = `big:${x % DOCS}`
      if (mode === 'get') {
        const r = await coll.get(key)
        if (r.content.profile.city !== 'Oslo') throw new Error('wrong document')
      } else {
        const r = await coll.lookupIn(key, [couchbase.LookupInSpec.get('profile.city')])
        if (r.content[0].value !== 'Oslo') throw new Error('wrong field')
      }
      done++
    }
  }
  const t0 = Date.now()
  await Promise.all(Array.from({ length: INFLIGHT }, (_, i) => worker(i + 1)))
  const secs = (Date.now() - t0) / 1000
  console.log(`${done} ${(done / secs).toFixed(0)}`)
  await cluster.close()
}

main().catch((e) => { console.error(e); process.exit(1) })
