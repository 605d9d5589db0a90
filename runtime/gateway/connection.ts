/** One WebSocket, as the layers above see it: bytes in, bytes out, backpressure, close. */
export interface Connection {
  readonly id: number;
  readonly remoteAddress: string;
  /**
   * Queues a frame; frames of one turn go out together at its end, in order. 'buffered' means
   * queued; 'closed' that the socket is gone. Check `bufferedAmount` for backpressure.
   */
  send(bytes: Uint8Array): 'sent' | 'buffered' | 'dropped' | 'closed';
  /**
   * Bytes held in this process for the socket and not yet taken by the kernel: the frames queued
   * this turn plus what the socket could not write. 0 once the peer reads as fast as we send.
   */
  bufferedAmount(): number;
  /**
   * Asks for one `onDrain` as soon as `bufferedAmount()` is at most `lowWaterBytes`: at the end of
   * this turn if the kernel takes the queued frames, else when the peer has read enough. Asking
   * again replaces the bound; a closed socket never calls it.
   */
  notifyDrain(lowWaterBytes: number): void;
  close(code: number, reason?: string): void;
  readonly open: boolean;
}

/** What the gateway calls for one connection; created by the application per socket. */
export interface ConnectionHandler {
  onMessage(bytes: Uint8Array, isBinary: boolean): void;
  /** The unsent bytes fell to the bound of the last `notifyDrain` (once per request). */
  onDrain(): void;
  /** `silent` is true when the gateway closed it for not hearing from the client in time. */
  onClose(code: number, silent: boolean): void;
}
