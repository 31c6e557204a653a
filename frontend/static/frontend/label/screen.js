// What the labeling page shows: the mode (labeling, loading, empty, paused...), the pair with
// its prompt and images, the flash after an answer, notices, the counts in the top bar.

import { renderPrompt } from "./prompt.js";

const MESSAGES = {
  loading: "Loading the next pair…",
  empty: "Nothing left for you in this queue right now. New pairs are looked for every 20 seconds.",
  paused: "This queue is paused. It is checked again every 30 seconds.",
  signed_out: "You were signed out. Your answers are kept in this browser:",
};
const NOTICE_MS = 8000;

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
      instructions: el("instructions"),
      doneToday: el("done-today"),
      leftInQueue: el("left-in-queue"),
      outbox: el("outbox-status"),
      offline: el("offline"),
    };
    this.noticeTimer = null;
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
    this.syncTags(tags);
    this.setMode("labeling");
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
  renderCounts({ progress, waitingAll, waitingHere, outboxState, durable, serverAvailable }) {
    const { doneToday, leftInQueue, outbox } = this.els;
    if (progress) {
      doneToday.textContent = String(progress.done_today + waitingHere);
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
      if (outboxState === "offline") text += " · server unavailable, retrying";
      if (outboxState === "signed_out") text += " · log in again to send";
      if (outboxState === "paused") text += " · queue paused";
    }
    if (!durable) text += " (kept in this tab only)";
    outbox.textContent = text;
    this.renderOffline(serverAvailable, waitingAll, durable);
  }

  // The notice while the server (or its database) does not answer: labeling goes on with the
  // pairs already here, and the answers wait in this browser until the server is back.
  renderOffline(available, waiting, durable) {
    const { offline } = this.els;
    offline.hidden = available;
    offline.dataset.waiting = String(waiting);
    if (available) return;
    const where = durable ? "in this browser" : "in this tab";
    offline.textContent = waiting
      ? `The server is unavailable right now. ${waiting} answer${waiting === 1 ? " is" : "s are"} ` +
        `kept ${where} and will be sent when it is back.`
      : `The server is unavailable right now. Your answers are kept ${where} and will be sent ` +
        "when it is back.";
  }

  setUndoEnabled(enabled) {
    this.els.undo.disabled = !enabled;
  }

  toggleInstructions() {
    this.els.instructions.open = !this.els.instructions.open;
  }

  // Open the instructions the first time this annotator opens this queue here.
  instructionsOnFirstVisit(key) {
    try {
      if (!localStorage.getItem(key)) {
        this.els.instructions.open = true;
        localStorage.setItem(key, "1");
      }
    } catch (_storageRefused) {
      this.els.instructions.open = true;
    }
  }
}
