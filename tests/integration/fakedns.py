"""A tiny DNS server for tests: UDP on a free 127.0.0.1 port, answering A and
AAAA questions for the names it is given (with the TTL given), NXDOMAIN for
other names, NOERROR with no answer (NODATA) for a known name without a record
of the type asked. It counts the questions it gets, can answer late, and can
stay silent (to test timeouts). No dnslib: the few bytes of RFC 1035 needed are
written here."""

import socket
import struct
import threading
import time

TYPES = {1: "A", 28: "AAAA"}


def parse_question(packet: bytes):
    """(id, flags, name as sent, qtype, the question's bytes) of a query."""
    qid, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if qdcount != 1:
        raise ValueError("one question expected")
    labels, i = [], 12
    while packet[i] != 0:
        n = packet[i]
        if n & 0xC0:
            raise ValueError("no compression in questions")
        labels.append(packet[i + 1 : i + 1 + n].decode("ascii"))
        i += 1 + n
    qtype, _qclass = struct.unpack("!HH", packet[i + 1 : i + 5])
    return qid, flags, ".".join(labels), qtype, packet[12 : i + 5]


def build_answer(qid, flags, question, rcode, qtype, addresses, ttl) -> bytes:
    """The reply: the question echoed as sent (evdns randomizes its case and checks
    it), then one record per address, its name a pointer to the question's."""
    family = socket.AF_INET if qtype == 1 else socket.AF_INET6
    head = struct.pack("!HHHHHH", qid, 0x8180 | (flags & 0x0100) | rcode, 1, len(addresses), 0, 0)
    records = b""
    for a in addresses:
        rdata = socket.inet_pton(family, a)
        records += struct.pack("!HHHIH", 0xC00C, qtype, 1, ttl, len(rdata)) + rdata
    return head + question + records


class FakeDNS:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.records = {}  # lower-case name -> {"A": [...], "AAAA": [...], "ttl": n}
        self.queries = []  # (lower-case name, "A"/"AAAA"/type number)
        self.silent = False
        self.delay = 0.0  # seconds before each answer
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def set(self, name, a=(), aaaa=(), ttl=60):
        with self._lock:
            self.records[name.lower()] = {"A": list(a), "AAAA": list(aaaa), "ttl": ttl}
        return self

    def count(self, name, qtype="A") -> int:
        with self._lock:
            return sum(1 for q in self.queries if q == (name.lower(), qtype))

    def write_resolv_conf(self, path, options="") -> str:
        with open(path, "w") as f:
            f.write(f"# a test's resolver\nnameserver 127.0.0.1:{self.port}\n{options}")
        return str(path)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def _answer(self, packet: bytes):
        qid, flags, name, qtype, question = parse_question(packet)
        with self._lock:
            self.queries.append((name.lower(), TYPES.get(qtype, qtype)))
            rec = self.records.get(name.lower())
            silent, delay = self.silent, self.delay
        if silent:
            return None
        if delay:
            time.sleep(delay)
        if rec is None:
            return build_answer(qid, flags, question, 3, qtype, [], 0)  # NXDOMAIN
        addresses = rec.get(TYPES.get(qtype), [])
        return build_answer(qid, flags, question, 0, qtype, addresses, rec["ttl"])

    def _run(self):
        while not self._stop.is_set():
            try:
                packet, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                reply = self._answer(packet)
            except (ValueError, IndexError, struct.error):
                continue  # not a query we understand: no answer, as a real server might
            if reply is not None:
                self.sock.sendto(reply, peer)
