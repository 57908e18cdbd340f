// Opspawn console: one ES module, no framework, no build step, nothing from elsewhere.
//
// Everything the page shows comes from the API it is served by (the console lives at
// <api>/console, so the API is "../" from this file), called with the API key the user
// typed once. The key stays in sessionStorage (this tab only, gone when it closes) and
// travels only in the Authorization header: never in a URL, never logged.
//
// Text from the API is only ever set as text (textContent, SVG <text>), never parsed as
// HTML; the server's Content-Security-Policy forbids inline script and style anyway.

const API_BASE = new URL("../", import.meta.url);
const KEY_STORAGE = "opspawn.apiKey";
const LIST_POLL_MS = 3000;
const TASK_POLL_MS = 1500;
const PAGE_SIZE = 25;
const STATUSES = [
  "QUEUED", "RUNNING", "WAITING_APPROVAL", "SUCCEEDED", "FAILED", "CANCELLED", "BUDGET_EXCEEDED",
];
const TERMINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED", "BUDGET_EXCEEDED"]);
const SVG_NS = "http://www.w3.org/2000/svg";

// --- small DOM helpers ------------------------------------------------------------------

/** An element: attributes (`on*` become listeners), then children (strings become text). */
function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  setAttributes(element, attrs);
  append(element, children);
  return element;
}

/** An SVG element, the same way. */
function s(tag, attrs = {}, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  setAttributes(element, attrs);
  append(element, children);
  return element;
}

function setAttributes(element, attrs) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "value" && "value" in element) {
      element.value = value;
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function announce(text) {
  const region = document.getElementById("announcer");
  region.textContent = "";
  // A fresh text node after a tick, so screen readers announce a repeated message too.
  setTimeout(() => { region.textContent = text; }, 50);
}

// --- formatting -------------------------------------------------------------------------

const numberFormat = new Intl.NumberFormat("en-US");

function formatTokens(n) { return numberFormat.format(n || 0); }

function formatCost(usd) {
  const value = usd || 0;
  if (value === 0) return "$0";
  return value < 0.01 ? `$${value.toFixed(6)}` : `$${value.toFixed(4)}`;
}

function formatDuration(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  const minutes = Math.floor(ms / 60000);
  return `${minutes} min ${Math.round((ms % 60000) / 1000)} s`;
}

function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

function timeElement(iso) {
  return iso ? h("time", { datetime: iso, title: iso }, formatTime(iso)) : "";
}

function statusBadge(status, attrs = {}) {
  return h("span", { class: "badge", "data-status": status, ...attrs }, status.replaceAll("_", " "));
}

function pretty(value) {
  return JSON.stringify(value, null, 2);
}

function truncate(text, length) {
  return text.length > length ? `${text.slice(0, length - 1)}\u2026` : text;
}

// --- the API ----------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    const message = (body && body.message) || `the API answered ${status}`;
    super(message);
    this.status = status;
    this.body = body || {};
  }
}

function apiKey() { return sessionStorage.getItem(KEY_STORAGE); }

/** Calls the API (`path` relative to its base, e.g. "tasks?limit=5"); JSON in, JSON out. */
async function api(method, path, { body, headers = {} } = {}) {
  const key = apiKey();
  if (!key) throw new ApiError(401, { error: "unauthorized", message: "no API key given" });
  const init = {
    method,
    headers: { Accept: "application/json", Authorization: `Bearer ${key}`, ...headers },
    cache: "no-store",
    credentials: "omit",
    referrerPolicy: "no-referrer",
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(new URL(path, API_BASE), init);
  } catch (error) {
    throw new ApiError(0, { error: "network", message: `the API could not be reached (${error.message})` });
  }
  let data = null;
  const text = await response.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = { message: text.slice(0, 300) }; }
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function newIdempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// --- the frame: routing, polling, the key -------------------------------------------------

const main = () => document.getElementById("main");
let currentView = null; // { stop() } of the page on screen

/** Runs `tick` now and then every `ms` while the view is on screen (paused in a hidden tab). */
function poller(tick, ms) {
  let timer = null;
  let stopped = false;
  const run = async () => {
    timer = null;
    if (stopped) return;
    if (!document.hidden) {
      let again = true;
      try { again = (await tick()) !== false; } catch (error) { console.warn("refresh failed", error.status || error); }
      if (!again) return;
    }
    if (!stopped) timer = setTimeout(run, ms);
  };
  run();
  return {
    stop() { stopped = true; if (timer) clearTimeout(timer); },
  };
}

function errorAlert(error) {
  const fields = (error.body && error.body.fields) || [];
  return h("div", { class: "alert error", role: "alert" },
    h("strong", {}, error.status ? `Error ${error.status}: ` : "Error: "), error.message,
    fields.length ? h("ul", {}, fields.map((f) => h("li", {}, h("code", {}, f.field), ": ", f.problem))) : "");
}

function renderKeyState() {
  const box = document.getElementById("key-state");
  box.replaceChildren();
  if (apiKey()) {
    box.append(h("span", {}, "API key set for this tab"),
      h("button", { type: "button", onclick: forgetKey }, "Forget key"));
  }
}

function forgetKey() {
  sessionStorage.removeItem(KEY_STORAGE);
  renderKeyState();
  announce("API key forgotten");
  route();
}

function markNav(name) {
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function show(title, ...content) {
  const heading = h("h1", { tabindex: "-1" }, title);
  main().replaceChildren(heading, ...content);
  document.title = `${title} \u2013 Opspawn console`;
  heading.focus();
  return heading;
}

function route() {
  if (currentView) currentView.stop();
  currentView = null;
  const hash = location.hash || "#/tasks";
  // Anchors inside the page (the skip link's #main) are not routes.
  if (!hash.startsWith("#/")) return;
  if (!apiKey()) { markNav(null); keyView(); return; }
  const [, page, id] = hash.split("/");
  if (page === "new") { markNav("new"); newTaskView(); return; }
  if (page === "tasks" && id) { markNav("tasks"); currentView = taskView(decodeURIComponent(id)); return; }
  markNav("tasks");
  currentView = listView();
}

// --- the key ------------------------------------------------------------------------------

function keyView() {
  const input = h("input", {
    id: "api-key", name: "api-key", type: "password", autocomplete: "off", spellcheck: "false",
    required: true, "aria-describedby": "api-key-hint",
  });
  const problem = h("div");
  const form = h("form", { class: "panel", novalidate: true },
    h("div", { class: "field" },
      h("label", { for: "api-key" }, "API key"),
      input,
      h("p", { class: "hint", id: "api-key-hint" },
        "Your tenant's key (ops_\u2026). It is kept in this browser tab only and sent in a header, never in a URL.")),
    problem,
    h("button", { type: "submit", class: "primary" }, "Use this key"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    problem.replaceChildren();
    if (!key) {
      input.setAttribute("aria-invalid", "true");
      problem.append(h("p", { class: "problem", role: "alert" }, "Enter an API key."));
      input.focus();
      return;
    }
    sessionStorage.setItem(KEY_STORAGE, key);
    try {
      await api("GET", "tasks?limit=1");
    } catch (error) {
      sessionStorage.removeItem(KEY_STORAGE);
      input.setAttribute("aria-invalid", "true");
      const why = error.status === 401 || error.status === 403 ? "This key was refused." : error.message;
      problem.append(h("p", { class: "problem", role: "alert" }, why));
      input.focus();
      return;
    }
    input.value = "";
    renderKeyState();
    announce("API key accepted");
    if (!location.hash.startsWith("#/")) location.hash = "#/tasks";
    route();
  });
  show("Sign in with an API key", form);
  input.focus();
}

// --- the task list --------------------------------------------------------------------------

function listView() {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  let status = params.get("status") || "";
  let pagesWanted = 1;
  let nextCursor = null;
  let shown = null; // the rows on screen, as JSON

  const select = h("select", { id: "status-filter" },
    h("option", { value: "" }, "All statuses"),
    STATUSES.map((value) => h("option", { value, selected: value === status }, value.replaceAll("_", " "))));
  const live = h("span", { class: "live", "aria-live": "off" }, "live");
  const body = h("tbody");
  const table = h("table", {},
    h("caption", { class: "visually-hidden" }, "Tasks, newest first"),
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Task"), h("th", { scope: "col" }, "Status"),
      h("th", { scope: "col" }, "Goal"), h("th", { scope: "col" }, "Model"),
      h("th", { scope: "col", class: "num" }, "Turns"), h("th", { scope: "col", class: "num" }, "Tokens"),
      h("th", { scope: "col", class: "num" }, "Cost"), h("th", { scope: "col" }, "Updated"))),
    body);
  const empty = h("p", { class: "muted", hidden: true }, "No tasks.");
  const problem = h("div");
  const more = h("button", { type: "button", hidden: true, onclick: () => { pagesWanted += 1; refresh(); } }, "Load more");

  select.addEventListener("change", () => {
    status = select.value;
    pagesWanted = 1;
    // The filter is part of the address (no secret in it), so a reload keeps it.
    history.replaceState(null, "", status ? `#/tasks?status=${encodeURIComponent(status)}` : "#/tasks");
    body.replaceChildren();
    shown = null;
    refresh();
  });

  async function load() {
    // A status filter applies after a page is read: a page may be short or empty while
    // next_cursor is set, so follow it until a page's worth of tasks is there.
    const items = [];
    let cursor = null;
    let reads = 0;
    do {
      const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
      if (status) query.set("status", status);
      if (cursor) query.set("cursor", cursor);
      const page = await api("GET", `tasks?${query}`);
      items.push(...page.items);
      cursor = page.next_cursor;
      reads += 1;
    } while (cursor && items.length < PAGE_SIZE * pagesWanted && reads < 10 * pagesWanted);
    return { items, cursor };
  }

  async function refresh() {
    try {
      const { items, cursor } = await load();
      nextCursor = cursor;
      problem.replaceChildren();
      const key = JSON.stringify(items);
      if (key !== shown) {
        // Rows are rebuilt only when a task changed, and the focused task link keeps focus.
        shown = key;
        const active = document.activeElement;
        const focused = active && body.contains(active) ? active.closest("tr").dataset.taskId : null;
        body.replaceChildren(...items.map(taskRow));
        if (focused) body.querySelector(`tr[data-task-id="${CSS.escape(focused)}"] a`)?.focus();
      }
      empty.hidden = items.length > 0;
      more.hidden = !nextCursor;
      live.textContent = `live \u00b7 updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      problem.replaceChildren(errorAlert(error));
      if (error.status === 401 || error.status === 403) { forgetKey(); return false; }
    }
    return true;
  }

  show("Tasks",
    h("div", { class: "panel" },
      h("div", { class: "row" },
        h("div", { class: "inline-field" }, h("label", { for: "status-filter" }, "Status"), select),
        h("span", { class: "spacer" }),
        live,
        h("a", { href: "#/new", class: "button" }, "New task")),
      problem,
      table, empty, more));
  return poller(refresh, LIST_POLL_MS);
}

function taskRow(task) {
  const usage = task.usage || {};
  return h("tr", { "data-task-id": task.task_id },
    h("td", {}, h("a", { href: `#/tasks/${encodeURIComponent(task.task_id)}`, class: "mono" }, task.task_id)),
    h("td", {}, statusBadge(task.status)),
    h("td", { class: "goal-cell", title: task.goal }, truncate(task.goal, 120)),
    h("td", { class: "mono" }, task.model),
    h("td", { class: "num" }, String(task.turn)),
    h("td", { class: "num" }, formatTokens((usage.input_tokens || 0) + (usage.output_tokens || 0))),
    h("td", { class: "num" }, formatCost(usage.cost_usd)),
    h("td", {}, timeElement(task.updated_at)));
}

// --- a new task ----------------------------------------------------------------------------

function newTaskView() {
  const fields = {};
  const problems = {};
  function field(name, labelText, control, hint) {
    control.id = `f-${name}`;
    control.name = name;
    fields[name] = control;
    problems[name] = h("p", { class: "problem", id: `f-${name}-problem`, hidden: true });
    const hintId = hint ? `f-${name}-hint` : null;
    control.setAttribute("aria-describedby", [hintId, `f-${name}-problem`].filter(Boolean).join(" "));
    return h("div", { class: "field" },
      h("label", { for: control.id }, labelText), control,
      hint ? h("p", { class: "hint", id: hintId }, hint) : "",
      problems[name]);
  }
  const alertBox = h("div");
  const submit = h("button", { type: "submit", class: "primary" }, "Submit task");
  const form = h("form", { class: "panel", novalidate: true },
    field("goal", "Goal", h("textarea", { required: true, rows: 4 }), "What the agent should do."),
    h("div", { class: "form-grid" },
      field("model", "Model", h("input", { type: "text", autocomplete: "off" }),
        "provider:model, e.g. openai:gpt-4o-mini; empty: the deployment's default."),
      field("tools", "Tools", h("input", { type: "text", autocomplete: "off" }),
        "Comma-separated tool names; empty: the default tools."),
      field("max_turns", "Max turns", h("input", { type: "number", min: 1, max: 50, step: 1 }),
        "Model calls at most; empty: the default.")),
    h("div", { class: "form-grid" },
      field("max_tokens", "Max tokens", h("input", { type: "number", min: 1, step: 1 }), "Optional budget."),
      field("max_cost_usd", "Max cost (USD)", h("input", { type: "number", min: 0, step: "0.01" }), "Optional budget."),
      h("div")),
    h("details", {},
      h("summary", {}, "Scripted model turns (model \u201cscripted\u201d, tests and demos)"),
      field("scripted_turns", "Scripted turns (JSON list)", h("textarea", { class: "code", spellcheck: "false" }),
        'e.g. [{"tool_calls": [{"name": "calculator", "arguments": {"expression": "2 + 2"}}]}, {"content": "4"}]')),
    alertBox,
    submit);
  let idempotencyKey = newIdempotencyKey();
  for (const control of Object.values(fields)) {
    // A changed request is a new request: a retry of the same one keeps its key.
    control.addEventListener("input", () => { idempotencyKey = newIdempotencyKey(); });
  }

  function flag(name, text) {
    const control = fields[name] || fields.goal;
    const where = problems[name] || problems.goal;
    control.setAttribute("aria-invalid", "true");
    where.textContent = text;
    where.hidden = false;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    alertBox.replaceChildren();
    for (const [name, control] of Object.entries(fields)) {
      control.removeAttribute("aria-invalid");
      problems[name].hidden = true;
    }
    const request = { goal: fields.goal.value.trim() };
    if (!request.goal) { flag("goal", "A goal is required."); fields.goal.focus(); return; }
    const model = fields.model.value.trim();
    if (model) request.model = model;
    const tools = fields.tools.value.split(",").map((t) => t.trim()).filter(Boolean);
    if (tools.length) request.tools = tools;
    for (const name of ["max_turns", "max_tokens", "max_cost_usd"]) {
      const raw = fields[name].value.trim();
      if (raw) request[name] = Number(raw);
    }
    const scripted = fields.scripted_turns.value.trim();
    if (scripted) {
      try {
        request.scripted_turns = JSON.parse(scripted);
      } catch (error) {
        flag("scripted_turns", `Not valid JSON: ${error.message}`);
        fields.scripted_turns.closest("details").open = true;
        fields.scripted_turns.focus();
        return;
      }
    }
    submit.disabled = true;
    try {
      const task = await api("POST", "tasks", { body: request, headers: { "Idempotency-Key": idempotencyKey } });
      announce(`Task ${task.task_id} submitted`);
      location.hash = `#/tasks/${encodeURIComponent(task.task_id)}`;
    } catch (error) {
      submit.disabled = false;
      alertBox.replaceChildren(errorAlert(error));
      let first = null;
      for (const item of (error.body && error.body.fields) || []) {
        const name = item.field.split(".")[0];
        flag(name, item.problem);
        if (name === "scripted_turns") fields.scripted_turns.closest("details").open = true;
        first = first || fields[name];
      }
      (first || alertBox).focus?.();
    }
  });
  show("New task", form);
  fields.goal.focus();
}

// --- a task ---------------------------------------------------------------------------------

/** A page section replaced only when its data changed, so a refresh keeps focus and input. */
function section(id, heading) {
  const body = h("div");
  const element = h("section", { class: "panel", id, "aria-labelledby": `${id}-h` },
    h("h2", { id: `${id}-h` }, heading), body);
  let last = null;
  return {
    element,
    update(data, render) {
      const key = JSON.stringify(data);
      if (key === last) return;
      last = key;
      body.replaceChildren(...[render(data)].flat(Infinity).filter((c) => c !== "" && c != null));
    },
    hide(hidden) { element.hidden = hidden; },
  };
}

function taskView(taskId) {
  const problem = h("div");
  const header = h("div", { class: "panel" });
  const approvals = section("approvals", "Waiting for your decision");
  const summary = section("summary", "Summary");
  const usage = section("usage", "Usage");
  const plan = section("plan", "Plan");
  const timeline = section("timeline", "Timeline");
  const conversation = section("conversation", "Conversation");
  const children = section("children", "Child tasks");
  const decidedApprovals = section("approval-history", "Approvals");
  const runs = section("runs", "Runs");
  let polling = null;
  let lastStatus = null;
  let finalRead = false;
  // A follow-up starts (or queues) a new run: read the task again until that run ends.
  const followUp = followUpSection(taskId, () => {
    finalRead = false;
    if (polling) polling.stop();
    polling = poller(refresh, TASK_POLL_MS);
  });

  async function refresh() {
    let task;
    let events;
    try {
      [task, events] = await Promise.all([
        api("GET", `tasks/${encodeURIComponent(taskId)}`),
        api("GET", `tasks/${encodeURIComponent(taskId)}/events`),
      ]);
    } catch (error) {
      problem.replaceChildren(errorAlert(error));
      if (error.status === 401 || error.status === 403) { forgetKey(); return false; }
      return error.status !== 404;
    }
    problem.replaceChildren();
    if (lastStatus && lastStatus !== task.status) announce(`Task is now ${task.status.replaceAll("_", " ")}`);
    lastStatus = task.status;
    renderHeader(header, task, refresh);
    const pending = (task.approvals || []).filter((a) => a.status === "PENDING");
    approvals.hide(pending.length === 0 || TERMINAL.has(task.status));
    approvals.update({ pending, status: task.status }, () => pending.map((a) => approvalCard(task, a, refresh)));
    summary.update(pick(task, ["status", "answer", "answer_json", "error", "waiting", "turn", "max_turns", "model", "tools", "created_at", "updated_at", "waited_seconds", "max_wait_seconds"]), () => summaryFacts(task));
    usage.update({ usage: task.usage, max_tokens: task.max_tokens, max_cost_usd: task.max_cost_usd }, () => usageTotals(task));
    // plan_steps: the plan as it stands (task.plan is the mode: auto, always, never).
    plan.hide(!Array.isArray(task.plan_steps) || task.plan_steps.length === 0);
    plan.update(task.plan_steps ?? null, () => planView(task.plan_steps));
    timeline.update({ events: events.items, approvals: task.approvals, status: task.status, updated: task.updated_at },
      () => waterfall(task, events.items));
    conversation.update(task.messages, () => conversationView(task.messages));
    const kids = task.children ?? null;
    children.hide(!Array.isArray(kids) || kids.length === 0);
    children.update(kids, () => childrenView(kids));
    const taskRuns = task.runs ?? [];
    runs.hide(taskRuns.length < 2 && !task.queued_follow_ups);
    runs.update({ runs: taskRuns, queued: task.queued_follow_ups }, () => runsView(taskRuns, task.queued_follow_ups));
    const decided = (task.approvals || []).filter((a) => a.status !== "PENDING");
    decidedApprovals.hide(decided.length === 0);
    decidedApprovals.update(decided, () => approvalHistory(decided));
    if (TERMINAL.has(task.status)) {
      // One more read after the end: the last events may land just after the status.
      if (finalRead) return false;
      finalRead = true;
    }
    return true;
  }

  show(`Task ${taskId}`,
    h("p", {}, h("a", { href: "#/tasks" }, "\u2190 All tasks")),
    problem, header,
    approvals.element, summary.element, plan.element, usage.element, timeline.element,
    runs.element, conversation.element, children.element, decidedApprovals.element, followUp);
  approvals.hide(true);
  plan.hide(true);
  runs.hide(true);
  children.hide(true);
  decidedApprovals.hide(true);
  polling = poller(refresh, TASK_POLL_MS);
  return { stop() { polling.stop(); } };
}

function pick(object, names) {
  return Object.fromEntries(names.map((n) => [n, object[n]]));
}

function renderHeader(container, task, refresh) {
  const key = `${task.status}|${task.goal}`;
  if (container.dataset.key === key) return;
  container.dataset.key = key;
  const actions = h("div", { class: "row" });
  if (!TERMINAL.has(task.status)) {
    const confirmBox = h("span", { class: "row", hidden: true });
    const cancel = h("button", { type: "button", class: "danger" }, "Cancel task\u2026");
    const yes = h("button", { type: "button", class: "danger" }, "Yes, cancel it");
    const no = h("button", { type: "button" }, "Keep it running");
    const result = h("span");
    cancel.addEventListener("click", () => { cancel.hidden = true; confirmBox.hidden = false; no.focus(); });
    no.addEventListener("click", () => { confirmBox.hidden = true; cancel.hidden = false; cancel.focus(); });
    yes.addEventListener("click", async () => {
      yes.disabled = true;
      try {
        await api("POST", `tasks/${encodeURIComponent(task.task_id)}/cancel`);
        announce("Task cancelled");
      } catch (error) {
        result.replaceChildren(errorAlert(error));
      }
      await refresh();
    });
    confirmBox.append(h("span", {}, "Cancel this task?"), yes, no);
    actions.append(cancel, confirmBox, result);
  }
  container.replaceChildren(
    h("div", { class: "row" }, h("span", {}, "Status"),
      statusBadge(task.status, { id: "task-status" }),
      h("span", { class: "spacer" }), actions),
    h("p", { class: "goal" }, h("strong", {}, "Goal: "), task.goal));
}

function summaryFacts(task) {
  const facts = [
    ["Model", h("code", {}, task.model)],
    ["Turn", `${task.turn} of at most ${task.max_turns}`],
    ["Tools", task.tools && task.tools.length ? task.tools.map((t, i) => [i ? ", " : "", h("code", {}, t)]) : "none"],
    ["Created", timeElement(task.created_at)],
    ["Updated", timeElement(task.updated_at)],
  ];
  if (task.waiting) {
    facts.push(["Waiting for", `${task.waiting.provider} (${task.waiting.reason}) until ${formatTime(task.waiting.until)}`]);
  }
  if (task.waited_seconds) facts.push(["Waited for providers", `${task.waited_seconds} s`]);
  if (task.error) facts.push(["Error", h("span", { class: "error-text" }, task.error)]);
  if (task.parent_id) {
    facts.push(["Sub-task of", [h("a", { href: `#/tasks/${encodeURIComponent(task.parent_id)}`, class: "mono" }, task.parent_id),
      ` (depth ${task.depth})`]]);
  }
  const list = h("dl", { class: "facts" }, facts.map(([dt, dd]) => [h("dt", {}, dt), h("dd", {}, dd)]));
  const shaped = task.answer_json !== undefined && task.answer_json !== null;
  return [list,
    shaped ? [h("h3", {}, "Answer (JSON)"), h("pre", { class: "answer", id: "answer-json" }, pretty(task.answer_json))]
      : task.answer ? [h("h3", {}, "Answer"), h("div", { class: "answer" }, task.answer)] : ""];
}

function usageTotals(task) {
  const u = task.usage || {};
  const cell = (label, value) => h("div", { "data-usage": label }, h("div", { class: "value" }, value), h("div", { class: "label" }, label));
  const budget = [];
  if (task.max_tokens) budget.push(`max ${formatTokens(task.max_tokens)} tokens`);
  if (task.max_cost_usd) budget.push(`max ${formatCost(task.max_cost_usd)}`);
  return [
    h("div", { class: "usage" },
      cell("input tokens", formatTokens(u.input_tokens)),
      cell("output tokens", formatTokens(u.output_tokens)),
      cell("cached tokens", formatTokens(u.cached_tokens)),
      cell("model calls", formatTokens(u.model_calls)),
      cell("cost", formatCost(u.cost_usd))),
    budget.length ? h("p", { class: "muted" }, `Budget: ${budget.join(", ")}.`) : "",
  ];
}

function planView(plan) {
  if (typeof plan === "string") return h("div", { class: "answer" }, plan);
  const steps = Array.isArray(plan) ? plan : plan && Array.isArray(plan.steps) ? plan.steps : null;
  if (steps) {
    return h("ol", {}, steps.map((step) => h("li", {},
      typeof step === "string" ? step : [step.title || step.description || step.goal || "", step.status ? [" ", statusBadge(String(step.status))] : ""])));
  }
  return h("pre", {}, pretty(plan));
}

/** The sub-tasks the task's `delegate` calls started (their usage is in the task's). */
function childrenView(kids) {
  return h("ul", {}, kids.map((child) => {
    const id = typeof child === "string" ? child : child.task_id;
    const usage = typeof child === "object" && child.usage ? child.usage : null;
    return h("li", { "data-child": id }, h("a", { href: `#/tasks/${encodeURIComponent(id)}`, class: "mono" }, id),
      typeof child === "object" && child.status ? [" ", statusBadge(child.status)] : "",
      typeof child === "object" && child.goal ? [" ", truncate(child.goal, 100)] : "",
      usage ? h("span", { class: "muted" }, ` · ${formatTokens((usage.input_tokens || 0) + (usage.output_tokens || 0))} tokens`) : "",
      typeof child === "object" && child.error ? h("div", { class: "error-text" }, truncate(child.error, 200)) : "");
  }));
}

function approvalCard(task, approval, refresh) {
  const reasonId = `reason-${approval.approval_id}`;
  const reason = h("input", { type: "text", id: reasonId, autocomplete: "off", maxlength: 2000 });
  const result = h("div");
  const decide = async (decision, buttons) => {
    for (const b of buttons) b.disabled = true;
    const body = { decision, args_hash: approval.args_hash };
    if (reason.value.trim()) body.reason = reason.value.trim();
    try {
      await api("POST", `tasks/${encodeURIComponent(task.task_id)}/approvals/${encodeURIComponent(approval.approval_id)}`, { body });
      announce(decision === "approve" ? `Approved ${approval.tool}` : `Denied ${approval.tool}`);
    } catch (error) {
      for (const b of buttons) b.disabled = false;
      result.replaceChildren(errorAlert(error));
      return;
    }
    await refresh();
  };
  const approve = h("button", { type: "button", class: "approve" }, `Approve ${approval.tool}`);
  const deny = h("button", { type: "button", class: "danger" }, `Deny ${approval.tool}`);
  approve.addEventListener("click", () => decide("approve", [approve, deny]));
  deny.addEventListener("click", () => decide("deny", [approve, deny]));
  return h("article", { class: "approval-card", "data-approval-id": approval.approval_id, "aria-label": `Approval for ${approval.tool}` },
    h("h3", {}, "Tool call ", h("code", {}, approval.tool), " (turn ", String(approval.turn), ")"),
    h("dl", { class: "facts" },
      h("dt", {}, "Tool"), h("dd", {}, h("code", { class: "approval-tool" }, approval.tool)),
      h("dt", {}, "Call id"), h("dd", {}, h("code", {}, approval.call_id)),
      h("dt", {}, "Asked"), h("dd", {}, timeElement(approval.created_at)),
      h("dt", {}, "Arguments hash"), h("dd", {}, h("code", { class: "hash approval-hash" }, approval.args_hash))),
    h("h4", {}, "Arguments, exactly as the tool will get them"),
    h("pre", { class: "approval-arguments" }, pretty(approval.arguments)),
    h("div", { class: "field" }, h("label", { for: reasonId }, "Reason (optional; a denial's reason reaches the model)"), reason),
    h("div", { class: "row" }, approve, deny),
    result);
}

function approvalHistory(decided) {
  return h("table", {},
    h("thead", {}, h("tr", {}, ["Tool", "Arguments", "Decision", "Reason", "Decided"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, decided.map((a) => h("tr", {},
      h("td", {}, h("code", {}, a.tool)),
      h("td", {}, h("details", {}, h("summary", {}, "arguments"), h("pre", {}, pretty(a.arguments)), h("p", { class: "hash" }, `hash ${a.args_hash}`))),
      h("td", {}, statusBadge(a.status)),
      h("td", {}, a.reason || ""),
      h("td", {}, timeElement(a.decided_at))))));
}

function conversationView(messages) {
  if (!messages || !messages.length) return h("p", { class: "muted" }, "No messages yet.");
  return h("div", { class: "conversation" }, messages.map(messageView));
}

function messageView(message) {
  const stored = message.content_ref
    ? h("p", { class: "muted" }, `(a preview: the whole content, ${formatTokens(message.content_bytes)} bytes, is stored apart)`)
    : "";
  if (message.role === "tool") {
    return h("div", { class: `msg role-tool${message.is_error ? " error" : ""}` },
      h("details", { class: "call" },
        h("summary", {}, message.is_error ? "Error from " : "Result of ", h("code", {}, message.name || "tool"),
          h("span", { class: "muted" }, ` (call ${message.tool_call_id})`)),
        h("pre", {}, message.content || ""), stored));
  }
  const who = message.role === "assistant" && message.model ? `assistant \u00b7 ${message.model}` : message.role;
  return h("div", { class: `msg role-${message.role}` },
    h("header", {}, who),
    message.content ? h("div", { class: "content" }, message.content) : "",
    stored,
    (message.tool_calls || []).map((call) => h("details", { class: "call" },
      h("summary", {}, "Tool call ", h("code", {}, call.name), h("span", { class: "muted" }, ` (call ${call.id})`)),
      h("pre", {}, pretty(call.arguments)))));
}

/** The task's runs: the first answers its goal, each later one a follow-up message. */
function runsView(taskRuns, queued) {
  return [
    h("table", {},
      h("thead", {}, h("tr", {}, ["Run", "Answers", "Status", "Turns", "Tokens in/out", "Cost (USD)", "Started", "Ended"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, taskRuns.map((r) => h("tr", {},
        h("td", {}, String(r.run)),
        h("td", {}, r.follow_up ? `follow-up ${r.follow_up}` : "the goal"),
        h("td", {}, statusBadge(r.status)),
        h("td", {}, r.last_turn > r.first_turn ? `${r.first_turn + 1}\u2013${r.last_turn}` : "none"),
        h("td", {}, `${r.usage.input_tokens}/${r.usage.output_tokens}`),
        h("td", {}, r.usage.cost_usd.toFixed(6)),
        h("td", {}, timeElement(r.started_at)),
        h("td", {}, timeElement(r.ended_at)))))),
    queued ? h("p", { class: "hint" }, `${queued} follow-up message(s) queued: each runs when the run before it ends.`) : "",
  ];
}

function followUpSection(taskId, onSent) {
  // POST /tasks/{id}/messages: continue the task, with its whole conversation, as a new run.
  const text = h("textarea", { id: "follow-up", rows: 3, maxlength: 16000, "aria-describedby": "follow-up-hint" });
  const enqueue = h("input", { type: "checkbox", id: "follow-up-enqueue" });
  const send = h("button", { type: "submit" }, "Send");
  const result = h("div", { "aria-live": "polite" });
  const form = h("form", { novalidate: true },
    h("div", { class: "field" },
      h("label", { for: "follow-up" }, "Message"),
      text,
      h("p", { class: "hint", id: "follow-up-hint" },
        "Continues the task once it has ended: the model sees the whole conversation, in a new run with its own budget.")),
    h("div", { class: "field row" }, enqueue,
      h("label", { for: "follow-up-enqueue" }, "If a run is still active, queue the message (otherwise it is refused)")),
    h("div", { class: "row" }, send),
    result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const content = text.value.trim();
    if (!content) {
      result.replaceChildren(errorAlert({ message: "write a message first", body: { fields: [{ field: "content", problem: "empty" }] } }));
      text.focus();
      return;
    }
    send.disabled = true;
    try {
      const answer = await api("POST", `tasks/${encodeURIComponent(taskId)}/messages`,
        { body: { content, on_busy: enqueue.checked ? "enqueue" : "reject" } });
      text.value = "";
      const what = answer.state === "started" ? `run ${answer.run} started` : "queued until the active run ends";
      result.replaceChildren(h("p", { class: "hint" }, `Follow-up ${answer.follow_up} sent: ${what}.`));
      announce(`Follow-up sent: ${what}`);
      onSent();
    } catch (error) {
      result.replaceChildren(errorAlert(error));
      if (error.status === 401 || error.status === 403) forgetKey();
    } finally {
      send.disabled = false;
    }
  });
  return h("section", { class: "panel", "aria-labelledby": "follow-up-h" },
    h("h2", { id: "follow-up-h" }, "Follow-up message"), form);
}

// --- the timeline waterfall -------------------------------------------------------------------

/** The steps to draw, from the task's events (each ends at `at` after `duration_ms`) and
 * its approvals (asked at created_at, decided at decided_at). */
function timelineSteps(task, events, now) {
  const steps = [];
  const markers = [];
  for (const event of events) {
    const end = Date.parse(event.at);
    if (Number.isNaN(end)) continue;
    if (event.kind === "model_call" || event.kind === "tool_call") {
      const duration = Math.max(0, event.duration_ms || 0);
      const usage = event.usage || null;
      steps.push({
        kind: event.kind, turn: event.turn, name: event.name, start: end - duration, end,
        duration, usage, error: event.error || null,
        skipped: event.detail && event.detail.executed === false,
      });
    } else if (event.kind === "wait") {
      const seconds = (event.detail && event.detail.wait_seconds) || 0;
      steps.push({
        kind: "wait", turn: event.turn, name: event.name, start: end, end: end + seconds * 1000,
        duration: seconds * 1000, usage: null, error: null, note: event.detail && event.detail.reason,
      });
    } else if (event.kind === "status") {
      markers.push({ at: end, name: event.name, error: event.error || null });
    }
  }
  for (const approval of task.approvals || []) {
    const start = Date.parse(approval.created_at);
    if (Number.isNaN(start)) continue;
    const end = approval.decided_at ? Date.parse(approval.decided_at) : (TERMINAL.has(task.status) ? Date.parse(task.updated_at) : now);
    steps.push({
      kind: "approval", turn: approval.turn, name: approval.tool, start, end, duration: end - start,
      usage: null, error: approval.status === "DENIED" || approval.status === "EXPIRED" ? approval.status : null,
      note: approval.status,
    });
  }
  steps.sort((a, b) => a.start - b.start || a.end - b.end);
  return { steps, markers };
}

function niceStep(span, ticks) {
  const raw = span / ticks;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

const KIND_LABEL = { model_call: "model", tool_call: "tool", approval: "approval", wait: "wait" };

function stepFigures(step) {
  const parts = [formatDuration(step.duration)];
  if (step.usage) {
    parts.push(`${formatTokens(step.usage.input_tokens)} in / ${formatTokens(step.usage.output_tokens)} out`);
    parts.push(formatCost(step.usage.cost_usd));
  }
  if (step.skipped) parts.push("not run");
  // A refused approval is no failure of the step, but its call did not run: say which.
  if (step.error) parts.push(step.kind === "approval" ? step.error.toLowerCase() : "error");
  return parts.join(" \u00b7 ");
}

function waterfall(task, events) {
  const now = Date.now();
  const { steps, markers } = timelineSteps(task, events, now);
  if (!steps.length) return h("p", { class: "muted" }, "No model or tool steps yet.");
  const created = Date.parse(task.created_at);
  const t0 = Math.min(Number.isNaN(created) ? Infinity : created, ...steps.map((x) => x.start));
  const lastEnd = Math.max(...steps.map((x) => x.end), ...markers.map((m) => m.at));
  const t1 = TERMINAL.has(task.status) ? lastEnd : Math.max(lastEnd, now);
  const span = Math.max(t1 - t0, 1);

  const width = 1100;
  const labelWidth = 230;
  const figuresWidth = 250;
  const chartLeft = labelWidth + 8;
  const chartWidth = width - chartLeft - figuresWidth - 8;
  const rowHeight = 24;
  const top = 34;
  const height = top + steps.length * rowHeight + 12;
  const x = (t) => chartLeft + ((t - t0) / span) * chartWidth;

  const titleId = `waterfall-title-${task.task_id}`;
  const totalTokens = steps.reduce((n, st) => n + (st.usage ? st.usage.input_tokens + st.usage.output_tokens : 0), 0);
  const svg = s("svg", {
    class: "waterfall", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": titleId,
    "data-steps": steps.length,
  }, s("title", { id: titleId },
    `Timeline of ${steps.length} steps over ${formatDuration(span)}: ` +
    `${steps.filter((st) => st.kind === "model_call").length} model calls, ` +
    `${steps.filter((st) => st.kind === "tool_call").length} tool calls, ${formatTokens(totalTokens)} tokens, ` +
    `${steps.filter((st) => st.error).length} errors`));

  // the time axis: ticks at a round step, a grid line each
  const step = niceStep(span, 8);
  for (let t = 0; t <= span + 1; t += step) {
    const tx = x(t0 + t);
    svg.append(
      s("line", { class: "grid", x1: tx, x2: tx, y1: top - 6, y2: height - 8 }),
      s("text", { x: tx, y: top - 12, "text-anchor": "middle", class: "dim" }, formatDuration(t)));
  }
  svg.append(s("line", { class: "axis", x1: chartLeft, x2: chartLeft + chartWidth, y1: top - 6, y2: top - 6 }));
  svg.append(s("text", { x: 4, y: top - 12, class: "dim" }, "step"),
    s("text", { x: width - 4, y: top - 12, class: "dim", "text-anchor": "end" }, "duration \u00b7 tokens \u00b7 cost"));

  steps.forEach((st, i) => {
    const y = top + i * rowHeight;
    if (i % 2 === 0) svg.append(s("rect", { class: "row-band", x: 0, y, width, height: rowHeight }));
    const label = `T${st.turn} ${KIND_LABEL[st.kind]} ${st.name}`;
    const barX = x(st.start);
    const barWidth = Math.max(x(st.end) - barX, 2);
    const classes = ["bar", st.kind, st.error ? "error" : ""].filter(Boolean).join(" ");
    const tip = [
      `${KIND_LABEL[st.kind]} ${st.name} (turn ${st.turn})`,
      `starts ${formatDuration(st.start - t0)} in, takes ${formatDuration(st.duration)}`,
      st.usage ? `${formatTokens(st.usage.input_tokens)} input, ${formatTokens(st.usage.output_tokens)} output tokens, ${formatCost(st.usage.cost_usd)}` : "",
      st.note ? String(st.note) : "",
      st.error ? `error: ${st.error}` : "",
    ].filter(Boolean).join("\n");
    svg.append(
      s("text", { x: 4, y: y + 16 }, truncate(label, 34)),
      s("rect", { class: classes, x: barX, y: y + 5, width: barWidth, height: rowHeight - 10, "data-kind": st.kind },
        s("title", {}, tip)),
      s("text", { x: width - 4, y: y + 16, "text-anchor": "end", class: st.error ? "" : "dim" },
        stepFigures(st)));
  });
  for (const marker of markers) {
    const mx = x(marker.at);
    const bad = ["FAILED", "CANCELLED", "BUDGET_EXCEEDED"].includes(marker.name);
    svg.append(s("line", { class: `marker${bad ? " bad" : ""}`, x1: mx, x2: mx, y1: top - 6, y2: height - 8 },
      s("title", {}, `${marker.name} at ${formatDuration(marker.at - t0)}${marker.error ? `: ${marker.error}` : ""}`)));
  }

  const legend = h("ul", { class: "legend", "aria-label": "Legend" },
    [["model_call", "model call"], ["tool_call", "tool call"], ["approval", "waiting for approval"],
      ["wait", "waiting for a provider"], ["error", "error"]].map(([cls, text]) =>
      h("li", {}, h("span", { class: `swatch ${cls}` }), text)),
    h("li", {}, "dashed line: status change"));

  const rows = steps.map((st) => h("tr", {},
    h("td", { class: "num" }, String(st.turn)),
    h("td", {}, KIND_LABEL[st.kind]),
    h("td", {}, h("code", {}, st.name)),
    h("td", { class: "num" }, formatDuration(st.start - t0)),
    h("td", { class: "num" }, formatDuration(st.duration)),
    h("td", { class: "num" }, st.usage ? formatTokens(st.usage.input_tokens) : ""),
    h("td", { class: "num" }, st.usage ? formatTokens(st.usage.output_tokens) : ""),
    h("td", { class: "num" }, st.usage ? formatCost(st.usage.cost_usd) : ""),
    h("td", {}, st.error || (st.skipped ? "not run" : ""))));
  const table = h("details", {},
    h("summary", {}, "The timeline as a table"),
    h("table", {},
      h("thead", {}, h("tr", {}, ["Turn", "Step", "Name", "Starts at", "Duration", "Input tokens", "Output tokens", "Cost", "Error"]
        .map((t, i) => h("th", { scope: "col", class: i === 0 || (i >= 3 && i <= 7) ? "num" : null }, t)))),
      h("tbody", {}, rows)));

  return [h("div", { class: "waterfall-wrap" }, svg), legend, table];
}

// --- start ----------------------------------------------------------------------------------

window.addEventListener("hashchange", route);
renderKeyState();
route();
