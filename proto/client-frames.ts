/** TypeScript shapes of chat.v1 frames (client.proto), snake_case like the wire and the JSON API. */

export interface Hello { token: string; device_id: string; last_inbox_seq: number }
export interface Send { channel_id: string; client_msg_id: string; text: string }
export interface Ack { inbox_seq: number }
export interface Sync { after_inbox_seq: number; limit: number }
export interface History { channel_id: string; before_message_id: string; limit: number }
export interface PresenceQuery { user_ids: string[] }
export type Heartbeat = Record<string, never>;
export interface Typing { channel_id: string }
export interface Read { channel_id: string; channel_seq: number }

export interface Message {
  message_id: string;
  channel_id: string;
  sender_id: string;
  client_msg_id: string;
  text: string;
  created_at_ms: number;
  channel_seq: number;
}
export interface Welcome { user_id: string; device_id: string; inbox_head_seq: number; heartbeat_interval_ms: number; node_id: string; resumed_after_inbox_seq: number }
export interface SendAck { channel_id: string; client_msg_id: string; message_id: string; channel_seq: number; created_at_ms: number }
export interface Delivery { inbox_seq: number; message: Message }
export interface SyncResult { deliveries: Delivery[]; has_more: boolean }
export interface HistoryResult { messages: Message[]; has_more: boolean }
export interface Presence { user_id: string; online: boolean; last_active_at_ms: number }
export interface PresenceResult { presences: Presence[] }
export interface TypingNotice { channel_id: string; user_id: string; expires_in_ms: number }
export interface ReadReceipt { channel_id: string; user_id: string; channel_seq: number }
export interface ErrorBody { code: string; message: string }

interface ClientBodies {
  hello: Hello;
  send: Send;
  ack: Ack;
  sync: Sync;
  history: History;
  presence_query: PresenceQuery;
  heartbeat: Heartbeat;
  read: Read;
  typing: Typing;
}
interface ServerBodies {
  welcome: Welcome;
  send_ack: SendAck;
  delivery: Delivery;
  sync_result: SyncResult;
  history_result: HistoryResult;
  presence: Presence;
  presence_result: PresenceResult;
  error: ErrorBody;
  read_receipt: ReadReceipt;
  typing: TypingNotice;
}

type Framed<B> = { [K in keyof B]: { ref: number; body: K } & { [P in K]: B[K] } }[keyof B];

/** A decoded client frame; `body` names the field that is set. */
export type ClientFrame = Framed<ClientBodies>;
export type ServerFrame = Framed<ServerBodies>;
export type ClientBodyName = keyof ClientBodies;
export type ServerBodyName = keyof ServerBodies;
export type ClientBody<K extends ClientBodyName> = ClientBodies[K];
export type ServerBody<K extends ServerBodyName> = ServerBodies[K];
