// The prompt with its spatial phrases highlighted, built from the prompt's structure: for each
// relation of the structure, every English phrase the spatial engine accepts for it (its
// synonyms) is looked for in the text, longest first; object names are marked too. The DOM is
// built from text nodes only, so nothing in a prompt can become markup.

const WORD = /[\p{L}\p{N}]/u;

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function phrasePattern(phrase) {
  // Words separated by any run of spaces, and a whole-word end.
  const words = phrase.trim().split(/\s+/).map(escapeRegExp).join("\\s+");
  return new RegExp(`(?:${words})(?![\\p{L}\\p{N}])`, "iuy");
}

function plurals(name) {
  const forms = [name];
  if (/(s|x|z|ch|sh)$/i.test(name)) forms.push(`${name}es`);
  else if (/[^aeiou]y$/i.test(name)) forms.push(`${name.slice(0, -1)}ies`);
  else forms.push(`${name}s`);
  return forms;
}

// Non-overlapping spans [start, end, value] of the candidates (longest first at each position).
function findSpans(text, candidates, taken) {
  const patterns = candidates
    .map((c) => ({ ...c, re: phrasePattern(c.phrase) }))
    .sort((a, b) => b.phrase.length - a.phrase.length);
  const spans = [];
  let i = 0;
  while (i < text.length) {
    const atWordStart = WORD.test(text[i]) && (i === 0 || !WORD.test(text[i - 1]));
    const blocked = taken.some(([s, e]) => i >= s && i < e);
    let matched = null;
    if (atWordStart && !blocked) {
      for (const candidate of patterns) {
        candidate.re.lastIndex = i;
        const m = candidate.re.exec(text);
        if (!m) continue;
        const end = i + m[0].length;
        if (taken.some(([s, e]) => s < end && e > i)) continue;
        matched = [i, end, candidate.value];
        break;
      }
    }
    if (matched) {
      spans.push(matched);
      i = matched[1];
    } else {
      i += 1;
    }
  }
  return spans;
}

// Segments of the text: {text, kind: "relation" | "object" | null, ref, relation}.
export function promptSegments(text, prompt, phrasesByRelation) {
  const relations = Array.isArray(prompt.relations) ? prompt.relations : [];
  const objects = Array.isArray(prompt.objects) ? prompt.objects : [];
  const relationCandidates = [];
  for (const id of new Set(relations.map((r) => r.relation))) {
    for (const phrase of phrasesByRelation[id] || [id.replace(/_/g, " ")]) {
      relationCandidates.push({ phrase, value: id });
    }
  }
  const relSpans = findSpans(text, relationCandidates, []);
  // The n-th phrase of a relation in the text is the n-th relation of that kind in the structure.
  const used = new Set();
  const marked = relSpans.map(([start, end, id]) => {
    let index = relations.findIndex((r, k) => r.relation === id && !used.has(k));
    if (index >= 0) used.add(index);
    else index = relations.findIndex((r) => r.relation === id);
    return { start, end, kind: "relation", ref: `relation:${index}`, relation: id };
  });
  const objectCandidates = [];
  for (const object of objects) {
    if (!object || typeof object.name !== "string") continue;
    const words = Object.values(object.attributes || {}).filter((w) => typeof w === "string");
    for (const form of plurals(object.name)) {
      objectCandidates.push({ phrase: form, value: object.id });
      // "a red cat": the object's words count as the object too.
      for (const word of words) objectCandidates.push({ phrase: `${word} ${form}`, value: object.id });
      if (words.length === 2) {
        objectCandidates.push({ phrase: `${words[0]} ${words[1]} ${form}`, value: object.id });
        objectCandidates.push({ phrase: `${words[1]} ${words[0]} ${form}`, value: object.id });
      }
    }
  }
  const taken = marked.map((m) => [m.start, m.end]);
  for (const [start, end, id] of findSpans(text, objectCandidates, taken)) {
    marked.push({ start, end, kind: "object", ref: `object:${id}`, relation: null });
  }
  marked.sort((a, b) => a.start - b.start);
  const segments = [];
  let cursor = 0;
  for (const m of marked) {
    if (m.start > cursor) segments.push({ text: text.slice(cursor, m.start), kind: null });
    segments.push({ text: text.slice(m.start, m.end), kind: m.kind, ref: m.ref, relation: m.relation });
    cursor = m.end;
  }
  if (cursor < text.length) segments.push({ text: text.slice(cursor), kind: null });
  return segments;
}

export function renderPrompt(container, prompt, phrasesByRelation, selectedTags) {
  const fragment = document.createDocumentFragment();
  for (const seg of promptSegments(prompt.text || "", prompt, phrasesByRelation)) {
    if (!seg.kind) {
      fragment.append(document.createTextNode(seg.text));
      continue;
    }
    const el = document.createElement(seg.kind === "relation" ? "mark" : "span");
    el.className = seg.kind === "relation" ? "rel" : "obj";
    el.textContent = seg.text;
    el.dataset.ref = seg.ref;
    el.setAttribute("role", "button");
    el.setAttribute("aria-pressed", selectedTags.has(seg.ref) ? "true" : "false");
    el.title =
      seg.kind === "relation"
        ? "Spatial relation: click if this is what is wrong"
        : "Object: click if this is what is wrong";
    fragment.append(el);
  }
  container.replaceChildren(fragment);
}
