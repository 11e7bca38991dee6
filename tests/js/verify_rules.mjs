// An independent rules verifier of a Roundtable bundle, written from docs/format.md and docs/rules.md
// alone (not from the Rust code).
//
// Usage: node tests/js/verify_rules.mjs BUNDLE_FILE
//        node tests/js/verify_rules.mjs --vectors VECTORS_JSON   (e.g. tests/data/ed25519-speccheck.json:
//        each case by the signature rule alone, "INDEX ok" or "INDEX KIND"; exit 0)
//
// What it checks, for every entry of the bundle:
//   - the bundle's framing and SHA-256 trailer digest (format.md section 5);
//   - the entry id, recomputed from the raw change bytes, and the change's actor (format.md section 3);
//   - the change decoded by the reference JavaScript Automerge (`Automerge.decodeChange`), whose hash
//     must equal the recomputed one;
//   - the ed25519 signature, by the signature rule of format.md section 4 (refuse a non-canonical or
//     small-order key, then the cofactored ZIP-215 equation), with its own BigInt arithmetic (Node's
//     OpenSSL is cofactorless and accepts small-order keys). tests/independent_verify.py is the other
//     independent signature verifier; this one is mostly about the rules;
//   - doc_kind 02 is refused (unsupported_document);
//   - then the rules: forks first, among every entry read; then in causal order depends_on_rejected
//     (pending entries are missing_dependency), not_in_group, bad_sequence,
//     bad_op_counter (format.md section 3), the record's shape rebuilt from the Automerge operations
//     (format.md section 6, and section 10 for the records of sealed threads), membership (R1, R2,
//     and D1: the entry's device stopped in its past), the governance fold with a member's devices, the
//     tally and the standing outcome (rules.md sections 2, 2a, 3 and 4), and the rules of every record
//     type (rules.md section 5: R3 to R10, S1 to S32, in the order of "The order of the checks"; D2 to
//     D5 of section 2a, the link proof by the signature rule, a recovery's too), the readers and epochs of sealed threads
//     (format.md section 10).
//
// An entry's device is its change's actor; its author is that device's member (rules.md section 2a:
// the device itself when it is a member's id, else the member a `device.add` linked it to, in the
// governance of the entry's past). Sequence numbers, vector clocks and forks are per device; every
// rule that speaks of the author (membership, one stance per member, confirm, correct, undo, readers,
// profiles, the fold) reads the member.
//
// What it does not check: no ciphertext is opened (no rule needs a key, format.md section 10), so
// nothing of "what a reader checks"; the auditor's notes and flags (out_of_order, duplicate,
// written_concurrently_with_removal) and its decision table are not printed.
//
// Output: one line per entry of the bundle, in the bundle's order: "ENTRY_ID ok" or
// "ENTRY_ID KIND: reason", with the kinds and ids of format.md section 11 (ENTRY_ID is the entry id, or
// the SHA-256 of the encoded entry when the change has no hash). Then one line
// "PROPOSAL_ID conflicting_outcomes: reason" for each proposal whose outcomes conflict at the heads, and
// "group: no_genesis: reason" when the bundle holds no valid genesis. A file that is not a whole bundle
// gets one line, "bundle: KIND: reason". Exit codes, as `roundtable audit`: 0 every entry is valid,
// 1 some entry is refused or pending (or outcomes conflict, or there is no genesis), 2 the file is not
// a whole bundle, cannot be read, or on a usage error.

import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";

// ------------------------------------------------------------------------------------------------
// Constants (format.md)


/** S9: `YYYY-MM-DD`, digits only, with a month 1-12 and a day 1-31. */
function isDate(d) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(d);
  return !!m && +m[2] >= 1 && +m[2] <= 12 && +m[3] >= 1 && +m[3] <= 31;
}
const BUNDLE_MAGIC = Buffer.from("RTBUNDLE", "ascii");
const BUNDLE_HEADER = 8 + 1 + 32 + 8;
const DIGEST_LEN = 32;
const MIN_ENTRY = 1 + 64 + 4;
const MAX_CHANGE_BYTES = 262144;
const CHANGE_MAGIC = Buffer.from([0x85, 0x6f, 0x4a, 0x83]);
const ENTRY_TAG = Buffer.from("roundtable/entry/v1", "ascii");
const DEVICE_TAG = Buffer.from("roundtable/device/v1", "ascii");
const MAX_OPS = 32;
const MAX_TEXT = 16384;
const MAX_BYTES = 131112;
const WRAP_LEN = 144;
const MAX_READERS = 64;
const MAX_EPOCHS = 900;
const BUCKETS = [
  256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384, 24576, 32768, 49152,
  65536, 98304, 131072,
];
const CONTAINERS = [
  "members", "threads", "messages", "proposals", "stances", "outcomes", "checks", "corrections", "actions",
];

class Refused extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}

const hex = (b) => Buffer.from(b).toString("hex");
const sha256 = (b) => createHash("sha256").update(b).digest();

// ------------------------------------------------------------------------------------------------
// Bundle framing (format.md section 5)

function readBundle(b) {
  if (b.length < 8 || !b.subarray(0, 8).equals(BUNDLE_MAGIC)) {
    throw new Refused("unreadable", "not a Roundtable bundle (it does not start with RTBUNDLE)");
  }
  if (b.length < 9) throw new Refused("unreadable", "the bundle is cut short");
  if (b[8] !== 1) throw new Refused("unreadable", `unknown bundle format version ${b[8]}`);
  if (b.length < BUNDLE_HEADER) throw new Refused("unreadable", "the bundle is cut short inside its header");
  if (b.length < BUNDLE_HEADER + DIGEST_LEN) {
    throw new Refused("bundle_digest", "the bundle is cut short: it ends before its check digest");
  }
  const body = b.subarray(0, b.length - DIGEST_LEN);
  if (!sha256(body).equals(b.subarray(b.length - DIGEST_LEN))) {
    throw new Refused("bundle_digest", "the bundle is damaged or cut short: its check digest does not match");
  }
  const group = body.subarray(9, 41);
  const count = body.readBigUInt64LE(41);
  if (count > BigInt(Math.floor((body.length - BUNDLE_HEADER) / MIN_ENTRY))) {
    throw new Refused("bundle_count", `the bundle says it holds ${count} entries, more than its size allows`);
  }
  const entries = [];
  let at = BUNDLE_HEADER;
  for (let i = 0; i < Number(count); i++) {
    if (at === body.length) {
      throw new Refused("truncated_bundle", `the file ends after ${i} entries, but its header says ${count}`);
    }
    const start = at;
    const take = (n) => {
      if (at + n > body.length) {
        throw new Refused("truncated_entry", `entry ${i} ends early: ${at + n - body.length} more bytes expected`);
      }
      const s = body.subarray(at, at + n);
      at += n;
      return s;
    };
    const kind = take(1)[0];
    let docId = null;
    if (kind === 2) docId = take(32);
    else if (kind !== 1) throw new Refused("unknown_doc_kind", `entry ${i} has unknown document kind ${kind}`);
    const signature = take(64);
    const n = take(4).readUInt32LE(0);
    if (n > MAX_CHANGE_BYTES) {
      throw new Refused("change_too_large", `entry ${i} says its change is ${n} bytes; at most ${MAX_CHANGE_BYTES}`);
    }
    const change = take(n);
    entries.push({ docId, signature, change, encoded: body.subarray(start, at) });
  }
  if (at !== body.length) {
    throw new Refused("trailing_bytes", `${body.length - at} unexpected bytes after the last entry`);
  }
  return { group, entries };
}

// ------------------------------------------------------------------------------------------------
// The change, its id and actor (format.md sections 1 and 3)

function readUleb(b, at, kind) {
  let value = 0n;
  let shift = 0n;
  for (;;) {
    if (at >= b.length) throw new Refused(kind, "a LEB128 number runs past the end of the change");
    const byte = b[at++];
    value |= BigInt(byte & 0x7f) << shift;
    shift += 7n;
    if ((byte & 0x80) === 0) {
      if (shift > 7n && byte === 0) throw new Refused(kind, "a LEB128 number is not in its shortest form");
      if (value >= 1n << 64n) throw new Refused(kind, "a LEB128 number is larger than 64 bits");
      return [value, at];
    }
    if (shift >= 70n) throw new Refused(kind, "a LEB128 number is larger than 64 bits");
  }
}

function changeHash(c) {
  if (c.length < 10 || c.length > MAX_CHANGE_BYTES) {
    throw new Refused("change_size", `the change is shorter than 10 bytes or longer than ${MAX_CHANGE_BYTES}`);
  }
  if (!c.subarray(0, 4).equals(CHANGE_MAGIC)) throw new Refused("change_magic", "no Automerge magic bytes");
  if (c[8] !== 1) throw new Refused("change_chunk_type", `chunk type ${c[8]} is not an uncompressed change`);
  const [len, b] = readUleb(c, 9, "change_length");
  if (len !== BigInt(c.length - b)) throw new Refused("change_length", "the body length does not match the change");
  const h = sha256(c.subarray(8));
  if (!h.subarray(0, 4).equals(c.subarray(4, 8))) throw new Refused("change_checksum", "the checksum does not match");
  return { hash: h, bodyStart: b };
}

function changeActor(c, at) {
  const [d, a1] = readUleb(c, at, "change_undecodable");
  if (d > BigInt(Math.floor((c.length - a1) / 32))) {
    throw new Refused("change_undecodable", "more dependencies than the change has bytes for");
  }
  const a2 = a1 + 32 * Number(d);
  const [n, a3] = readUleb(c, a2, "change_undecodable");
  if (n > BigInt(c.length - a3)) throw new Refused("change_undecodable", "the change ends inside its actor");
  if (n !== 32n) throw new Refused("change_actor", "the change's actor is not a 32-byte device key");
  return c.subarray(a3, a3 + 32);
}

// ------------------------------------------------------------------------------------------------
// ed25519 by the signature rule (format.md section 4, "Signature rule"), RFC 8032's arithmetic in
// extended coordinates. Also: is 32 bytes an ed25519 public key? (isPoint: y modulo p, x recovered,
// a non-canonical y is not refused; the rules' not_a_key.)

const P = 2n ** 255n - 19n;
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const modp = (x) => ((x % P) + P) % P;
function powmod(b, e) {
  let r = 1n;
  b = modp(b);
  while (e > 0n) {
    if (e & 1n) r = (r * b) % P;
    b = (b * b) % P;
    e >>= 1n;
  }
  return r;
}
const D = modp(-121665n * powmod(121666n, P - 2n));
const SQRT_M1 = powmod(2n, (P - 1n) / 4n);
const inv = (x) => powmod(x, P - 2n);
const IDENTITY = [0n, 1n, 1n, 0n];

function pointAdd(p, q) {
  const a = modp((p[1] - p[0]) * (q[1] - q[0]));
  const b = modp((p[1] + p[0]) * (q[1] + q[0]));
  const c = modp(2n * p[3] * q[3] * D);
  const d = modp(2n * p[2] * q[2]);
  const e = b - a;
  const f = d - c;
  const g = d + c;
  const h = b + a;
  return [modp(e * f), modp(g * h), modp(f * g), modp(e * h)];
}
function pointMul(s, p) {
  let q = IDENTITY;
  while (s > 0n) {
    if (s & 1n) q = pointAdd(q, p);
    p = pointAdd(p, p);
    s >>= 1n;
  }
  return q;
}
const pointNeg = (p) => [modp(-p[0]), p[1], p[2], modp(-p[3])];
const smallOrder = (p) => {
  const q = pointMul(8n, p);
  return modp(q[0]) === 0n && modp(q[1] - q[2]) === 0n;
};
function leInt(b) {
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
  return v;
}
// x from y and the sign bit, as ZIP-215 (and curve25519-dalek) decode: null if not on the curve;
// x = 0 with the sign bit set gives 0.
function recoverX(y, sign) {
  const x2 = modp((y * y - 1n) * inv(D * y * y + 1n));
  if (x2 === 0n) return 0n;
  let x = powmod(x2, (P + 3n) / 8n);
  if (modp(x * x - x2) !== 0n) x = modp(x * SQRT_M1);
  if (modp(x * x - x2) !== 0n) return null;
  if ((x & 1n) !== sign) x = P - x;
  return x;
}
// Any encoding decodes (y taken modulo p); key refusals check canonicality by re-encoding.
function decompress(bytes) {
  const v = leInt(bytes);
  const y = (v & ((1n << 255n) - 1n)) % P;
  const x = recoverX(y, v >> 255n);
  return x === null ? null : [x, y, 1n, modp(x * y)];
}
function compress(p) {
  const zi = inv(p[2]);
  let v = modp(p[1] * zi) | ((modp(p[0] * zi) & 1n) << 255n);
  const out = Buffer.alloc(32);
  for (let i = 0; i < 32; i++) {
    out[i] = Number(v & 255n);
    v >>= 8n;
  }
  return out;
}
const GY = modp(4n * inv(5n));
const GX = recoverX(GY, 0n);
const BASE = [GX, GY, 1n, modp(GX * GY)];

const keyVerdicts = new Map();
function keyRefusal(pub) {
  const a = decompress(pub);
  if (a === null) return "not_a_point";
  if (!compress(a).equals(Buffer.from(pub))) return "non_canonical_key";
  if (smallOrder(a)) return "small_order_key";
  return null;
}
// null if the signature holds by the signature rule, else why not (the kinds of
// roundtable_core::signature::Refusal).
function signatureRefusal(pub, msg, sig) {
  const key = hex(pub);
  if (!keyVerdicts.has(key)) keyVerdicts.set(key, keyRefusal(pub));
  const refused = keyVerdicts.get(key);
  if (refused) return refused;
  const s = leInt(sig.subarray(32, 64));
  if (s >= L) return "mismatch";
  const r = decompress(sig.subarray(0, 32));
  if (r === null) return "mismatch";
  const k = leInt(createHash("sha512").update(sig.subarray(0, 32)).update(pub).update(msg).digest()) % L;
  // Cofactored: [8]([s]B - [k]A - R) is the identity.
  const e = pointAdd(pointAdd(pointMul(s, BASE), pointMul(k, pointNeg(decompress(pub)))), pointNeg(r));
  return smallOrder(e) ? null : "mismatch";
}

function checkVectors(path) {
  const cases = JSON.parse(readFileSync(path, "utf8")).cases;
  const out = cases.map((c, i) => {
    const why = signatureRefusal(
      Buffer.from(c.pub_key, "hex"),
      Buffer.from(c.message, "hex"),
      Buffer.from(c.signature, "hex"),
    );
    return `${i} ${why ?? "ok"}\n`;
  });
  process.stdout.write(out.join(""));
  return 0;
}

function isPoint(bytes) {
  return decompress(bytes) !== null;
}

// ------------------------------------------------------------------------------------------------
// The record inside a change (format.md sections 6 and 10)

const ID = "id";
const STR = "str";
const UINT = "uint";
const BYTES = "bytes";

// type -> [container, required fields, optional fields]
const RECORDS = {
  "member.add": ["members", { member: ID, name: STR, needs: STR }, {}],
  "member.leave": ["members", {}, {}],
  "member.remove": ["members", { member: ID, decision: ID }, {}],
  "auditor.add": ["members", { device: ID, name: STR }, {}],
  "member.about": ["members", { name: STR, needs: STR }, {}],
  "device.add": ["members", { device: ID, name: STR, proof: BYTES }, {}],
  "device.revoke": ["members", { device: ID }, {}],
  profile: ["members", { enc_key: BYTES }, {}],
  thread: ["threads", { title: STR }, {}],
  "thread.sealed": ["threads", { title: STR, reason: STR, commit: BYTES, wraps: BYTES }, {}],
  "thread.reader.add": ["threads", { thread: ID, member: ID, wraps: BYTES }, {}],
  "thread.rekey": ["threads", { thread: ID, commit: BYTES, wraps: BYTES }, { removes: ID }],
  "thread.reader.agree": ["threads", { thread: ID, member: ID }, {}],
  "thread.ask": ["threads", { thread: ID, why: STR }, {}],
  "thread.decline": ["threads", { thread: ID, member: ID, reason: STR }, {}],
  message: ["messages", { thread: ID, text: STR }, {}],
  "message.sealed": ["messages", { thread: ID, epoch: ID, ct: BYTES }, {}],
  proposal: [
    "proposals",
    { thread: ID, title: STR, text: STR, easy_read: STR, rule: STR, quorum: UINT },
    {
      removes: ID, adds: ID, adds_name: STR, adds_needs: STR, auditor: ID, auditor_name: STR,
      recovers: ID, recovers_device: ID, recovers_name: STR, recovers_proof: BYTES,
      keeper: ID, keeper_name: STR, unkeeps: ID,
      sets_rule: STR, sets_quorum: UINT, closes: STR,
    },
  ],
  stance: ["stances", { proposal: ID, stance: STR, reason: STR }, { for: ID }],
  outcome: [
    "outcomes",
    { proposal: ID, outcome: STR, decision: STR, agree: UINT, abstain: UINT, disagree: UINT, block: UINT },
    {},
  ],
  understand: ["checks", { target: ID, text: STR }, {}],
  confirm: ["checks", { target: ID }, {}],
  correct: ["corrections", { target: ID, text: STR }, {}],
  action: ["actions", { thread: ID, text: STR, owner: ID }, { due: STR }],
  "action.done": ["actions", { action: ID }, {}],
  "action.undo": ["actions", { done: ID }, {}],
};
const EFFECTS = [
  ["removes"],
  ["adds", "adds_name", "adds_needs"],
  ["auditor", "auditor_name"],
  ["recovers", "recovers_device", "recovers_name", "recovers_proof"],
  ["keeper", "keeper_name"],
  ["unkeeps"],
  ["sets_rule", "sets_quorum"],
];
const ENUMS = {
  rule: ["consent", "majority"],
  sets_rule: ["consent", "majority"],
  stance: ["agree", "abstain", "disagree", "block"],
  decision: ["passed", "not_passed"],
};

// The type of an operation's value, as Automerge's decodeChange gives it.
function valueType(op) {
  if (op.datatype === "uint") return UINT;
  if (op.datatype === undefined && typeof op.value === "string") return STR;
  if (op.datatype === undefined && (Array.isArray(op.value) || op.value instanceof Uint8Array)) return BYTES;
  if (op.datatype === "bytes") return BYTES;
  return `other (${op.datatype ?? typeof op.value})`;
}

function shapeError(msg) {
  return new Refused("bad_shape", msg);
}

const isId = (s) => typeof s === "string" && /^[0-9a-f]{64}$/.test(s);

function checkOp(op, i) {
  if (op.insert) throw shapeError(`operation ${i + 1} is an insert`);
  if (!Array.isArray(op.pred) || op.pred.length !== 0) throw shapeError(`operation ${i + 1} has predecessors`);
  if (typeof op.key !== "string") throw shapeError(`operation ${i + 1} has no map key`);
}

// The genesis: a map at root["group"], its fields, then the nine containers. Returns the group record
// and the containers' object ids.
function genesisShape(ch) {
  const actor = ch.actor;
  const ops = ch.ops;
  if (ops.length > MAX_OPS) throw shapeError(`${ops.length} operations, more than ${MAX_OPS}`);
  if (ops.length === 0) throw shapeError("the genesis has no operation");
  ops.forEach(checkOp);
  if (ops[0].action !== "makeMap" || ops[0].obj !== "_root" || ops[0].key !== "group") {
    throw shapeError('the genesis does not start by making root["group"]');
  }
  // Then puts into the group's map and the nine containers at the root, in any order (Roundtable
  // writes the fields first, then the containers in the order of CONTAINERS).
  const fields = {};
  const containers = {};
  const groupObj = `${ch.startOp}@${actor}`;
  ops.forEach((op, i) => {
    if (i === 0) return;
    if (op.action === "set" && op.obj === groupObj) {
      if (op.key in fields) throw shapeError(`the group's field ${op.key} is written twice`);
      fields[op.key] = { t: valueType(op), v: op.value };
    } else if (op.action === "makeMap" && op.obj === "_root" && CONTAINERS.includes(op.key) && !(op.key in containers)) {
      containers[op.key] = `${ch.startOp + i}@${actor}`;
    } else {
      throw shapeError(`operation ${i + 1} of the genesis is neither a field of the group nor a new container`);
    }
  });
  if (Object.keys(containers).length !== CONTAINERS.length) throw shapeError("the genesis must make every container");
  const body = fieldsToRecord(fields, { name: STR, rule: STR, quorum: UINT, creator_name: STR, creator_needs: STR }, {}, "group");
  return { body, containers };
}

function fieldsToRecord(fields, required, optional, type) {
  if (!fields.type || fields.type.t !== STR || fields.type.v !== type) throw shapeError("the type field is wrong");
  const rec = { type };
  for (const [k, f] of Object.entries(fields)) {
    if (k === "type") continue;
    const t = required[k] ?? optional[k];
    if (!t) throw shapeError(`unknown field ${k} in a ${type} record`);
    if (t === ID) {
      if (f.t !== STR || !isId(f.v)) throw shapeError(`${k} is not a 64-character lowercase hex id`);
    } else if (f.t !== t) {
      throw shapeError(`${k} is ${f.t}, not ${t}`);
    }
    if (t === STR || t === ID) {
      if (Buffer.byteLength(f.v, "utf8") > MAX_TEXT) throw shapeError(`${k} is longer than ${MAX_TEXT} bytes`);
    }
    if (t === BYTES) {
      f.v = Uint8Array.from(f.v);
      if (f.v.length > MAX_BYTES) throw shapeError(`${k} is longer than ${MAX_BYTES} bytes`);
    }
    if (t === UINT && typeof f.v !== "number" && typeof f.v !== "bigint") throw shapeError(`${k} is not a number`);
    if (t === STR && ENUMS[k] && !ENUMS[k].includes(f.v)) throw shapeError(`${k} is "${f.v}", not one of ${ENUMS[k].join(", ")}`);
    rec[k] = t === UINT ? Number(f.v) : f.v;
  }
  for (const k of Object.keys(required)) if (!(k in rec)) throw shapeError(`a ${type} record lacks ${k}`);
  return rec;
}

// A wrap list (format.md section 10): rows of 144 bytes, sorted by id, none twice.
function wrapRows(bytes, max, name) {
  if (bytes.length === 0 || bytes.length % WRAP_LEN !== 0 || bytes.length / WRAP_LEN > max) {
    throw shapeError(`${name} is not 1 to ${max} rows of ${WRAP_LEN} bytes`);
  }
  const rows = [];
  for (let at = 0; at < bytes.length; at += WRAP_LEN) {
    rows.push({ id: hex(bytes.subarray(at, at + 32)), recipient: hex(bytes.subarray(at + 32, at + 64)) });
  }
  for (let i = 1; i < rows.length; i++) {
    if (!(rows[i - 1].id < rows[i].id)) throw shapeError(`the rows of ${name} are not sorted by id, each once`);
  }
  return rows;
}

// Every other change: one new map at "{actor}.{seq}" of its record's container, then only puts into it.
function recordShape(ch, containers) {
  const ops = ch.ops;
  if (ops.length > MAX_OPS) throw shapeError(`${ops.length} operations, more than ${MAX_OPS}`);
  if (ops.length === 0) throw shapeError("no operation");
  ops.forEach(checkOp);
  const first = ops[0];
  const key = `${ch.actor}.${ch.seq}`;
  if (first.action !== "makeMap" || first.key !== key) throw shapeError(`the change does not make a map at "${key}"`);
  const container = Object.keys(containers).find((c) => containers[c] === first.obj);
  if (!container) throw shapeError("the new map is not in a container of the record");
  const obj = `${ch.startOp}@${ch.actor}`;
  const fields = {};
  for (let i = 1; i < ops.length; i++) {
    const op = ops[i];
    if (op.action !== "set" || op.obj !== obj) throw shapeError(`operation ${i + 1} is not a put into the new map`);
    if (op.key in fields) throw shapeError(`the field ${op.key} is written twice`);
    fields[op.key] = { t: valueType(op), v: op.value };
  }
  const type = fields.type && fields.type.t === STR ? fields.type.v : null;
  const spec = RECORDS[type];
  if (!spec || type === "group") throw shapeError(`unknown record type ${JSON.stringify(type)}`);
  if (spec[0] !== container) throw shapeError(`a ${type} record is in ${container}, not ${spec[0]}`);
  const rec = fieldsToRecord(fields, spec[1], spec[2], type);
  if (type === "proposal") {
    const given = EFFECTS.filter((g) => g.some((k) => k in rec));
    if (given.length > 1) throw shapeError("a proposal carries more than one effect");
    if (given.length === 1 && !given[0].every((k) => k in rec)) throw shapeError(`an effect lacks one of ${given[0]}`);
    rec.effect = given.length ? given[0][0] : null;
  }
  if (type === "profile" && rec.enc_key.length !== 32) throw shapeError("enc_key is not 32 bytes");
  if (type === "device.add" && rec.proof.length !== 64) throw shapeError("proof is not 64 bytes");
  if (rec.effect === "recovers" && rec.recovers_proof.length !== 64) throw shapeError("recovers_proof is not 64 bytes");
  if ((type === "thread.sealed" || type === "thread.rekey") && rec.commit.length !== 32) throw shapeError("commit is not 32 bytes");
  if (type === "thread.sealed" || type === "thread.rekey") rec.rows = wrapRows(rec.wraps, MAX_READERS, "wraps");
  if (type === "thread.reader.add") rec.rows = wrapRows(rec.wraps, MAX_EPOCHS, "wraps");
  return rec;
}

// ------------------------------------------------------------------------------------------------
// Reading the bundle's entries (format.md sections 3 and 4)

function readEntries(group, raw, Automerge) {
  const lines = []; // per occurrence: { id, verdict } ; verdict null = judged by the rules
  const byId = new Map();
  for (const e of raw) {
    let hash, bodyStart;
    try {
      ({ hash, bodyStart } = changeHash(e.change));
    } catch (err) {
      lines.push({ id: hex(sha256(e.encoded)), kind: err.kind, reason: err.message });
      continue;
    }
    const id = hex(hash);
    try {
      const actor = changeActor(e.change, bodyStart);
      let ch;
      try {
        ch = Automerge.decodeChange(new Uint8Array(e.change));
      } catch (err) {
        throw new Refused("change_undecodable", `Automerge cannot decode the change: ${err.message ?? err}`);
      }
      if (ch.hash !== id) throw new Refused("change_length", "Automerge's hash of the change differs from the recomputed one");
      if (ch.actor !== hex(actor)) throw new Refused("change_actor", "Automerge reads another actor");
      const doc = e.docId ?? group;
      const msg = Buffer.concat([ENTRY_TAG, group, doc, hash]);
      const refused = signatureRefusal(actor, msg, e.signature);
      if (refused) {
        throw new Refused("bad_signature", `the signature does not hold for the change's author ${hex(actor)} (${refused})`);
      }
      if (e.docId) throw new Refused("unsupported_document", "this version reads entries of the public record only");
      lines.push({ id, kind: null });
      if (!byId.has(id)) {
        byId.set(id, {
          id,
          actor: ch.actor,
          seq: Number(ch.seq),
          startOp: Number(ch.startOp),
          maxOp: Number(ch.startOp) + ch.ops.length - 1,
          deps: [...ch.deps],
          ops: ch.ops,
          ch,
        });
      }
    } catch (err) {
      if (!(err instanceof Refused)) throw err;
      lines.push({ id, kind: err.kind, reason: err.message });
    }
  }
  return { lines, byId };
}

// ------------------------------------------------------------------------------------------------
// The rules (rules.md)

class Judge {
  constructor(group, byId) {
    this.group = group;
    this.byId = byId;
    this.valid = new Map(); // id -> entry (with .clock and .rec)
    this.verdict = new Map(); // id -> {kind, reason} for refused entries
    this.containers = null;
    // Valid entries by role, in linear order once sorted.
    this.gov = [];
    this.stances = [];
    this.outcomes = [];
    this.confirms = [];
    this.profiles = [];
    this.readerChanges = [];
    this.readerAsks = [];
  }

  // Linear order: (max_op, id).
  static linear(a, b) {
    return a.maxOp - b.maxOp || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  }

  // P as a vector clock: X is in P iff clock[X.actor] >= X.seq.
  static inClock(clock, x) {
    return (clock.get(x.actor) ?? 0) >= x.seq;
  }

  clockOf(deps) {
    const clock = new Map();
    for (const d of deps) {
      for (const [a, s] of this.valid.get(d).clock) if ((clock.get(a) ?? 0) < s) clock.set(a, s);
    }
    return clock;
  }

  // X is before Y (both valid).
  before(x, y) {
    return x.id !== y.id && Judge.inClock(y.clock, x);
  }

  concurrent(x, y) {
    return x.id !== y.id && !this.before(x, y) && !this.before(y, x);
  }

  // ---- rules.md sections 2 and 2a: the governance fold ----

  // member_of(d, G) (rules.md section 2a): d itself when it is a member's id (their first device),
  // the member it was linked to, or null.
  static memberOf(gov, d) {
    if (gov.members.has(d)) return d;
    return gov.linked.get(d)?.member ?? null;
  }

  governance(clock) {
    const events = this.gov.filter((e) => Judge.inClock(clock, e));
    let voided = new Set();
    for (;;) {
      const [state, found] = this.foldOnce(events, voided);
      if ([...found].every((id) => voided.has(id))) {
        state.void = voided;
        return state;
      }
      voided = new Set([...voided, ...found]);
    }
  }

  foldOnce(events, voided) {
    const byProposal = new Map();
    for (const e of events) {
      if (e.rec.type === "outcome" && !voided.has(e.id)) {
        if (!byProposal.has(e.rec.proposal)) byProposal.set(e.rec.proposal, []);
        byProposal.get(e.rec.proposal).push(e);
      }
    }
    const standing = new Set();
    for (const outs of byProposal.values()) standing.add(this.standingOf(outs).stands.id);
    // linked: device -> { member, name, by }; stopped: device -> the device.revoke, or the close of a
    // recovery (D5), that stopped it.
    const state = {
      members: new Map(), auditors: new Set(), policy: null, changedBy: new Map(), linked: new Map(), stopped: new Map(),
      // rules.md section 2b: keeper device -> { name, stopped }; a keeper's id is a keeper's for good.
      keepers: new Map(),
    };
    const found = new Set();
    const applied = [];
    const active = (m) => state.members.get(m)?.status === "active";
    for (const e of events) {
      const a = e.author; // the member (rules.md section 2a); e.actor is the device
      if (e.rec.type === "group") {
        state.members.set(a, { status: "active", name: e.rec.creator_name, needs: e.rec.creator_needs });
        state.policy = { rule: e.rec.rule, quorum: e.rec.quorum };
        state.changedBy.set(a, e);
        continue;
      }
      if (voided.has(e.id)) continue;
      // Valid, so its author was active and its device not stopped in its past: what changed that is
      // concurrent with it.
      if (!active(a) || state.stopped.has(e.actor)) {
        found.add(e.id);
        continue;
      }
      if (e.rec.type === "member.leave") {
        state.members.get(a).status = "left";
        state.changedBy.set(a, e);
      } else if (e.rec.type === "member.about") {
        const m = state.members.get(a);
        m.name = e.rec.name;
        m.needs = e.rec.needs;
      } else if (e.rec.type === "device.add") {
        // Of two links of one device made apart, the first in linear order stands.
        const d = e.rec.device;
        if (!state.members.has(d) && !state.linked.has(d) && !state.auditors.has(d) && !state.keepers.has(d)) {
          state.linked.set(d, { member: a, name: e.rec.name, by: e });
        }
      } else if (e.rec.type === "device.revoke") {
        const d = e.rec.device;
        if (d !== e.actor && Judge.memberOf(state, d) === a && !state.stopped.has(d)) state.stopped.set(d, e);
      } else if (e.rec.type === "outcome" && standing.has(e.id) && e.rec.decision === "passed") {
        const p = this.valid.get(e.rec.proposal).rec;
        // A device linked to a member is theirs for good (rules.md section 2a, D2): never a member or
        // an auditor of its own.
        if (p.effect === "adds") {
          if (!active(p.adds) && !state.linked.has(p.adds) && !state.keepers.has(p.adds)) {
            state.members.set(p.adds, { status: "active", name: p.adds_name, needs: p.adds_needs });
            state.changedBy.set(p.adds, e);
          }
        } else if (p.effect === "removes") {
          if (active(p.removes)) {
            state.members.get(p.removes).status = "removed";
            state.changedBy.set(p.removes, e);
          }
        } else if (p.effect === "recovers") {
          // rules.md section 2a, D5: the new device becomes the member's and every other device of
          // theirs is stopped by this close, as by a device.revoke; nothing if the device was taken.
          const m = p.recovers;
          const d = p.recovers_device;
          if (active(m) && !state.members.has(d) && !state.linked.has(d) && !state.auditors.has(d) && !state.keepers.has(d)) {
            const mine = [m, ...[...state.linked.entries()].filter(([, x]) => x.member === m).map(([x]) => x)];
            for (const x of mine) if (!state.stopped.has(x)) state.stopped.set(x, e);
            state.linked.set(d, { member: m, name: p.recovers_name, by: e });
          }
        } else if (p.effect === "auditor") {
          if (!state.members.has(p.auditor) && !state.linked.has(p.auditor) && !state.keepers.has(p.auditor)) state.auditors.add(p.auditor);
        } else if (p.effect === "keeper") {
          const d = p.keeper;
          const k = state.keepers.get(d);
          if (!state.members.has(d) && !state.linked.has(d) && !state.auditors.has(d) && !(k && !k.stopped)) {
            state.keepers.set(d, { name: p.keeper_name, stopped: false });
          }
        } else if (p.effect === "unkeeps") {
          const k = state.keepers.get(p.unkeeps);
          if (k && !k.stopped) k.stopped = true;
        } else if (p.effect === "sets_rule") {
          state.policy = { rule: p.sets_rule, quorum: p.sets_quorum };
        }
      } else {
        continue;
      }
      applied.push([e, a]);
    }
    for (const [e, a] of applied) {
      // Its device stopped by an entry concurrent with it (rules.md section 2a).
      const stop = state.stopped.get(e.actor);
      if (stop !== undefined && stop !== e && this.concurrent(e, stop)) {
        found.add(e.id);
        continue;
      }
      const by = state.changedBy.get(a);
      if (!active(a) && by !== e && this.concurrent(e, by)) found.add(e.id);
    }
    return [state, found];
  }

  // rules.md section 4. `outs`: the outcomes of one proposal, none void.
  standingOf(outs) {
    const frontier = outs.filter((o) => !outs.some((x) => this.before(o, x)));
    if (frontier.length === 1) return { stands: frontier[0], frontier };
    const total = (o) => o.rec.agree + o.rec.abstain + o.rec.disagree + o.rec.block;
    const sorted = [...frontier].sort(
      (a, b) =>
        total(b) - total(a) ||
        (a.rec.decision === "not_passed" ? 0 : 1) - (b.rec.decision === "not_passed" ? 0 : 1) ||
        (a.id < b.id ? -1 : 1),
    );
    return { stands: sorted[0], frontier };
  }

  // A valid entry X is void at a point (rules.md sections 2 and 2a): in the fold's void, or its
  // device stopped by an entry concurrent with it, or its author not active by an entry concurrent
  // with it.
  isVoid(x, gov) {
    if (gov.void.has(x.id)) return true;
    if (this.nobodys(x, gov)) return true;
    if (this.stoppedConcurrently(x, gov)) return true;
    const m = gov.members.get(x.author);
    if (m?.status === "active") return false;
    const by = gov.changedBy.get(x.author);
    return by !== undefined && this.concurrent(x, by);
  }

  // X was written on a linked device whose link is not in force at a point (void, made on a device
  // stopped concurrently): it speaks for nobody (rules.md section 2a, D4).
  nobodys(x, gov) {
    return x.actor !== x.author && Judge.memberOf(gov, x.actor) !== x.author;
  }

  // X's device is stopped at a point by an entry concurrent with X (rules.md section 2a): what a lost
  // device wrote apart counts for nothing.
  stoppedConcurrently(x, gov) {
    const stop = gov.stopped.get(x.actor);
    return stop !== undefined && stop.id !== x.id && this.concurrent(x, stop);
  }

  // The standing outcome of proposal `p` at `clock`, or null.
  standingAt(p, clock, gov) {
    const outs = this.outcomes.filter((o) => o.rec.proposal === p && Judge.inClock(clock, o) && !this.isVoid(o, gov));
    if (outs.length === 0) return null;
    return this.standingOf(outs);
  }

  // ---- rules.md section 3: the tally ----

  tally(pid, clock) {
    const p = this.valid.get(pid);
    const g0 = this.governance(p.clock);
    const activeIn = (g, m) => g.members.get(m)?.status === "active";
    const members0 = [...g0.members.keys()].filter((m) => activeIn(g0, m));
    const n = members0.length;
    const needed = Math.min(n, Math.max(p.rec.quorum, g0.policy.quorum, Math.floor(n / 2) + 1));
    const g = this.governance(clock);
    const latest = new Map();
    for (const s of this.stances) {
      if (s.rec.proposal !== pid || !Judge.inClock(clock, s)) continue;
      // A stance written on a device stopped concurrently with it counts for nothing (rules.md section
      // 2a; one removed concurrently is dropped below). One stance per member, whichever of their
      // devices wrote it.
      if (this.stoppedConcurrently(s, g) || this.nobodys(s, g)) continue;
      let voter = s.author;
      if (s.rec.for !== undefined) {
        const confirmed = this.confirms.some(
          (c) => c.rec.target === s.id && c.author === s.rec.for && Judge.inClock(clock, c) && !this.stoppedConcurrently(c, g),
        );
        if (!confirmed) continue;
        voter = s.rec.for;
      }
      latest.set(voter, s.rec.stance);
    }
    for (const v of [...latest.keys()]) if (!activeIn(g, v)) latest.delete(v);
    const count = (m) => {
      const c = { agree: 0, abstain: 0, disagree: 0, block: 0 };
      for (const s of m.values()) c[s]++;
      return c;
    };
    const counts = count(latest);
    const given = latest.size;
    const decide = (c, rule) => {
      const quorate = c.agree + c.abstain + c.disagree + c.block >= needed;
      if (rule === "consent") return quorate && c.block === 0;
      return quorate && c.agree > c.disagree + c.block;
    };
    let passed = decide(counts, p.rec.rule);
    if (p.rec.effect === "removes") {
      const m = p.rec.removes;
      const others = members0.filter((x) => x !== m);
      const agree = others.filter((x) => latest.get(x) === "agree").length;
      const blocks = [...latest.entries()].filter(([v, s]) => v !== m && s === "block").length;
      const c = { ...counts };
      if (p.rec.rule === "consent" && latest.get(m) === "block") {
        c.block--;
        c.disagree++;
      }
      passed = decide(c, p.rec.rule) && blocks === 0 && 3 * agree >= 2 * others.length;
    } else if (p.rec.effect === "recovers") {
      // rules.md section 3: two thirds of the others agree, and nobody blocks (the member recovered
      // included), under either rule.
      const m = p.rec.recovers;
      const others = members0.filter((x) => x !== m);
      const agree = others.filter((x) => latest.get(x) === "agree").length;
      passed = passed && counts.block === 0 && 3 * agree >= 2 * others.length;
    }
    return { counts, decision: passed ? "passed" : "not_passed", needed, given, n };
  }

  // ---- the sealed threads at a point (format.md section 10) ----

  publishedKey(member, clock) {
    let best = null;
    for (const e of this.profiles) if (e.author === member && Judge.inClock(clock, e)) best = e; // linear order
    return best ? hex(best.rec.enc_key) : null;
  }

  sealedAt(tid, clock, gov) {
    const active = (m) => gov.members.get(m)?.status === "active";
    const t = this.valid.get(tid);
    const readers = new Set(t.rec.rows.map((r) => r.id));
    // Each epoch: who holds its key, at which encryption key, and whether it is stale (its key went
    // to a key a reader no longer publishes).
    const epochOf = (rows) => ({ holders: new Map(rows.map((r) => [r.id, r.recipient])), stale: false });
    const epochs = new Map([[tid, epochOf(t.rec.rows)]]);
    // For each member not a reader: the readers whose latest word on letting them in is yes.
    const agreed = new Map();
    for (const e of this.readerChanges) {
      if (e.rec.thread !== tid || !Judge.inClock(clock, e)) continue;
      // A reader change whose author's removal is concurrent with it (void, rules.md section 2)
      // adds and removes no one; a void rekey still starts its epoch.
      const voided = this.isVoid(e, gov);
      if (e.rec.type === "thread.reader.agree") {
        if (voided) continue;
        if (!agreed.has(e.rec.member)) agreed.set(e.rec.member, new Set());
        agreed.get(e.rec.member).add(e.author);
      } else if (e.rec.type === "thread.decline") {
        if (voided) continue;
        agreed.get(e.rec.member)?.delete(e.author);
      } else if (e.rec.type === "thread.reader.add") {
        if (voided) continue;
        agreed.delete(e.rec.member);
        readers.add(e.rec.member);
        for (const r of e.rec.rows) {
          const ep = epochs.get(r.id);
          if (!ep) continue;
          const old = ep.holders.get(e.rec.member);
          if (old !== undefined && old !== r.recipient) ep.stale = true;
          ep.holders.set(e.rec.member, r.recipient);
        }
      } else {
        const m = e.rec.removes;
        if (m !== undefined && !voided && readers.has(m) && [...readers].some((r) => r !== m && active(r))) {
          readers.delete(m);
          agreed.delete(m);
        }
        epochs.set(e.id, epochOf(e.rec.rows));
      }
    }
    for (const r of [...readers]) if (!active(r)) readers.delete(r);
    for (const ep of epochs.values()) {
      for (const [m, k] of ep.holders) if (readers.has(m) && this.publishedKey(m, clock) !== k) ep.stale = true;
    }
    // Those asked before someone new reads: the readers and every active member who was one (holds
    // some epoch's key).
    const asked = new Set([...readers]);
    for (const ep of epochs.values()) for (const h of ep.holders.keys()) if (active(h)) asked.add(h);
    // Those asked, other than `by` and `m`, still to agree that `m` may read.
    const waitingFor = (m, by) => [...asked].filter((r) => r !== by && r !== m && !agreed.get(m)?.has(r));
    return { readers, epochs, asked, waitingFor };
  }

  // ---- judging one entry ----

  judge(e) {
    const refuse = (kind, reason) => {
      throw new Refused(kind, reason);
    };
    // E5
    const rejected = e.deps.filter((d) => this.verdict.has(d)).sort();
    if (rejected.length) refuse("depends_on_rejected", `it builds on ${rejected[0]}, which was refused (${this.verdict.get(rejected[0]).kind})`);
    // E6
    if (e.deps.length === 0) {
      if (e.id !== this.group) refuse("not_in_group", "it has no dependencies but is not this group's genesis");
      if (e.seq !== 1 || e.startOp !== 1) refuse("not_in_group", "the genesis must have seq 1 and start_op 1");
      const { body, containers } = genesisShape(e.ch);
      this.containers = containers;
      e.clock = new Map([[e.actor, e.seq]]);
      e.author = e.actor;
      return body;
    }
    if (!this.containers) refuse("not_in_group", "it builds on nothing of the group");
    const clock = this.clockOf(e.deps);
    // E7
    const want = (clock.get(e.actor) ?? 0) + 1;
    if (e.seq !== want) refuse("bad_sequence", `its seq is ${e.seq}, but its device's next in its past is ${want}`);
    // E8
    const depMax = Math.max(...e.deps.map((d) => this.valid.get(d).maxOp));
    if (e.ops.length === 0) refuse("bad_op_counter", "the change has no operation");
    if (!(e.startOp > depMax)) refuse("bad_op_counter", `its start_op ${e.startOp} is not above its dependencies' max_op ${depMax}`);
    // E9
    const rec = recordShape(e.ch, this.containers);
    e.rec = rec;
    // E10: R1, D1 (rules.md section 2a), R2. The author is the device's member in its past.
    const gov = this.governance(clock);
    // K1 (rules.md section 2b): a keeper never writes.
    if (gov.keepers.has(e.actor)) refuse("keeper_cannot_write", "it was signed by a keeper's device: a keeper can never write");
    const author = Judge.memberOf(gov, e.actor);
    if (author === null) refuse("not_member", "its author was not a member of the group when they wrote it");
    if (gov.stopped.has(e.actor)) refuse("device_revoked", "it was written on a device its member had stopped");
    const me = gov.members.get(author);
    if (!me) refuse("not_member", "its author was not a member of the group when they wrote it");
    if (me.status !== "active") refuse("after_removal", `its author had already ${me.status === "left" ? "left" : "been removed"}`);
    e.author = author;
    this.checkRecord(e, rec, clock, gov, refuse);
    e.clock = new Map(clock);
    e.clock.set(e.actor, e.seq);
    return rec;
  }

  // A valid entry in the past, of one of `types`, or refuse with unknown_referent.
  referent(id, clock, types, what, refuse) {
    const x = this.valid.get(id);
    if (!x || !Judge.inClock(clock, x) || (types && !types.includes(x.rec.type))) {
      refuse("unknown_referent", `the ${what} it refers to (${id}) is not in its past`);
    }
    return x;
  }

  checkRecord(e, rec, clock, gov, refuse) {
    const empty = (s) => s.trim() === "";
    const needText = (k, what) => {
      if (empty(rec[k])) refuse("empty_text", `its ${what} is empty`);
    };
    const active = (m) => gov.members.get(m)?.status === "active";
    const openThread = (id) => {
      const t = this.referent(id, clock, ["thread", "thread.sealed"], "thread", refuse);
      if (t.rec.type === "thread.sealed") refuse("sealed_thread_only", "its thread is sealed: only sealed messages go there");
      return t;
    };
    const sealed = (id) => {
      this.referent(id, clock, ["thread.sealed"], "sealed thread", refuse);
      return this.sealedAt(id, clock, gov);
    };
    const keyOf = (member, recipient) => {
      const k = this.publishedKey(member, clock);
      if (k === null) refuse("key_not_published", `${member} has published no encryption key`);
      if (k !== recipient) refuse("wrong_key", `a wrap for ${member} is not sealed to the key they published`);
    };
    switch (rec.type) {
      case "member.add":
        refuse("add_without_decision", "a member joins only when the group passes a proposal to add them");
      case "member.remove":
        refuse("removal_without_decision", "a removal takes effect only when the group passes a proposal");
      case "auditor.add":
        refuse("auditor_without_decision", "an auditor is let in only when the group passes a proposal for it");
      case "member.leave":
        return;
      case "member.about":
        needText("name", "name");
        return;
      // rules.md section 2a: D2, D3 (after the name, S1).
      case "device.add": {
        needText("name", "name");
        const d = rec.device;
        if (gov.members.has(d) || gov.linked.has(d) || gov.auditors.has(d) || gov.keepers.has(d)) {
          refuse("device_taken", "that device is a member's, an auditor's, a keeper's, or already linked");
        }
        // The new device's own signature of the link, by the signature rule (format.md sections 4, 6).
        const msg = Buffer.concat([DEVICE_TAG, Buffer.from(this.group, "hex"), Buffer.from(e.author, "hex"), Buffer.from(d, "hex")]);
        const why = signatureRefusal(Buffer.from(d, "hex"), msg, Buffer.from(rec.proof));
        if (why) refuse("bad_device_proof", `the proof is not the new device's signature of the link message (${why})`);
        return;
      }
      // D4.
      case "device.revoke": {
        const d = rec.device;
        if (Judge.memberOf(gov, d) !== e.author) refuse("not_your_device", "a member can stop only their own devices");
        if (gov.stopped.has(d)) refuse("not_your_device", "that device is already stopped");
        if (d === e.actor) refuse("not_your_device", "a device cannot stop itself");
        return;
      }
      case "profile":
        if (rec.enc_key.every((b) => b === 0)) refuse("bad_encryption_key", "the encryption key is all zeros");
        return;
      case "thread":
        needText("title", "title");
        return;
      case "message":
        needText("text", "text");
        openThread(rec.thread);
        return;
      case "proposal": {
        needText("title", "title");
        needText("easy_read", "easy-read version");
        if (rec.closes !== undefined && !isDate(rec.closes)) refuse("bad_date", `closes "${rec.closes}" is not YYYY-MM-DD`);
        // A proposal with an effect may sit in the group itself (its thread is the group id).
        if (!(rec.effect && rec.thread === this.group)) openThread(rec.thread);
        const pol = gov.policy ?? { rule: "consent", quorum: 0 };
        if (rec.rule === "majority" && pol.rule === "consent") refuse("below_policy", "this group decides by consent: a proposal may not ask for majority");
        if (rec.quorum < pol.quorum) refuse("below_policy", `this group needs at least ${pol.quorum} members to give a view on every proposal`);
        if (rec.effect === "adds") {
          needText("adds_name", "newcomer's name");
          if (active(rec.adds)) refuse("already_member", "that member is active already");
          if (gov.auditors.has(rec.adds)) refuse("member_and_auditor", "that device is an auditor's");
          if (gov.linked.has(rec.adds)) refuse("device_taken", "that device is linked to a member: a device is one member's only");
          if (gov.keepers.has(rec.adds)) refuse("device_taken", "that device is a keeper's: a keeper is never a member");
          if (!isPoint(Buffer.from(rec.adds, "hex"))) refuse("not_a_key", "the member to add is not an ed25519 public key");
        } else if (rec.effect === "removes") {
          if (rec.removes === e.author) refuse("remove_self", "one does not propose one's own removal: leave instead");
          if (!active(rec.removes)) refuse("not_active", "the member to remove is not active");
        } else if (rec.effect === "auditor") {
          needText("auditor_name", "auditor's name");
          if (gov.members.has(rec.auditor)) refuse("member_and_auditor", "that device is or was a member's");
          // rules.md section 2a, D2: a proposal to add a linked device as an auditor.
          if (gov.linked.has(rec.auditor) || gov.keepers.has(rec.auditor)) refuse("device_taken", "that device is linked to a member or a keeper's: a device is one seat's only");
          if (gov.auditors.has(rec.auditor)) refuse("already_auditor", "that device is an auditor already");
          if (!isPoint(Buffer.from(rec.auditor, "hex"))) refuse("not_a_key", "the auditor's device is not an ed25519 public key");
        } else if (rec.effect === "recovers") {
          // rules.md section 2a, D5, in its order.
          needText("recovers_name", "new device's name");
          const m = rec.recovers;
          const d = rec.recovers_device;
          if (!active(m)) refuse("not_active", "the member to recover is not active");
          if (gov.members.has(d) || gov.linked.has(d) || gov.keepers.has(d)) refuse("device_taken", "that device is a member's id, already linked or a keeper's: a device is one seat's only");
          if (gov.auditors.has(d)) refuse("member_and_auditor", "that device is an auditor's");
          if (!isPoint(Buffer.from(d, "hex"))) refuse("not_a_key", "the new device is not an ed25519 public key");
          // The message of D3, for the member recovered (not the proposal's author).
          const msg = Buffer.concat([DEVICE_TAG, Buffer.from(this.group, "hex"), Buffer.from(m, "hex"), Buffer.from(d, "hex")]);
          const why = signatureRefusal(Buffer.from(d, "hex"), msg, Buffer.from(rec.recovers_proof));
          if (why) refuse("bad_device_proof", `the proof is not the new device's signature of the link message (${why})`);
        } else if (rec.effect === "keeper") {
          // rules.md section 2b, K2, in its order.
          needText("keeper_name", "keeper's name");
          const d = rec.keeper;
          if (gov.members.has(d) || gov.linked.has(d) || gov.auditors.has(d)) refuse("device_taken", "that device is a member's, a member's device or an auditor's");
          if (gov.keepers.get(d)?.stopped === false) refuse("already_keeper", "that device is a keeper already");
          if (!isPoint(Buffer.from(d, "hex"))) refuse("not_a_key", "the keeper's device is not an ed25519 public key");
        } else if (rec.effect === "unkeeps") {
          // K3.
          if (gov.keepers.get(rec.unkeeps)?.stopped !== false) refuse("not_a_keeper", "that device is not an active keeper");
        } else if (rec.effect === "sets_rule") {
          if (rec.sets_quorum === 0) refuse("zero_quorum", "a quorum of 0");
        }
        return;
      }
      case "stance": {
        this.referent(rec.proposal, clock, ["proposal"], "proposal", refuse);
        if ((rec.stance === "disagree" || rec.stance === "block") && empty(rec.reason)) {
          refuse("reason_needed", `a ${rec.stance} needs a reason`);
        }
        if (this.standingAt(rec.proposal, clock, gov)) refuse("already_closed", "this proposal is already closed");
        if (rec.for !== undefined && !active(rec.for)) refuse("not_active", "the member it was typed for is not active");
        return;
      }
      case "outcome": {
        this.referent(rec.proposal, clock, ["proposal"], "proposal", refuse);
        const st = this.standingAt(rec.proposal, clock, gov);
        if (st && st.frontier.length === 1) refuse("already_closed", "this proposal is already closed");
        const t = this.tally(rec.proposal, clock);
        const c = t.counts;
        if (c.agree !== rec.agree || c.abstain !== rec.abstain || c.disagree !== rec.disagree || c.block !== rec.block || t.decision !== rec.decision) {
          refuse("outcome_mismatch", `the recount gives ${JSON.stringify(c)}, ${t.decision}`);
        }
        if (t.given < t.needed) {
          refuse("not_quorate", `${t.given} of ${t.n} members have given a view; ${t.needed - t.given} more needed`);
        }
        return;
      }
      case "understand": {
        needText("text", "text");
        const t = this.referent(rec.target, clock, null, "entry", refuse);
        if (t.rec.type === "message.sealed") refuse("would_unseal", "restating a sealed message in the open would unseal it");
        return;
      }
      case "confirm": {
        const t = this.referent(rec.target, clock, null, "entry", refuse);
        if (t.rec.type === "understand") {
          const orig = this.referent(t.rec.target, clock, null, "entry", refuse);
          if (orig.author !== e.author) refuse("bad_confirm", "only the author of what was understood confirms it");
        } else if (t.rec.type === "stance" && t.rec.for !== undefined) {
          if (t.rec.for !== e.author) refuse("bad_confirm", "only the member a stance was typed for confirms it");
        } else {
          refuse("bad_confirm", `a ${t.rec.type} cannot be confirmed`);
        }
        return;
      }
      case "correct": {
        needText("text", "text");
        const t = this.referent(rec.target, clock, null, "entry", refuse);
        if (t.rec.type === "message.sealed") refuse("would_unseal", "correcting a sealed message in the open would unseal it");
        const orig = t.rec.type === "understand" ? this.valid.get(t.rec.target) : undefined;
        const own = t.author === e.author || (orig !== undefined && Judge.inClock(clock, orig) && orig.author === e.author);
        if (!own) refuse("correct_not_own", "one corrects only one's own words, or an understanding of them");
        return;
      }
      case "action": {
        needText("text", "text");
        openThread(rec.thread);
        if (!active(rec.owner)) refuse("not_active", "the action's owner is not an active member");
        if (rec.due !== undefined) {
          if (!isDate(rec.due)) refuse("bad_date", `due "${rec.due}" is not YYYY-MM-DD`);
        }
        return;
      }
      case "action.done":
        this.referent(rec.action, clock, ["action"], "action", refuse);
        return;
      case "action.undo": {
        const d = this.referent(rec.done, clock, ["action.done"], "action.done", refuse);
        if (d.author !== e.author) refuse("undo_not_own", "only who said an action is done can take it back");
        // The changes' own times, in ms since the epoch (format.md section 3).
        if (Number(e.ch.time) - Number(d.ch.time) > 86400000) refuse("undo_too_late", "more than a day after the done it takes back");
        return;
      }
      case "thread.sealed": {
        needText("title", "title");
        needText("reason", "reason");
        if (!rec.rows.some((r) => r.id === e.author)) refuse("starter_not_reader", "its author is not among its readers");
        for (const r of rec.rows) {
          if (!active(r.id)) refuse("not_active", `the reader ${r.id} is not an active member`);
          keyOf(r.id, r.recipient);
        }
        return;
      }
      case "thread.reader.add": {
        const s = sealed(rec.thread);
        if (!s.readers.has(e.author)) refuse("reader_only", "its author is not a reader of the thread");
        const named = rec.rows.map((r) => r.id);
        if (!s.readers.has(rec.member)) {
          if (s.readers.size >= MAX_READERS) refuse("too_many_readers", `the thread has ${MAX_READERS} readers already`);
          const waiting = s.waitingFor(rec.member, e.author);
          if (waiting.length > 0) refuse("not_agreed", `every reader must agree first; still waiting for ${waiting.join(", ")}`);
          const all = [...s.epochs.keys()];
          if (named.length !== all.length || !all.every((x) => named.includes(x))) {
            refuse("wrong_wraps", "a new reader must be given every epoch's key, and nothing else");
          }
        } else {
          // Lacking: no key, or one sealed to an encryption key the reader no longer publishes.
          const now = this.publishedKey(rec.member, clock);
          const lacking = [...s.epochs.entries()].filter(([, ep]) => ep.holders.get(rec.member) !== now).map(([id]) => id);
          if (lacking.length === 0) refuse("already_reader", "that member is a reader already");
          if (!named.every((x) => lacking.includes(x))) refuse("wrong_wraps", "the wraps name an epoch the reader holds, or none of the thread's");
        }
        for (const r of rec.rows) {
          if (!active(rec.member)) refuse("not_active", "the member to add is not active");
          keyOf(rec.member, r.recipient);
        }
        return;
      }
      case "thread.rekey": {
        const s = sealed(rec.thread);
        if (!s.readers.has(e.author)) refuse("reader_only", "its author is not a reader of the thread");
        const remaining = new Set(s.readers);
        if (rec.removes !== undefined) {
          if (!s.readers.has(rec.removes)) refuse("not_a_reader", "it removes someone who is not a reader");
          remaining.delete(rec.removes);
        }
        if (remaining.size === 0) refuse("last_reader", "it would leave the thread with no reader");
        if (s.epochs.size >= MAX_EPOCHS) refuse("too_many_epochs", `the thread has had ${MAX_EPOCHS} epochs`);
        const ids = rec.rows.map((r) => r.id);
        if (ids.length !== remaining.size || !ids.every((x) => remaining.has(x))) {
          refuse("wrong_wraps", "the new epoch is not wrapped for exactly the remaining readers");
        }
        for (const r of rec.rows) {
          if (!active(r.id)) refuse("not_active", `the reader ${r.id} is not an active member`);
          keyOf(r.id, r.recipient);
        }
        return;
      }
      case "thread.reader.agree": {
        const s = sealed(rec.thread);
        if (!s.asked.has(e.author)) refuse("reader_only", "its author is not, and never was, a reader of the thread");
        if (s.readers.has(rec.member)) refuse("already_reader", "that member is a reader already");
        if (!active(rec.member)) refuse("not_active", "the member to let in is not active");
        return;
      }
      case "thread.ask": {
        const s = sealed(rec.thread);
        needText("why", "why");
        if (s.readers.has(e.author)) refuse("already_reader", "its author is a reader already");
        return;
      }
      case "thread.decline": {
        const s = sealed(rec.thread);
        if (!s.asked.has(e.author)) refuse("reader_only", "its author is not, and never was, a reader of the thread");
        needText("reason", "reason");
        const asked =
          this.readerAsks.some((a) => a.rec.thread === rec.thread && a.author === rec.member && Judge.inClock(clock, a)) ||
          this.readerChanges.some(
            (a) => a.rec.type === "thread.reader.agree" && a.rec.thread === rec.thread && a.rec.member === rec.member && Judge.inClock(clock, a),
          );
        if (!asked) refuse("not_asked", "no one has asked to let that member read the thread");
        return;
      }
      case "message.sealed": {
        const s = sealed(rec.thread);
        if (!BUCKETS.includes(rec.ct.length - 40)) refuse("bad_padding", `a ciphertext of ${rec.ct.length} bytes is not 40 + a bucket`);
        if (!s.readers.has(e.author)) refuse("reader_only", "its author is not a reader of the thread");
        const ep = s.epochs.get(rec.epoch);
        if (!ep) refuse("unknown_epoch", "the epoch it names is not one of the thread's in its past");
        if (!ep.holders.has(e.author)) refuse("no_epoch_key", "its author was not given that epoch's key");
        for (const h of ep.holders.keys()) if (!s.readers.has(h)) refuse("stale_epoch", `${h} holds that epoch's key but is no longer a reader`);
        if (ep.stale) refuse("stale_epoch", "that epoch's key went to an encryption key a reader no longer publishes");
        return;
      }
      default:
        refuse("bad_shape", `unknown record type ${rec.type}`);
    }
  }

  accept(e) {
    this.valid.set(e.id, e);
    const ins = (list) => {
      list.push(e);
      list.sort(Judge.linear);
    };
    const t = e.rec.type;
    const p = t === "outcome" ? this.valid.get(e.rec.proposal).rec : null;
    if (t === "group" || t === "member.leave" || t === "member.about" || t === "device.add" || t === "device.revoke" || (t === "outcome" && p.effect))
      ins(this.gov);
    if (t === "stance") ins(this.stances);
    if (t === "outcome") ins(this.outcomes);
    if (t === "confirm") ins(this.confirms);
    if (t === "profile") ins(this.profiles);
    if (t === "thread.reader.add" || t === "thread.rekey" || t === "thread.reader.agree" || t === "thread.decline")
      ins(this.readerChanges);
    if (t === "thread.ask") ins(this.readerAsks);
  }

  run() {
    // E4 forks: among the entries that read and verify, the lowest entry id at (actor, seq) is kept.
    const at = new Map();
    for (const e of this.byId.values()) {
      const k = `${e.actor}/${e.seq}`;
      if (!at.has(k) || e.id < at.get(k).id) at.set(k, e);
    }
    for (const e of this.byId.values()) {
      const kept = at.get(`${e.actor}/${e.seq}`);
      if (kept.id !== e.id) {
        // Settled before anything is judged, whatever else is wrong with it (rules.md section 5, E4).
        this.verdict.set(e.id, {
          kind: "fork",
          reason: `its author also signed ${kept.id} at seq ${e.seq}; the lower entry id is kept`,
        });
      }
    }
    // Causal order: judge an entry once every dependency is judged. The genesis first.
    const pending = [...this.byId.values()].filter((e) => !this.verdict.has(e.id)).sort(Judge.linear);
    let progress = true;
    while (progress) {
      progress = false;
      for (let i = 0; i < pending.length; i++) {
        const e = pending[i];
        if (!e.deps.every((d) => this.valid.has(d) || this.verdict.has(d))) continue;
        pending.splice(i--, 1);
        progress = true;
        try {
          e.rec = this.judge(e);
          this.accept(e);
        } catch (err) {
          if (err instanceof Refused) this.verdict.set(e.id, { kind: err.kind, reason: err.message });
          else this.verdict.set(e.id, { kind: "malformed", reason: `the check failed unexpectedly: ${err.message ?? err}` });
        }
      }
    }
    for (const e of pending) {
      const missing = e.deps.filter((d) => !this.valid.has(d) && !this.verdict.has(d));
      this.verdict.set(e.id, {
        kind: "missing_dependency",
        reason: `it builds on ${missing.sort()[0]}, which the bundle does not hold or which is not valid or is waiting`,
      });
    }
  }

  // Proposals whose outcomes conflict at the heads (rules.md section 6).
  conflicts() {
    const heads = new Map();
    for (const e of this.valid.values()) for (const [a, s] of e.clock) if ((heads.get(a) ?? 0) < s) heads.set(a, s);
    const gov = this.governance(heads);
    const seen = new Set();
    const out = [];
    for (const o of this.outcomes) {
      const p = o.rec.proposal;
      if (seen.has(p)) continue;
      seen.add(p);
      const st = this.standingAt(p, heads, gov);
      if (st && st.frontier.length > 1) {
        out.push([p, `outcomes ${st.frontier.map((x) => x.id).join(", ")} disagree; ${st.stands.id} stands`]);
      }
    }
    return out;
  }
}

// ------------------------------------------------------------------------------------------------

async function main(argv) {
  if (argv.length === 2 && argv[0] === "--vectors") return checkVectors(argv[1]);
  if (argv.length !== 1) {
    console.error("usage: node verify_rules.mjs BUNDLE_FILE | --vectors VECTORS_JSON");
    return 2;
  }
  let Automerge;
  try {
    Automerge = await import("@automerge/automerge");
  } catch (err) {
    console.error(`verify_rules: cannot load @automerge/automerge (run \`bash tests/setup.sh\`): ${err.message}`);
    return 2;
  }
  let data;
  try {
    data = readFileSync(argv[0]);
  } catch (err) {
    console.log(`bundle: unreadable: cannot read ${argv[0]}: ${err.message}`);
    return 2;
  }
  let group, raw;
  try {
    ({ group, entries: raw } = readBundle(data));
  } catch (err) {
    if (!(err instanceof Refused)) throw err;
    console.log(`bundle: ${err.kind}: ${err.message}`);
    return 2;
  }
  const { lines, byId } = readEntries(group, raw, Automerge);
  const judge = new Judge(hex(group), byId);
  judge.run();
  let ok = true;
  const out = [];
  for (const l of lines) {
    const v = l.kind ? l : judge.verdict.get(l.id);
    if (v) {
      ok = false;
      out.push(`${l.id} ${v.kind}: ${v.reason}`);
    } else {
      out.push(`${l.id} ok`);
    }
  }
  for (const [p, reason] of judge.conflicts()) {
    ok = false;
    out.push(`${p} conflicting_outcomes: ${reason}`);
  }
  if (!judge.valid.has(hex(group))) {
    ok = false;
    out.push("group: no_genesis: the bundle does not hold the group's genesis, valid");
  }
  process.stdout.write(out.map((l) => l + "\n").join(""));
  console.error(`group ${hex(group)}: ${lines.length} entries, ${ok ? "all valid" : "NOT all valid"}`);
  return ok ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.log(`bundle: internal: the verifier failed: ${err?.stack ?? err}`);
    process.exitCode = 2;
  },
);
