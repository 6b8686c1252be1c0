#!/usr/bin/env python3
"""kvhost's GET /metrics (Prometheus text format) over loopback.

    test_metrics.py KVHOST ENGINE_SO EWOULDBLOCK_SO

promtool (Debian's prometheus package) checks a scrape; a real Prometheus
server started here scrapes kvhost every second, and its query API must
return the series of known operations with the counts this test made; bad
HTTP requests (other paths and methods, huge headers, garbage, a client too
slow to send its request) get clear statuses or are cut off while the binary
protocol goes on; with a users file the port asks for basic auth. Reports in
TAP.
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_hostile as hostile  # noqa: E402  (its Host; it reads the same argv)
import test_kvhost as kv  # noqa: E402

from test_kvhost import Skip, check, free_port  # noqa: E402

SUCCESS = 0
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def metrics_host(*opts, users=None, config=None):
    mport = free_port()
    h = hostile.Host("-P", str(mport), *opts, users=users, config=config)
    h.mport = mport
    # The binary port answers first; the metrics port opens a moment later.
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", mport), timeout=5).close()
            break
        except OSError:
            time.sleep(0.01)
    return h


def http(port, path="/metrics", method="GET", headers=None, timeout=10):
    """(status, headers, body) of one request."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def parse(text):
    """{(name, frozenset(labels)): value} of a scrape."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, value = line.rsplit(" ", 1)
        if "{" in series:
            name, rest = series.split("{", 1)
            labels = []
            for part in rest.rstrip("}").split('",'):
                if part:
                    k, v = part.split("=", 1)
                    labels.append((k, v.strip('"')))
            key = (name, frozenset(labels))
        else:
            key = (series, frozenset())
        out[key] = float(value)
    return out


def value(scrape, name, **labels):
    want = frozenset(labels.items())
    for (n, ls), v in scrape.items():
        if n == name and want <= ls:
            return v
    return None


def promtool(text):
    if shutil.which("promtool") is None:
        raise AssertionError("promtool is not installed (Debian package prometheus)")
    r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=60)
    return r.returncode, (r.stdout + r.stderr).decode()


def make_collections(h, *names):
    """scope.collection names through scripts/ep-collections."""
    tool = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts",
                        "ep-collections")
    for n in names:
        r = subprocess.run([sys.executable, tool, "-s", "127.0.0.1:%d" % h.port, "create", n],
                           capture_output=True, timeout=30)
        check(r.returncode == 0, "ep-collections create %s: %s" % (n, r.stderr.decode()))


@test
def scrape_passes_promtool():
    h = metrics_host()
    try:
        c = h.client()
        # A manifest uid the engine writes in hex: 0x1f is 31, not 1.
        m = {"uid": "1f", "scopes": [{"name": "_default", "uid": "0", "collections": [
            {"name": "_default", "uid": "0"}]}]}
        check(c.call(0xB9, value=json.dumps(m).encode())["status"] == SUCCESS, "manifest")
        s0 = parse(http(h.mport)[2])  # the client's own probes before this
        for i in range(25):
            check(c.set(b"k%d" % i, b"v")[0] == SUCCESS, "set")
        for i in range(40):
            c.get(b"k%d" % i)
        st, hdr, body = http(h.mport)
        check(st == 200 and hdr.get("Content-Type", "").startswith(
            "text/plain; version=0.0.4"), "200, text format 0.0.4: %r" % hdr)
        rc, out = promtool(body)
        check(rc == 0, "promtool check metrics:\n%s" % out)
        s = parse(body)

        def delta(name, **labels):
            return value(s, name, **labels) - (value(s0, name, **labels) or 0)

        check(delta("kvhost_commands_total", command="set") == 25, "25 sets counted")
        check(delta("kvhost_commands_total", command="get") == 40, "40 gets counted")
        check(delta("kv_gets_total", result="hit") == 25 and
              delta("kv_gets_total", result="miss") == 15, "hits and misses")
        check(value(s, "kv_items", bucket="default") == 25, "25 items")
        check(value(s, "kv_manifest_uid") == 31, "manifest uid 0x1f: %r" %
              value(s, "kv_manifest_uid"))
        check(delta("kvhost_operation_seconds_count", op="get") == 40, "get latencies")
        check(value(s, "kvhost_operation_seconds_bucket", op="get", le="+Inf") ==
              value(s, "kvhost_operation_seconds_count", op="get"),
              "the +Inf bucket is the count")
        check(value(s, "kvhost_operation_seconds_bucket", op="get", le="1e-06") is not None
              and value(s, "kvhost_operation_seconds_bucket", op="get", le="10") is not None,
              "buckets from 1 us to 10 s")
        check(value(s, "kvhost_received_bytes_total") > 0 and
              value(s, "kvhost_sent_bytes_total") > 0, "bytes in and out")
        check(value(s, "kv_vbuckets", state="active") == 1024, "vbuckets by state")
        check(value(s, "kv_collection_items", scope="_default", collection="_default") == 25,
              "per collection")
        for name in ("kv_warmup_running", "kv_compaction_running",
                     "kv_bg_fetch_seconds_count", "kv_manifest_update_seconds_count"):
            check(value(s, name) is not None, "%s is there" % name)
        check(value(s, "kv_warmup_running") == 0 and
              value(s, "kv_warmup_progress_ratio") == 1, "warmup finished")
        c.close()
    finally:
        h.stop()


@test
def prometheus_scrapes_kvhost():
    """A Prometheus server scrapes kvhost every second; its query API returns
    the counts of what this test did."""
    if shutil.which("prometheus") is None:
        raise AssertionError("prometheus is not installed (Debian package prometheus)")
    h = metrics_host()
    d = tempfile.mkdtemp(prefix="prom.")
    pport = free_port()
    cfg = os.path.join(d, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n"
                "scrape_configs:\n  - job_name: kvhost\n"
                "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % h.mport)
    log = open(os.path.join(d, "log"), "w+")
    prom = subprocess.Popen(["prometheus", "--config.file=" + cfg,
                             "--storage.tsdb.path=" + os.path.join(d, "data"),
                             "--web.listen-address=127.0.0.1:%d" % pport],
                            stdout=log, stderr=log)
    try:
        make_collections(h, "app", "app.users")
        c = h.client()
        c.hello(0x07, 0x12)
        for i in range(37):
            check(c.set(b"u%d" % i, b"v")[0] == SUCCESS, "set")
        for i in range(11):
            check(c.call(0x04, key=c.k(b"u%d" % i))["status"] == SUCCESS, "delete")

        def query(q):
            url = "http://127.0.0.1:%d/api/v1/query?%s" % (
                pport, urllib.parse.urlencode({"query": q}))
            with urllib.request.urlopen(url, timeout=10) as r:
                res = json.load(r)["data"]["result"]
            return [(x["metric"], float(x["value"][1])) for x in res]

        want = {
            'kvhost_commands_total{command="set"}': 37,
            'kvhost_commands_total{command="delete"}': 11,
            'kv_deletes_total{result="hit"}': 11,
            'kv_items{bucket="default"}': 26,
            'kv_manifest_collections{bucket="default"}': 2,
            'up{job="kvhost"}': 1,
        }
        got = {}
        end = time.time() + 60
        while time.time() < end:
            try:
                got = {q: [v for _, v in query(q)] for q in want}
            except (OSError, ValueError, KeyError):
                got = {}
            if all(got.get(q) == [v] for q, v in want.items()):
                break
            time.sleep(0.5)
        check(all(got.get(q) == [v] for q, v in want.items()),
              "Prometheus's answers %r, want %r" % (got, want))
        series = query('kv_collection_items{collection="users"}')
        check(len(series) == 1 and series[0][0].get("scope") == "app",
              "the collection's series with its labels: %r" % series)
        q = query('histogram_quantile(0.5, sum by (le) (kvhost_operation_seconds_bucket'
                  '{op="store"}))')
        check(len(q) == 1 and 0 < q[0][1] <= 10, "the median store latency: %r" % q)
        c.close()
    finally:
        prom.terminate()
        try:
            prom.wait(timeout=20)
        except subprocess.TimeoutExpired:
            prom.kill()
        log.close()
        shutil.rmtree(d, ignore_errors=True)
        h.stop()


def raw_http(port, data, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = hostile.read_until_close(s, timeout)
    s.close()
    return out


@test
def bad_requests():
    """Other paths and methods, huge headers, garbage and a slow client get
    clear statuses or are cut off; the binary protocol goes on meanwhile."""
    h = metrics_host()
    try:
        c = h.client()
        check(http(h.mport, "/")[0] == 404, "/ is not found")
        check(http(h.mport, "/metrics/x")[0] == 404, "/metrics/x is not found")
        check(value(parse(http(h.mport)[2]), "kvhost_metrics_not_found_total") == 2,
              "404s counted")
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            st, hdr, _ = http(h.mport, method=method)
            check(st == 405 and "GET" in hdr.get("Allow", ""), "%s: 405 with Allow" % method)
        check(http(h.mport, method="HEAD")[0] == 200, "HEAD is served")
        big = raw_http(h.mport, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " +
                       b"a" * 100000 + b"\r\n\r\n")
        check(big == b"" or big.split(b" ", 2)[1] in (b"400", b"413", b"431"),
              "huge headers: %r" % big[:60])
        junk = raw_http(h.mport, b"\x00\x01garbage\r\n\r\n")
        check(junk == b"" or junk.split(b" ", 2)[1] == b"400", "garbage: %r" % junk[:60])
        # A client that starts a request and stops: cut off after a few
        # seconds; binary-protocol requests are answered meanwhile.
        slow = socket.create_connection(("127.0.0.1", h.mport))
        slow.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        t0 = time.time()
        done = 0
        slow.settimeout(0.05)
        cut = False
        while time.time() - t0 < 15:
            check(c.set(b"during", b"v")[0] == SUCCESS, "the binary protocol answers")
            done += 1
            try:
                slow.recv(4096)  # the server answered (408) or closed: cut off
                cut = True
                break
            except socket.timeout:
                pass
            except OSError:
                cut = True
                break
        took = time.time() - t0
        slow.close()
        check(cut and 3 <= took <= 12, "the slow client cut off after %.1f s" % took)
        check(done > 10, "%d binary-protocol writes while it hung" % done)
        check(http(h.mport)[0] == 200, "scrapes go on")
        c.close()
    finally:
        h.stop()


@test
def basic_auth_with_users():
    users = [("scraper", "s3cret", False), ("admin", "adm", True)]
    h = metrics_host("-L", "127.0.0.1", users=users)
    try:
        st, hdr, _ = http(h.mport)
        check(st == 401 and "Basic" in hdr.get("WWW-Authenticate", ""), "no credentials")

        def auth(user, pw):
            tok = base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()
            return {"Authorization": "Basic " + tok}

        check(http(h.mport, headers=auth("scraper", "wrong"))[0] == 401, "wrong password")
        check(http(h.mport, headers=auth("nobody", "s3cret"))[0] == 401, "unknown user")
        check(http(h.mport, headers={"Authorization": "Basic !!!"})[0] == 401, "not base64")
        for user, pw, _ in users:
            st, _, body = http(h.mport, headers=auth(user, pw))
            check(st == 200 and "kv_items" in body, "%s (any role) may scrape" % user)
        st, _, body = http(h.mport, headers=auth("scraper", "s3cret"))
        check(value(parse(body), "kvhost_metrics_auth_failures_total") == 4,
              "failures counted: %r" % value(parse(body),
                                             "kvhost_metrics_auth_failures_total"))
        # A client looping on wrong passwords: past 10 derivations a second
        # the rest is refused unchecked (429); a right password still passes
        # the next second.
        codes = [http(h.mport, headers=auth("scraper", "wrong%d" % i))[0] for i in range(25)]
        check(codes.count(401) >= 5 and 429 in codes and set(codes) <= {401, 429},
              "wrong passwords in a loop: %r" % codes)
        time.sleep(1.1)
        check(http(h.mport, headers=auth("admin", "adm"))[0] == 200, "then a right one")
    finally:
        h.stop()
    # Without users: loopback only.
    err = hostile.start_fails("-P", str(free_port()), "-L", "0.0.0.0")
    check(err is not None and "only loopback" in err, "metrics on 0.0.0.0 without users")


def main():
    return 0 if kv.run_tests(TESTS, lambda t: t()) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
