#!/usr/bin/env node
// Test vectors for the Kotani webhook verifier, produced by the real JSON.stringify of Node.
//
//   node tests/webhooks/vectors/make_vectors.js > tests/webhooks/vectors/vectors.json
//
// Deterministic (seeded PRNG): running it again gives the same file, which a test checks when
// node is installed. For every body text the rule is the contract's (CONTRACT.md §3):
//   P = JSON.parse(body); signed = JSON.stringify({event: P.event, data: P.data});
//   signature = "sha256=" + hex(HMAC_SHA256(secret, signed)).
// Sections:
//   vectors  - full deliveries: body text (many spellings), headers, secrets, valid or not, and
//              for valid ones the exact string Node signed;
//   numbers  - number source texts and JSON.stringify(Number(text));
//   strings  - string source texts (\u escapes) and JSON.stringify(JSON.parse(text));
//   objects  - object source texts (integer-like and duplicate keys) and their JSON.stringify.
"use strict";
const crypto = require("crypto");

let seed = 0x6b6f7461; // "kota"
function rand() {
  // mulberry32
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (xs) => xs[Math.floor(rand() * xs.length)];
const randint = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));

const hmac = (secret, text) =>
  "sha256=" + crypto.createHmac("sha256", secret).update(text).digest("hex");

const SECRET = "whsec_kotani_test_0123456789abcdef";
const OLD_SECRET = "old-secret-ünïcode-🔑";
const WRONG_SECRET = "whsec_not_the_right_one";

// ---- payloads --------------------------------------------------------------------------------
const payloads = [
  {
    name: "refund.completed",
    event: "refund.completed",
    data: {
      referenceId: "TXN-001", status: "REVERSED", refundStatus: "SUCCESSFUL",
      refundTransactionHash: "0x5f2a9c0d4e1b7a3c8f6e2d1b0a9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c",
      refundAmount: 38.5, chain: "LIGHTNING", token: "MSAT", currency: "KES",
      timestamp: "2024-11-22T14:30:00.000Z",
    },
  },
  {
    name: "refund.failed",
    event: "refund.failed",
    data: {
      referenceId: "TXN-002", refundStatus: "FAILED", refundAmount: 0.000123, chain: "CELO",
      token: "CUSD", currency: "KES", error: "insufficient funds for gas * price + value",
      totalRetries: 10, timestamp: "2024-11-22T14:31:02.123Z",
    },
  },
  {
    name: "invoice_needed (page 1)",
    event: "refund.lightning.invoice_needed",
    data: {
      referenceId: "TXN-003", status: "REFUND_PENDING", onchainStatus: "SUCCESSFUL",
      refundStatus: "INVOICE_NEEDED", refundAmount: 1500000, refundAmountSats: 1500,
      chain: "LIGHTNING", currency: "KES", requiresAction: true,
      action: {
        type: "SUBMIT_LIGHTNING_INVOICE",
        description: "Submit a bolt11 invoice for exactly 1500 sats",
        submitUrl: "https://sandbox-api.kotanipay.com/api/v3/offramp/submit-refund-invoice/TXN-003",
        method: "POST", body: { invoice: "lnbc..." },
      },
    },
  },
  {
    name: "invoice_needed (page 2)",
    event: "refund.lightning.invoice_needed",
    data: {
      referenceId: "TXN-004", refundStatus: "INVOICE_NEEDED", refundAmount: 2500123,
      refundAmountSats: 2500.123, chain: "LIGHTNING", currency: "UGX", requiresAction: true,
      timestamp: "2025-01-02T03:04:05Z",
      action: {
        type: "SUBMIT_LIGHTNING_INVOICE",
        submitUrl: "https://api.kotanipay.com/api/v3/offramp/submit-refund-invoice/TXN-004",
        method: "POST", body: { invoice: "lnbc..." },
        invoiceRequirements: {
          amount: 2500, currency: "SATS", format: "bolt11", mustNotExpire: true,
          mustNotBePaid: true, mustMatchExactAmount: true,
        },
      },
    },
  },
  {
    name: "transaction.offramp.status.updated",
    event: "transaction.offramp.status.updated",
    data: {
      referenceId: "TXN-005", status: "SUCCESSFUL", onchainStatus: "SUCCESSFUL",
      fiatAmount: 1000, fiatTransactionAmount: 985.5, cryptoAmount: 7.66, fiatCurrency: "KES",
      customerKey: "cus_8s7d6f", senderAddress: "0xabc", escrowAddress: "0xdef",
      fiatWalletId: "fw_1", transactionHash: null, rate: 129.87654321,
      created_at: "2024-11-22T14:00:00.000Z", updated_at: "2024-11-22T14:05:00.000Z",
      onchainError: null, transactionError: "",
    },
  },
  {
    name: "transaction.deposit.status.updated (snake_case)",
    event: "transaction.deposit.status.updated",
    data: {
      reference_id: "DEP-1", status: "SUCCESSFUL", amount: 250, currency: "GHS",
      phone_number: "+233200000000", created_at: "2024-11-22T14:00:00Z",
    },
  },
  {
    name: "transaction.status.updated (deprecated)",
    event: "transaction.status.updated",
    data: { referenceId: "TXN-006", status: "CANCELLED", updated_at: "2024-11-22T15:00:00Z" },
  },
  {
    name: "payment.confirmed",
    event: "payment.confirmed",
    data: { referenceId: "PAY-1", amount: 1e21, fee: 1e-7, total: 123456789.123456789 },
  },
  { name: "kyc.status.changed", event: "kyc.status.changed",
    data: { kycId: "kyc_1", status: "APPROVED", level: 2 } },
  { name: "settlement.batch.completed", event: "settlement.batch.completed",
    data: { batchId: "b1", settlements: [{ id: "s1", amount: 10.1 }, { id: "s2", amount: 0.3 }],
      total: 10.4 } },
  { name: "system.event", event: "system.event", data: { message: "maintenance", at: 0 } },
  {
    name: "floats and exponents",
    event: "x.numbers",
    data: {
      a: 0.1, b: 0.2 + 0.3, c: 1 / 3, d: 1e21, e: 1e-7, f: 123e-20, g: 5e-324,
      h: 1.7976931348623157e308, i: 100, j: 1e20, k: 123456789012345680000, l: 0.000001,
      m: 4.35, n: -2.5e-8, o: 2 ** 53, p: 2 ** 53 + 2, q: -0, r: 1.5, s: 38.5, t: 9.95,
    },
  },
  {
    name: "unicode, emoji, separators",
    event: "x.unicode",
    data: {
      fr: "café crème", ja: "日本語テキスト", emoji: "😀🇰🇪👩‍👩‍👧", ls: "a\u2028b\u2029c",
      bom: "\ufeffx", nbsp: "a\u00a0b", del: "\u007f", rtl: "\u202eabc",
    },
  },
  {
    name: "control characters, quotes, backslashes",
    event: "x.escapes",
    data: {
      ctl: "\u0000\u0001\u0007\b\t\n\u000b\f\r\u000e\u001f ", q: 'say "hi"', bs: "C:\\path\\",
      slash: "a/b</script>", mixed: "\"\\\n\u0010",
    },
  },
  {
    name: "integer-like keys",
    event: "x.keys",
    data: {
      b: 1, 10: "ten", 2: "two", a: 2, 0: "zero", "01": "leading zero", "-1": "minus",
      "1.5": "frac", 4294967294: "max index", 4294967295: "not an index",
      9007199254740993: "big", "": "empty", " 1": "space",
    },
  },
  {
    name: "nested arrays and empty containers",
    event: "x.nested",
    data: { a: [[], [[]], [1, [2, [3, [4]]]], {}], o: {}, l: [], n: [null, true, false],
      deep: { x: { y: { z: [{ "1": 1, a: 2, "0": 0 }] } } } },
  },
  {
    name: "lone surrogates",
    event: "x.surrogates",
    data: { hi: "a\ud800b", lo: "\udc00", pair: "\ud83d\ude00", rev: "\ude00\ud83d" },
  },
];

// Bodies whose number or key spelling JS cannot reproduce: given as text, parsed by Node.
const texts = [
  { name: "huge integers", text:
    '{"event":"x.huge","data":{"big":12345678901234567890,"neg":-98765432109876543210,' +
    '"max":9007199254740993,"e":1e400,"ne":-1e400,"tiny":1e-400,"negz":-0.0}}' },
  { name: "duplicate keys", text:
    '{"event":"x.dup","data":{"a":1,"b":2,"a":3,"1":"x","1":"y"}}' },
  { name: "__proto__ key", text:
    '{"event":"x.proto","data":{"__proto__":{"polluted":true},"constructor":1}}' },
  { name: "escaped spellings", text:
    '{"event":"x\\u002Eesc","data":{"\\u0061":"\\u00E9\\/\\ud83d\\ude00","b":"\\u2028"}}' },
  { name: "number spellings", text:
    '{"event":"x.num","data":{"a":1.50,"b":1E3,"c":0.000001,"d":1e+2,"e":-0,"f":100.000,' +
    '"g":0.1e1,"h":123456789e-9,"i":1.0000000000000001,"j":5e-325}}' },
];

// ---- body spellings --------------------------------------------------------------------------
function numberSpellings(x) {
  const base = String(x);
  const out = new Set([base]);
  if (Number.isInteger(x) && Math.abs(x) < 1e21) {
    out.add(base + ".0");
    out.add(base + "E0");
    if (x !== 0 && x % 1000 === 0) out.add(String(x / 1000) + "e3");
    if (x !== 0 && x % 1000 === 0) out.add(String(x / 1000) + "E+3");
  }
  if (base.includes(".") && !base.includes("e")) out.add(base + "00");
  if (base.includes("e")) out.add(base.replace("e", "E").replace("+", ""));
  if (x !== 0 && Number.isFinite(x)) out.add(x.toExponential());
  if (Number.isFinite(x)) out.add(x.toPrecision(17));
  return [...out].filter((s) => Object.is(Number(s), x) || (x === 0 && Number(s) === 0));
}

function escapeSome(s) {
  // Spell some characters as \uXXXX (upper or lower hex) and "/" as "\/"; same string.
  let out = '"';
  for (const ch of s) {
    const code = ch.codePointAt(0);
    const r = rand();
    if (ch === "/" && r < 0.5) out += "\\/";
    else if (code > 0xffff || (code >= 0xd800 && code <= 0xdfff)) {
      if (r < 0.5) out += JSON.stringify(ch).slice(1, -1);
      else for (let i = 0; i < ch.length; i++) {
        out += "\\u" + ch.charCodeAt(i).toString(16).padStart(4, "0").toUpperCase();
      }
    } else if (r < 0.3 && code > 0x20) {
      const hex = code.toString(16).padStart(4, "0");
      out += "\\u" + (rand() < 0.5 ? hex.toUpperCase() : hex);
    } else out += JSON.stringify(ch).slice(1, -1);
  }
  return out + '"';
}

// An integrator's HTTP client: any spacing, numbers spelled differently, strings escaped.
function writeLoose(value, indent, depth) {
  const nl = indent ? "\n" + " ".repeat(indent * (depth + 1)) : "";
  const end = indent ? "\n" + " ".repeat(indent * depth) : "";
  const colon = pick([":", ": ", " : "]);
  const comma = indent ? "," : pick([",", ", "]);
  if (value === null || typeof value === "boolean") return String(value);
  if (typeof value === "number") return pick(numberSpellings(value));
  if (typeof value === "string") return rand() < 0.5 ? JSON.stringify(value) : escapeSome(value);
  if (Array.isArray(value)) {
    if (!value.length) return "[ ]";
    return "[" + nl + value.map((v) => writeLoose(v, indent, depth + 1)).join(comma + nl) + end + "]";
  }
  const keys = Object.keys(value);
  if (!keys.length) return pick(["{}", "{ }"]);
  return "{" + nl + keys.map((k) => JSON.stringify(k) + colon + writeLoose(value[k], indent, depth + 1))
    .join(comma + nl) + end + "}";
}

function topLevel(order, parts, indent) {
  const sep = indent ? ",\n  " : ",";
  const open = indent ? "{\n  " : "{";
  const close = indent ? "\n}" : "}";
  return open + order.map((k) => JSON.stringify(k) + ":" + parts[k]).join(sep) + close;
}

const vectors = [];
function signedOf(body) {
  const p = JSON.parse(body);
  return JSON.stringify({ event: p.event, data: p.data });
}
function add(name, kind, body, headers, secrets, valid) {
  const v = { name, kind, secrets, body, headers, valid };
  if (valid) v.signed = signedOf(body);
  vectors.push(v);
}

function bodiesFor(event, data) {
  // [label, body text without signature placeholder resolved] -> returns list of bodies.
  const signed = JSON.stringify({ event, data });
  const sig = hmac(SECRET, signed);
  const out = [];
  out.push(["compact {event,data,signature}", JSON.stringify({ event, data, signature: sig }), sig]);
  out.push(["compact {signature,event,data}", JSON.stringify({ signature: sig, event, data }), sig]);
  out.push(["compact {data,signature,event}", JSON.stringify({ data, signature: sig, event }), sig]);
  out.push(["pretty-printed", JSON.stringify({ event, data, signature: sig }, null, 2), sig]);
  out.push(["tab-indented header-only", JSON.stringify({ event, data }, null, "\t"), sig]);
  for (let i = 0; i < 3; i++) {
    const parts = {
      event: writeLoose(event, 0, 1), data: writeLoose(data, i === 2 ? 4 : 0, 1),
      signature: JSON.stringify(sig),
    };
    const order = pick([["event", "data", "signature"], ["signature", "event", "data"],
      ["data", "event", "signature"], ["data", "signature", "event"]]);
    out.push([`integrator spelling #${i}`, topLevel(order, parts, i === 1 ? 2 : 0), sig]);
  }
  return out;
}

for (const p of payloads) {
  for (const [label, body, sig] of bodiesFor(p.event, p.data)) {
    add(`${p.name}: ${label}`, "valid", body, { "X-Kotani-Signature": sig }, [SECRET], true);
  }
  const signed = JSON.stringify({ event: p.event, data: p.data });
  const sig = hmac(SECRET, signed);
  const compact = JSON.stringify({ event: p.event, data: p.data, signature: sig });
  add(`${p.name}: body signature only`, "valid", compact, {}, [SECRET], true);
  add(`${p.name}: rotated secret`, "valid",
    JSON.stringify({ event: p.event, data: p.data, signature: hmac(OLD_SECRET, signed) }),
    { "X-Kotani-Signature": hmac(OLD_SECRET, signed) }, [SECRET, OLD_SECRET], true);
  add(`${p.name}: header right, body signature stale`, "valid",
    JSON.stringify({ event: p.event, data: p.data, signature: hmac(WRONG_SECRET, signed) }),
    { "X-Kotani-Signature": sig }, [SECRET], true);
  add(`${p.name}: uppercase hex`, "valid", compact,
    { "X-Kotani-Signature": "sha256=" + sig.slice(7).toUpperCase() }, [SECRET], true);
  // --- must be rejected
  add(`${p.name}: wrong secret`, "wrong_secret",
    JSON.stringify({ event: p.event, data: p.data, signature: hmac(WRONG_SECRET, signed) }),
    { "X-Kotani-Signature": hmac(WRONG_SECRET, signed) }, [SECRET], false);
  add(`${p.name}: missing signature`, "missing",
    JSON.stringify({ event: p.event, data: p.data }), {}, [SECRET], false);
  add(`${p.name}: header wrong, body right`, "wrong_secret", compact,
    { "X-Kotani-Signature": hmac(WRONG_SECRET, signed) }, [SECRET], false);
  add(`${p.name}: event renamed`, "tampered",
    JSON.stringify({ event: p.event + ".x", data: p.data, signature: sig }),
    { "X-Kotani-Signature": sig }, [SECRET], false);
  const tamperedData = JSON.parse(JSON.stringify(p.data));
  const key = Object.keys(tamperedData).find((k) => typeof tamperedData[k] !== "object") ??
    Object.keys(tamperedData)[0];
  tamperedData[key] = typeof tamperedData[key] === "number" ? tamperedData[key] + 1 :
    typeof tamperedData[key] === "string" ? tamperedData[key] + "!" : "x";
  add(`${p.name}: data tampered`, "tampered",
    JSON.stringify({ event: p.event, data: tamperedData, signature: sig }),
    { "X-Kotani-Signature": sig }, [SECRET], false);
  add(`${p.name}: field added`, "tampered",
    JSON.stringify({ event: p.event, data: { ...p.data, extra: 1 }, signature: sig }),
    { "X-Kotani-Signature": sig }, [SECRET], false);
  add(`${p.name}: truncated signature`, "malformed_signature", compact,
    { "X-Kotani-Signature": sig.slice(0, -2) }, [SECRET], false);
  add(`${p.name}: signature over the whole body`, "tampered", compact,
    { "X-Kotani-Signature": hmac(SECRET, compact) }, [SECRET], false);
}

for (const t of texts) {
  const p = JSON.parse(t.text);
  const signed = JSON.stringify({ event: p.event, data: p.data });
  const sig = hmac(SECRET, signed);
  const withSig = t.text.slice(0, -1) + ',"signature":' + JSON.stringify(sig) + "}";
  add(`${t.name}: as written, signature in body`, "valid", withSig, {}, [SECRET], true);
  add(`${t.name}: as written, header only`, "valid", t.text, { "X-Kotani-Signature": sig },
    [SECRET], true);
  add(`${t.name}: wrong secret`, "wrong_secret", withSig,
    { "X-Kotani-Signature": hmac(WRONG_SECRET, signed) }, [SECRET], false);
}

// Same double, other spelling: still valid. Another double: tampered.
{
  const data = { referenceId: "TXN-9", refundAmount: 0.1, fee: 1.5 };
  const sig = hmac(SECRET, JSON.stringify({ event: "refund.completed", data }));
  add("same double spelled 0.1000000000000000055511151231257827", "valid",
    '{"event":"refund.completed","data":{"referenceId":"TXN-9","refundAmount":' +
    '0.1000000000000000055511151231257827,"fee":1.5},"signature":"' + sig + '"}',
    { "X-Kotani-Signature": sig }, [SECRET], true);
  add("next double 0.10000000000000002", "tampered",
    '{"event":"refund.completed","data":{"referenceId":"TXN-9","refundAmount":' +
    '0.10000000000000002,"fee":1.5},"signature":"' + sig + '"}',
    { "X-Kotani-Signature": sig }, [SECRET], false);
  add("inner key order changed", "tampered",
    '{"event":"refund.completed","data":{"refundAmount":0.1,"referenceId":"TXN-9",' +
    '"fee":1.5},"signature":"' + sig + '"}', { "X-Kotani-Signature": sig }, [SECRET], false);
  add("sha1= prefix", "malformed_signature",
    '{"event":"refund.completed","data":' + JSON.stringify(data) + "}",
    { "X-Kotani-Signature": "sha1=" + sig.slice(7) }, [SECRET], false);
  add("not hex", "malformed_signature",
    '{"event":"refund.completed","data":' + JSON.stringify(data) + "}",
    { "X-Kotani-Signature": "sha256=" + "zz" + sig.slice(9) }, [SECRET], false);
  add("no secrets configured", "wrong_secret",
    '{"event":"refund.completed","data":' + JSON.stringify(data) + "}",
    { "X-Kotani-Signature": sig }, [], false);
}

// ---- numbers, strings, objects ---------------------------------------------------------------
const numbers = [];
const buf = new DataView(new ArrayBuffer(8));
const seen = new Set();
function addNumber(text) {
  if (seen.has(text)) return;
  seen.add(text);
  numbers.push({ text, js: JSON.stringify(Number(text)) });
}
for (const t of ["0", "-0", "1", "-1", "0.1", "1e21", "1e20", "999999999999999999999",
  "1e-6", "1e-7", "0.000001", "0.0000001", "123e-20", "5e-324", "2.5e-324", "1e-400", "1e400",
  "1.7976931348623157e308", "1.7976931348623158e308", "1.7976931348623159e308",
  "9007199254740993", "12345678901234567890", "4.35", "0.3", "100", "1E2", "1.5e+300",
  "-1.5e-300", "2.2250738585072014e-308", "4.9406564584124654e-324", "1e15", "1e16", "1e17",
  "123456789012345678", "0.1e-6", "1000000000000000128", "1000000000000000100"]) addNumber(t);
while (numbers.length < 2500) {
  buf.setUint32(0, Math.floor(rand() * 4294967296));
  buf.setUint32(4, Math.floor(rand() * 4294967296));
  const x = buf.getFloat64(0);
  if (!Number.isFinite(x)) continue;
  addNumber(pick([() => String(x), () => x.toPrecision(17), () => x.toExponential(randint(0, 20)),
    () => x.toPrecision(randint(1, 21))])());
}
while (numbers.length < 4000) {
  // Decimal literals as people write them: n digits, a point, an exponent.
  let digits = "";
  const n = randint(1, 25);
  for (let i = 0; i < n; i++) digits += String(randint(i === 0 ? 1 : 0, 9));
  const cut = randint(1, n);
  let text = (rand() < 0.2 ? "-" : "") + digits.slice(0, cut) +
    (cut < n ? "." + digits.slice(cut) : "");
  if (rand() < 0.5) text += pick(["e", "E"]) + pick(["", "+", "-"]) + randint(0, 330);
  addNumber(text);
}

const strings = [];
const pool = [0, 1, 8, 9, 10, 12, 13, 0x1f, 0x20, 0x22, 0x2f, 0x5c, 0x41, 0x7f, 0x80, 0xe9,
  0x2028, 0x2029, 0xfeff, 0xd800, 0xdbff, 0xdc00, 0xdfff, 0xd83d, 0xde00, 0xfffe, 0xffff];
for (let i = 0; i < 600; i++) {
  let s = "";
  const n = randint(0, 12);
  for (let j = 0; j < n; j++) {
    s += String.fromCharCode(rand() < 0.7 ? pick(pool) : randint(0, 0xffff));
  }
  // Source text: every code unit as \uXXXX (ASCII, no raw surrogate), sometimes literal.
  let text = '"';
  for (let j = 0; j < s.length; j++) {
    const c = s.charCodeAt(j);
    const literal = c >= 0x20 && c !== 0x22 && c !== 0x5c && (c < 0xd800 || c > 0xdfff);
    text += literal && rand() < 0.5 ? s[j] : "\\u" + c.toString(16).padStart(4, "0");
  }
  text += '"';
  strings.push({ text, js: JSON.stringify(JSON.parse(text)) });
}

const objects = [];
const keyPool = ["a", "b", "0", "1", "2", "10", "01", "-1", "1.0", "4294967294", "4294967295",
  "4294967296", "9007199254740993", "", "__proto__", "constructor", "é", "😀", "1e3", " 7",
  "007", "99999999999"];
for (let i = 0; i < 300; i++) {
  const n = randint(0, 8);
  const members = [];
  for (let j = 0; j < n; j++) {
    const k = pick(keyPool);
    const v = pick([() => String(randint(0, 99)), () => JSON.stringify(k), () => "null",
      () => "[1,{\"2\":2,\"1\":1}]", () => "{\"b\":1,\"0\":0}"])();
    members.push(JSON.stringify(k) + ":" + v);
  }
  const text = "{" + members.join(",") + "}";
  objects.push({ text, js: JSON.stringify(JSON.parse(text)) });
}

process.stdout.write(JSON.stringify({
  generator: "tests/webhooks/vectors/make_vectors.js",
  node: process.version,
  rule: "signed = JSON.stringify({event: P.event, data: P.data}) with P = JSON.parse(body)",
  vectors, numbers, strings, objects,
}, null, 1) + "\n");
