// What the labeling page shows: the mode (labeling, loading, empty, paused...), the pair with
// its prompt and images (native size when they fit, zoom, hold to flip), the answers given so
// far to each question, the flash after an answer, notices, the instructions panel, the counts
// in the top bar.

import { renderPrompt } from "./prompt.js";

const MESSAGES = {
  loading: "Loading the next pair…",
  empty: "Nothing left for you in this queue right now. New pairs are looked for every 20 seconds.",
  paused: "This queue is paused. It is checked again every 30 seconds.",
  signed_out: "You were signed out. Your answers are kept in this browser:",
};
const NOTICE_MS = 8000;
// The zoomed view: the images at this many times the size they are shown at (native size, or
// smaller when that does not fit the frame), panned together.
const ZOOM = 2;

// Fetch and decode a pair's two images ahead; the Image elements themselves go on screen later.
export function preload(item, onError) {
  item.preloaded = ["left", "right"].map((side) => {
    const image = new Image();
    image.decoding = "async";
    image.addEventListener("error", () => onError(item));
    image.src = item[side].url;
    image.decode().catch(() => {});
    return image;
  });
}

export class Screen {
  constructor(settings) {
    this.settings = settings;
    this.narrow = window.matchMedia("(max-width: 700px)");
    const el = (id) => document.getElementById(id);
    this.els = {
      app: el("label-app"),
      prompt: el("prompt"),
      left: el("img-left"),
      right: el("img-right"),
      flash: el("flash"),
      message: el("state-message"),
      undo: el("undo"),
      notice: el("notice"),
      flip: el("img-flip"),
      frames: [...document.querySelectorAll("#pair .frame")],
      instructions: el("instructions"),
      instructionsToggle: el("toggle-instructions"),
      zoom: el("zoom"),
      flipButton: el("flip"),
      sessionCount: el("session-count"),
      doneToday: el("done-today"),
      dailyTarget: el("daily-target"),
      dailyTargetOf: el("daily-target-of"),
      dayProgress: el("day-progress"),
      leftInQueue: el("left-in-queue"),
      outbox: el("outbox-status"),
      offline: el("offline"),
    };
    this.noticeTimer = null;
    this.instructionsKey = null;
    // Zoomed in, the frames scroll together: the same spot of both images stays in view.
    for (const frame of this.els.frames) {
      frame.addEventListener("scroll", () => {
        for (const other of this.els.frames) {
          if (other === frame) continue;
          const { scrollLeft: x, scrollTop: y } = frame;
          if (Math.abs(other.scrollLeft - x) > 1) other.scrollLeft = x;
          if (Math.abs(other.scrollTop - y) > 1) other.scrollTop = y;
        }
      });
    }
    window.addEventListener("resize", () => this.layoutZoom());
  }

  setMode(mode, message) {
    const { app, message: box } = this.els;
    app.dataset.state = mode;
    box.hidden = mode === "labeling";
    box.replaceChildren(document.createTextNode(message || MESSAGES[mode] || ""));
    if (mode === "signed_out") {
      const link = document.createElement("a");
      link.href = this.settings.urls.login;
      link.textContent = "log in again to send them";
      box.append(" ", link);
    }
    for (const button of document.querySelectorAll("[data-choice]")) {
      button.disabled = mode !== "labeling";
    }
    if (mode !== "labeling") delete app.dataset.pair;
  }

  // The pair on screen; `ready` turns true once it takes input.
  showItem(item, tags) {
    const { app, prompt } = this.els;
    app.dataset.pair = String(item.pair);
    app.dataset.ready = "false";
    renderPrompt(prompt, item.prompt, this.settings.relations, tags);
    this.els.left = this.place(this.els.left, item.preloaded[0], "img-left", "Left image");
    this.els.right = this.place(this.els.right, item.preloaded[1], "img-right", "Right image");
    // Held to flip, the left frame shows the right image (already fetched for the right frame).
    if (this.els.flip.src !== item.preloaded[1].src) this.els.flip.src = item.preloaded[1].src;
    this.syncTags(tags);
    this.syncAnswers(null);
    this.setMode("labeling");
    this.layoutZoom();
  }

  markReady() {
    this.els.app.dataset.ready = "true";
  }

  place(old, image, id, alt) {
    if (old === image) return image;
    image.id = id;
    image.alt = alt;
    old.replaceWith(image);
    return image;
  }

  syncTags(tags) {
    for (const node of document.querySelectorAll("[data-tag]")) {
      node.setAttribute("aria-pressed", tags.has(node.dataset.tag) ? "true" : "false");
    }
    for (const node of this.els.prompt.querySelectorAll("[data-ref]")) {
      node.setAttribute("aria-pressed", tags.has(node.dataset.ref) ? "true" : "false");
    }
  }

  // The answers given so far to the pair on screen when the queue asks several questions:
  // {choice, criteria: {name: choice}}, or null for none.
  syncAnswers(pending) {
    for (const node of document.querySelectorAll("[data-choice]")) {
      const pressed = Boolean(pending) && pending.choice === node.dataset.choice;
      node.setAttribute("aria-pressed", pressed ? "true" : "false");
    }
    for (const node of document.querySelectorAll("[data-criterion]")) {
      const given = pending ? pending.criteria[node.dataset.criterion] : undefined;
      node.setAttribute("aria-pressed", given === node.dataset.criterionChoice ? "true" : "false");
    }
  }

  // --- Zoom and flip ------------------------------------------------------------------------

  // Zoom in (on the spot of an image clicked, else the middle) or out again.
  toggleZoom(event) {
    const { app, zoom } = this.els;
    const on = app.dataset.zoom !== "on";
    let fx = 0.5;
    let fy = 0.5;
    const img = event && event.target instanceof HTMLImageElement ? event.target : null;
    if (on && img) {
      const box = img.getBoundingClientRect();
      fx = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
      fy = Math.min(1, Math.max(0, (event.clientY - box.top) / box.height));
    }
    app.dataset.zoom = on ? "on" : "off";
    zoom.setAttribute("aria-pressed", on ? "true" : "false");
    this.layoutZoom();
    if (!on) return;
    // The other frame follows (see the scroll listener).
    const frame = this.els.frames[0];
    const shown = this.shownImage(frame);
    frame.scrollLeft = shown.offsetLeft + fx * shown.offsetWidth - frame.clientWidth / 2;
    frame.scrollTop = shown.offsetTop + fy * shown.offsetHeight - frame.clientHeight / 2;
  }

  // The image visible in a frame (the left frame shows the right image while flipped).
  shownImage(frame) {
    if (frame.dataset.side === "right") return this.els.right;
    return this.els.app.dataset.flip === "on" ? this.els.flip : this.els.left;
  }

  // Unzoomed, CSS shows each image at its native size, or smaller to fit its frame (never
  // larger). Zoomed, each is sized here to ZOOM times that.
  layoutZoom() {
    const zoomed = this.els.app.dataset.zoom === "on";
    const frame = this.els.frames[0];
    for (const img of [this.els.left, this.els.flip, this.els.right]) {
      img.style.width = "";
      img.style.height = "";
      if (!zoomed) continue;
      const w = img.naturalWidth;
      const h = img.naturalHeight;
      if (!w || !h) {
        img.addEventListener("load", () => this.layoutZoom(), { once: true });
        continue;
      }
      const fit = Math.min(1, frame.clientWidth / w, frame.clientHeight / h);
      img.style.width = `${Math.round(w * fit * ZOOM)}px`;
      img.style.height = `${Math.round(h * fit * ZOOM)}px`;
    }
  }

  // While held: the left frame shows the right image, so that small differences jump out.
  setFlip(on) {
    const { app, flipButton } = this.els;
    const value = on ? "on" : "off";
    if (app.dataset.flip === value) return;
    const frame = this.els.frames[0];
    const at = [frame.scrollLeft, frame.scrollTop];
    app.dataset.flip = value;
    flipButton.setAttribute("aria-pressed", on ? "true" : "false");
    [frame.scrollLeft, frame.scrollTop] = at;
  }

  // The name of an answer as the screen shows it (stacked images: top and bottom).
  choiceLabel(choice) {
    const c = this.settings.choices.find((item) => item.choice === choice);
    if (!c) return choice;
    return this.narrow.matches && c.narrow_label ? c.narrow_label : c.label;
  }

  flash(text, kind) {
    const { flash } = this.els;
    flash.textContent = text;
    flash.dataset.kind = kind;
    flash.classList.remove("show");
    void flash.offsetWidth; // restart the animation
    flash.classList.add("show");
  }

  notice(text) {
    this.els.notice.textContent = text;
    clearTimeout(this.noticeTimer);
    this.noticeTimer = setTimeout(() => {
      this.els.notice.textContent = "";
    }, NOTICE_MS);
  }

  // progress: the server's (or null); waitingAll / waitingHere: answers in the outbox;
  // serverAvailable: whether the server answered the last call (api.js serverStatus).
  // session: answers given in this tab's session; online: navigator.onLine.
  renderCounts({
    progress,
    session,
    waitingAll,
    waitingHere,
    outboxState,
    durable,
    serverAvailable,
    online,
  }) {
    const { doneToday, leftInQueue, outbox, sessionCount } = this.els;
    sessionCount.textContent = String(session);
    if (progress) {
      const done = progress.done_today + waitingHere;
      doneToday.textContent = String(done);
      this.renderTarget(done, progress.daily_target);
      // The pairs anyone can still take, plus those held here and not answered yet.
      const left = Math.max(0, progress.left_in_queue + progress.held - waitingHere);
      leftInQueue.textContent = `${left}${progress.left_in_queue_capped ? "+" : ""}`;
    }
    outbox.dataset.waiting = String(waitingAll);
    outbox.dataset.state = outboxState;
    let text = "All answers saved";
    if (waitingAll) {
      text = `${waitingAll} answer${waitingAll === 1 ? "" : "s"} waiting to be sent`;
      if (outboxState === "retrying") text += " · retrying";
      if (outboxState === "offline") {
        text += online ? " · server unavailable, retrying" : " · offline";
      }
      if (outboxState === "signed_out") text += " · log in again to send";
      if (outboxState === "paused") text += " · queue paused";
    }
    if (!durable) text += " (kept in this tab only)";
    outbox.textContent = text;
    this.renderOffline(serverAvailable, online, waitingAll, durable);
  }

  // The annotator's own daily target, when they have one: "of N" and a bar.
  renderTarget(done, target) {
    const { dailyTarget, dailyTargetOf, dayProgress } = this.els;
    const has = Number.isInteger(target) && target > 0;
    dailyTargetOf.hidden = !has;
    dayProgress.hidden = !has;
    if (!has) return;
    dailyTarget.textContent = String(target);
    dayProgress.max = target;
    dayProgress.value = Math.min(done, target);
  }

  // The notice while the browser is offline or the server (or its database) does not answer:
  // labeling goes on with the pairs already here, and the answers wait in this browser.
  renderOffline(available, online, waiting, durable) {
    const { offline } = this.els;
    offline.hidden = available && online;
    offline.dataset.waiting = String(waiting);
    if (!offline.hidden) offline.textContent = offlineText(online, waiting, durable);
  }

  setUndoEnabled(enabled) {
    this.els.undo.disabled = !enabled;
  }

  // --- Instructions -----------------------------------------------------------------------

  // Shown above the pair until dismissed; `key` names this annotator, queue and version of the
  // text, so new instructions show again. Without localStorage they show on every visit.
  setupInstructions(key) {
    this.instructionsKey = key;
    let dismissed = false;
    try {
      dismissed = localStorage.getItem(key) === "dismissed";
    } catch (_storageRefused) {
      dismissed = false;
    }
    this.showInstructions(!dismissed);
  }

  instructionsOpen() {
    return !this.els.instructions.hidden;
  }

  showInstructions(open) {
    this.els.instructions.hidden = !open;
    this.els.instructionsToggle.setAttribute("aria-expanded", open ? "true" : "false");
  }

  dismissInstructions() {
    this.showInstructions(false);
    try {
      localStorage.setItem(this.instructionsKey, "dismissed");
    } catch (_storageRefused) {
      // shown again at the next visit
    }
  }

  toggleInstructions() {
    if (this.instructionsOpen()) this.dismissInstructions();
    else {
      this.showInstructions(true);
      this.els.instructions.scrollIntoView({ block: "nearest" });
    }
  }

  // Escape: the instructions if open, else the zoom.
  closeOverlays() {
    if (this.instructionsOpen()) this.dismissInstructions();
    else if (this.els.app.dataset.zoom === "on") this.toggleZoom();
  }
}

function offlineText(online, waiting, durable) {
  const where = durable ? "in this browser" : "in this tab";
  const [why, back] = online
    ? ["The server is unavailable right now.", "the server is back"]
    : ["You are offline.", "the network is back"];
  if (!waiting) return `${why} Your answers are kept ${where} and will be sent when ${back}.`;
  const count = waiting === 1 ? "It" : `${waiting} answers waiting here`;
  return `${why} Your last answer is saved ${where}. ${count} will be sent when ${back}.`;
}
