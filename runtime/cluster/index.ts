/**
 * Cluster membership and placement: who the members are, whether this node may still act as
 * one, and which member owns a given actor identity.
 *
 * Guarantees: `ownerOf` is a pure function of (identity, set of node ids), the same on every
 * node whatever the order of the ids, and a membership change only moves identities to or from
 * the node that joined or left (rendezvous hashing). A joined member's record lives under an
 * etcd lease that is renewed continuously; `selfHealthy()` turns false before that lease can
 * have run out by this node's clock (at 0.6 x TTL after the last successful renewal), so a node
 * that lost contact stops serving before anyone else can take over. After etcd restarts, members
 * re-register on their own and their watches resume from a fresh listing. A node id has one
 * member at a time: the record is written only if it is this member's (same lease) or nobody's,
 * in one transaction, so a second process under a live node's id fails to join (NODE_ID_TAKEN;
 * `precheck` says so before any port opens, after waiting out a previous run's lease).
 *
 * `EtcdSlotClaim` gives each member a small integer slot unique among live members, held under
 * its membership lease (`leaseBound`), with a published reservation: a later holder of the same
 * slot starts above the previous holder's last reservation plus a reuse gap, whatever the clocks
 * (the argument is in etcd-slot-claim.ts; the pure choice in slot-choice.ts).
 *
 * @example
 * ```ts
 * const etcd = createEtcdClient({ hosts: 'http://127.0.0.1:2379' });
 * const secret = await ensureSharedSecret(etcd, '/parley/prod/secret', () => randomBytes(32).toString('hex'));
 * const slot = new EtcdSlotClaim({ client: etcd, prefix: '/parley/prod/slots', holder: 'n1', size: 1024, reuseGapMs: 10_000, reserveAheadMs: 7_000 });
 * const membership = new EtcdMembership({ client: etcd, prefix: '/parley/prod', leaseBound: [slot] });
 * membership.onSelfUnhealthy(() => kernel.stopServing());
 * await membership.join({ nodeId: 'n1', grpcAddress: '10.0.0.1:7000', wsUrl: 'ws://10.0.0.1:8080', load: 0, startedAtMs: Date.now() });
 * let ring = new HashRing(membership.members().map((m) => m.nodeId));
 * membership.onChange((ms) => (ring = new HashRing(ms.map((m) => m.nodeId))));
 * const owner = ring.ownerOf('counter/k1');
 * ```
 * Tests and single-node setups use `StaticMembership` (optionally sharing a `StaticCluster`).
 */
export type { Member, MembershipProvider } from './membership.ts';
export { MembershipError, MembershipErrorCodes, type MembershipErrorCode } from './membership-error.ts';
export { HashRing, ownerOf, hashString64 } from './hash-ring.ts';
export { EtcdMembership, type EtcdMembershipOptions, type LeaseBound } from './etcd-membership.ts';
export { EtcdSlotClaim, type EtcdSlotClaimOptions, type SlotGrant } from './etcd-slot-claim.ts';
export { SlotClaimError, SlotClaimErrorCodes, type SlotClaimErrorCode, type SlotClaimDetails } from './slot-claim-error.ts';
export { chooseSlot, floorOf, type SlotChoice, type SlotPool, type SlotRecord } from './slot-choice.ts';
export { createEtcdClient, type EtcdClientOptions } from './etcd-client.ts';
export { ensureSharedSecret } from './etcd-secrets.ts';
export { StaticCluster, StaticMembership } from './static-membership.ts';
export { ClusterRouter, type ClusterRouterOptions, type MembershipChange } from './cluster-router.ts';
