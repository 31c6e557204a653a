// Calls to the labeling API: JSON in and out, the session cookie, Django's CSRF header, a timeout.
// Every failure is an ApiError: status 0 for a network failure or timeout (worth retrying),
// otherwise the HTTP status with the API's {"error", "detail", "field"} body and the server's
// Retry-After. `serverStatus` says whether the server answers at all (see below).

// The server (or its database) is down or cut off: 503 database_unavailable while PostgreSQL
// cannot be reached, 502/504 from a proxy in front, 0 when nothing came back.
const UNAVAILABLE = new Set([0, 502, 503, 504]);

export class ApiError extends Error {
  constructor(status, body, retryAfterMs = null) {
    super((body && body.detail) || (status ? `HTTP ${status}` : "network unreachable"));
    this.status = status;
    this.code = (body && body.error) || (status ? `http_${status}` : "network");
    this.body = body;
    this.retryAfterMs = retryAfterMs; // the server's Retry-After, or null
  }

  // No answer from the server itself: everything waits until it answers again.
  get unavailable() {
    return UNAVAILABLE.has(this.status);
  }

  // Worth sending again later, unchanged: the server did not decide anything about it.
  get transient() {
    return (
      this.status === 0 ||
      this.status >= 500 ||
      this.status === 429 ||
      this.status === 408 ||
      (this.status === 403 && /csrf/i.test(this.message))
    );
  }

  get signedOut() {
    return this.status === 401 || this.code === "not_authenticated";
  }
}

// Whether the server answers: false after a network failure or a 502/503/504, true again at
// the next answer of any other kind (a 4xx too: the server decided something) to a request
// sent after the failure was seen: an answer to a request sent before it, arriving late, says
// nothing about now. "change" on each flip; `retryAfterMs` is the wait the server last asked for.
class ServerStatus extends EventTarget {
  constructor() {
    super();
    this.available = true;
    this.retryAfterMs = null;
    this.outages = 0; // flips to unavailable so far; a request notes the count when it is sent
  }

  set(available, retryAfterMs = null, sentDuring = this.outages) {
    if (!available) this.retryAfterMs = retryAfterMs;
    else if (sentDuring < this.outages) return;
    if (available === this.available) return;
    if (!available) this.outages += 1;
    this.available = available;
    this.dispatchEvent(new Event("change"));
  }
}

export const serverStatus = new ServerStatus();

// Retry-After in milliseconds: delay-seconds or an HTTP date; null if absent or unreadable.
function retryAfter(response) {
  const value = response.headers.get("Retry-After");
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - Date.now());
}

let csrfCookieName = "csrftoken";

// The name of Django's CSRF cookie (settings.CSRF_COOKIE_NAME), given by the page.
export function configureApi({ csrfCookie }) {
  if (csrfCookie) csrfCookieName = csrfCookie;
}

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return "";
}

export async function apiCall(url, { method = "GET", body, timeoutMs = 15000 } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const sentDuring = serverStatus.outages;
  let response;
  try {
    response = await fetch(url, {
      method,
      credentials: "same-origin",
      cache: "no-store",
      headers: {
        Accept: "application/json",
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        // Read on every call: logging in again rotates the token.
        ...(method === "GET" ? {} : { "X-CSRFToken": cookie(csrfCookieName) }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: controller.signal,
    });
  } catch (_networkOrTimeout) {
    serverStatus.set(false);
    throw new ApiError(0, null);
  } finally {
    clearTimeout(timer);
  }
  let data = null;
  try {
    data = await response.json();
  } catch (_notJson) {
    data = null;
  }
  const wait = retryAfter(response);
  serverStatus.set(!UNAVAILABLE.has(response.status), wait, sentDuring);
  if (!response.ok) throw new ApiError(response.status, data, wait);
  return { status: response.status, data };
}

// A UUID v4 for each answer: crypto.randomUUID where the page is a secure context, else
// built from crypto.getRandomValues (a demo served over plain http on a LAN address).
export function newSubmissionId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
