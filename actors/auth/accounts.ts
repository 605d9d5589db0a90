import { randomUUID } from 'node:crypto';
import { codeOf, RuntimeCodes } from '../../runtime/errors.ts';
import type { KeyValueStore } from '../../runtime/storage/index.ts';
import { ChatCodes, reject } from '../errors.ts';
import { Tables, type PublicProfile, type UserProfile } from '../tables.ts';
import type { LoginAttempts } from './login-attempts.ts';
import type { PasswordHasher } from './password.ts';

const USERNAME = /^[a-z0-9_.-]{3,32}$/;
export const MIN_PASSWORD_LENGTH = 8;
const MAX_PASSWORD_LENGTH = 1024;
export const MAX_DISPLAY_NAME = 64;

/**
 * Signup and login. Usernames are unique through the store's putIfAbsent.
 *
 * A login answers alike whether the username exists or not: the same throttle (by username, so
 * a 429 says nothing either), the same one password derivation at the node's cost (against a
 * decoy hash for an unknown user), the same UNAUTHENTICATED "wrong username or password".
 */
export class Accounts {
  constructor(
    private readonly kv: KeyValueStore,
    private readonly passwords: PasswordHasher,
    private readonly attempts: LoginAttempts,
    /** Counts logins refused by the throttle. */
    private readonly throttled: { add(n?: number): void } = { add: () => undefined },
  ) {}

  async signup(username: unknown, password: unknown): Promise<string> {
    if (typeof username !== 'string' || !USERNAME.test(username)) {
      throw reject(ChatCodes.INVALID_ARGUMENT, 'username must be 3-32 characters of a-z 0-9 _ . -');
    }
    if (typeof password !== 'string' || password.length < MIN_PASSWORD_LENGTH || password.length > MAX_PASSWORD_LENGTH) {
      throw reject(ChatCodes.INVALID_ARGUMENT, `password must be ${MIN_PASSWORD_LENGTH}-${MAX_PASSWORD_LENGTH} characters`);
    }
    if (await this.kv.get(Tables.username, username, '')) throw reject(ChatCodes.ALREADY_EXISTS, 'username is taken');
    return this.create(username, await this.passwords.hash(password));
  }

  /**
   * Creates a user from a ready hash (admin provisioning). The profile is written before the
   * username claim: a crash between the two leaves an unreachable profile, never a username
   * that points nowhere.
   */
  async create(username: string, passwordHash: string): Promise<string> {
    const userId = randomUUID();
    const profile: UserProfile = { username, password_hash: passwordHash, created_at_ms: Date.now() };
    await this.kv.write([{ op: 'put', table: Tables.user, partition: userId, key: 'profile', value: JSON.stringify(profile) }]);
    const claim = await this.kv.putIfAbsent(Tables.username, username, '', userId);
    if (!claim.created) {
      await this.kv.write([{ op: 'delete', table: Tables.user, partition: userId, key: 'profile' }]);
      throw reject(ChatCodes.ALREADY_EXISTS, 'username is taken');
    }
    return userId;
  }

  /**
   * The user id for valid credentials; UNAUTHENTICATED otherwise, without saying which part was
   * wrong; RATE_LIMITED (with retryAfterMs) while the username is throttled for failed logins,
   * decided before any password work, so a refused attempt costs no hashing.
   */
  async login(username: unknown, password: unknown): Promise<string> {
    const denied = reject(ChatCodes.UNAUTHENTICATED, 'wrong username or password');
    if (typeof username !== 'string' || typeof password !== 'string' || password.length > MAX_PASSWORD_LENGTH) throw denied;
    // Names that cannot exist share one count: they are no one's account, and a flood of them
    // must not make a record each. Valid names are counted whether they exist or not.
    const counted = USERNAME.test(username) ? username : '';
    const admission = await this.attempts.admit(counted);
    if (!admission.admitted) {
      this.throttled.add();
      const seconds = Math.max(1, Math.ceil(admission.retryAfterMs / 1000));
      throw reject(ChatCodes.RATE_LIMITED, `too many failed logins for this username; retry in ${seconds} s`, { retryAfterMs: admission.retryAfterMs });
    }
    let userId: string | undefined;
    let profile: UserProfile | undefined;
    let ok: boolean;
    try {
      userId = counted ? await this.kv.get(Tables.username, counted, '') : undefined;
      profile = userId ? await this.profile(userId) : undefined;
      ok = await this.passwords.verify(password, profile?.password_hash);
    } catch (err) {
      // Not judged because the store failed: not a failure either. One the node had no room to
      // check (OVERLOADED) stays counted: else a flood would keep the check queue full with
      // attempts that are refused, refunded and tried again, and never be throttled.
      if (codeOf(err) !== RuntimeCodes.OVERLOADED) this.attempts.unchecked(counted);
      throw err;
    }
    if (!ok) throw denied;
    this.attempts.succeeded(counted);
    // Said only to whoever knows the password: a disabled account is not hidden from its owner.
    if (profile!.disabled_at_ms !== undefined) throw reject(ChatCodes.UNAUTHENTICATED, 'this account is disabled');
    return userId!;
  }

  async profile(userId: string): Promise<UserProfile | undefined> {
    const raw = await this.kv.get(Tables.user, userId, 'profile');
    return raw ? (JSON.parse(raw) as UserProfile) : undefined;
  }

  /** The user with this username, if any (exact match; usernames are lower case). */
  async byUsername(username: string): Promise<string | undefined> {
    return USERNAME.test(username) ? this.kv.get(Tables.username, username, '') : undefined;
  }

  async publicProfile(userId: string): Promise<PublicProfile | undefined> {
    const p = await this.profile(userId);
    return p && { user_id: userId, username: p.username, display_name: p.display_name ?? p.username };
  }

  /** Sets the name shown for the user: 1-64 code points, not all white space, no control characters. */
  async setDisplayName(userId: string, name: unknown): Promise<PublicProfile> {
    const length = typeof name === 'string' ? [...name].length : 0;
    if (typeof name !== 'string' || length < 1 || length > MAX_DISPLAY_NAME || name.trim().length === 0 || /\p{Cc}/u.test(name)) {
      throw reject(ChatCodes.INVALID_ARGUMENT, `display_name must be 1-${MAX_DISPLAY_NAME} characters (code points), not only spaces, without control characters`);
    }
    const profile = await this.profile(userId);
    if (!profile) throw reject(ChatCodes.NOT_FOUND, 'no such user');
    const next: UserProfile = { ...profile, display_name: name };
    await this.kv.write([{ op: 'put', table: Tables.user, partition: userId, key: 'profile', value: JSON.stringify(next) }]);
    return { user_id: userId, username: profile.username, display_name: name };
  }

  /**
   * Marks the user disabled (login refused from now on); the first time is kept. The caller
   * also revokes their tokens (Revocations.revokeUser). Undefined for an unknown user.
   */
  async disable(userId: string, nowMs = Date.now()): Promise<UserProfile | undefined> {
    const profile = await this.profile(userId);
    if (!profile || profile.disabled_at_ms !== undefined) return profile;
    const next: UserProfile = { ...profile, disabled_at_ms: nowMs };
    await this.kv.write([{ op: 'put', table: Tables.user, partition: userId, key: 'profile', value: JSON.stringify(next) }]);
    return next;
  }

  async exists(userId: string): Promise<boolean> {
    return (await this.kv.get(Tables.user, userId, 'profile')) !== undefined;
  }
}
