// The labeling page: one pair on screen, the next ones already leased and their images loaded,
// answers stored in the outbox (outbox.js) before the next pair shows, heartbeats for the pairs
// held, undo of the last answer while its lease holds, progress and the outbox in the top bar.
// A queue that asks several questions (settings.criteria) gets an answer to each before the
// pair is submitted once.

import { apiCall, configureApi, newSubmissionId, serverStatus } from "./api.js";
import { bindInput } from "./input.js";
import { Outbox } from "./outbox.js";
import { Screen, preload } from "./screen.js";

const settings = JSON.parse(document.getElementById("label-settings").textContent);
configureApi({ csrfCookie: settings.csrf_cookie });
const queueId = settings.queue.id;
const prefetch = Math.max(1, settings.queue.prefetch);
// Ask for more pairs once only one is left after the one on screen is answered, not after
// every answer: the refill then has a whole pair's viewing time to arrive (its images are
// preloaded long before they are needed), and the page makes half as many `next` calls per
// answer (bench/labeling: the server's cost per judgment is lowest this way).
const REFILL_BELOW = Math.min(prefetch, 2);
// A key or click this soon after a pair appears was meant for the previous one (a double
// press, a double click): it is ignored rather than answering the new pair unseen.
const INPUT_COOLDOWN_MS = 200;
const HEARTBEAT_MS = Math.min(120000, Math.max(3000, (settings.queue.lease_seconds * 1000) / 3));
const EMPTY_RECHECK_MS = 20000;
const PAUSED_RECHECK_MS = 30000;
const PROGRESS_EVERY_MS = 60000;
// While the server does not answer, it is asked this often (or as its Retry-After says) even
// when nothing else is due, so that the page sees it come back.
const PROBE_MS = 5000;
const MAX_DURATION_MS = 24 * 3600 * 1000;
// The questions after the primary one (whose answer is the judgment's `choice`).
const extraCriteria = (settings.criteria || []).slice(1).map((c) => c.name);
// Answers given in this tab's session (sessionStorage: a reload keeps the count).
const SESSION_KEY = `spatialprefs:session-answers:${settings.user}:${queueId}`;

const screen = new Screen(settings);
const outbox = new Outbox({ userId: settings.user });
const state = {
  mode: "loading",
  current: null, // the item on screen
  buffer: [], // leased items waiting, images preloaded
  answered: new Set(), // pairs answered on this page (sent or not)
  rejected: new Set(), // submission ids the server refused for good
  tags: new Set(),
  pending: null, // {choice, criteria} given so far to the pair on screen (several questions)
  session: readSession(),
  shownAt: 0,
  acceptAt: 0,
  last: null, // {entry, item} of the last answer, for undo
  undoing: false,
  refilling: null,
  retryTimer: null,
  nextFailures: 0,
  progress: null,
  progressTimer: null,
  probeTimer: null,
};

function readSession() {
  try {
    return Math.max(0, Number.parseInt(sessionStorage.getItem(SESSION_KEY) || "0", 10) || 0);
  } catch (_storageRefused) {
    return 0;
  }
}

function countSession(delta) {
  state.session = Math.max(0, state.session + delta);
  try {
    sessionStorage.setItem(SESSION_KEY, String(state.session));
  } catch (_storageRefused) {
    // counted on this page only
  }
}

// --- Display ------------------------------------------------------------------------------

function setMode(mode, message) {
  state.mode = mode;
  screen.setMode(mode, message);
}

function imageFailed(item) {
  if (state.current !== item) return;
  screen.notice("An image did not load. Reload the page, or press S to skip.");
}

function show(item) {
  state.current = item;
  state.mode = "labeling";
  state.tags.clear();
  state.pending = null;
  if (!item.preloaded) preload(item, imageFailed);
  // The preloaded (fetched and decoded) images themselves go on screen: nothing to wait for.
  screen.showItem(item, state.tags);
  state.shownAt = performance.now();
  state.acceptAt = state.shownAt + INPUT_COOLDOWN_MS;
  setTimeout(() => {
    if (state.current === item) screen.markReady();
  }, INPUT_COOLDOWN_MS);
}

function showNextOrWait() {
  state.current = null;
  if (state.buffer.length) show(state.buffer.shift());
  else setMode("loading");
  topUp();
}

function renderCounts() {
  screen.renderCounts({
    progress: state.progress,
    session: state.session,
    waitingAll: outbox.pending().length,
    waitingHere: outbox.pending(queueId).length,
    outboxState: outbox.state,
    durable: outbox.durable,
    serverAvailable: serverStatus.available,
    online: navigator.onLine !== false,
  });
}

function updateUndo() {
  const last = state.last;
  screen.setUndoEnabled(
    Boolean(last) && !state.undoing && Date.parse(last.item.lease_expires_at) > Date.now(),
  );
}

// --- Leasing ------------------------------------------------------------------------------

function onScreen() {
  return [state.current, ...state.buffer].filter(Boolean);
}

function scheduleTopUp(ms) {
  clearTimeout(state.retryTimer);
  state.retryTimer = setTimeout(() => {
    state.retryTimer = null;
    topUp();
  }, ms);
}

function refill() {
  if (state.refilling) return state.refilling;
  state.refilling = (async () => {
    // Answers still in the outbox hold their leases on the server, and `next` returns held
    // pairs first: ask for that many more, and leave those pairs out.
    const waiting = outbox.pending(queueId);
    const count = Math.min(settings.queue.max_prefetch, prefetch + waiting.length);
    try {
      const { data } = await apiCall(settings.urls.next, { method: "POST", body: { count } });
      state.nextFailures = 0;
      const answeredHere = new Set(outbox.pending(queueId).map((e) => e.pair));
      const held = new Map(onScreen().map((item) => [item.pair, item]));
      let added = 0;
      for (const item of data.items) {
        if (held.has(item.pair)) {
          held.get(item.pair).lease_expires_at = item.lease_expires_at;
        } else if (!answeredHere.has(item.pair) && !state.answered.has(item.pair)) {
          preload(item, imageFailed);
          state.buffer.push(item);
          held.set(item.pair, item);
          added += 1;
        }
      }
      // A full answer (as many items as asked) may still be short here when answers were
      // given while it was on its way: worth asking again.
      return { ok: true, more: added > 0 && data.items.length >= count };
    } catch (error) {
      nextFailed(error);
      return { ok: false, more: false };
    } finally {
      state.refilling = null;
    }
  })();
  return state.refilling;
}

function nextFailed(error) {
  if (error.signedOut) {
    if (!state.current) setMode("signed_out");
    return;
  }
  if (error.code === "queue_paused") {
    if (!state.current) setMode("paused");
    scheduleTopUp(PAUSED_RECHECK_MS);
    return;
  }
  if (error.transient) {
    state.nextFailures += 1;
    if (!state.current) setMode("loading", "Connection lost: trying again…");
    const backoff = Math.min(30000, 1000 * 2 ** Math.min(state.nextFailures, 5));
    scheduleTopUp(error.retryAfterMs === null ? backoff : Math.max(1000, error.retryAfterMs));
    return;
  }
  if (!state.current) setMode("closed", error.message);
}

async function topUp() {
  const paused = state.mode === "paused";
  if (!paused && onScreen().length >= REFILL_BELOW) return;
  const { ok, more } = await refill();
  if (!ok) return; // nextFailed has said why and planned the next try
  if (state.current && state.mode !== "labeling") show(state.current); // the queue is back
  if (!state.current && state.buffer.length) show(state.buffer.shift());
  if (state.current) {
    if (more && onScreen().length < REFILL_BELOW) topUp();
  } else {
    setMode("empty");
    scheduleTopUp(EMPTY_RECHECK_MS);
  }
}

async function heartbeat() {
  const items = onScreen();
  if (document.visibilityState !== "visible" || !items.length) return;
  let data;
  try {
    ({ data } = await apiCall(settings.urls.heartbeat, {
      method: "POST",
      body: { pairs: items.slice(0, 50).map((item) => item.pair) },
    }));
  } catch (error) {
    if (error.code === "queue_paused") {
      setMode("paused");
      scheduleTopUp(PAUSED_RECHECK_MS);
    }
    return; // a network failure: the next beat tries again, the lease has minutes left
  }
  for (const renewed of data.renewed) {
    const item = items.find((i) => i.pair === renewed.pair);
    if (item) item.lease_expires_at = renewed.lease_expires_at;
  }
  const lost = new Set(data.lost);
  if (!lost.size) return;
  state.buffer = state.buffer.filter((item) => !lost.has(item.pair));
  if (state.current && lost.has(state.current.pair)) {
    screen.notice("The pair on screen was released after a long pause; here is another one.");
    showNextOrWait();
  } else {
    topUp();
  }
}

// --- Answers ------------------------------------------------------------------------------

function accepting(item) {
  return (
    item &&
    state.mode === "labeling" &&
    performance.now() >= state.acceptAt &&
    !state.answered.has(item.pair)
  );
}

// The primary question's answer (or skip, which skips the whole pair).
function answer(choice) {
  const item = state.current;
  if (!accepting(item)) return;
  if (choice === "skip" || !extraCriteria.length) {
    submit(item, choice, null);
    return;
  }
  state.pending = { choice, criteria: { ...state.pending?.criteria } };
  answeredPart(item, choice);
}

// The answer to one of the other questions.
function answerCriterion(name, choice) {
  const item = state.current;
  if (!accepting(item) || !extraCriteria.includes(name)) return;
  state.pending = {
    choice: state.pending?.choice ?? null,
    criteria: { ...state.pending?.criteria, [name]: choice },
  };
  answeredPart(item, choice);
}

// Submitted once every question has an answer; until then the buttons show those given.
function answeredPart(item, choice) {
  const { pending } = state;
  if (pending.choice && extraCriteria.every((name) => name in pending.criteria)) {
    submit(item, pending.choice, { ...pending.criteria });
    return;
  }
  screen.syncAnswers(pending);
  screen.flash(screen.choiceLabel(choice), choice);
}

function submit(item, choice, criteria) {
  const entry = {
    sid: newSubmissionId(),
    queue: queueId,
    url: settings.urls.submit,
    pair: item.pair,
    choice,
    ...(criteria ? { criteria } : {}),
    reason_tags: [...state.tags],
    duration_ms: Math.min(MAX_DURATION_MS, Math.round(performance.now() - state.shownAt)),
    at: Date.now(),
  };
  state.answered.add(item.pair);
  outbox.add(entry); // stored (localStorage) before the page moves on
  state.last = { entry, item };
  countSession(1);
  screen.flash(screen.choiceLabel(choice), choice);
  showNextOrWait();
  updateUndo();
  renderCounts();
}

function restore(item) {
  state.answered.delete(item.pair);
  if (state.current) state.buffer.unshift(state.current);
  show(item);
}

async function undo() {
  const last = state.last;
  if (!last || state.undoing) return;
  if (Date.parse(last.item.lease_expires_at) <= Date.now()) {
    screen.notice("Too late to undo: the hold on that pair has run out.");
    state.last = null;
    updateUndo();
    return;
  }
  state.undoing = true;
  updateUndo();
  try {
    const sid = last.entry.sid;
    if (outbox.isInflight(sid)) await outbox.settle(sid);
    const entry = outbox.take(sid); // no more sends of it from here on
    if (entry && !entry.attempted) {
      restore(last.item); // it never left this browser: the lease is still ours
      countSession(-1);
    } else if (state.rejected.has(sid)) {
      screen.notice("That answer was not stored, so there is nothing to undo.");
      return;
    } else {
      let item;
      try {
        ({ data: item } = await apiCall(settings.urls.undo, {
          method: "POST",
          body: { client_submission_id: sid },
        }));
      } catch (error) {
        // A send whose answer never came back may not have been stored: the server says.
        if (entry && error.code === "not_found") item = last.item;
        else {
          if (entry) outbox.add(entry); // the answer stands and is sent as before
          throw error;
        }
      }
      restore(item);
      countSession(-1);
      refreshProgressSoon();
    }
    screen.flash("Undone", "undo");
  } catch (error) {
    screen.notice(`Cannot undo: ${error.message}`);
  } finally {
    state.last = null;
    state.undoing = false;
    updateUndo();
    renderCounts();
  }
}

// --- Reason tags --------------------------------------------------------------------------

function toggleTag(tag) {
  if (!state.current) return;
  if (state.tags.has(tag)) state.tags.delete(tag);
  else state.tags.add(tag);
  screen.syncTags(state.tags);
}

// --- Progress -----------------------------------------------------------------------------

async function refreshProgress() {
  try {
    const { data } = await apiCall(settings.urls.progress);
    state.progress = data;
    renderCounts();
  } catch (_error) {
    // Shown again at the next refresh; labeling goes on meanwhile.
  }
}

function refreshProgressSoon() {
  if (state.progressTimer) return;
  state.progressTimer = setTimeout(() => {
    state.progressTimer = null;
    refreshProgress();
  }, 800);
}

// --- Server unavailable -------------------------------------------------------------------

function serverChanged() {
  renderCounts();
  clearTimeout(state.probeTimer);
  if (serverStatus.available) {
    // Back: send what waits and fetch pairs now instead of at the next planned try.
    outbox.kick({ force: true });
    if (state.retryTimer) scheduleTopUp(0);
    return;
  }
  probe();
}

// The browser says the network is back: ask for pairs now rather than at the next planned try
// (the outbox sends what waits at once too), and see whether the server answers.
function networkBack() {
  renderCounts();
  if (state.retryTimer || !state.current) {
    clearTimeout(state.retryTimer);
    state.retryTimer = null;
    topUp();
  }
  if (!serverStatus.available) refreshProgress();
}

function probe() {
  state.probeTimer = setTimeout(async () => {
    if (serverStatus.available) return;
    await refreshProgress();
    if (!serverStatus.available) probe();
  }, Math.max(1000, serverStatus.retryAfterMs ?? PROBE_MS));
}

// --- Start ------------------------------------------------------------------------------

function start() {
  bindInput({ settings, screen, actions: { answer, answerCriterion, toggleTag, undo } });
  outbox.addEventListener("change", renderCounts);
  outbox.addEventListener("state", renderCounts);
  serverStatus.addEventListener("change", serverChanged);
  window.addEventListener("online", networkBack);
  window.addEventListener("offline", renderCounts);
  outbox.addEventListener("acked", refreshProgressSoon);
  // A queue that gives feedback says why, after a missed pair whose answer is known.
  outbox.addEventListener("acked", (event) => {
    const feedback = event.detail.data && event.detail.data.feedback;
    if (feedback) screen.notice(`Feedback on an earlier pair: ${feedback}`);
  });
  outbox.addEventListener("rejected", (event) => {
    const { entry, error } = event.detail;
    state.rejected.add(entry.sid);
    screen.notice(`An answer could not be stored: ${error.message}`);
    refreshProgressSoon();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") {
      heartbeat();
      outbox.kick();
    }
  });
  screen.setupInstructions(
    `spatialprefs:instructions:${settings.user}:${queueId}:${settings.instructions_version}`,
  );
  renderCounts();
  outbox.kick(); // answers left by an earlier page (a reload, a closed tab) go first
  refreshProgress();
  topUp();
  setInterval(heartbeat, HEARTBEAT_MS);
  setInterval(refreshProgress, PROGRESS_EVERY_MS);
  setInterval(updateUndo, 5000);
}

start();
