import { startServer } from '../support/server.ts';
import { registerChatSuite } from './chat-suite.ts';

registerChatSuite('sqlite', () => startServer());
