/** A minimal event emitter (no dependency on node:events, so it runs everywhere). */
export class Emitter {
  constructor() {
    /** @type {Map<string, Set<Function>>} */
    this._listeners = new Map();
  }

  /**
   * @param {string} event
   * @param {Function} listener
   * @returns {() => void} a function that removes the listener
   */
  on(event, listener) {
    let set = this._listeners.get(event);
    if (!set) this._listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => this.off(event, listener);
  }

  /** @param {string} event @param {Function} listener */
  once(event, listener) {
    const off = this.on(event, (/** @type {any[]} */ ...args) => {
      off();
      listener(...args);
    });
    return off;
  }

  /** @param {string} event @param {Function} listener */
  off(event, listener) {
    this._listeners.get(event)?.delete(listener);
  }

  /** @param {string} event @param {...any} args */
  emit(event, ...args) {
    const set = this._listeners.get(event);
    if (!set) return false;
    for (const listener of [...set]) {
      try {
        listener(...args);
      } catch (err) {
        // A listener's bug must not break the connection's frame handling.
        if (event !== 'error') this.emit('error', err);
        else queueMicrotask(() => { throw err; });
      }
    }
    return true;
  }
}
