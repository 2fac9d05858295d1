/** A fixed-size buffer that keeps the newest `size` items, oldest first. */
export class Ring<T> {
  private items: T[] = [];
  constructor(readonly size: number) {}
  push(item: T): void {
    this.items.push(item);
    if (this.items.length > this.size) this.items.splice(0, this.items.length - this.size);
  }
  toArray(): T[] {
    return this.items.slice();
  }
  get length(): number {
    return this.items.length;
  }
}
