// Keys and clicks, from the page's own key table (settings.choices / tags / tools): the same
// table renders the buttons' key hints, so a key does what the page says.

export function bindInput({ settings, screen, actions }) {
  const keyActions = new Map();
  for (const c of settings.choices) {
    for (const k of c.keys) keyActions.set(k.key.toLowerCase(), () => actions.answer(c.choice));
  }
  for (const t of settings.tags) {
    keyActions.set(t.key.toLowerCase(), () => actions.toggleTag(t.tag));
  }
  for (const k of settings.tools.undo) keyActions.set(k, actions.undo);
  for (const k of settings.tools.instructions) keyActions.set(k, () => screen.toggleInstructions());

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
    const action = keyActions.get(key);
    if (!action) return;
    event.preventDefault();
    if (!event.repeat) action(); // a held key answers once
  });

  for (const button of document.querySelectorAll("[data-choice]")) {
    button.addEventListener("click", (event) => {
      button.blur(); // Enter or Space must not repeat the answer on the next pair
      if (event.detail > 1) return; // the second click of a double click
      actions.answer(button.dataset.choice);
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
  const undo = document.getElementById("undo");
  undo.addEventListener("click", () => {
    undo.blur();
    actions.undo();
  });
  const toggle = document.getElementById("toggle-instructions");
  toggle.addEventListener("click", () => {
    toggle.blur();
    screen.toggleInstructions();
  });
}
