#!/usr/bin/env python3
"""An independent verifier of a Roundtable bundle, written from docs/format.md alone.

Usage: python3 tests/independent_verify.py BUNDLE_FILE
       python3 tests/independent_verify.py --vectors VECTORS_JSON   (e.g. tests/data/ed25519-speccheck.json)

Checks the bundle's framing and SHA-256 trailer digest, then for every entry: recomputes the change
hash (the entry id) from the raw Automerge change bytes, reads the change's actor, and verifies the
ed25519 signature over "roundtable/entry/v1" || group_id || doc_id || change_hash by the signature rule
of docs/format.md ("Signature rule": refuse a non-canonical or small-order key, then the cofactored
ZIP-215 equation). Prints one line per entry, "ENTRY_ID ok" or "ENTRY_ID KIND: reason",
with the kinds and ids of docs/format.md section 11 (ENTRY_ID is the change hash; when the change has
none, the SHA-256 of the encoded entry). A file that is not a whole bundle gets one line,
"bundle: KIND: reason". Exits as `roundtable audit` does: 0 if the bundle and every entry verify, 1 if an
entry does not, 2 if the file is not a whole bundle (or on a usage error).

It checks integrity and authorship only. It does not decode Automerge operations, and it does not apply
the group's rules (membership, shape of records, forks): that is the work of a full auditor.

With --vectors, it checks each (message, pub_key, signature) of the file's "cases" by the same rule
alone and prints "INDEX ok" or "INDEX KIND" (KIND as in the file's "refusal"), then exits 0.

Python 3 standard library only. The ed25519 code follows RFC 8032, section 6 (the reference code), with
the decoding changed to ZIP-215's (y taken modulo p) and the cofactored equation.
"""

import hashlib
import json
import sys

# ---------------------------------------------------------------------------------------------------
# Format constants (docs/format.md)

BUNDLE_MAGIC = b"RTBUNDLE"
BUNDLE_VERSION = 1
BUNDLE_HEADER = 8 + 1 + 32 + 8
DIGEST_LEN = 32
MIN_ENTRY = 1 + 64 + 4
DOC_PUBLIC = 1
DOC_OTHER = 2
MAX_CHANGE_BYTES = 256 * 1024
ENTRY_TAG = b"roundtable/entry/v1"
CHANGE_MAGIC = bytes([0x85, 0x6F, 0x4A, 0x83])
CHUNK_CHANGE = 1


class Refused(Exception):
    """Bytes that do not verify: `kind` is the kind of docs/format.md section 11, the message says why."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


# ---------------------------------------------------------------------------------------------------
# ed25519 (RFC 8032 section 6, adapted)

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493  # order of the base point


def _inv(x):
    return pow(x, P - 2, P)


D = -121665 * _inv(121666) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _add(p1, p2):
    # Extended homogeneous coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, x*y = T/Z.
    a = (p1[1] - p1[0]) * (p2[1] - p2[0]) % P
    b = (p1[1] + p1[0]) * (p2[1] + p2[0]) % P
    c = 2 * p1[3] * p2[3] * D % P
    d = 2 * p1[2] * p2[2] % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _mul(s, pt):
    q = (0, 1, 1, 0)  # neutral element
    while s > 0:
        if s & 1:
            q = _add(q, pt)
        pt = _add(pt, pt)
        s >>= 1
    return q


def _equal(p1, p2):
    # x1 / z1 == x2 / z2  <==>  x1 * z2 == x2 * z1
    if (p1[0] * p2[2] - p2[0] * p1[2]) % P != 0:
        return False
    return (p1[1] * p2[2] - p2[1] * p1[2]) % P == 0


def _neg(pt):
    return ((-pt[0]) % P, pt[1], pt[2], (-pt[3]) % P)


IDENTITY = (0, 1, 1, 0)


def _recover_x(y, sign):
    """x from y and the sign bit, as curve25519-dalek does it: None if y is not on the curve.

    Unlike RFC 8032, (x = 0, sign = 1) is accepted and gives x = 0 (dalek negates zero to zero), as
    ZIP-215 asks. Both such points (y = 1 and y = -1) have small order.
    """
    x2 = (y * y - 1) * _inv(D * y * y + 1) % P
    if x2 == 0:
        return 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


G_Y = 4 * _inv(5) % P
G = (_recover_x(G_Y, 0), G_Y, 1, _recover_x(G_Y, 0) * G_Y % P)


def _decompress(s):
    """Decodes a 32-byte point encoding as ZIP-215 (and curve25519-dalek) does.

    The low 255 bits are y, taken modulo p: an encoding with y >= p is not refused here, nor x = 0
    with the sign bit set. For R that is the rule (R is decoded from any encoding and hashed as
    given); a public key must also be canonical, which key_refusal checks by re-encoding.
    """
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y = (y & ((1 << 255) - 1)) % P
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


def _compress(pt):
    zinv = _inv(pt[2])
    x = pt[0] * zinv % P
    y = pt[1] * zinv % P
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def _small_order(pt):
    return _equal(_mul(8, pt), IDENTITY)


def key_refusal(public):
    """None if 32 bytes are a key the signature rule accepts, else why not (docs/format.md)."""
    a = _decompress(public)
    if a is None:
        return "not_a_point"
    if _compress(a) != public:
        return "non_canonical_key"
    if _small_order(a):
        return "small_order_key"
    return None


def signature_refusal(public, msg, signature):
    """None if the signature holds by the signature rule of docs/format.md, else why not.

    The same verdicts as roundtable_core::signature::verify (kinds: Refusal::kind).
    """
    if len(public) != 32 or len(signature) != 64:
        return "mismatch"
    refusal = key_refusal(public)
    if refusal is not None:
        return refusal
    a = _decompress(public)
    r_bytes = signature[:32]
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        return "mismatch"  # non-canonical s: the signature would be malleable
    r = _decompress(r_bytes)
    if r is None:
        return "mismatch"
    k = int.from_bytes(hashlib.sha512(r_bytes + public + msg).digest(), "little") % L
    # Cofactored (ZIP-215): [8]([s]B - [k]A - R) is the identity.
    e = _add(_add(_mul(s, G), _mul(k, _neg(a))), _neg(r))
    return None if _small_order(e) else "mismatch"


def check_vectors(path):
    """Prints each case's verdict by the signature rule alone: "INDEX ok" or "INDEX KIND"."""
    with open(path) as f:
        cases = json.load(f)["cases"]
    for i, c in enumerate(cases):
        refusal = signature_refusal(
            bytes.fromhex(c["pub_key"]), bytes.fromhex(c["message"]), bytes.fromhex(c["signature"])
        )
        print("%d %s" % (i, refusal or "ok"))
    return 0


# ---------------------------------------------------------------------------------------------------
# Automerge change chunk


def read_uleb(b, at):
    """Reads a canonical unsigned LEB128 (at most 64 bits, no redundant trailing zero group).

    Returns (value, new offset). Automerge's own decoder refuses the same encodings.
    """
    value = 0
    shift = 0
    while True:
        if at >= len(b):
            raise Refused("change_undecodable", "a LEB128 number runs past the end of the change")
        byte = b[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte & 0x80 == 0:
            if shift > 7 and byte == 0:
                raise Refused("change_undecodable", "a LEB128 number is not in its shortest form")
            if value >= 1 << 64:
                raise Refused("change_undecodable", "a LEB128 number is larger than 64 bits")
            return value, at
        if shift >= 70:
            raise Refused("change_undecodable", "a LEB128 number is larger than 64 bits")


def change_hash(change):
    """Returns the change hash (the entry id) of raw change bytes, or raises Refused (section 3, steps 1-6)."""
    if len(change) < 10 or len(change) > MAX_CHANGE_BYTES:
        raise Refused("change_size", "the change is empty or larger than %d bytes" % MAX_CHANGE_BYTES)
    if change[:4] != CHANGE_MAGIC:
        raise Refused("change_magic", "the change does not start with Automerge's magic bytes")
    if change[8] != CHUNK_CHANGE:
        raise Refused(
            "change_chunk_type", "the change is not an uncompressed Automerge change (chunk type %d)" % change[8]
        )
    try:
        body_len, body_start = read_uleb(change, 9)
    except Refused as e:
        raise Refused("change_length", "the change's length field is malformed: %s" % e)
    if body_len != len(change) - body_start:
        raise Refused("change_length", "the change's length field does not match its size")
    # Chunk type, canonical LEB128 length and body, exactly as they stand: Automerge's change hash.
    digest = hashlib.sha256(change[8:]).digest()
    if digest[:4] != change[4:8]:
        raise Refused("change_checksum", "the change's checksum does not match its contents")
    return digest


def change_actor(change):
    """Returns the actor of a change whose hash was computed, or raises Refused."""
    _, at = read_uleb(change, 9)
    deps, at = read_uleb(change, at)
    if deps > (len(change) - at) // 32:
        raise Refused("change_undecodable", "the change lists more dependencies than it has bytes for")
    at += 32 * deps
    actor_len, at = read_uleb(change, at)
    if at + actor_len > len(change):
        raise Refused("change_undecodable", "the change ends inside its actor id")
    if actor_len != 32:
        raise Refused("change_actor", "the change's author is not a device key (actor ids are 32-byte ed25519 keys)")
    return change[at : at + 32]


def change_hash_and_actor(change):
    """Returns (change hash, actor) of raw change bytes, or raises Refused."""
    return change_hash(change), change_actor(change)


# ---------------------------------------------------------------------------------------------------
# Entries and bundles


def signing_message(group_id, doc_id, change_hash):
    return ENTRY_TAG + group_id + doc_id + change_hash


def read_entry(b, at):
    """Reads one entry at offset `at`: returns ((doc_id or None, signature, change), new offset)."""

    def take(n):
        nonlocal at
        if at + n > len(b):
            raise Refused("truncated_entry", "the entry ends early: %d more bytes were expected" % (at + n - len(b)))
        s = b[at : at + n]
        at += n
        return s

    kind = take(1)[0]
    if kind == DOC_PUBLIC:
        doc_id = None
    elif kind == DOC_OTHER:
        doc_id = take(32)
    else:
        raise Refused("unknown_doc_kind", "unknown document kind %d" % kind)
    signature = take(64)
    n = int.from_bytes(take(4), "little")
    if n > MAX_CHANGE_BYTES:
        raise Refused(
            "change_too_large", "the entry says its change is %d bytes; the most allowed is %d" % (n, MAX_CHANGE_BYTES)
        )
    change = take(n)
    return (doc_id, signature, change), at


def read_bundle(b):
    """Checks the framing and the digest; returns (group id, [(entry, its encoded bytes)])."""
    if len(b) < 8 or b[:8] != BUNDLE_MAGIC:
        raise Refused("unreadable", "not a Roundtable bundle (it does not start with RTBUNDLE)")
    if len(b) < 9:
        raise Refused("unreadable", "the bundle is cut short")
    if b[8] != BUNDLE_VERSION:
        raise Refused("unreadable", "unknown bundle format version %d" % b[8])
    if len(b) < BUNDLE_HEADER:
        raise Refused("unreadable", "the bundle is cut short inside its header")
    # From here on the header is readable: a failure is damage to a file that is not a whole bundle.
    if len(b) < BUNDLE_HEADER + DIGEST_LEN:
        raise Refused("bundle_digest", "the bundle is cut short: it ends before its check digest")
    body, digest = b[:-DIGEST_LEN], b[-DIGEST_LEN:]
    if hashlib.sha256(body).digest() != digest:
        raise Refused("bundle_digest", "the bundle is damaged or cut short: its check digest does not match its contents")
    group_id = body[9:41]
    count = int.from_bytes(body[41:49], "little")
    at = BUNDLE_HEADER
    if count > (len(body) - at) // MIN_ENTRY:
        raise Refused("bundle_count", "the bundle says it holds %d entries, more than its size allows" % count)
    entries = []
    for index in range(count):
        if at == len(body):
            raise Refused(
                "truncated_bundle", "the file ends after %d entries, but its header says it holds %d" % (index, count)
            )
        start = at
        try:
            entry, at = read_entry(body, at)
        except Refused as e:
            raise Refused(e.kind, "entry %d of the bundle cannot be read: %s" % (index, e))
        entries.append((entry, body[start:at]))
    if at != len(body):
        raise Refused("trailing_bytes", "the bundle has %d unexpected bytes after its last entry" % (len(body) - at))
    return group_id, entries


def main(argv):
    if len(argv) == 3 and argv[1] == "--vectors":
        return check_vectors(argv[2])
    if len(argv) != 2:
        print("usage: independent_verify.py BUNDLE_FILE | --vectors VECTORS_JSON", file=sys.stderr)
        return 2
    with open(argv[1], "rb") as f:
        data = f.read()
    try:
        group_id, entries = read_bundle(data)
    except Refused as e:
        print("bundle: %s: %s" % (e.kind, e))
        return 2
    all_ok = True
    for (doc_id, signature, change), encoded in entries:
        try:
            h = change_hash(change)
        except Refused as e:
            # No entry id: the entry is named by the SHA-256 of its encoded bytes.
            print("%s %s: %s" % (hashlib.sha256(encoded).hexdigest(), e.kind, e))
            all_ok = False
            continue
        try:
            actor = change_actor(change)
        except Refused as e:
            print("%s %s: %s" % (h.hex(), e.kind, e))
            all_ok = False
            continue
        doc = group_id if doc_id is None else doc_id
        refusal = signature_refusal(actor, signing_message(group_id, doc, h), signature)
        if refusal is not None:
            print(
                "%s bad_signature: the signature does not hold for the change's author %s (%s)"
                % (h.hex(), actor.hex(), refusal)
            )
            all_ok = False
        elif doc_id is not None:
            # doc_kind 2 is outside the signature; this version refuses every such entry (section 4).
            print("%s unsupported_document: this version reads entries of the public record only" % h.hex())
            all_ok = False
        else:
            print("%s ok" % h.hex())
    print(
        "group %s: %d entries, %s" % (group_id.hex(), len(entries), "all verified" if all_ok else "NOT all verified"),
        file=sys.stderr,
    )
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
