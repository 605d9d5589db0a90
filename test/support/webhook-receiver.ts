/**
 * An operator's webhook receiver, in the test process: an HTTP server on 127.0.0.1 that checks
 * every request's `X-Parley-Signature` (HMAC-SHA256 of the raw body, with the secret the nodes
 * were given) before it parses the body, as a real receiver must. A bad signature gets 401 and
 * is counted; a good one is answered per recipient as the test plans it (statuses in turn, then
 * 200) and, when 200, recorded with the time it arrived.
 *
 * Example:
 *   const hook = new WebhookReceiver(SECRET);
 *   await hook.start();
 *   const node = await startServer({ flags: { 'push-webhook': hook.url, 'push-webhook-secret': SECRET } });
 *   // ... a message to an offline user ...
 *   t.true(await eventually(() => hook.for(userId).length === 1));
 *   t.deepEqual(hook.repeated(), []);   // no notification_id twice
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { WebhookProvider, type WebhookBody } from '../../runtime/push/index.ts';

export class WebhookReceiver {
  /** Every accepted (200) notification, in arrival order, with Date.now() at arrival. */
  readonly pushes: (WebhookBody & { readonly receivedAtMs: number })[] = [];
  /** Requests per user, whatever the answer. */
  readonly requests = new Map<string, number>();
  badSignatures = 0;
  /** Per user: statuses to answer in turn (then 200); `always` answers that forever. */
  readonly plans = new Map<string, { statuses: number[]; always?: number }>();
  private server: Server | undefined;
  url = '';

  constructor(private readonly secret: string) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        const want = Buffer.from(WebhookProvider.sign(this.secret, raw));
        const got = Buffer.from(String(req.headers['x-parley-signature'] ?? ''));
        if (got.length !== want.length || !timingSafeEqual(got, want)) {
          this.badSignatures++;
          res.writeHead(401).end();
          return;
        }
        const body = JSON.parse(raw.toString('utf8')) as WebhookBody;
        this.requests.set(body.user_id, (this.requests.get(body.user_id) ?? 0) + 1);
        const plan = this.plans.get(body.user_id);
        const status = plan?.statuses.shift() ?? plan?.always ?? 200;
        if (status === 200) this.pushes.push({ ...body, receivedAtMs: Date.now() });
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const addr = this.server.address();
    this.url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/hook`;
  }

  for(userId: string): WebhookBody[] {
    return this.pushes.filter((p) => p.user_id === userId);
  }

  /** notification_ids accepted more than once, with their counts. */
  repeated(): [string, number][] {
    const n = new Map<string, number>();
    for (const p of this.pushes) n.set(p.notification_id, (n.get(p.notification_id) ?? 0) + 1);
    return [...n].filter(([, c]) => c > 1);
  }

  close(): Promise<void> {
    // Keep-alive connections from a node that did not stop would hold close() open forever.
    this.server?.closeAllConnections();
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
