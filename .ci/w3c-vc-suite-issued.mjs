// What `smartcity vc issue` wrote for each issuance case the suite expects to succeed, verified
// with code that is not ours: jose (JWS, the SD-JWT's issuer-signed JWT) and WebCrypto over a
// COSE Sig_structure built here (the suite itself only reads the `result` field).
import * as fs from 'fs';
import * as jose from 'jose';
import {COSETestMapping, JOSETestMapping, SDJWTTestMapping} from './tests/test-mapping.js'; // run from the suite's root;

const read = (file) => JSON.parse(fs.readFileSync(file, 'utf8'));
const HASH = {'P-256': 'SHA-256', 'P-384': 'SHA-384', 'P-521': 'SHA-512'};

function head(major, length) {
  if (length < 24) return [major << 5 | length];
  if (length < 256) return [major << 5 | 24, length];
  if (length < 65536) return [major << 5 | 25, length >> 8, length & 255];
  return [major << 5 | 26, length >>> 24, (length >> 16) & 255, (length >> 8) & 255, length & 255];
}
const item = (major, bytes) => [...head(major, bytes.length), ...bytes];
function bstr(bytes, at) {
  const info = bytes[at] & 31;
  if (bytes[at] >> 5 !== 2) throw new Error('expected a byte string');
  const [length, start] = info < 24 ? [info, at + 1] : info === 24 ? [bytes[at + 1], at + 2] :
    info === 25 ? [bytes[at + 1] << 8 | bytes[at + 2], at + 3] :
    [bytes.readUInt32BE(at + 1), at + 5];
  return [bytes.subarray(start, start + length), start + length];
}

async function verifyCose(text, jwk) {
  const raw = Buffer.from(text, 'base64');
  let at = raw[0] === 0xd2 ? 1 : 0; // tag 18
  if (raw[at++] !== 0x84) throw new Error('not a COSE_Sign1 array');
  const [prot, afterProt] = bstr(raw, at);
  if (raw[afterProt] !== 0xa0) throw new Error('unprotected header is not an empty map');
  const [payload, afterPayload] = bstr(raw, afterProt + 1);
  const [signature] = bstr(raw, afterPayload);
  const toBeSigned = Uint8Array.from([0x84, ...item(3, Buffer.from('Signature1')),
    ...item(2, prot), ...item(2, []), ...item(2, payload)]);
  const ed = jwk.kty === 'OKP';
  const {d, ...publicJwk} = jwk;
  const key = await crypto.subtle.importKey('jwk', publicJwk,
      ed ? {name: 'Ed25519'} : {name: 'ECDSA', namedCurve: jwk.crv}, false, ['verify']);
  const algorithm = ed ? {name: 'Ed25519'} : {name: 'ECDSA', hash: HASH[jwk.crv]};
  if (!await crypto.subtle.verify(algorithm, key, signature, toBeSigned)) {
    throw new Error('COSE signature does not verify');
  }
}

let failures = 0;
for (const mapping of [JOSETestMapping, SDJWTTestMapping, COSETestMapping]) {
  for (const [name, test] of Object.entries(mapping)) {
    if (test.fn !== 'issue' || test.expected_result !== 'success') continue;
    const {data} = read(`tests/output/${test.number}-smartcity.json`);
    const {publicKeyJwk} = read(`tests/input/${test.key_file}`);
    try {
      if (test.feature.endsWith('_cose')) {
        await verifyCose(data, publicKeyJwk);
      } else {
        await jose.compactVerify(data.split('~')[0], await jose.importJWK(publicKeyJwk));
      }
      console.log(`  issued output verified independently: ${name}`);
    } catch (error) {
      failures += 1;
      console.log(`  issued output DOES NOT VERIFY: ${name}: ${error.message}`);
    }
  }
}
process.exit(failures);
