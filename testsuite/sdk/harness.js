// harness.js - what the SDK tests share: a kvhost on loopback (Server),
// connecting the SDK, certificates made with openssl, a key's vbucket, and a
// node's stats through the binary protocol.
'use strict'

const assert = require('node:assert')
const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const zlib = require('node:zlib')
const couchbase = require('couchbase')

const ROOT = path.resolve(__dirname, '..', '..')
const KVHOST = process.env.KVHOST
const ENGINE = process.env.ENGINE
const PASSWORD = 'sdk password'

function portFree(port) {
  return new Promise((resolve) => {
    const s = net.createServer()
    s.once('error', () => resolve(false))
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
  })
}

// A base port whose n nodes' ports (base + 10 i, and + 1 for TLS) are free,
// below the ephemeral range (no outgoing connection takes one meanwhile).
async function freeBase(n) {
  for (let tries = 0; tries < 100; tries++) {
    const base = 20000 + 10 * Math.floor(Math.random() * (1200 - n))
    let ok = true
    for (let i = 0; i < n && ok; i++) {
      ok = (await portFree(base + 10 * i)) && (await portFree(base + 10 * i + 1))
    }
    if (ok) return base
  }
  throw new Error(`no free ports for ${n} nodes`)
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms))
}

// A kvhost on loopback; users: a users file path or null (open, loopback).
class Server {
  constructor(opts) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvhost_sdk.'))
    this.data = opts.data === false ? null : path.join(this.dir, 'data')
    this.users = opts.users ? path.join(this.dir, 'users') : null
    this.config = opts.config || ''
    this.tls = opts.tls || null // {chain, key}: a TLS listener too
  }

  async start() {
    if (this.users && !fs.existsSync(this.users)) {
      for (const [name, admin] of [['alice', true], ['bob', false]]) {
        const r = spawnSync('python3', [path.join(ROOT, 'scripts', 'kvhost-user'),
          this.users, name].concat(admin ? ['--admin'] : []),
        { env: { ...process.env, KVHOST_PASSWORD: PASSWORD } })
        assert.strictEqual(r.status, 0, String(r.stderr))
      }
    }
    if (!this.port) {
      // freeBase checks base and base + 1: the TLS port, if there is one.
      this.port = await freeBase(1)
      if (this.tls && !this.tlsPort) this.tlsPort = this.port + 1
    }
    const args = ['-e', ENGINE, '-p', String(this.port), '-t', '2']
    if (this.data) args.push('-d', this.data)
    if (this.users) args.push('-U', this.users)
    if (this.config) args.push('-c', this.config)
    if (this.tls) {
      this.tlsPort = this.tlsPort || (await freeBase(1)) + 1
      args.push('-C', this.tls.chain, '-K', this.tls.key, '-S', String(this.tlsPort))
    }
    this.proc = spawn(KVHOST, args, { stdio: ['ignore', 'ignore', 'pipe'] })
    this.stderr = ''
    this.proc.stderr.on('data', (d) => { this.stderr += d })
    for (let i = 0; i < 500; i++) {
      if (await this.accepting()) return this
      await sleep(10)
    }
    throw new Error('kvhost did not start: ' + this.stderr)
  }

  accepting() {
    return new Promise((resolve) => {
      const s = net.connect(this.port, '127.0.0.1', () => { s.destroy(); resolve(true) })
      s.on('error', () => resolve(false))
    })
  }

  url(query) {
    return `couchbase://127.0.0.1:${this.port}` + (query ? '?' + query : '')
  }

  collections(...args) {
    const cred = this.users ? ['-u', 'alice', '-p', PASSWORD] : []
    const r = spawnSync('python3', [path.join(ROOT, 'scripts', 'ep-collections'), '-s',
      `127.0.0.1:${this.port}`, ...cred, ...args])
    assert.strictEqual(r.status, 0, String(r.stderr) + String(r.stdout))
  }

  async kill9() {
    const exited = new Promise((r) => this.proc.on('exit', r))
    this.proc.kill('SIGKILL')
    await exited
  }

  async stop() {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      const exited = new Promise((r) => this.proc.on('exit', r))
      this.proc.kill('SIGTERM')
      await exited
    }
    fs.rmSync(this.dir, { recursive: true, force: true })
  }
}

const TIMEOUTS = { kvTimeout: 5000, kvDurableTimeout: 5000, connectTimeout: 10000 }

async function connect(server, opts = {}) {
  return couchbase.connect(opts.url || server.url(opts.query), {
    username: opts.username || 'alice',
    password: opts.password || PASSWORD,
    timeouts: opts.timeouts || TIMEOUTS,
    ...(opts.trustStorePath ? { security: { trustStorePath: opts.trustStorePath } } : {}),
  })
}

// A CA and a server certificate for 127.0.0.1 signed by it, made with
// `openssl req` in dir: {ca, chain, key}.
function makeCerts(dir, name) {
  const f = (x) => path.join(dir, `${name}-${x}`)
  const run = (args) => {
    const r = spawnSync('openssl', args)
    assert.strictEqual(r.status, 0, String(r.stderr))
  }
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj',
    `/CN=${name} test CA`, '-keyout', f('ca.key'), '-out', f('ca.pem')])
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout',
    f('server.key'), '-out', f('server.csr')])
  fs.writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
  run(['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'),
    '-CAcreateserial', '-days', '2', '-extfile', f('ext.cnf'), '-out', f('server.pem')])
  return { ca: f('ca.pem'), chain: f('server.pem'), key: f('server.key') }
}

// The vbucket of a key, as the SDK computes it: bits 16-30 of the key's
// CRC-32 (IEEE, with its final inversion), modulo the vbuckets.
function vbucketOf(key, nvbuckets = 1024) {
  return ((zlib.crc32(key) >>> 16) & 0x7fff) % nvbuckets
}

// A binary-protocol STAT of one node (scripts/kvclient.py): {key: value}.
function nodeStats(port, group) {
  const code = 'import json, sys\n' +
    `sys.path.insert(0, ${JSON.stringify(path.join(ROOT, 'scripts'))})\n` +
    'import kvclient\n' +
    `c = kvclient.Client(${port})\n` +
    `c.send(0x10, key=${JSON.stringify(group)}.encode())\n` +
    'out = {}\n' +
    'while True:\n' +
    '    r = c.recv()\n' +
    '    if r["status"] or not r["key"]:\n' +
    '        break\n' +
    '    out[r["key"].decode()] = r["value"].decode()\n' +
    'print(json.dumps(out))\n'
  const r = spawnSync('python3', ['-c', code])
  assert.strictEqual(r.status, 0, String(r.stderr))
  return JSON.parse(String(r.stdout))
}

module.exports = { ROOT, KVHOST, ENGINE, PASSWORD, TIMEOUTS, freeBase, sleep, Server,
  connect, makeCerts, vbucketOf, nodeStats }

