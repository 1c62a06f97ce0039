/**
 * The rows of a server-paged table, fetched a page at a time as the user scrolls: the device table of a fleet holds
 * 10,000 devices and shows a few dozen. Pure bookkeeping (no fetch, no React), so its rules are tested on their own.
 *
 * INVARIANT: a page fetched for an older query (another filter, another sort) never lands in the table: every fetch
 * carries the generation it was asked under, and `reset` starts a new one.
 * INVARIANT: at most `maxPages` pages are held; the ones farthest from the latest page go first.
 */
export interface RowCacheOptions {
  readonly pageSize: number;
  readonly maxPages: number;
}

interface Page<T> {
  items: T[];
  /** Shown until its refetch answers (a device joined, left, or moved in the order). */
  stale: boolean;
}

export class RowCache<T extends { readonly uuid: string }> {
  readonly pageSize: number;
  readonly maxPages: number;
  /** Rows matching the query, as the last answer counted them; null before the first answer. */
  total: number | null = null;
  generation = 0;
  private readonly pages = new Map<number, Page<T>>();
  private readonly loading = new Set<number>();
  private readonly removed = new Set<string>();

  constructor(options: RowCacheOptions) {
    if (options.pageSize < 1 || options.maxPages < 1) throw new RangeError('pageSize and maxPages must be positive');
    this.pageSize = options.pageSize;
    this.maxPages = options.maxPages;
  }

  /** A new query: every page and count is forgotten, and answers to earlier fetches will be ignored. */
  reset(): void {
    this.generation++;
    this.total = null;
    this.pages.clear();
    this.loading.clear();
    this.removed.clear();
  }

  /** The row at `index`, or undefined while its page is not here (or the device was just removed). */
  rowAt(index: number): T | undefined {
    const item = this.pages.get(Math.floor(index / this.pageSize))?.items[index % this.pageSize];
    return item && !this.removed.has(item.uuid) ? item : undefined;
  }

  /**
   * Pages to fetch so rows `first`..`last` (inclusive) can be shown: missing or stale, and not already on their way.
   * Before the first answer only page 0 is asked for, as the total is not known yet.
   * INVARIANT: page 0 is always within reach, even when the last answer counted no row: an empty result that went
   * stale (a device joined an empty fleet) must be asked for again, or the table would stay empty.
   */
  pagesToFetch(first: number, last: number): number[] {
    if (this.total === null) return this.loading.has(0) ? [] : [0];
    const lastRow = Math.max(0, Math.min(last, this.total - 1));
    const wanted: number[] = [];
    for (
      let page = Math.floor(Math.max(0, first) / this.pageSize);
      page <= Math.floor(lastRow / this.pageSize);
      page++
    ) {
      const held = this.pages.get(page);
      if ((!held || held.stale) && !this.loading.has(page)) wanted.push(page);
    }
    return wanted;
  }

  /** Marks a page as being fetched; returns the generation its answer must carry. */
  startFetch(page: number): number {
    this.loading.add(page);
    return this.generation;
  }

  /** Stores an answer; returns false (and stores nothing) when it belongs to an older query. */
  fill(generation: number, page: number, items: T[], total: number): boolean {
    if (generation !== this.generation) return false;
    this.loading.delete(page);
    // A server that answers more rows than asked would shift every later page: keep the page's own rows only.
    this.pages.set(page, { items: items.slice(0, this.pageSize), stale: false });
    this.total = total;
    for (const item of items) this.removed.delete(item.uuid);
    this.evictAround(page);
    return true;
  }

  /** A fetch failed: the page may be asked for again. */
  fetchFailed(generation: number, page: number): void {
    if (generation === this.generation) this.loading.delete(page);
  }

  /** Replaces the held row of the same device in place; false when no page holds it. */
  update(item: T): boolean {
    for (const page of this.pages.values()) {
      const index = page.items.findIndex((row) => row.uuid === item.uuid);
      if (index !== -1) {
        page.items[index] = item;
        return true;
      }
    }
    return false;
  }

  /** Hides a removed device at once; the pages are refetched since the rows after it moved up. */
  remove(uuid: string): void {
    this.removed.add(uuid);
    this.invalidate();
  }

  /** Every held page is refetched when next shown, and shown as it is until then. */
  invalidate(): void {
    for (const page of this.pages.values()) page.stale = true;
  }

  /** Number of pages held (for tests and the memory bound). */
  get heldPages(): number {
    return this.pages.size;
  }

  private evictAround(latest: number): void {
    if (this.pages.size <= this.maxPages) return;
    const byDistance = [...this.pages.keys()].sort((a, b) => Math.abs(b - latest) - Math.abs(a - latest));
    for (const page of byDistance.slice(0, this.pages.size - this.maxPages)) this.pages.delete(page);
  }
}
