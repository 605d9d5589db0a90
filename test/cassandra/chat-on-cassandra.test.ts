import { startTestCassandra, type TestCassandra } from '../support/cassandra.ts';
import { startServer } from '../support/server.ts';
import { registerChatSuite } from '../e2e/chat-suite.ts';

let cassandra: TestCassandra | undefined;

registerChatSuite(
  'cassandra',
  async () => {
    cassandra = await startTestCassandra();
    return startServer({ flags: { store: cassandra.storeUrl() } });
  },
  async () => {
    await cassandra?.stop();
  },
);
