import type { ChatMetrics } from './chat-metrics.ts';
import type { ActorRef, ActorSystem } from '../runtime/actor/index.ts';
import type { Logger } from '../runtime/log.ts';
import type { Store } from '../runtime/storage/index.ts';
import type { ChannelMessage } from './channel/channel-messages.ts';
import type { Snowflake } from './ids/snowflake.ts';
import type { SessionMessage } from './session/session-messages.ts';
import type { PresenceDirectory } from '../runtime/presence/index.ts';
import type { UserMessage } from './user/user-messages.ts';
import type { DeviceNodes } from './user/device-nodes.ts';
import type { PushSettings } from './user/push-decider.ts';

/** Timings the chat actors run on; tests shorten them. */
export interface ChatTimings {
  readonly heartbeatIntervalMs: number;
  /** A device not heard from for this long is gone. */
  readonly presenceTimeoutMs: number;
  /** How often a session tells its user actor the device is still there. */
  readonly touchIntervalMs: number;
  /** Fan-out of one message to one member. */
  readonly fanoutTimeoutMs: number;
}

/** What every chat actor is built with: interfaces only, never a concrete engine or socket. */
export interface ChatDeps {
  readonly nodeId: string;
  readonly system: ActorSystem;
  readonly store: Store;
  readonly ids: Snowflake;
  readonly presence: PresenceDirectory;
  readonly log: Logger;
  readonly timings: ChatTimings;
  /** Which node hosts each user's devices, so a crashed node's users can be found. */
  readonly deviceNodes: DeviceNodes;
  /** How offline inbox entries become push jobs; absent: no push at all (no provider configured). */
  readonly push?: PushSettings;
  /** Counters the chat path bumps (actors/chat-metrics.ts). */
  readonly metrics: ChatMetrics;
}

export const users = (deps: ChatDeps, userId: string): ActorRef<UserMessage> => deps.system.ref<UserMessage>('user', userId);
export const channels = (deps: ChatDeps, channelId: string): ActorRef<ChannelMessage> => deps.system.ref<ChannelMessage>('channel', channelId);
export const sessions = (deps: ChatDeps, sessionKey: string): ActorRef<SessionMessage> => deps.system.ref<SessionMessage>('session', sessionKey);
