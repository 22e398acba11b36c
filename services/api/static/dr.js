// DR: create a regional event, the timeline (a 24-hour strip and a table), adjust and cancel.
"use strict";

const SLOT_MS = 30 * 60 * 1000;
const JST_MS = 9 * 3600 * 1000;
const LIFECYCLE = ["planned", "dispatched", "acknowledged", "active", "completed"];
const ADJUSTABLE = new Set(["planned", "dispatched", "acknowledged"]);
const FINAL = new Set(["completed", "cancelled"]);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function jstInputValue(ms) {
  return new Date(ms + JST_MS).toISOString().slice(0, 16);
}

// The next whole slot at least 30 minutes away (time for the scheduler to plan and the sites to ack),
// moved to the next JST midnight when `slots` would cross it: an event lies within one JST day, as
// the baseline it is verified against does.
function defaultStartMs(slots) {
  const ms = Math.ceil((Date.now() + SLOT_MS) / SLOT_MS) * SLOT_MS;
  const slotOfDay = Math.round(((ms + JST_MS) % (48 * SLOT_MS)) / SLOT_MS);
  return slotOfDay + slots > 48 ? ms + (48 - slotOfDay) * SLOT_MS : ms;
}

function fromJstInput(value) {
  return new Date(`${value}:00+09:00`);
}

function initDrForm(getRegion, onChange) {
  const duration = document.getElementById("dr-duration");
  const fillDurations = () => {
    const chosen = duration.value || "2";
    duration.replaceChildren(
      ...[1, 2, 3, 4, 6, 8].map((n) => el("option", { value: String(n), text: t("minutes", { n: n * 30 }) })),
    );
    duration.value = chosen;
  };
  fillDurations();
  const start = document.getElementById("dr-start");
  start.value = jstInputValue(defaultStartMs(Number(duration.value)));
  const message = document.getElementById("dr-message");
  const form = document.getElementById("dr-form");
  // The browser refuses a bad entry itself (no submit): the last event's "created" must not stay beside it.
  form.addEventListener("invalid", () => { message.className = "message"; message.textContent = ""; }, true);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.className = "message";
    const startAt = fromJstInput(start.value);
    const endAt = new Date(startAt.getTime() + Number(duration.value) * SLOT_MS);
    try {
      const accepted = await api("/api/v1/dr/events", {
        method: "POST",
        body: {
          start_at: startAt.toISOString(),
          end_at: endAt.toISOString(),
          requested_kw: Number(document.getElementById("dr-kw").value),
          direction: document.getElementById("dr-direction").value,
          incentive_jpy_per_kwh: Number(document.getElementById("dr-incentive").value || 0),
          region_id: getRegion(),
        },
      });
      message.textContent = t("dr_created", { id: accepted.event_id });
      await onChange();
    } catch (error) {
      message.className = "message error";
      message.textContent = t("error", { detail: error.message });
    }
  });
  return fillDurations;
}

async function drAction(path, body, onChange) {
  const message = document.getElementById("dr-message");
  try {
    await api(path, body === undefined ? { method: "POST" } : { method: "PATCH", body });
    message.className = "message";
    message.textContent = "";
    await onChange();
  } catch (error) {
    message.className = "message error";
    message.textContent = t("error", { detail: error.message });
  }
}

function lifecycleChips(event) {
  const wrap = el("div", { class: "lifecycle" });
  const steps = event.status === "cancelled" ? [...LIFECYCLE.slice(0, 1), "cancelled"] : LIFECYCLE;
  const reached = steps.indexOf(event.status);
  steps.forEach((step, i) => {
    const state = i < reached ? "done" : i === reached ? "current" : "todo";
    wrap.append(el("span", { class: `chip ${state} st-${step}`, text: t(`st_${step}`) }));
  });
  if (event.pending_action) wrap.append(el("span", { class: "chip pending", text: t("dr_pending", { action: event.pending_action }) }));
  return wrap;
}

function eventRow(event, onChange) {
  const actions = el("div", { class: "actions" });
  const path = `/api/v1/dr/events/${encodeURIComponent(event.event_id)}`;
  if (ADJUSTABLE.has(event.status)) {
    const kw = el("input", { type: "number", min: "0.1", step: "0.1", value: String(event.requested_kw), class: "kw-input", "aria-label": t("dr_kw") });
    actions.append(kw, el("button", { type: "button", class: "small", text: t("dr_adjust"),
      onclick: () => drAction(path, { requested_kw: Number(kw.value) }, onChange) }));
  }
  if (!FINAL.has(event.status)) {
    actions.append(el("button", { type: "button", class: "small danger", text: t("dr_cancel"),
      onclick: () => drAction(`${path}/cancel`, undefined, onChange) }));
  }
  const verified = event.verified_slots > 0 ? `${fmtNumber(event.verified_reduction_kwh, 2)} ${t("kwh")}` : "–";
  return el("tr", { "data-event": event.event_id },
    el("td", {}, el("code", { text: event.event_id }), el("div", { class: "muted", text: event.source })),
    el("td", { text: `${fmtTime(event.start_at, true)}–${fmtTime(event.end_at)}` }),
    el("td", {}, lifecycleChips(event)),
    el("td", {},
      el("span", { class: `chip dir-${event.direction}`, text: t(`dir_${event.direction}`) }),
      el("span", { title: t("dr_deliverable_title"), text: ` ${fmtNumber(event.requested_kw)} / ${fmtNumber(event.allocated_kw)} / ${event.deliverable_kw == null ? "–" : fmtNumber(event.deliverable_kw)}` }),
      event.unreachable_sites > 0 ? el("div", { class: "chip unreachable", text: t("dr_unreachable", { n: event.unreachable_sites }) }) : null),
    el("td", { text: `${event.sites} (${event.dispatched_sites}/${event.acked_sites})` }),
    el("td", { text: verified }),
    el("td", {}, actions),
  );
}

function renderDrStrip(events) {
  const strip = document.getElementById("dr-strip");
  const from = Date.now() - 6 * 3600 * 1000;
  const span = 24 * 3600 * 1000;
  const pct = (ms) => Math.min(Math.max(((ms - from) / span) * 100, 0), 100);
  const children = [];
  // Ticks on whole JST hours divisible by 3 (JST is UTC+9, so those are UTC's too); none at the right edge,
  // where its label would be cut off.
  const every = 3 * 3600 * 1000;
  for (let ms = Math.ceil(from / every) * every; ms <= from + span; ms += every) {
    if (pct(ms) > 95) continue;
    const mark = el("span", { class: "tick", text: fmtTime(new Date(ms).toISOString()) });
    mark.style.left = `${pct(ms)}%`;
    children.push(mark);
  }
  events.forEach((event, i) => {
    const left = pct(Date.parse(event.start_at));
    const right = pct(Date.parse(event.end_at));
    if (right <= 0 || left >= 100) return;
    const bar = el("span", { class: `bar st-${event.status}`, title: `${event.event_id} ${t(`st_${event.status}`)}` });
    bar.style.left = `${left}%`;
    bar.style.width = `${Math.max(right - left, 0.5)}%`;
    bar.style.top = `${18 + (i % 3) * 12}px`;
    children.push(bar);
  });
  const now = el("span", { class: "now" });
  now.style.left = `${pct(Date.now())}%`;
  children.push(now);
  strip.replaceChildren(...children);
}

const renderedRows = new Map();

function renderDrTimeline(events, onChange) {
  renderDrStrip(events);
  const tbody = document.querySelector("#dr-table tbody");
  if (events.length === 0) {
    renderedRows.clear();
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: "7", class: "muted", text: t("dr_none") })));
    return;
  }
  // Rebuild only the rows whose event changed, so an adjustment being typed is not wiped by the next poll.
  const rows = events.map((event) => {
    const key = `${currentLang()}|${JSON.stringify(event)}`;
    const known = renderedRows.get(event.event_id);
    if (known && known.key === key) return known.row;
    const row = eventRow(event, onChange);
    renderedRows.set(event.event_id, { key, row });
    return row;
  });
  tbody.replaceChildren(...rows);
}
