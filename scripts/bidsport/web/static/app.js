// The export page: plain JavaScript, no framework, nothing fetched from elsewhere.
"use strict";

const initial = JSON.parse(document.getElementById("initial").textContent);
const $ = (id) => document.getElementById(id);
const form = $("export-form");
let current = null; // the export this page follows
let events = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function values() {
  const data = { cohort: $("cohort").value };
  for (const name of ["formats", "include_intents", "exclude_intents", "include_provenance", "exclude_provenance"]) {
    data[name] = [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((i) => i.value);
  }
  for (const name of ["layout", "overwrite"]) {
    const chosen = form.querySelector(`input[name="${name}"]:checked`);
    data[name] = chosen ? chosen.value : "";
  }
  for (const name of ["output_dir", "subject_identifier_source", "convert_workers", "copy_workers"]) {
    data[name] = $(name).value;
  }
  return data;
}

async function post(url, data) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(data || {}),
  });
  let body = {};
  try { body = await response.json(); } catch (e) { body = { errors: { _form: `${response.status} ${response.statusText}` } }; }
  return { ok: response.ok, status: response.status, body };
}

function showErrors(errors) {
  for (const node of document.querySelectorAll(".error[id^='error-']")) {
    node.textContent = "";
    const field = $(node.id.slice("error-".length));
    if (field) field.removeAttribute("aria-invalid");
  }
  for (const [name, message] of Object.entries(errors || {})) {
    const node = $(`error-${name}`) || $("error-_form");
    node.textContent = message;
    const field = $(name);
    if (field) field.setAttribute("aria-invalid", "true");
  }
}

// ---------------------------------------------------------------- cohort
async function loadCohort() {
  const id = $("cohort").value;
  $("cohort-counts").replaceChildren();
  $("kept").textContent = "";
  if (!id) return;
  const response = await fetch(`/api/cohort?id=${encodeURIComponent(id)}`);
  const data = await response.json();
  if (!response.ok) { showErrors(data.errors); return; }
  showErrors({});
  const c = data.counts;
  const head = el("tr", {}, el("th", { text: "intent \\ provenance", scope: "col" }), ...c.provenances.map((p) => el("th", { text: p, scope: "col" })), el("th", { text: "total", scope: "col" }));
  const rows = c.intents.map((intent, i) => el("tr", {}, el("th", { text: intent, scope: "row" }),
    ...c.cells[i].map((n) => el("td", { text: n ? String(n) : "" })), el("td", { text: String(c.cells[i].reduce((a, b) => a + b, 0)) })));
  const table = el("table", { id: "counts-table" }, el("caption", { text: `${data.label}: ${c.total} series by intent × provenance` }), el("thead", {}, head), el("tbody", {}, ...rows));
  $("cohort-counts").replaceChildren(table);
  for (const name of ["include_provenance", "exclude_provenance"]) addOptions(name, c.provenances);
  const select = $("subject_identifier_source");
  const wanted = select.value !== "subject_code" ? select.value : select.dataset.default;
  select.replaceChildren(el("option", { value: "subject_code", text: "subject_code" }), ...data.id_types.map((t) => el("option", { value: t, text: t })));
  if ([...select.options].some((o) => o.value === wanted)) select.value = wanted;
  await updateCount();
}

function addOptions(name, provenances) {
  const box = $(name).querySelector(".options");
  const have = new Set([...box.querySelectorAll("input")].map((i) => i.value));
  for (const p of provenances) {
    if (have.has(p)) continue;
    box.append(el("label", {}, el("input", { type: "checkbox", name, value: p }), ` ${p}`));
  }
}

let countTimer = null;
function scheduleCount() { clearTimeout(countTimer); countTimer = setTimeout(updateCount, 150); }

async function updateCount() {
  if (!$("cohort").value) return;
  const { ok, body } = await post("/api/count", values());
  if (!ok) return;
  const removed = Object.entries(body.removed).filter(([, n]) => n).map(([k, n]) => `${k} removed ${n}`);
  $("kept").textContent = `The filters keep ${body.kept} of ${body.total} series` + (removed.length ? ` (${removed.join(", ")}).` : ".");
}

let checkTimer = null;
function scheduleCheck() { clearTimeout(checkTimer); checkTimer = setTimeout(async () => { const r = await post("/api/check", values()); showErrors(r.body.errors); }, 300); }

// ---------------------------------------------------------------- preview and review
let previewGeneration = 0;
let shownRows = 0; // rows of the review table drawn so far (kept when an edit re-plans)
let reviewObserver = null;
let keepPlace = false; // set by an edit: the re-planned table keeps its rows and scroll position
const PAGE_ROWS = 100; // drawn at once; more as the user scrolls, so a 5,000-series cohort opens quickly
const ENTITY_FIELDS = ["acq", "run", "dir", "ce", "rec"];

async function preview() {
  const generation = ++previewGeneration;
  const { ok, body } = await post("/api/preview", values());
  if (generation !== previewGeneration) return; // a newer preview is on its way
  showErrors(body.errors);
  if (!ok) { $("preview").hidden = true; return; }
  const p = body.preview;
  $("preview").hidden = false;
  const planned = p.rows.filter((r) => !r.excluded).length;
  $("preview-summary").textContent = p.errors.length && !p.rows.length ? "" : `${planned} series planned, ${p.excluded.length} excluded (of ${p.total}). Nothing has been exported yet.`;
  $("preview-removed").replaceChildren(...Object.entries(p.removed).map(([k, n]) => el("li", { text: `${k}: removed ${n} series` })));
  const notes = [...p.errors.map((t) => el("pre", { class: "error", text: t })), ...p.warnings.map((t) => el("p", { class: "warning", text: `Warning: ${t}` }))];
  $("preview-warnings").replaceChildren(...notes);
  if (p.overrides) $("overrides-path").textContent = p.overrides;
  const tbody = $("preview-plan").querySelector("tbody");
  const cohort = $("cohort").value;
  const scroller = $("review-scroll");
  const top = scroller.scrollTop;
  const sentinel = $("review-more");
  const keep = keepPlace;
  keepPlace = false;
  let next = 0;
  const more = (count) => {
    if (generation !== previewGeneration) return;
    const fragment = document.createDocumentFragment();
    for (const r of p.rows.slice(next, next + count)) fragment.append(reviewRow(r, cohort));
    next = Math.min(next + count, p.rows.length);
    shownRows = next;
    sentinel.textContent = next < p.rows.length ? `Showing ${next} of ${p.rows.length} series; scroll for more.` : "";
    tbody.append(fragment);
    if (next >= p.rows.length) observer.disconnect();
  };
  const observer = new IntersectionObserver((entries) => { if (entries.some((e) => e.isIntersecting)) more(PAGE_ROWS); },
    { root: scroller, rootMargin: "400px" });
  if (reviewObserver) reviewObserver.disconnect();
  reviewObserver = observer;
  tbody.replaceChildren();
  more(Math.max(PAGE_ROWS, keep ? shownRows : 0));
  if (keep) scroller.scrollTop = top; // an edit re-plans: the reviewer stays where they were
  if (next < p.rows.length) observer.observe(sentinel);
}

function reviewRow(r, cohort) {
  const name = r.series;
  const thumb = el("img", {
    src: `/api/thumbnail?cohort=${encodeURIComponent(cohort)}&uid=${encodeURIComponent(r.uid)}&stack=${r.stack_index}`,
    alt: `Thumbnail of ${name}`, loading: "lazy", decoding: "async", width: "64", height: "64",
  });
  const all = el("input", { type: "checkbox", "aria-label": `Apply to all series described ${name}` });
  const target = () => (all.checked ? { scope: "description", description: r.description } : { uid: r.uid, stack_index: r.stack_index });
  const exclude = el("input", { type: "checkbox", "aria-label": `Exclude ${name}` });
  exclude.checked = r.excluded;
  // Unticking writes 0 (keep), which also overrides a rule that excludes the series.
  exclude.addEventListener("change", () => decide(target(), "exclude", exclude.checked ? "1" : "0"));
  const decisions = el("td", { class: "decisions" }, el("label", {}, exclude, " Exclude"));
  if (r.datatype === "func") {
    const task = el("input", { type: "text", value: r.task, "aria-label": `Task for ${name}`, autocomplete: "off" });
    task.addEventListener("change", () => decide(target(), "task", task.value.trim()));
    decisions.append(el("label", {}, "Task ", task));
  }
  if (!r.excluded) {
    const details = el("details", {}, el("summary", { text: "Entities" }));
    details.addEventListener("toggle", () => { // its fields are made when first opened: fewer nodes per row
      if (details.querySelector("input")) return;
      details.append(...ENTITY_FIELDS.map((key) => {
        const input = el("input", { type: "text", value: r.entities[key] || "", "aria-label": `${key} for ${name}`, autocomplete: "off" });
        input.addEventListener("change", () => decide(target(), key, input.value.trim()));
        return el("label", {}, `${key} `, input);
      }));
    });
    decisions.append(details);
  }
  if (r.description) decisions.append(el("label", { class: "hint" }, all, " apply to all series with this description"));
  const badges = [];
  if (r.excluded) badges.push(el("span", { class: "badge bad", text: "excluded" }));
  if (!r.raw_bids && !r.excluded) badges.push(el("span", { class: "badge", text: "not raw BIDS", title: "no raw BIDS name: listed in .bidsignore" }));
  if (r.collides) badges.push(el("span", { class: "badge bad", text: "collides" }));
  if (r.override) badges.push(el("span", { class: "badge note", text: "override", title: r.override }));
  const row = el("tr", { class: r.excluded ? "excluded" : "", "data-uid": r.uid },
    el("td", {}, thumb), el("td", { text: r.subject }), el("td", { text: r.session }), el("td", { text: name }),
    el("td", { text: [r.intent, r.provenance, r.classification].filter((t) => t).join(" · ") }),
    el("td", {}, ...r.destinations.map((d) => el("code", { text: d })), ...badges), decisions);
  return row;
}

async function decide(target, column, value) {
  const { ok, body } = await post("/api/overrides", { ...values(), target, column, value });
  showErrors(body.errors);
  keepPlace = true;
  if (ok) await preview();
}

// ---------------------------------------------------------------- export
async function start() {
  const data = values();
  if (data.overwrite === "clean") {
    // Ask only about a folder the workflow would accept.
    const checked = await post("/api/check", data);
    showErrors(checked.body.errors);
    if (Object.keys(checked.body.errors || {}).length) return;
    if (!window.confirm(`Clean will empty ${data.output_dir} before exporting: every file in it is deleted. Continue?`)) return;
  }
  $("start-button").disabled = true;
  $("status").textContent = "Starting the export…";
  try {
    const { ok, body } = await post("/api/exports", data);
    showErrors(body.errors);
    if (ok) follow(body.export);
  } finally {
    $("start-button").disabled = false;
  }
}

function follow(exp) {
  current = exp.id;
  if (events) events.close();
  $("progress").value = 0; // a new export starts from zero
  $("progress").max = 1;
  $("review").hidden = true;
  $("export").hidden = false;
  render(exp);
  if (["finished", "failed", "cancelled", "interrupted"].includes(exp.status)) { fetch(`/api/exports/${exp.id}`).then((r) => r.json()).then(render); return; }
  events = new EventSource(`/api/exports/${exp.id}/events`);
  events.addEventListener("export", (e) => render(JSON.parse(e.data)));
  events.addEventListener("end", (e) => { events.close(); events = null; render(JSON.parse(e.data)); refreshHistory(); });
}

function render(exp) {
  if (exp.id !== current) return;
  const total = Math.max(exp.total, 1);
  $("progress").max = total;
  $("progress").value = Math.min(exp.done, total);
  $("progress-text").textContent = `${exp.done} / ${exp.total} series`;
  $("status").textContent = exp.status_text;
  $("cancel-button").hidden = !(exp.status === "running" || exp.status === "cancelling");
  $("cancel-button").disabled = exp.status === "cancelling";
  if (exp.log) { const log = $("log"); log.textContent = exp.log.join("\n"); log.scrollTop = log.scrollHeight; }
  if (["finished", "failed", "cancelled", "interrupted"].includes(exp.status)) review(exp);
}

function review(exp) {
  $("review").hidden = false;
  $("summary").replaceChildren(...Object.entries(exp.counts).flatMap(([k, n]) => [el("dt", { text: k }), el("dd", { text: String(n) })]));
  $("failed").replaceChildren(...(exp.failed.length ? [el("h3", { text: "Failed series" }), el("ul", {}, ...exp.failed.map((f) =>
    el("li", {}, el("strong", { text: `sub-${f.subject}${f.session ? " ses-" + f.session : ""} ${f.series}: ` }), f.reason)))] : []));
  $("link-report").href = `/exports/${exp.id}/report`;
  $("link-validation").href = `/exports/${exp.id}/validation`;
  $("link-qc").href = `/exports/${exp.id}/qc-report`;
  $("link-qc").hidden = !exp.qc;
  findings(exp.id);
}

// ---------------------------------------------------------------- findings
async function findings(id) {
  const response = await fetch(`/api/exports/${id}/findings`);
  if (!response.ok || id !== current) return;
  const data = await response.json();
  $("validate-button").hidden = data.validated;
  $("validate-button").dataset.export = id;
  const { errors, warnings } = data.counts;
  $("findings-status").textContent = data.validated
    ? `The BIDS validator reports ${errors} error${errors === 1 ? "" : "s"} and ${warnings} warning${warnings === 1 ? "" : "s"}.`
    : "Not validated yet.";
  const issues = (list, kind) => list.map((i) => el("li", { class: `${kind}-item`, title: i.message,
    text: i.keys.length ? `${i.code}: ${i.keys.join(", ")}` : `${i.code}${i.message ? ": " + i.message : ""}` }));
  $("findings").querySelector("tbody").replaceChildren(...data.files.map((f) => el("tr", {},
    el("td", {}, el("code", { text: f.path })),
    el("td", {}, ...(f.errors.length || f.warnings.length ? [el("ul", {}, ...issues(f.errors, "error"), ...issues(f.warnings, "warning"))] : [])),
    el("td", {}, ...(f.qc ? [el("a", { href: f.qc, target: "_blank", text: "QC picture", "aria-label": `QC picture of ${f.path}` })] : [])))));
}

async function validateExport() {
  const id = $("validate-button").dataset.export;
  $("validate-button").disabled = true;
  $("findings-status").textContent = "Running the BIDS validator…";
  const { ok, body } = await post(`/api/exports/${id}/validate`, {});
  $("validate-button").disabled = false;
  if (!ok) { $("findings-status").textContent = body.error || "The validator could not run."; return; }
  await findings(id);
}

async function cancel() {
  if (!current) return;
  $("cancel-button").disabled = true;
  const { body } = await post(`/api/exports/${current}/cancel`, {});
  if (body.status_text) render(body);
}

function renderHistory(list) {
  if (!list.length) {
    $("history-table").querySelector("tbody").replaceChildren(el("tr", {}, el("td", { colspan: "6", text: "No exports yet." })));
    return;
  }
  $("history-table").querySelector("tbody").replaceChildren(...list.map((e) => el("tr", {},
    el("td", { text: e.started.replace("T", " ") }), el("td", { text: e.cohort }), el("td", {}, el("code", { text: e.output_dir })),
    el("td", { text: e.status }), el("td", { text: Object.entries(e.counts).map(([k, n]) => `${k} ${n}`).join(", ") }),
    el("td", {}, el("a", { href: `/?export=${e.id}`, text: "Show" })))));
}

async function refreshHistory() {
  const response = await fetch("/api/exports");
  if (response.ok) renderHistory(await response.json());
}

// ---------------------------------------------------------------- wiring
$("cohort").addEventListener("change", loadCohort);
for (const name of ["include_intents", "exclude_intents", "include_provenance", "exclude_provenance"]) {
  $(name).addEventListener("change", scheduleCount);
}
for (const id of ["output_dir", "formats", "layout", "overwrite", "convert_workers", "copy_workers"]) {
  $(id).addEventListener("change", scheduleCheck);
}
$("preview-button").addEventListener("click", preview);
$("start-button").addEventListener("click", start);
$("cancel-button").addEventListener("click", cancel);
$("validate-button").addEventListener("click", validateExport);

renderHistory(initial.exports);
if (initial.selected) loadCohort();
// Reopening the page shows the export asked for, else the running one, else the last one.
const shown = initial.exports.find((e) => e.id === initial.show)
  || initial.exports.find((e) => e.status === "running" || e.status === "cancelling")
  || initial.exports[0];
if (shown) follow(shown);
