/**
 * Collects a run's History as it happens (devices and scenarios append to it) and hands it to the
 * checker once the final reads are in.
 */
import type {
  ConnectionRecord,
  DeliveryRecord,
  DeviceInfo,
  History,
  HistoryEntry,
  InboxEntry,
  OfflineWindow,
  PresenceExpectation,
  PresenceObservation,
  SendRecord,
} from './history.ts';

export class Recorder {
  readonly devices: DeviceInfo[] = [];
  readonly sends: SendRecord[] = [];
  readonly deliveries: DeliveryRecord[] = [];
  readonly connections: ConnectionRecord[] = [];
  readonly presence: PresenceObservation[] = [];
  readonly expectations: PresenceExpectation[] = [];
  readonly offlineWindows: OfflineWindow[] = [];

  history(final: {
    members: Record<string, readonly string[]>;
    inboxes: Record<string, readonly InboxEntry[]>;
    histories: Record<string, readonly HistoryEntry[]>;
  }): History {
    return {
      devices: this.devices,
      members: final.members,
      sends: this.sends,
      deliveries: this.deliveries,
      connections: this.connections,
      presence: this.presence,
      expectations: this.expectations,
      offlineWindows: this.offlineWindows,
      inboxes: final.inboxes,
      histories: final.histories,
    };
  }
}
