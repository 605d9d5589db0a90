/** One WebSocket, as the layers above see it: bytes in, bytes out, backpressure, close. */
export interface Connection {
  readonly id: number;
  readonly remoteAddress: string;
  /**
   * Queues a frame; frames of one turn go out together at its end, in order. 'buffered' means
   * queued; 'closed' that the socket is gone. Check `bufferedAmount` for backpressure.
   */
  send(bytes: Uint8Array): 'sent' | 'buffered' | 'dropped' | 'closed';
  /** Bytes waiting in the socket's send buffer. */
  bufferedAmount(): number;
  close(code: number, reason?: string): void;
  readonly open: boolean;
}

/** What the gateway calls for one connection; created by the application per socket. */
export interface ConnectionHandler {
  onMessage(bytes: Uint8Array, isBinary: boolean): void;
  /** The send buffer drained below the backpressure bound. */
  onDrain(): void;
  /** `silent` is true when the gateway closed it for not hearing from the client in time. */
  onClose(code: number, silent: boolean): void;
}
