/**
 * Message encryption for Web Push (RFC 8291, the `aes128gcm` content coding of RFC 8188): what a
 * push service carries is opaque to it; only the browser that made the subscription (holding the
 * private half of `p256dh` and the `auth` secret) can read it.
 *
 * One record, no padding beyond the delimiter: a notification fits one 4,096-byte record by
 * construction (`MAX_WEB_PUSH_PLAINTEXT_BYTES`), and push services need not accept more (RFC
 * 8030 section 7.2). Built on node:crypto only.
 *
 * Example:
 *   const body = encryptAes128gcm({ plaintext, uaPublic: p256dhBytes, authSecret: authBytes });
 *   // POST body with Content-Encoding: aes128gcm
 */
import { createCipheriv, createECDH, hkdfSync, randomBytes, type ECDH } from 'node:crypto';

/** Record size announced in the header: the one record of a Web Push message, at most. */
export const WEB_PUSH_RECORD_SIZE = 4096;
/** salt (16) + rs (4) + idlen (1) + keyid (the 65-byte sender key). */
export const WEB_PUSH_HEADER_BYTES = 16 + 4 + 1 + 65;
/**
 * The longest plaintext that fits the 4,096-byte body every push service must accept (RFC 8291
 * section 4): 4,096 less the header, the GCM tag (16) and the padding delimiter (1).
 */
export const MAX_WEB_PUSH_PLAINTEXT_BYTES = WEB_PUSH_RECORD_SIZE - WEB_PUSH_HEADER_BYTES - 16 - 1;

const P256_P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn;
const P256_B = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn;

/**
 * Whether `bytes` is an uncompressed P-256 point (0x04 || x || y, 65 bytes) on the curve. Checked
 * before a subscription is stored, so a key that could never be encrypted to is refused at
 * registration instead of failing every notification later.
 */
export function isP256Point(bytes: Uint8Array): boolean {
  if (bytes.length !== 65 || bytes[0] !== 0x04) return false;
  const x = BigInt(`0x${Buffer.from(bytes.subarray(1, 33)).toString('hex')}`);
  const y = BigInt(`0x${Buffer.from(bytes.subarray(33, 65)).toString('hex')}`);
  if (x >= P256_P || y >= P256_P) return false;
  const mod = (n: bigint): bigint => ((n % P256_P) + P256_P) % P256_P;
  // y^2 = x^3 - 3x + b (mod p)
  return mod(y * y) === mod(x * x * x - 3n * x + P256_B);
}

export interface EncryptInput {
  readonly plaintext: Uint8Array;
  /** The subscription's `p256dh`: the browser's public key, 65 bytes uncompressed. */
  readonly uaPublic: Uint8Array;
  /** The subscription's `auth` secret, 16 bytes. */
  readonly authSecret: Uint8Array;
  /** Fixed only by tests (the RFC's worked example); fresh and random otherwise. */
  readonly salt?: Uint8Array;
  /** The sender's key pair; fixed only by tests. A fresh one per message otherwise (RFC 8291 section 2). */
  readonly sender?: ECDH;
}

/**
 * The `aes128gcm` body of one Web Push message. Throws on misuse (a bad key or an oversized
 * plaintext); callers validate both first.
 */
export function encryptAes128gcm(input: EncryptInput): Buffer {
  if (input.plaintext.length > MAX_WEB_PUSH_PLAINTEXT_BYTES) throw new RangeError(`plaintext of ${input.plaintext.length} bytes exceeds ${MAX_WEB_PUSH_PLAINTEXT_BYTES}`);
  if (input.authSecret.length !== 16) throw new RangeError('auth secret must be 16 bytes');
  const salt = input.salt ?? randomBytes(16);
  let sender = input.sender;
  if (!sender) {
    sender = createECDH('prime256v1');
    sender.generateKeys();
  }
  const asPublic = sender.getPublicKey();
  // Throws for a point off the curve: the subscription was not validated.
  const ecdhSecret = sender.computeSecret(input.uaPublic);
  const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), input.uaPublic, asPublic]);
  const ikm = Buffer.from(hkdfSync('sha256', ecdhSecret, input.authSecret, keyInfo, 32));
  const cek = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: aes128gcm\0'), 16));
  const nonce = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: nonce\0'), 12));

  const header = Buffer.alloc(WEB_PUSH_HEADER_BYTES);
  Buffer.from(salt).copy(header, 0);
  header.writeUInt32BE(WEB_PUSH_RECORD_SIZE, 16);
  header.writeUInt8(asPublic.length, 20);
  asPublic.copy(header, 21);

  const cipher = createCipheriv('aes-128-gcm', cek, nonce);
  // 0x02: the delimiter of the last (here: only) record, with no padding after it.
  const body = Buffer.concat([cipher.update(input.plaintext), cipher.update(Buffer.from([0x02])), cipher.final()]);
  return Buffer.concat([header, body, cipher.getAuthTag()]);
}
