/**
 * Web Push subscriptions: a browser's (or FCM's) endpoint and keys per user per device, as
 * `PUT /v1/devices/{device_id}/push` registers them, and the reader the notifier sends with.
 * (actors/push/ holds the chat side of push; the transport-level provider is runtime/push/.)
 *
 * Layout (Tables.pushSubscription): partition = user, key = hash of (device id, endpoint). A
 * device has one subscription; re-registering writes the new row and deletes the device's others
 * in one write. Keying by endpoint too makes `removeSubscription` a blind delete of exactly the
 * endpoint a push service called gone: a 410 that arrives after the device re-subscribed (a new
 * endpoint) cannot delete the new registration, with no read-compare-delete race.
 *
 * Every subscription is validated before it is stored (push-endpoint.ts for the URL, the curve
 * for p256dh), so the notifier never holds one that cannot be encrypted to.
 *
 * Example (the notifier):
 *   for (const { deviceId, subscription } of await listSubscriptions(kv, userId)) {
 *     const outcome = await webPush.send({ userId, deviceIds: [deviceId], notificationId, subscription }, payload);
 *     if (!outcome.ok && outcome.gone) await removeSubscription(kv, userId, deviceId, subscription.endpoint);
 *   }
 */
import { createHash } from 'node:crypto';
import type { KeyValueStore, KeyValueWrite } from '../../runtime/storage/key-value.ts';
import { endpointProblem } from '../../runtime/push/push-endpoint.ts';
import type { WebPushSubscription } from '../../runtime/push/push-provider.ts';
import { isP256Point } from '../../runtime/push/web-push-encryption.ts';
import { ChatCodes, reject } from '../errors.ts';
import { MAX_CLIENT_ID, Tables } from '../tables.ts';

/**
 * Devices with a subscription per user. Each message to an offline user costs one outbound
 * request per subscription, so an unbounded list would let one account multiply Parley's traffic
 * to push services. Twenty covers phones, tablets and browsers; a new device past it gets 422
 * PUSH_DEVICES_FULL (remove one first). Two registrations racing may pass it by one.
 */
export const MAX_PUSH_DEVICES = 20;

/** One device's subscription, as the notifier reads it. */
export interface DeviceSubscription {
  readonly deviceId: string;
  readonly subscription: WebPushSubscription;
}

interface StoredSubscription {
  readonly device_id: string;
  readonly endpoint: string;
  readonly keys: { readonly p256dh: string; readonly auth: string };
  readonly at_ms: number;
}

const B64URL = /^[A-Za-z0-9_-]+={0,2}$/;

/** device_id as everywhere else (a WebSocket `hello`): 1-128 UTF-16 units. */
export function checkDeviceId(deviceId: unknown): string {
  if (typeof deviceId !== 'string' || deviceId.length === 0 || deviceId.length > MAX_CLIENT_ID) {
    throw reject(ChatCodes.INVALID_ARGUMENT, `device_id must be 1-${MAX_CLIENT_ID} characters`);
  }
  return deviceId;
}

/**
 * The body of `PUT /v1/devices/{id}/push` as a subscription, or INVALID_ARGUMENT saying what is
 * wrong. Keys are returned re-encoded as base64url without padding (browsers send that form;
 * padded input is accepted).
 */
export function parseWebPushSubscription(body: Record<string, unknown>, allowInsecure: boolean): WebPushSubscription {
  if (body.provider !== 'webpush') throw reject(ChatCodes.INVALID_ARGUMENT, 'provider must be "webpush"');
  const { endpoint, keys } = body;
  if (typeof endpoint !== 'string') throw reject(ChatCodes.INVALID_ARGUMENT, 'endpoint must be a string');
  const problem = endpointProblem(endpoint, allowInsecure);
  if (problem) throw reject(ChatCodes.INVALID_ARGUMENT, problem);
  if (typeof keys !== 'object' || keys === null || Array.isArray(keys)) throw reject(ChatCodes.INVALID_ARGUMENT, 'keys must be an object {p256dh, auth}');
  const { p256dh, auth } = keys as Record<string, unknown>;
  const p256dhBytes = typeof p256dh === 'string' && B64URL.test(p256dh) ? Buffer.from(p256dh, 'base64url') : undefined;
  if (!p256dhBytes || p256dhBytes.length !== 65) throw reject(ChatCodes.INVALID_ARGUMENT, 'keys.p256dh must be base64url of a 65-byte uncompressed P-256 point');
  if (!isP256Point(p256dhBytes)) throw reject(ChatCodes.INVALID_ARGUMENT, 'keys.p256dh is not a point on P-256');
  const authBytes = typeof auth === 'string' && B64URL.test(auth) ? Buffer.from(auth, 'base64url') : undefined;
  if (!authBytes || authBytes.length !== 16) throw reject(ChatCodes.INVALID_ARGUMENT, 'keys.auth must be base64url of 16 bytes');
  return { provider: 'webpush', endpoint, keys: { p256dh: p256dhBytes.toString('base64url'), auth: authBytes.toString('base64url') } };
}

function rowKey(deviceId: string, endpoint: string): string {
  return createHash('sha256').update(JSON.stringify([deviceId, endpoint])).digest('base64url');
}

async function rows(kv: KeyValueStore, userId: string): Promise<{ key: string; row: StoredSubscription }[]> {
  const records = await kv.list(Tables.pushSubscription, userId);
  return records.map((r) => ({ key: r.key, row: JSON.parse(r.value) as StoredSubscription }));
}

/** Registers (or replaces) the device's subscription. Throws PUSH_DEVICES_FULL for a new device past MAX_PUSH_DEVICES. */
export async function putSubscription(kv: KeyValueStore, userId: string, deviceId: string, sub: WebPushSubscription, nowMs = Date.now()): Promise<void> {
  const existing = await rows(kv, userId);
  const devices = new Set(existing.map((r) => r.row.device_id));
  if (!devices.has(deviceId) && devices.size >= MAX_PUSH_DEVICES) {
    throw reject(ChatCodes.PUSH_DEVICES_FULL, `at most ${MAX_PUSH_DEVICES} devices per user receive push; remove one first (DELETE /v1/devices/{device_id}/push)`);
  }
  const key = rowKey(deviceId, sub.endpoint);
  const row: StoredSubscription = { device_id: deviceId, endpoint: sub.endpoint, keys: { p256dh: sub.keys.p256dh, auth: sub.keys.auth }, at_ms: nowMs };
  const writes: KeyValueWrite[] = existing
    .filter((r) => r.row.device_id === deviceId && r.key !== key)
    .map((r) => ({ op: 'delete', table: Tables.pushSubscription, partition: userId, key: r.key }));
  writes.push({ op: 'put', table: Tables.pushSubscription, partition: userId, key, value: JSON.stringify(row) });
  await kv.write(writes);
}

/** Removes the device's subscription, whatever its endpoint; nothing to remove is fine. */
export async function deleteDeviceSubscription(kv: KeyValueStore, userId: string, deviceId: string): Promise<void> {
  const mine = (await rows(kv, userId)).filter((r) => r.row.device_id === deviceId);
  if (mine.length === 0) return;
  await kv.write(mine.map((r) => ({ op: 'delete', table: Tables.pushSubscription, partition: userId, key: r.key })));
}

/**
 * The user's subscriptions, one per device. Should two registrations of one device have raced
 * (both rows stored), the later wins here and the next registration or removal tidies up.
 */
export async function listSubscriptions(kv: KeyValueStore, userId: string): Promise<DeviceSubscription[]> {
  const latest = new Map<string, StoredSubscription>();
  for (const { row } of await rows(kv, userId)) {
    const seen = latest.get(row.device_id);
    if (!seen || row.at_ms > seen.at_ms) latest.set(row.device_id, row);
  }
  return [...latest.values()].map((r) => ({
    deviceId: r.device_id,
    subscription: { provider: 'webpush', endpoint: r.endpoint, keys: { p256dh: r.keys.p256dh, auth: r.keys.auth } },
  }));
}

/**
 * Forgets the subscription a push service called gone (404/410), only if the device is still
 * registered with that `endpoint`: a re-registration with a new endpoint is a different row, and
 * stays.
 */
export async function removeSubscription(kv: KeyValueStore, userId: string, deviceId: string, endpoint: string): Promise<void> {
  await kv.write([{ op: 'delete', table: Tables.pushSubscription, partition: userId, key: rowKey(deviceId, endpoint) }]);
}
