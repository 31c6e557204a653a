// Keys and clicks, from the page's own key table (settings.choices / criterion_keys / tags /
// tools): the same table renders the buttons' key hints, so a key does what the page says.

export function bindInput({ settings, screen, actions }) {
  const keyActions = new Map();
  const holdActions = new Map(); // on while the key is held down
  const on = (keys, action, map = keyActions) => {
    for (const k of keys) map.set(k.key.toLowerCase(), action);
  };
  for (const c of settings.choices) on(c.keys, () => actions.answer(c.choice));
  (settings.criteria || []).slice(1).forEach((criterion, i) => {
    for (const c of (settings.criterion_keys || [])[i] || []) {
      on(c.keys, () => actions.answerCriterion(criterion.name, c.choice));
    }
  });
  for (const t of settings.tags) on([t], () => actions.toggleTag(t.tag));
  const { tools } = settings;
  on(tools.undo, actions.undo);
  on(tools.instructions, () => screen.toggleInstructions());
  on(tools.close, () => screen.closeOverlays());
  on(tools.zoom, () => screen.toggleZoom());
  on(tools.flip, screen.setFlip.bind(screen), holdActions);

  const held = new Set();
  const release = () => {
    for (const key of held) holdActions.get(key)(false);
    held.clear();
  };

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.isComposing) return;
    if (event.target instanceof Element && event.target.closest("input, textarea, select")) return;
    const key = event.key.toLowerCase();
    if ((event.ctrlKey || event.metaKey) && key === "z" && !event.altKey) {
      event.preventDefault();
      if (!event.repeat) actions.undo();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const hold = holdActions.get(key);
    if (hold) {
      event.preventDefault();
      if (!held.has(key)) {
        held.add(key);
        hold(true);
      }
      return;
    }
    const action = keyActions.get(key);
    if (!action) return;
    event.preventDefault();
    if (!event.repeat) action(); // a held key answers once
  });
  document.addEventListener("keyup", (event) => {
    const key = event.key.toLowerCase();
    if (!held.has(key)) return;
    held.delete(key);
    holdActions.get(key)(false);
  });
  // A key released while the page had no focus sends no keyup.
  window.addEventListener("blur", release);

  for (const button of document.querySelectorAll("[data-choice]")) {
    button.addEventListener("click", (event) => {
      button.blur(); // Enter or Space must not repeat the answer on the next pair
      if (event.detail > 1) return; // the second click of a double click
      actions.answer(button.dataset.choice);
    });
  }
  for (const button of document.querySelectorAll("[data-criterion]")) {
    button.addEventListener("click", (event) => {
      button.blur();
      if (event.detail > 1) return;
      actions.answerCriterion(button.dataset.criterion, button.dataset.criterionChoice);
    });
  }
  for (const button of document.querySelectorAll("[data-tag]")) {
    button.addEventListener("click", () => {
      button.blur();
      actions.toggleTag(button.dataset.tag);
    });
  }
  document.getElementById("prompt").addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target.closest("[data-ref]") : null;
    if (target) actions.toggleTag(target.dataset.ref);
  });
  const click = (id, action) => {
    const button = document.getElementById(id);
    button.addEventListener("click", () => {
      button.blur();
      action();
    });
  };
  click("undo", actions.undo);
  click("toggle-instructions", () => screen.toggleInstructions());
  click("dismiss-instructions", () => screen.dismissInstructions());
  click("zoom", () => screen.toggleZoom());
  // A click on an image zooms in on that spot (and out again).
  for (const frame of document.querySelectorAll("#pair .frame")) {
    frame.addEventListener("click", (event) => screen.toggleZoom(event));
  }
  // Hold to flip: while the button is pressed (mouse, pen or finger).
  const flip = document.getElementById("flip");
  flip.addEventListener("pointerdown", (event) => {
    event.preventDefault(); // no focus, no text selection, no long-press menu
    flip.setPointerCapture?.(event.pointerId);
    screen.setFlip(true);
  });
  for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
    flip.addEventListener(type, () => screen.setFlip(false));
  }
  flip.addEventListener("contextmenu", (event) => event.preventDefault());
}
