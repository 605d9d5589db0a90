/** Messages of a login guard shard (login-guard-actor.ts). */
export type LoginGuardMessage =
  /** Before a password check: admitted (and charged), or refused with the time left. Replies an Admission. */
  | { type: 'admit'; username: string }
  /** The password was right: the username's failures are forgotten. */
  | { type: 'succeeded'; username: string }
  /** An admitted attempt failed before its check (the store did): its charge is taken back. */
  | { type: 'unchecked'; username: string };
