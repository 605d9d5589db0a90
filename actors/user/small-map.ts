/**
 * A map for the few entries a user actor usually keeps (one device, a handful of channels): up
 * to SMALL entries in one exactly-sized array of keys and values, searched in order, and a real
 * Map beyond. A Map's table costs about 250 bytes however few entries it holds (an array grown by
 * push as much again), and every connected user held two: at 19,000 idle sessions that was half
 * a KiB of the 4 KiB a session may cost. Insertion order is kept, as a Map keeps it.
 */
const SMALL = 8;

export class SmallMap<K, V> implements Iterable<[K, V]> {
  /** k0, v0, k1, v1, ... while small. */
  private pairs: (K | V)[] = [];
  private big: Map<K, V> | undefined;

  get size(): number {
    return this.big ? this.big.size : this.pairs.length / 2;
  }

  get(key: K): V | undefined {
    if (this.big) return this.big.get(key);
    const i = this.indexOf(key);
    return i < 0 ? undefined : (this.pairs[i + 1] as V);
  }

  has(key: K): boolean {
    return this.big ? this.big.has(key) : this.indexOf(key) >= 0;
  }

  set(key: K, value: V): this {
    if (this.big) {
      this.big.set(key, value);
      return this;
    }
    const i = this.indexOf(key);
    if (i >= 0) this.pairs[i + 1] = value;
    else if (this.pairs.length < 2 * SMALL) this.pairs = [...this.pairs, key, value]; // exact size, not push's spare room
    else {
      this.big = new Map(this);
      this.big.set(key, value);
      this.pairs = [];
    }
    return this;
  }

  delete(key: K): boolean {
    if (this.big) return this.big.delete(key);
    const i = this.indexOf(key);
    if (i < 0) return false;
    this.pairs = [...this.pairs.slice(0, i), ...this.pairs.slice(i + 2)];
    return true;
  }

  clear(): void {
    this.big = undefined;
    this.pairs = [];
  }

  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.big ? this.big.entries() : this.small();
  }

  /** Over the pairs as they were: set and delete replace the array, so changes while iterating are safe. */
  private *small(): IterableIterator<[K, V]> {
    const pairs = this.pairs;
    for (let i = 0; i < pairs.length; i += 2) yield [pairs[i] as K, pairs[i + 1] as V];
  }

  private indexOf(key: K): number {
    const pairs = this.pairs;
    for (let i = 0; i < pairs.length; i += 2) if (pairs[i] === key) return i;
    return -1;
  }
}
