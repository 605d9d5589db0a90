import { readFileSync } from 'node:fs';
import { CodedError, RuntimeCodes } from '../runtime/errors.ts';
import { envOf, SETTINGS, type Setting } from './settings.ts';

/** A node's resolved settings. */
export interface Config {
  host: string;
  port: number;
  data_dir: string;
  store: string;
  durability: 'fsync' | 'os';
  node_id: string;
  node_number: number | undefined;
  cors_origins: string | undefined;
  public_url: string | undefined;
  secret_file: string | undefined;
  token_ttl_s: number;
  scrypt_log_n: number;
  auth_per_minute: number;
  login_fail_limit: number;
  login_fail_window_ms: number;
  send_rate: number;
  send_burst: number;
  max_inflight_sends: number;
  session_max_unsent_bytes: number;
  heartbeat_interval_ms: number;
  presence_timeout_ms: number;
  fanout_timeout_ms: number;
  actor_idle_ms: number;
  max_frame_bytes: number;
  max_http_body_bytes: number;
  etcd: string | undefined;
  cluster_prefix: string;
  grpc_host: string | undefined;
  grpc_port: number;
  grpc_advertise: string | undefined;
  lease_ttl_s: number;
  redis: string | undefined;
  push_allow_insecure: boolean;
  push_vapid_subject: string | undefined;
  push_webhook: string | undefined;
  push_webhook_secret: string | undefined;
  push_coalesce_ms: number;
  push_include_text: boolean;
  push_max_attempts: number;
  push_retry_base_ms: number;
  log_level: string;
}

export class ConfigError extends CodedError {
  constructor(message: string) {
    super(RuntimeCodes.CONFIG, message);
    this.name = 'ConfigError';
  }
}

type Raw = Record<string, unknown>;

/**
 * Resolves settings: defaults, then the config file (JSON, keys as in SETTINGS), then PARLEY_*
 * environment variables, then flags. Unknown keys and bad values fail here, at start, with the
 * setting's name in the message.
 */
export function loadConfig(flags: Raw, env: NodeJS.ProcessEnv = process.env): Config {
  const out: Raw = {};
  for (const s of SETTINGS as readonly Setting[]) if (s.default !== undefined) out[s.key] = s.default;

  const file = (flags.config as string | undefined) ?? env.PARLEY_CONFIG;
  if (file) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigError(`config file ${file} must hold a JSON object`);
    for (const [k, v] of Object.entries(parsed)) out[k] = coerce(find(k, `config file ${file}`), v, `${file}: ${k}`);
  }
  for (const s of SETTINGS as readonly Setting[]) {
    const v = env[envOf(s.key)];
    if (v !== undefined && v !== '') out[s.key] = coerce(s, v, envOf(s.key));
  }
  for (const [k, v] of Object.entries(flags)) {
    if (k === 'config' || v === undefined) continue;
    out[k] = coerce(find(k, 'flags'), v, `--${k.replace(/_/g, '-')}`);
  }
  return out as unknown as Config;
}

function find(key: string, where: string): Setting {
  const s = (SETTINGS as readonly Setting[]).find((x) => x.key === key);
  if (!s) throw new ConfigError(`unknown setting "${key}" in ${where}`);
  return s;
}

function coerce(s: Setting, v: unknown, name: string): string | number | boolean {
  switch (s.type) {
    case 'int': {
      const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : NaN;
      if (!Number.isSafeInteger(n)) throw new ConfigError(`${name} must be an integer, got ${JSON.stringify(v)}`);
      if (s.min !== undefined && n < s.min) throw new ConfigError(`${name} must be at least ${s.min}${s.minReason ? ` (${s.minReason})` : ''}, got ${n}`);
      if (s.max !== undefined && n > s.max) throw new ConfigError(`${name} must be at most ${s.max}, got ${n}`);
      return n;
    }
    case 'bool': {
      if (typeof v === 'boolean') return v;
      if (v === 'true' || v === '1') return true;
      if (v === 'false' || v === '0') return false;
      throw new ConfigError(`${name} must be true or false, got ${JSON.stringify(v)}`);
    }
    case 'enum': {
      if (typeof v !== 'string' || !s.values!.includes(v)) throw new ConfigError(`${name} must be one of ${s.values!.join(', ')}, got ${JSON.stringify(v)}`);
      return v;
    }
    case 'string': {
      if (typeof v !== 'string' || v.length === 0) throw new ConfigError(`${name} must be a non-empty string`);
      return v;
    }
  }
}
