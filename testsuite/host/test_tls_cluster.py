#!/usr/bin/env python3
"""TLS and cluster-map tests of kvhost (Python standard library, loopback).

    test_tls_cluster.py KVHOST ENGINE_SO EWOULDBLOCK_SO

TLS: a certificate chain made with `openssl req`; what the TLS listener
takes (TLS 1.2+, the binary protocol inside) and drops (plain TCP, older
TLS), where PLAIN may be used, a bad certificate at start, and memcached's
own test client on the plain port beside it. Cluster: nodes started by
scripts/cluster with one map; not_my_vbucket with the config from a node
that does not own a vbucket; map reloads (newer, same, broken); a map that
does not fit the node. Reports in TAP.
"""
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_hostile as hostile  # noqa: E402  (its Host; it reads the same argv)
import test_kvhost as kv  # noqa: E402
import kvclient  # noqa: E402  (test_kvhost put scripts/ on the path)

from test_kvhost import Skip, check, free_port  # noqa: E402

KVHOST, ENGINE = kv.KVHOST, kv.ENGINE
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
NOT_MY_VBUCKET, AUTH_ERROR = 0x07, 0x20
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def make_certs(d):
    """A CA and a server certificate for 127.0.0.1 signed by it."""
    def run(*args):
        r = subprocess.run(["openssl"] + list(args), capture_output=True)
        check(r.returncode == 0, "openssl %s: %s" % (args[0], r.stderr.decode()))
    p = lambda name: os.path.join(d, name)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA",
        "-keyout", p("ca.key"), "-out", p("ca.pem"))
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", p("server.key"), "-out", p("server.csr"))
    with open(p("ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", p("server.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"),
        "-CAcreateserial", "-days", "2", "-extfile", p("ext.cnf"), "-out", p("server.pem"))
    # A client certificate of the same CA, for -V.
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=a client",
        "-keyout", p("client.key"), "-out", p("client.csr"))
    run("x509", "-req", "-in", p("client.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"),
        "-CAcreateserial", "-days", "2", "-out", p("client.pem"))
    return p("ca.pem"), p("server.pem"), p("server.key")


CERTS = None


def certs():
    global CERTS
    if CERTS is None:
        CERTS = make_certs(tempfile.mkdtemp(prefix="kvhost_certs."))
    return CERTS


def tls_client(port, host="127.0.0.1", client_cert=False, **ctx_opts):
    """A kvclient.Client over TLS, trusting the test CA (with the client
    certificate the CA signed, if asked)."""
    ctx = ssl.create_default_context(cafile=certs()[0])
    if client_cert:
        d = os.path.dirname(certs()[0])
        ctx.load_cert_chain(os.path.join(d, "client.pem"), os.path.join(d, "client.key"))
    for k, v in ctx_opts.items():
        setattr(ctx, k, v)
    raw = socket.create_connection((host, port), timeout=10)
    c = kvclient.Client.__new__(kvclient.Client)
    c.s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    c.coll, c.agent = None, b"test_tls"
    return c


def tls_host(*opts, users=None):
    ca, chain, key = certs()
    tls_port = free_port()
    h = hostile.Host("-C", chain, "-K", key, "-S", str(tls_port), *opts, users=users)
    h.tls_port = tls_port
    return h


def wait_for(cond, seconds=10):
    """Polls cond until it holds (True) or the time is up (False)."""
    end = time.time() + seconds
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def local_address():
    """This machine's address on a non-loopback interface, or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))
        ip = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if ip.startswith("127.") else ip


# ---- TLS ----

@test
def tls_kv_and_what_is_dropped():
    h = tls_host()
    try:
        c = tls_client(h.tls_port)
        check(c.s.version() in ("TLSv1.2", "TLSv1.3"), "TLS version %s" % c.s.version())
        check(c.call(0x0A)["status"] == 0, "NOOP over TLS")
        check(c.set(b"k", b"over tls")[0] == 0, "SET over TLS")
        status, r = c.get(b"k")
        check(status == 0 and r["value"] == b"over tls", "GET over TLS")
        # A pipeline larger than one TLS record, answered whole.
        c.s.sendall(b"".join(kvclient.packet(0x00, key=b"k", opaque=i) for i in range(2000)))
        got = [c.recv() for _ in range(2000)]
        check([r["opaque"] for r in got] == list(range(2000)), "2,000 pipelined GETs")
        # A client that closes its socket without TLS's close_notify is done,
        # not in error (OpenSSL 3 calls that an unexpected EOF).
        errors = int(kv.host_stat(h.port, b"tls_errors") or 0)
        conns = int(kv.host_stat(h.port, b"curr_connections") or 0)
        c.close()
        check(wait_for(lambda: int(kv.host_stat(h.port, b"curr_connections") or 0) < conns),
              "the closed TLS client's connection ends")
        check(int(kv.host_stat(h.port, b"tls_errors") or 0) == errors,
              "a close without close_notify is not a TLS error")
        # Plain TCP on the TLS port: dropped.
        s = socket.create_connection(("127.0.0.1", h.tls_port), timeout=5)
        s.sendall(kvclient.packet(0x0A))
        check(hostile.closed_within(s, 5), "a plain client on the TLS port is dropped")
        check(int(kv.host_stat(h.port, b"tls_errors") or 0) >= 1,
              "tls_errors counts the dropped client")
        check(int(kv.host_stat(h.port, b"tls_connections") or 0) >= 2, "tls_connections")
        # TLS 1.1 and older: the server refuses them in the handshake (the
        # client is let offer TLS 1.1, which its own defaults forbid).
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(certs()[0])
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1: on purpose
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        errors = int(kv.host_stat(h.port, b"tls_errors") or 0)
        try:
            ctx.wrap_socket(socket.create_connection(("127.0.0.1", h.tls_port), timeout=5),
                            server_hostname="127.0.0.1")
            raise AssertionError("a TLS 1.1 client was accepted")
        except ssl.SSLError as e:
            check("PROTOCOL_VERSION" in str(e) or "VERSION" in str(e).upper(),
                  "TLS 1.1 refused with a version alert: %s" % e)
        check(wait_for(lambda: int(kv.host_stat(h.port, b"tls_errors") or 0) > errors),
              "the server refused the TLS 1.1 handshake (tls_errors)")
        check(h.proc.poll() is None, "kvhost still runs")
    finally:
        h.stop()


@test
def tls_client_certificates():
    """-V: only clients with a certificate of the given CA get in."""
    h = tls_host("-V", certs()[0])
    try:
        d = os.path.dirname(certs()[0])
        ctx = ssl.create_default_context(cafile=certs()[0])
        ctx.load_cert_chain(os.path.join(d, "client.pem"), os.path.join(d, "client.key"))
        first = ctx.wrap_socket(socket.create_connection(("127.0.0.1", h.tls_port), timeout=5),
                                server_hostname="127.0.0.1")
        first.sendall(kvclient.packet(0x0A))
        check(len(first.recv(24)) == 24, "NOOP with a client certificate")
        session = first.session
        first.close()
        # The session resumes (it needs the server's session id context).
        again = ctx.wrap_socket(socket.create_connection(("127.0.0.1", h.tls_port), timeout=5),
                                server_hostname="127.0.0.1", session=session)
        again.sendall(kvclient.packet(0x0A))
        check(len(again.recv(24)) == 24 and again.session_reused,
              "a resumed session with a client certificate is served")
        again.close()
        refused = False
        try:
            n = tls_client(h.tls_port)
            n.s.settimeout(5)
            n.send(0x0A)
            refused = n.s.recv(24) == b""
        except (ssl.SSLError, ConnectionResetError, EOFError, BrokenPipeError):
            refused = True
        check(refused, "a client without a certificate got an answer")
    finally:
        h.stop()


@test
def tls_bad_certificate_stops_the_start():
    ca, chain, key = certs()
    err = hostile.start_fails("-C", "/nonexistent/chain.pem", "-K", key)
    check(err is not None and "cannot use the certificate chain /nonexistent/chain.pem" in err,
          "missing chain: %r" % err)
    err = hostile.start_fails("-C", chain, "-K", ca)  # a certificate as the key
    check(err is not None and "cannot use the private key" in err, "bad key: %r" % err)
    err = hostile.start_fails("-C", chain)
    check(err is not None and "usage" in err, "a chain without its key: %r" % err)


@test
def plain_only_over_tls_or_loopback():
    ip = local_address()
    if ip is None:
        raise Skip("no non-loopback address on this machine")
    h = tls_host("-l", "0.0.0.0", users=[("ann", "ann's secret", False)])
    try:
        c = kvclient.Client((ip, h.port))
        c.hello(0x07)  # xerror: a refusal carries its reason
        mechs = c.call(0x20)["value"].decode().split()
        check("PLAIN" not in mechs and "SCRAM-SHA512" in mechs, "mechanisms: %s" % mechs)
        r = c.login_plain(b"ann", b"ann's secret")
        check(r["status"] == AUTH_ERROR and b"only over TLS" in r["value"],
              "PLAIN from %s: 0x%x %r" % (ip, r["status"], r["value"]))
        status, signed = kv.scram_login(c, "SCRAM-SHA512", "ann", "ann's secret")
        check(status == 0 and signed, "SCRAM from a non-loopback address")
        t = tls_client(h.tls_port, host=ip)
        check(t.login_plain(b"ann", b"ann's secret")["status"] == 0, "PLAIN over TLS")
        loop = kvclient.Client(h.port)
        check(loop.login_plain(b"ann", b"ann's secret")["status"] == 0, "PLAIN from loopback")
    finally:
        h.stop()


@test
def memccapable_beside_tls():
    if shutil.which("memccapable") is None:
        raise AssertionError("libmemcached-tools is not installed")
    h = tls_host()
    try:
        r = kv.run_tool(["memccapable", "-h", "127.0.0.1", "-p", str(h.port), "-b"])
        out = r.stdout.decode()
        check("All tests passed" in out and out.count("[pass]") == 27,
              "memccapable on the plain port:\n%s" % out)
    finally:
        h.stop()


# ---- cluster maps ----

def free_base(n):
    """A base port with its n nodes' ports (base + 10 i, and + 1 for TLS) free,
    below the ephemeral range (so no outgoing connection takes one meanwhile)."""
    import random
    for _ in range(100):
        base = random.randrange(20000, 32000 - 10 * n, 10)
        try:
            for p in [base + 10 * i + d for i in range(n) for d in (0, 1)]:
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                s.close()
            return base
        except OSError:
            continue
    raise AssertionError("no free ports for %d nodes" % n)


class Cluster:
    def __init__(self, n, tls=False):
        self.dir = tempfile.mkdtemp(prefix="kvhost_map.")
        self.base = free_base(n)
        self.env = dict(os.environ, CLUSTER_DIR=self.dir, CLUSTER_PORT=str(self.base),
                        KVHOST=KVHOST, ENGINE=ENGINE)
        self.run("start", str(n), *(["--tls"] if tls else []))
        self.ports = [self.base + 10 * i for i in range(n)]

    def run(self, *args):
        r = subprocess.run([os.path.join(ROOT, "scripts", "cluster")] + list(args),
                           env=self.env, capture_output=True, timeout=60)
        check(r.returncode == 0, "scripts/cluster %s: %s" % (args, r.stderr.decode()))
        return r.stdout.decode()

    def map(self):
        with open(os.path.join(self.dir, "map.json")) as f:
            return json.load(f)

    def log(self, i):
        with open(os.path.join(self.dir, "node%d.log" % i)) as f:
            return f.read()

    def pid(self, i):
        with open(os.path.join(self.dir, "pids")) as f:
            return int(f.read().split()[i])

    def stop(self):
        self.run("stop")
        shutil.rmtree(self.dir, ignore_errors=True)


def config_of(port, vb):
    """GET of vbucket vb on the node at port: (status, the config in the body)."""
    c = kvclient.Client(port)
    c.hello(0x07, 0x0B, 0x12)
    r = c.call(0x00, key=kvclient.leb128(0) + b"k", vb=vb)
    c.close()
    return r["status"], json.loads(r["value"]) if r["status"] == NOT_MY_VBUCKET else None


@test
def cluster_not_my_vbucket_and_reloads():
    cl = Cluster(2)
    try:
        m = cl.map()
        vb1 = m["vbuckets"].index(1)  # a vbucket of node 1
        status, cfg = config_of(cl.ports[0], vb1)
        check(status == NOT_MY_VBUCKET, "node 0 on vbucket %d: 0x%x" % (vb1, status))
        check([n["services"]["kv"] for n in cfg["nodesExt"]] == cl.ports and
              cfg["vBucketServerMap"]["vBucketMap"][vb1] == [1] and cfg["rev"] == 1,
              "the config in the reply: %s" % json.dumps(cfg)[:300])
        check(config_of(cl.ports[1], vb1)[0] == 1, "node 1 serves vbucket %d (not found)" % vb1)
        # A newer map: node 0 takes the vbucket.
        cl.run("move", "0", str(vb1))  # returns once both nodes serve the new map
        check(config_of(cl.ports[0], vb1)[0] == 1, "node 0 serves vbucket %d after the move" % vb1)
        status, cfg = config_of(cl.ports[1], vb1)
        check(status == NOT_MY_VBUCKET and cfg["rev"] == 2 and
              cfg["vBucketServerMap"]["vBucketMap"][vb1] == [0],
              "node 1 after the move: 0x%x" % status)
        # The same map again: nothing changes.
        os.kill(cl.pid(0), 1)
        check(wait_for(lambda: "not newer than the one in use" in cl.log(0)),
              "same map: %s" % cl.log(0)[-300:])
        # A broken map: the one in use stays.
        with open(os.path.join(cl.dir, "map.json"), "w") as f:
            f.write('{"rev": 3, "nodes": []}')
        os.kill(cl.pid(1), 1)
        check(wait_for(lambda: "the map in use stays" in cl.log(1)),
              "broken map: %s" % cl.log(1)[-300:])
        status, cfg = config_of(cl.ports[1], vb1)
        check(status == NOT_MY_VBUCKET and cfg["rev"] == 2, "node 1 keeps map rev 2")
    finally:
        cl.stop()


@test
def cluster_with_tls():
    """scripts/cluster --tls: every node's TLS port is in the config as kvSSL,
    and a TLS client of the cluster's CA is served there."""
    cl = Cluster(2, tls=True)
    try:
        c = kvclient.Client(cl.ports[0])
        r = c.call(0xB5)
        cfg = json.loads(r["value"])
        check([n["services"].get("kvSSL") for n in cfg["nodesExt"]] ==
              [p + 1 for p in cl.ports], "kvSSL in the config: %s" % cfg["nodesExt"])
        ctx = ssl.create_default_context(cafile=os.path.join(cl.dir, "ca.pem"))
        raw = socket.create_connection(("127.0.0.1", cl.ports[1] + 1), timeout=10)
        t = kvclient.Client.__new__(kvclient.Client)
        t.s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        t.coll, t.agent = None, b"test_tls"
        vb = cl.map()["vbuckets"].index(1)
        r = t.call(0x01, key=b"k", extras=b"\0" * 8, value=b"v", vb=vb)
        check(r["status"] == 0, "a SET over TLS on node 1's vbucket: 0x%x" % r["status"])
    finally:
        cl.stop()


@test
def cluster_map_that_does_not_fit():
    d = tempfile.mkdtemp(prefix="kvhost_map.")
    try:
        port = free_port()
        path = os.path.join(d, "map.json")
        uuid = "0123456789abcdef0123456789abcdef"
        good = {"rev": 1, "uuid": uuid, "nodes": [{"host": "127.0.0.1", "port": port}],
                "vbuckets": [0] * 1024}
        cases = [
            (dict(good, nodes=[{"host": "127.0.0.1", "port": port + 1}]), "listens on port"),
            (dict(good, nodes=[{"host": "127.0.0.1", "port": port}] * 2), "are both"),
            ({k: v for k, v in good.items() if k != "uuid"}, "\"uuid\""),
            (dict(good, vbuckets=[0] * 10), "one node index per vbucket"),
            (dict(good, vbuckets=[1] * 1024), "the owner must be a node index"),
            (dict(good, rev=0), "\"rev\""),
        ]
        for m, want in cases:
            with open(path, "w") as f:
                json.dump(m, f)
            r = subprocess.run([KVHOST, "-e", ENGINE, "-p", str(port), "-M", path, "-N", "0"],
                               capture_output=True, timeout=20)
            err = r.stderr.decode()
            check(r.returncode != 0 and want in err, "map %s: %s" % (json.dumps(m)[:80], err))
        with open(path, "w") as f:
            json.dump(good, f)
        check(hostile.start_fails("-M", path, "-N", "3") is not None,
              "node 3 of a one-node map")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    try:
        return 0 if kv.run_tests(TESTS, lambda t: t()) == 0 else 1
    finally:
        if CERTS is not None:
            shutil.rmtree(os.path.dirname(CERTS[0]), ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
