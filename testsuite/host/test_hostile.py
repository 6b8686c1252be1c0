#!/usr/bin/env python3
"""Hostile-input tests of kvhost (Python standard library, loopback only).

    test_hostile.py KVHOST ENGINE_SO EWOULDBLOCK_SO

Each case starts its own kvhost with the options it needs and checks one way a
client could hurt the server or other clients: memory it could make the
server hold, connection slots and descriptors it could take, threads it could
keep busy, what failed logins reveal, and commands the protocol must refuse or
answer. Counts and memory figures are printed per case. Reports in TAP.
"""
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_kvhost as kv  # noqa: E402  (its helpers; it reads the same argv)
import kvclient  # noqa: E402  (test_kvhost put scripts/ on the path)

from test_kvhost import HDR, SUCCESS, EINVAL, Client, check, free_port, users_file  # noqa: E402

KVHOST, ENGINE, EWB = kv.KVHOST, kv.ENGINE, kv.EWB
TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts",
                    "kvhost-user")
AUTH_ERROR, EACCESS = 0x20, 0x24
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


class Host:
    """One kvhost with its own data directory, options and (optionally) users."""

    def __init__(self, *opts, users=None, engine=None, config=None, preexec=None,
                 iterations=None):
        """users: (name, password, admin) entries for a users file of its own."""
        self.dir = tempfile.mkdtemp(prefix="kvhost_hostile.")
        self.port = free_port()
        if users:
            users = users_file(self.dir, *users, iterations=iterations)
        args = [KVHOST, "-e", engine or ENGINE, "-p", str(self.port), "-d",
                os.path.join(self.dir, "data")]
        if config:
            args += ["-c", config]
        if users:
            args += ["-U", users]
        self.args = args + list(opts)
        self.err = open(os.path.join(self.dir, "stderr"), "w+")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=self.err,
                                     preexec_fn=preexec)
        for _ in range(1000):
            if self.proc.poll() is not None:
                raise RuntimeError("kvhost exited: %s" % self.stderr())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
                break
            except OSError:
                time.sleep(0.01)

    def client(self, user=None, password=None):
        c = Client(self.port)
        if user is not None:
            r = c.login_plain(user, password)
            check(r["status"] == SUCCESS, "login of %r: 0x%x" % (user, r["status"]))
        while c.get(b"probe")[0] == 0x86:
            time.sleep(0.01)  # warmup
        return c

    def rss(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def cpu(self):
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stderr(self):
        self.err.flush()
        with open(self.err.name) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.err.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return code


def closed_within(sock, seconds):
    """True if the server closes sock within `seconds` (answers are skipped)."""
    sock.settimeout(0.2)
    end = time.time() + seconds
    while time.time() < end:
        try:
            if sock.recv(65536) == b"":
                return True
        except socket.timeout:
            pass
        except OSError:
            return True
    return False


def raw(op, key=b"", extras=b"", value=b"", opaque=0):
    return kvclient.packet(op, key=key, extras=extras, value=value, opaque=opaque)


def read_until_close(sock, timeout=5.0):
    """Every byte until the server closes (or resets, or `timeout` passes)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    return data


def read_answers(sock, timeout=5.0):
    """Every answer until the server closes (or `timeout` passes)."""
    data = read_until_close(sock, timeout)
    out = []
    while len(data) >= 24:
        magic, op, kl, el, dt, st, bl, opaque, cas = struct.unpack(HDR, data[:24])
        out.append((op, st, opaque))
        data = data[24 + bl:]
    return out


# ---- denial of service ----

@test
def output_backpressure():
    """A client that sends GETs of a 1 MiB value and never reads the answers."""
    h = Host("-O", str(4 << 20))
    try:
        c = h.client()
        check(c.set(b"big", b"x" * (1 << 20))[0] == SUCCESS, "set 1 MiB")
        before = h.rss()
        hostile = socket.create_connection(("127.0.0.1", h.port))
        hostile.setblocking(False)
        pkt = raw(0x00, key=b"big")
        sent = 0
        t_end = time.time() + 3
        while sent < 100 and time.time() < t_end:  # as far as the server reads
            try:
                hostile.send(pkt)
                sent += 1
            except BlockingIOError:
                time.sleep(0.01)
        time.sleep(1)
        grown = h.rss() - before
        print("# %d GETs of 1 MiB sent, never read: RSS %+.1f MiB" % (sent, grown / 2**20))
        check(grown < (4 << 20) + (48 << 20), "RSS grew %.0f MiB" % (grown / 2**20))
        t0 = time.time()
        st, r = c.get(b"big")
        check(st == SUCCESS and len(r["value"]) == 1 << 20, "another client is served")
        check(time.time() - t0 < 2, "served at once")
        # Reading resumes as the client reads: every answer arrives, whole.
        hostile.setblocking(True)
        hostile.settimeout(30)
        got, buf = 0, b""
        while got < sent:
            chunk = hostile.recv(1 << 20)
            check(chunk, "the connection ended after %d of %d answers" % (got, sent))
            buf += chunk
            while len(buf) >= 24:
                blen = struct.unpack(">I", buf[8:12])[0]
                if len(buf) < 24 + blen:
                    break
                check(buf[6:8] == b"\0\0" and blen == (1 << 20) + 4, "a whole GET answer")
                buf = buf[24 + blen:]
                got += 1
        hostile.close()
    finally:
        h.stop()


@test
def parked_input_is_bounded():
    """Behind a parked command the server stops reading past its limit."""
    h = Host("-O", str(1 << 20), engine=EWB,
             config="ewb_engine=%s;ewb_mode=never;ewb_ops=manifest" % ENGINE)
    try:
        c = h.client()
        before = h.rss()
        hostile = socket.create_connection(("127.0.0.1", h.port))
        hostile.sendall(raw(0xB9, value=b'{"uid":"5","scopes":[]}'))  # parked for ever
        hostile.setblocking(False)
        sent, blob = 0, raw(0x00, key=b"k" * 200) * 256
        t_end = time.time() + 3
        while time.time() < t_end and sent < (400 << 20):
            try:
                sent += hostile.send(blob)
            except BlockingIOError:
                time.sleep(0.01)
        grown = h.rss() - before
        print("# %.1f MiB sent behind a parked command: RSS %+.1f MiB"
              % (sent / 2**20, grown / 2**20))
        check(sent < (64 << 20), "the server kept reading: %d MiB" % (sent >> 20))
        check(grown < (48 << 20), "RSS grew %.0f MiB" % (grown / 2**20))
        check(c.set(b"k", b"v")[0] == SUCCESS, "others served")
        hostile.close()
    finally:
        h.stop()


@test
def unauthenticated_packets_are_small():
    h = Host(users=[("bob", "builder", False)])
    try:
        before = h.rss()
        socks = []
        for _ in range(8):
            s = socket.create_connection(("127.0.0.1", h.port))
            s.sendall(struct.pack(HDR, 0x80, 0x21, 5, 0, 0, 0, 21 << 20, 0, 0) + b"PLAIN")
            socks.append(s)
        closed = sum(closed_within(s, 2) for s in socks)
        print("# 8 unauthenticated 21 MiB bodies announced: %d closed, RSS %+.1f MiB"
              % (closed, (h.rss() - before) / 2**20))
        check(closed == 8, "closed %d of 8" % closed)
        c = Client(h.port)
        check(c.call(0x20)["status"] == SUCCESS, "small packets still work")
        check(c.call(0x1F, key=b"agent", value=b"\x00\x07")["status"] == SUCCESS, "hello")
        r = c.call(0x21, key=b"PLAIN", value=b"\0bob\0builder")
        check(r["status"] == SUCCESS, "login")
        # Data commands answer ETMPFAIL until warmup is done: under a loaded
        # machine's fsyncs, past the 2 s above (CI of bce94ff).
        deadline = time.time() + 30
        while c.get(b"probe")[0] == 0x86 and time.time() < deadline:
            time.sleep(0.01)
        st = c.set(b"big", b"x" * (2 << 20))[0]
        check(st == SUCCESS, "big values once authenticated: status 0x%x" % st)
    finally:
        h.stop()


@test
def deadlines():
    # -i 2: no request completed for 2 s closes, however many bytes trickle in.
    h = Host("-i", "2")
    try:
        s = socket.create_connection(("127.0.0.1", h.port))
        pkt = raw(0x00, key=b"trickle")
        t0 = time.time()
        closed = False
        for b in pkt[:-1]:
            try:
                s.send(bytes([b]))
            except OSError:
                closed = True
                break
            if closed_within(s, 0.3):
                closed = True
                break
        print("# a 1-byte-per-0.3 s client: closed after %.1f s" % (time.time() - t0))
        check(closed and time.time() - t0 < 6, "the trickling client was closed")
        busy = h.client()
        for _ in range(6):  # requests that complete keep a connection
            check(busy.call(0x0A)["status"] == SUCCESS, "noop")
            time.sleep(0.5)
        check(busy.call(0x0A)["status"] == SUCCESS, "a busy client stays")
    finally:
        h.stop()
    # -R 1: a request whose bytes started must arrive whole within 1 s;
    # -A 1: with users, 1 s to authenticate; an authenticated idle client stays.
    h = Host("-R", "1", "-A", "1", users=[("bob", "builder", False)])
    try:
        half = h.client(b"bob", b"builder").s
        half.sendall(raw(0x0A)[:10])
        silent = socket.create_connection(("127.0.0.1", h.port))
        idle = h.client(b"bob", b"builder")
        t0 = time.time()
        check(closed_within(half, 4), "a half-sent request is closed")
        check(closed_within(silent, 4), "an unauthenticated silent client is closed")
        print("# half request and no login: both closed within %.1f s" % (time.time() - t0))
        time.sleep(1.5)
        check(idle.call(0x0A)["status"] == SUCCESS, "an authenticated idle client stays")
    finally:
        h.stop()


@test
def file_descriptors():
    """Few descriptors: max_conns is lowered at start; EMFILE pauses accepting."""

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    h = Host("-m", "5000", preexec=low_limit)
    try:
        err = h.stderr()
        check("max_conns" in err and "5000" in err, "the start says max_conns was lowered")
        c = h.client()
        # Now fewer descriptors than max_conns allows: accept hits EMFILE.
        resource.prlimit(h.proc.pid, resource.RLIMIT_NOFILE, (64, 256))
        cpu0, socks = h.cpu(), []
        for _ in range(120):
            try:
                socks.append(socket.create_connection(("127.0.0.1", h.port), timeout=1))
            except OSError:
                break
        time.sleep(2)
        spent = h.cpu() - cpu0
        lines = h.stderr().count("accept")
        print("# %d connections over a 64-descriptor limit: %.2f s CPU in 2 s, %d log lines"
              % (len(socks), spent, lines))
        check(spent < 0.5, "CPU while out of descriptors: %.2f s" % spent)
        check(lines <= 5, "log lines: %d" % lines)
        check(c.set(b"k", b"v")[0] == SUCCESS, "connected clients served")
        for s in socks:
            s.close()
        resource.prlimit(h.proc.pid, resource.RLIMIT_NOFILE, (256, 256))
        ok = False
        for _ in range(40):  # accepting resumes
            try:
                n = Client(h.port)
                n.s.settimeout(1)
                ok = n.call(0x0A)["status"] == SUCCESS
                n.close()
                if ok:
                    break
            except OSError:
                time.sleep(0.1)
        check(ok, "accepting resumed")
    finally:
        h.stop()


@test
def logins_do_not_stall_other_clients():
    """PLAIN logins derive keys (slow by design) off the threads serving
    commands, a few at a time."""
    h = Host("-t", "1", users=[("bob", "builder", False)], iterations=400000)
    try:
        c = h.client(b"bob", b"builder")
        check(c.set(b"k", b"v")[0] == SUCCESS, "set")
        stop = False

        def login_loop():
            while not stop:
                try:
                    x = Client(h.port)
                    x.call(0x21, key=b"PLAIN", value=b"\0bob\0builder")
                    x.close()
                except OSError:
                    pass

        threads = [threading.Thread(target=login_loop) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        worst = 0
        for _ in range(20):
            t0 = time.time()
            check(c.get(b"k")[0] == SUCCESS, "get")
            worst = max(worst, time.time() - t0)
            time.sleep(0.05)
        stop = True
        for t in threads:
            t.join()
        print("# 4 clients logging in (400k iterations each): slowest get %.0f ms"
              % (worst * 1000))
        check(worst < 0.5, "a get waited %.0f ms behind logins" % (worst * 1000))
        # A huge password is refused (or the connection closed) before any
        # derivation.
        x = Client(h.port)
        t0 = time.time()
        try:
            r = x.call(0x21, key=b"PLAIN", value=b"\0bob\0" + b"p" * (256 << 10))
            refused = r["status"] != SUCCESS
        except (OSError, EOFError):
            refused = True
        check(refused and time.time() - t0 < 1, "256 KiB password refused at once")
    finally:
        h.stop()


@test
def one_address_cannot_fill_the_login_queue():
    """40 logins sent at once from one address, then one from another: the
    other is checked at once, not behind the 40."""
    h = Host(users=[("bob", "builder", False)], iterations=200000)

    def login(source):
        x = Client.__new__(Client)
        x.s = socket.create_connection(("127.0.0.1", h.port), timeout=30,
                                       source_address=(source, 0))
        x.coll = None
        t0 = time.time()
        st = x.call(0x21, key=b"PLAIN", value=b"\0bob\0builder")["status"]
        x.close()
        return st, time.time() - t0

    try:
        # The baseline, on this machine now: one login alone.
        solo = sorted(login("127.0.3.3")[1] for _ in range(3))[1]
        flood = []
        for i in range(40):
            s = socket.create_connection(("127.0.0.1", h.port), timeout=10,
                                         source_address=("127.0.3.1", 0))
            s.sendall(raw(0x21, key=b"PLAIN", value=b"\0bob\0wrong%d" % i))
            flood.append(s)
        time.sleep(0.05)
        st, spent = login("127.0.3.2")
        told = 0
        for s in flood:
            s.settimeout(10)
            head = b""
            while len(head) < 24:
                chunk = s.recv(24 - len(head))
                check(chunk, "every flood login is answered")
                head += chunk
            told += struct.unpack(HDR, head)[5] == 0x86
            s.close()
        print("# 40 logins at once from one address: %d told to retry; another address's "
              "login took %.2f s (%.1fx one login alone)" % (told, spent, spent / solo))
        # Behind 4 checks on 2 threads it waits about 3 logins' time; behind
        # all 40, about 21.
        check(st == SUCCESS and spent < 8 * solo,
              "the other address waited %.2f s, %.1fx one login" % (spent, spent / solo))
        check(told >= 30, "the flood was limited: %d told to retry" % told)
    finally:
        h.stop()


# ---- authentication ----

@test
def unknown_users_cost_the_same():
    h = Host(users=[("bob", "builder", False)])
    try:
        def timed(user, source):
            # One failure per source address: under the count that delays.
            x = Client.__new__(Client)
            x.s = socket.create_connection(("127.0.0.1", h.port), timeout=10,
                                           source_address=(source, 0))
            x.coll = None
            t0 = time.time()
            st = x.call(0x21, key=b"PLAIN", value=b"\0" + user + b"\0wrong")["status"]
            spent = time.time() - t0
            check(st == AUTH_ERROR, "refused")
            x.close()
            return spent

        # Interleaved, so that load on the machine falls on both alike.
        known, unknown = [], []
        for i in range(9):
            known.append(timed(b"bob", "127.0.1.%d" % (i + 1)))
            unknown.append(timed(b"nobody", "127.0.2.%d" % (i + 1)))
        known, unknown = sorted(known)[4], sorted(unknown)[4]
        print("# PLAIN refusal, median: known user %.1f ms, unknown %.1f ms"
              % (known * 1000, unknown * 1000))
        check(unknown > known * 0.5, "an unknown user is refused faster")
    finally:
        h.stop()


@test
def failed_logins_slow_down():
    h = Host(users=[("bob", "builder", False)])
    try:
        t0 = time.time()
        for i in range(12):  # fresh connections: the per-connection limit does not apply
            x = Client(h.port)
            check(x.call(0x21, key=b"PLAIN", value=b"\0nobody\0guess%d" % i)["status"]
                  == AUTH_ERROR, "refused")
            x.close()
        spent = time.time() - t0
        print("# 12 failed logins from one address: %.1f s (%.0f/s)" % (spent, 12 / spent))
        check(spent > 2.0, "12 guesses in %.2f s" % spent)
        good = Client(h.port)  # the right password is still accepted
        check(good.call(0x21, key=b"PLAIN", value=b"\0bob\0builder")["status"] == SUCCESS,
              "the right password")
    finally:
        h.stop()


@test
def flush_needs_admin():
    h = Host(users=[("alice", "wonderland", True), ("bob", "builder", False)])
    try:
        a = h.client(b"alice", b"wonderland")
        check(a.set(b"precious", b"v")[0] == SUCCESS, "set")
        b = h.client(b"bob", b"builder")
        for op in (0x08, 0x18):  # FLUSH, FLUSHQ (a quiet command's error is sent)
            r = b.call(op)
            check(r["op"] == op and r["status"] == EACCESS,
                  "a plain user's flush 0x%x: 0x%x" % (op, r["status"]))
        check(a.get(b"precious")[0] == SUCCESS, "the data stays")
        check(a.call(0x08)["status"] == SUCCESS, "the admin may flush")
    finally:
        h.stop()


def start_fails(*opts, users=None):
    port = free_port()
    args = [KVHOST, "-e", ENGINE, "-p", str(port)] + (["-U", users] if users else []) + \
        list(opts)
    try:
        r = subprocess.run(args, capture_output=True, timeout=10)
    except subprocess.TimeoutExpired:
        return None  # it started and kept running
    return r.stderr.decode()


@test
def listen_address():
    d = tempfile.mkdtemp(prefix="kvhost_users.")
    users = users_file(d, ("bob", "builder", False))
    try:
        for bad in ("127.0.0.1x", "300.1.1.1"):
            err = start_fails("-l", bad, users=users)
            check(err is not None and bad in err, "-l %s refused: %r" % (bad, err))
        h = Host("-l", "localhost", users=[("bob", "builder", False)])
        try:
            time.sleep(0.2)
            err = h.stderr()
            check("on 127.0.0.1:%d" % h.port in err or "on [::1]:%d" % h.port in err,
                  "the bound address is printed: %r" % err)
        finally:
            h.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


@test
def users_file_permissions():
    d = tempfile.mkdtemp(prefix="kvhost_users.")
    try:
        users = users_file(d, ("bob", "builder", False))
        check(os.stat(users).st_mode & 0o077 == 0, "kvhost-user writes it owner-only")
        os.chmod(users, 0o644)
        err = start_fails(users=users)
        check(err is not None and "readable" in err, "a world-readable users file: %r" % err)
        os.chmod(users, 0o600)
        # kvhost-user: --iterations is taken; a planted symlink is not followed.
        victim = os.path.join(d, "victim")
        with open(victim, "w") as f:
            f.write("untouched\n")
        r = subprocess.run([sys.executable, TOOL, users, "carol", "--iterations", "20000"],
                           env=dict(os.environ, KVHOST_PASSWORD="pw"), capture_output=True)
        check(r.returncode == 0, "--iterations: %r" % r.stderr)
        with open(users) as f:
            check("SHA1=20000," in f.read(), "--iterations raised the counts")
        pid_guess = [os.path.join(d, "users.%d.tmp" % p) for p in range(os.getpid(),
                                                                          os.getpid() + 200)]
        for p in pid_guess:
            os.symlink(victim, p)
        subprocess.run([sys.executable, TOOL, users, "dave"],
                       env=dict(os.environ, KVHOST_PASSWORD="pw"), capture_output=True)
        with open(victim) as f:
            check(f.read() == "untouched\n", "the symlink target is untouched")
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- protocol correctness ----

@test
def fin_after_a_pipeline():
    h = Host()
    try:
        h.client()
        # 512 GETs of 32 bytes each: exactly 16 KiB, then the client's FIN.
        s = socket.create_connection(("127.0.0.1", h.port))
        s.sendall(b"".join(raw(0x00, key=b"key%05d" % i, opaque=i) for i in range(512)))
        s.shutdown(socket.SHUT_WR)
        got = read_answers(s)
        print("# 16 KiB pipeline then FIN: %d of 512 answered" % len(got))
        check(len(got) == 512 and [g[2] for g in got] == list(range(512)), "all answered")
    finally:
        h.stop()
    h = Host(engine=EWB, config="ewb_engine=%s;ewb_mode=delay;ewb_ms=300;ewb_ops=get" % ENGINE)
    try:
        c = h.client()
        c.set(b"k", b"v")
        s = socket.create_connection(("127.0.0.1", h.port))
        s.sendall(raw(0x00, key=b"k", opaque=7) + raw(0x0A, opaque=8))
        s.shutdown(socket.SHUT_WR)
        got = read_answers(s)
        check([(g[1], g[2]) for g in got] == [(SUCCESS, 7), (SUCCESS, 8)],
              "a parked get then FIN: answered: %r" % got)
    finally:
        h.stop()


@test
def answers_before_a_malformed_packet():
    h = Host()
    try:
        h.client()
        s = socket.create_connection(("127.0.0.1", h.port))
        s.sendall(raw(0x01, key=b"a", extras=b"\0" * 8, value=b"v", opaque=1) +
                  raw(0x00, key=b"a", opaque=2) + b"\x42" + b"\0" * 23)
        got = read_answers(s)
        check([(g[1], g[2]) for g in got] == [(SUCCESS, 1), (SUCCESS, 2)],
              "answers before the bad packet: %r" % got)
    finally:
        h.stop()


@test
def command_shapes():
    h = Host()
    try:
        c = h.client()
        check(c.set(b"keep", b"v")[0] == SUCCESS, "set")
        cases = [
            ("SETQ without extras", dict(op=0x11, key=b"q", value=b"v")),
            ("ADDQ without extras", dict(op=0x12, key=b"q", value=b"v")),
            ("REPLACEQ without extras", dict(op=0x13, key=b"q", value=b"v")),
            ("NOOP with a key", dict(op=0x0A, key=b"x")),
            ("VERSION with a key", dict(op=0x0B, key=b"x")),
            ("FLUSH with a key", dict(op=0x08, key=b"x")),
            ("QUIT with a key", dict(op=0x07, key=b"x")),
            ("GET with extras", dict(op=0x00, key=b"x", extras=b"\0\0\0\0")),
            ("DELETE with a value", dict(op=0x04, key=b"x", value=b"v")),
            ("INCR without extras", dict(op=0x05, key=b"x")),
            ("APPEND with extras", dict(op=0x0E, key=b"keep", value=b"v", extras=b"\0" * 8)),
            ("SASL with a durability requirement",
             dict(op=0x21, key=b"PLAIN", value=b"\0a\0b", magic=0x08, frame=b"\x11\x02")),
            ("GET with a durability requirement",
             dict(op=0x00, key=b"keep", magic=0x08, frame=b"\x11\x02")),
        ]
        for what, kw in cases:
            op = kw.pop("op")
            r = c.call(op, **kw)
            check(r["status"] == EINVAL, "%s: status 0x%x" % (what, r["status"]))
        st, r = c.get(b"keep")
        check(st == SUCCESS and r["value"] == b"v", "nothing was flushed or changed")
        print("# %d malformed shapes refused with EINVAL" % len(cases))
    finally:
        h.stop()


@test
def duplicate_notify():
    """An engine that notifies twice: one answer, the worker goes on."""
    h = Host(engine=EWB,
             config="ewb_engine=%s;ewb_mode=delay;ewb_ms=50;ewb_ops=get;ewb_double=1" % ENGINE)
    try:
        c = h.client()
        c.set(b"k", b"v")
        c.s.settimeout(5)
        for _ in range(5):
            st, r = c.get(b"k")
            check(st == SUCCESS and r["value"] == b"v", "get")
        check(c.call(0x0A)["status"] == SUCCESS, "one answer per get, in order")
        # Many connections notified twice at once: the worker's list holds
        # several of them while duplicates arrive.
        errors = []

        def getter():
            try:
                g = Client(h.port)
                g.s.settimeout(10)
                for _ in range(20):
                    st, r = g.get(b"k")
                    if st != SUCCESS or r["value"] != b"v":
                        errors.append(st)
                if g.call(0x0A)["status"] != SUCCESS:
                    errors.append("noop")
                g.close()
            except Exception as e:  # noqa: BLE001 (reported below)
                errors.append(repr(e))

        threads = [threading.Thread(target=getter) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        check(not errors, "8 clients with doubled notifies: %r" % errors[:3])
        check(int(kv.host_stat(h.port, b"notifies_duplicate") or b"0") >= 1,
              "duplicates counted")
    finally:
        h.stop()


@test
def shutdown_closes_connections():
    h = Host(engine=EWB, config="ewb_engine=%s;ewb_log_disconnect=1" % ENGINE)
    try:
        a, b = h.client(), h.client()
        time.sleep(0.2)
        h.proc.send_signal(signal.SIGTERM)
        check(closed_within(a.s, 10) and closed_within(b.s, 10), "clients see the close")
        h.proc.wait(timeout=30)
        n = h.stderr().count("ewb: disconnect")
        check(n >= 2, "the engine's disconnect ran for each client at shutdown: %d" % n)
    finally:
        code = h.stop()
    check(code == 0, "clean stop")


def main():
    return 0 if kv.run_tests(TESTS, lambda t: t()) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
