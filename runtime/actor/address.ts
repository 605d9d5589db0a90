/** Where an actor lives in the logical sense: its kind and its key. Never a node or a socket. */
export interface ActorAddress {
  readonly kind: string;
  readonly key: string;
}

export function addressId(a: ActorAddress): string {
  return `${a.kind}/${a.key}`;
}
