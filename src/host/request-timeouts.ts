/**
 * The timeouts of `weft.request`, without a timer per request: the requests waiting for a reply
 * are linked, in order, into one list per timeout value, and each list arms one timer, for its
 * oldest request. Requests of one list expire in the order they were made, so that timer is all a
 * list needs; a reply unlinks its request in O(1).
 *
 * A Node timer per request (a Timeout object with its async resource, and its arguments) is most
 * of what a request leaves on main's heap while it waits, and main's scavenges copy whatever is
 * waiting (issue 13: main's garbage collection holds the host's event loop).
 */

/** What a list links (a pending request). */
export interface Timed {
  /** When it expires (the clock's ms). */
  deadline: number;
  prev: Timed | null;
  next: Timed | null;
  /** The list it is in, or null. */
  list: TimeoutList | null;
}

/** The longest delay a Node timer takes (2^31 - 1 ms, about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class TimeoutList {
  head: Timed | null = null;
  tail: Timed | null = null;
  timer: NodeJS.Timeout | undefined = undefined;
  readonly ms: number;

  constructor(ms: number) {
    this.ms = ms;
  }
}

export class RequestTimeouts<T extends Timed> {
  readonly #lists = new Map<number, TimeoutList>();
  readonly #expired: (item: T) => void;
  readonly #now: () => number;

  /**
   * @param expired called with each item whose deadline passed (it is unlinked first)
   * @param now the clock (performance.now; tests pass their own)
   */
  constructor(expired: (item: T) => void, now: () => number = () => performance.now()) {
    this.#expired = expired;
    this.#now = now;
  }

  /** Links `item` to expire `ms` from now. */
  add(item: T, ms: number): void {
    let list = this.#lists.get(ms);
    if (list === undefined) {
      list = new TimeoutList(ms);
      this.#lists.set(ms, list);
    }
    item.deadline = this.#now() + ms;
    item.list = list;
    item.next = null;
    const idle = list.head === null;
    item.prev = list.tail;
    if (list.tail === null) list.head = item;
    else list.tail.next = item;
    list.tail = item;
    if (list.timer === undefined) this.#arm(list, ms);
    else if (idle) {
      // The list's timer, kept (unreferenced) while nothing waited, restarted with its last delay:
      // never more than `ms`, so never after the new item's deadline (a shorter one makes #fire
      // arm for the rest). A Timeout per request that finds its list empty was most of what a
      // lightly loaded main allocated per request: one in flight at a time empties it each time.
      list.timer.refresh();
      list.timer.ref();
    }
  }

  /** Unlinks `item` (answered, or refused); nothing when it is in no list. */
  remove(item: T): void {
    const list = item.list;
    if (list === null) return;
    if (item.prev === null) list.head = item.next;
    else item.prev.next = item.next;
    if (item.next === null) list.tail = item.prev;
    else item.next.prev = item.prev;
    item.prev = null;
    item.next = null;
    item.list = null;
    // Nothing waits: the timer no longer keeps the process alive. It stays armed for the next
    // item (see add); when it fires with nothing linked, the list goes (a timeout value used once
    // does not keep its list).
    if (list.head === null) list.timer?.unref();
  }

  /** Items linked (for tests and metrics; walks the lists). */
  get size(): number {
    let n = 0;
    for (const list of this.#lists.values()) for (let i = list.head; i !== null; i = i.next) n++;
    return n;
  }

  /** Unlinks everything and stops the timers (the engine closed or failed). */
  clear(): void {
    for (const list of this.#lists.values()) {
      clearTimeout(list.timer);
      for (let i = list.head; i !== null; ) {
        const next = i.next;
        i.prev = null;
        i.next = null;
        i.list = null;
        i = next;
      }
    }
    this.#lists.clear();
  }

  #arm(list: TimeoutList, ms: number): void {
    // Node's timers take at most 2^31 - 1 ms (longer ones fire after 1 ms, with a warning): a
    // longer wait is armed in steps (#fire re-arms while the head is not due).
    list.timer = setTimeout(this.#fire, Math.min(MAX_TIMER_MS, Math.max(1, Math.ceil(ms))), list);
  }

  readonly #fire = (list: TimeoutList): void => {
    list.timer = undefined;
    const now = this.#now();
    // Timers round to whole ms: an item due within the next ms expires now rather than a ms late.
    for (let item = list.head; item !== null && item.deadline <= now + 1; item = list.head) {
      this.remove(item as T);
      this.#expired(item as T);
    }
    // The expired callbacks may have added items (armed).
    if (list.timer !== undefined) return;
    if (list.head !== null) this.#arm(list, list.head.deadline - now);
    else if (this.#lists.get(list.ms) === list) this.#lists.delete(list.ms);
  };
}
