/**
 * The Parley client SDK for apps (browser, React Native, Node): HTTP calls with `ParleyHttp`,
 * the live connection with `ParleyClient`. No Node-only APIs; pass a WebSocket implementation
 * where the platform has none (Node 20: the `ws` package).
 *
 * @example
 * ```ts
 * const http = new ParleyHttp('http://127.0.0.1:8080');
 * const { token, expires_at_ms, servers } = await http.login('alice', 'correct horse');
 * const client = new ParleyClient({
 *   servers: servers.map((s) => s.ws_url), token, deviceId: 'phone',
 *   tokenExpiresAtMs: expires_at_ms, refreshToken: () => http.refresh(), // renewed before it expires
 * });
 * client.on('delivery', (d) => console.log(d.message.text));
 * await client.connect();
 * await client.send(channelId, 'hello'); // resolves once durable
 * ```
 */
export { ParleyApiError, ParleyHttp, type LoginResult, type ServerInfo, type TokenGrant, type UserProfile } from './http-client.ts';
export { ParleyClient, ParleyError, type ParleyClientOptions, type WebSocketFactory, type WebSocketLike } from './parley-client.ts';
export type { Delivery, Message, Presence, ReadReceipt, SendAck, TypingNotice, Welcome } from '../proto/client-frames.ts';
