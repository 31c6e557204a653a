// The outbox: every answer (with the answers to the queue's other questions, if it asks more
// than one) is written to localStorage before the page moves on, then sent in the background,
// oldest first, with the same client_submission_id until the server acknowledges it (201
// stored, or 200 stored before). A dropped network, a reload or a closed tab loses nothing: the
// next page load sends what is left. The server keeps a retried submission to one judgment, so
// two tabs sending the same entry are harmless.
//
// Events: "change" (entries added or removed, here or in another tab), "acked" (detail: the
// entry and the server's answer), "rejected" (detail: entry, error: the server refused it for
// good, e.g. the lease ran out), "state" (detail: "sending" | "retrying" | "offline" |
// "signed_out" | "paused" | "idle"). "offline": the server (or its database) does not answer;
// the entries stay here and are sent again when the server asks (Retry-After) or answers again.

import { ApiError, apiCall } from "./api.js";

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 15000;
const PAUSED_RETRY_MS = 30000;
// A Retry-After is honoured up to this long: past it the next try comes sooner.
const RETRY_AFTER_MAX_MS = 60000;

// When to send again: when the server said (Retry-After, a little later so that many pages do
// not come back at the same instant), else after a backoff that doubles with each failure.
function retryDelay(error, failures) {
  if (error.retryAfterMs !== null) {
    const wait = Math.max(RETRY_MIN_MS, Math.min(RETRY_AFTER_MAX_MS, error.retryAfterMs));
    return wait * (1 + Math.random() * 0.2);
  }
  const backoff = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** (failures - 1));
  return backoff * (0.75 + Math.random() * 0.5);
}

export class Outbox extends EventTarget {
  constructor({ userId }) {
    super();
    this.key = `spatialprefs:outbox:v1:${userId}`;
    this.memory = null; // used only if localStorage refuses to store (private mode, quota)
    this.inflight = null;
    this.running = false;
    this.wake = null;
    this.failures = 0;
    this.failedAs = "retrying"; // the state while failures > 0: "retrying" or "offline"
    this.honourRetryAfter = false;
    this.retryInMs = 0;
    this.holdUntil = 0; // while the server's Retry-After runs, only a forced kick sends early
    this.state = "idle";
    this.waiters = new Map();
    window.addEventListener("storage", (event) => {
      if (event.key === this.key) {
        this.dispatchEvent(new Event("change"));
        this.kick();
      }
    });
    window.addEventListener("online", () => this.kick({ force: true }));
  }

  get durable() {
    return this.memory === null;
  }

  entries() {
    if (this.memory !== null) return this.memory.slice();
    try {
      const list = JSON.parse(localStorage.getItem(this.key) || "[]");
      return Array.isArray(list) ? list : [];
    } catch (_corrupt) {
      return [];
    }
  }

  write(list) {
    if (this.memory === null) {
      try {
        localStorage.setItem(this.key, JSON.stringify(list));
        return;
      } catch (_refused) {
        this.memory = [];
      }
    }
    this.memory = list.slice();
  }

  pending(queueId) {
    const list = this.entries();
    return queueId === undefined ? list : list.filter((e) => e.queue === queueId);
  }

  has(sid) {
    return this.entries().some((e) => e.sid === sid);
  }

  isInflight(sid) {
    return this.inflight === sid;
  }

  // Store first (synchronously), then send: the answer is safe before the page shows the next pair.
  add(entry) {
    const list = this.entries();
    if (!list.some((e) => e.sid === entry.sid)) list.push(entry);
    this.write(list);
    this.dispatchEvent(new Event("change"));
    this.kick();
  }

  // Remove an entry and return it (null if it is not waiting, or being sent right now).
  take(sid) {
    if (this.inflight === sid) return null;
    const list = this.entries();
    const entry = list.find((e) => e.sid === sid) || null;
    if (entry) {
      this.write(list.filter((e) => e.sid !== sid));
      this.dispatchEvent(new Event("change"));
    }
    return entry;
  }

  // Before the first send: from then on only the server knows whether it was stored.
  markAttempted(sid) {
    const list = this.entries();
    const entry = list.find((e) => e.sid === sid);
    if (entry && !entry.attempted) {
      entry.attempted = true;
      this.write(list);
    }
  }

  drop(sid) {
    this.write(this.entries().filter((e) => e.sid !== sid));
    this.dispatchEvent(new Event("change"));
  }

  // Resolves once this entry is not being sent at this moment.
  settle(sid) {
    if (this.inflight !== sid) return Promise.resolve();
    return new Promise((resolve) => {
      const list = this.waiters.get(sid) || [];
      list.push(resolve);
      this.waiters.set(sid, list);
    });
  }

  // Send now rather than at the planned retry; within a Retry-After only when `force`d (the
  // network or the server is back), not for every new answer.
  kick({ force = false } = {}) {
    if (this.wake && (force || Date.now() >= this.holdUntil)) {
      const wake = this.wake;
      this.wake = null;
      wake();
    }
    if (!this.running) this.run();
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: state }));
  }

  sleep(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = null;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  async run() {
    this.running = true;
    try {
      for (;;) {
        const entry = this.entries()[0];
        if (!entry) {
          this.setState("idle");
          return;
        }
        this.setState(this.failures ? this.failedAs : "sending");
        const outcome = await this.send(entry);
        if (outcome === "stop") return;
        if (outcome === "retry") {
          this.setState(this.failedAs);
          this.holdUntil = this.honourRetryAfter ? Date.now() + this.retryInMs : 0;
          await this.sleep(this.retryInMs);
          this.holdUntil = 0;
        } else if (outcome === "paused") {
          await this.sleep(PAUSED_RETRY_MS);
        }
      }
    } finally {
      this.running = false;
    }
  }

  async send(entry) {
    this.inflight = entry.sid;
    this.markAttempted(entry.sid);
    try {
      const { data } = await apiCall(entry.url, {
        method: "POST",
        body: {
          pair: entry.pair,
          client_submission_id: entry.sid,
          choice: entry.choice,
          // the answers to a queue's other questions (absent when it asks one)
          ...(entry.criteria ? { criteria: entry.criteria } : {}),
          reason_tags: entry.reason_tags,
          duration_ms: entry.duration_ms,
        },
      });
      this.failures = 0;
      this.drop(entry.sid);
      this.dispatchEvent(new CustomEvent("acked", { detail: { entry, data } }));
      return "next";
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.transient) {
        this.failures += 1;
        this.failedAs = error.unavailable ? "offline" : "retrying";
        this.retryInMs = retryDelay(error, this.failures);
        this.honourRetryAfter = error.retryAfterMs !== null;
        return "retry";
      }
      if (error.signedOut) {
        this.setState("signed_out");
        return "stop";
      }
      if (error.code === "queue_paused") {
        this.setState("paused");
        return "paused";
      }
      // Refused for good (the lease ran out, the pair filled up...): sending it again would
      // be refused again. Say so instead of retrying forever.
      this.failures = 0;
      this.drop(entry.sid);
      this.dispatchEvent(new CustomEvent("rejected", { detail: { entry, error } }));
      return "next";
    } finally {
      this.inflight = null;
      for (const resolve of this.waiters.get(entry.sid) || []) resolve();
      this.waiters.delete(entry.sid);
    }
  }
}
