"""kvclient - a small client of kvhost's binary protocol (Python standard
library): the one that scripts/ep-collections and the host tests use.

    c = Client(11210)                       # or Client(("host", port))
    c.hello(0x07, 0x0B, 0x12)              # xerror, JSON, collections
    c.login_plain(b"ann", b"secret")
    status, r = c.set(b"k", b"v")
    status, r = c.get(b"k")                # r["value"] == b"v"

A response is a dict: op, status, cas, opaque, datatype, extras, key, value.
"""
import base64
import hashlib
import hmac
import socket
import struct

HDR = ">BBHBBHIIQ"          # the classic 24-byte header
ALT_HDR = ">BBBBBBHIIQ"     # flexible framing (magic 0x08): framing extras length
MAGIC_REQ, MAGIC_RES, MAGIC_ALT_REQ = 0x80, 0x81, 0x08


def leb128(n):
    """The unsigned LEB128 bytes of n (a collection id in front of a key)."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def packet(op, key=b"", value=b"", extras=b"", cas=0, vb=0, opaque=0, datatype=0,
           magic=MAGIC_REQ, frame=b""):
    """The bytes of one request."""
    body = frame + extras + key + value
    if magic == MAGIC_ALT_REQ:
        hdr = struct.pack(ALT_HDR, magic, op, len(frame), len(key), len(extras), datatype, vb,
                          len(body), opaque, cas)
    else:
        hdr = struct.pack(HDR, magic, op, len(key), len(extras), datatype, vb, len(body),
                          opaque, cas)
    return hdr + body


class Client:
    def __init__(self, server, timeout=10, agent=b"kvclient"):
        addr = ("127.0.0.1", server) if isinstance(server, int) else server
        self.s = socket.create_connection(addr, timeout=timeout)
        self.agent = agent
        self.coll = None  # collection id prefixed to keys once negotiated

    def close(self):
        self.s.close()

    def send(self, op, opaque=0x1234, **kw):
        self.s.sendall(packet(op, opaque=opaque, **kw))

    def recv_exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.s.recv(n - len(data))
            if not chunk:
                raise EOFError("connection closed")
            data += chunk
        return data

    def recv(self):
        magic, op, kl, el, dt, st, bl, opaque, cas = struct.unpack(HDR, self.recv_exact(24))
        body = self.recv_exact(bl)
        if magic != MAGIC_RES:
            raise ValueError("bad response magic %x" % magic)
        return dict(op=op, status=st, cas=cas, opaque=opaque, datatype=dt,
                    extras=body[:el], key=body[el:el + kl], value=body[el + kl:])

    def call(self, op, **kw):
        self.send(op, **kw)
        return self.recv()

    def k(self, key, coll=None):
        coll = self.coll if coll is None else coll
        return key if coll is None else leb128(coll) + key

    def hello(self, *features):
        """The features the server granted (collections: keys get a prefix)."""
        r = self.call(0x1F, key=self.agent,
                      value=b"".join(struct.pack(">H", f) for f in features))
        got = [struct.unpack(">H", r["value"][i:i + 2])[0] for i in range(0, len(r["value"]), 2)]
        if 0x12 in got:
            self.coll = 0
        return got

    def login_plain(self, user, password):
        """The SASL PLAIN answer (status 0: logged in)."""
        return self.call(0x21, key=b"PLAIN", value=b"\0" + user + b"\0" + password)

    def login_scram(self, user, password, mech="SCRAM-SHA512", nonce="f3 Kx! q~9",
                    tamper=False, c_attr="biws", final_nonce=None):
        """A SCRAM login (RFC 5802/7677): the final status, and whether the
        server's signature checked out. tamper, c_attr and final_nonce make a
        wrong proof, channel binding or nonce on purpose (tests)."""
        algo = {"SCRAM-SHA512": "sha512", "SCRAM-SHA256": "sha256", "SCRAM-SHA1": "sha1"}[mech]
        bare = "n=%s,r=%s" % (user.replace("=", "=3D").replace(",", "=2C"), nonce)
        r = self.call(0x21, key=mech.encode(), value=("n,," + bare).encode())
        if r["status"] != 0x21:
            return r["status"], False
        first = r["value"].decode()
        fields = dict(f.split("=", 1) for f in first.split(","))
        if not (fields["r"].startswith(nonce) and len(fields["r"]) > len(nonce)):
            raise ValueError("the server's nonce does not extend ours: %s" % first)
        salted = hashlib.pbkdf2_hmac(algo, password.encode(), base64.b64decode(fields["s"]),
                                     int(fields["i"]))
        client_key = hmac.new(salted, b"Client Key", algo).digest()
        stored = hashlib.new(algo, client_key).digest()
        without = "c=%s,r=%s" % (c_attr, final_nonce or fields["r"])
        auth_message = ",".join([bare, first, without]).encode()
        signature = hmac.new(stored, auth_message, algo).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        if tamper:
            proof = bytes([proof[0] ^ 1]) + proof[1:]
        r = self.call(0x22, key=mech.encode(),
                      value=(without + ",p=" + base64.b64encode(proof).decode()).encode())
        server_key = hmac.new(salted, b"Server Key", algo).digest()
        want_v = b"v=" + base64.b64encode(hmac.new(server_key, auth_message, algo).digest())
        return r["status"], r["value"] == want_v

    def set(self, key, value, flags=0, exp=0, cas=0, op=0x01, coll=None, vb=0):
        r = self.call(op, key=self.k(key, coll), value=value,
                      extras=struct.pack(">II", flags, exp), cas=cas, vb=vb)
        return r["status"], r

    def get(self, key, coll=None, op=0x00):
        r = self.call(op, key=self.k(key, coll))
        return r["status"], r
