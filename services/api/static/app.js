// The operations dashboard: login, polling every 5 s, region KPIs and chart, alarms, sites, DR.
"use strict";

const POLL_MS = 5000;
const SLOW_POLL_MS = 60000; // fiscal-year sufficiency and capacity move slowly
const DAY_MS = 24 * 3600 * 1000;

const view = { region: null, site: null, timer: null, slowDueAt: 0, sites: [], polling: false, refillDurations: null };

const $ = (selector) => document.querySelector(selector);

function jstToday() {
  const shifted = new Date(Date.now() + JST_MS);
  const startMs = Math.floor(shifted.getTime() / DAY_MS) * DAY_MS - JST_MS;
  const date = shifted.toISOString().slice(0, 10);
  const fiscalYear = shifted.getUTCMonth() >= 3 ? shifted.getUTCFullYear() : shifted.getUTCFullYear() - 1;
  return { date, startMs, fiscalYear };
}

function daySlots(startMs, rows, key = "slot_start") {
  const byTime = new Map(rows.map((row) => [Date.parse(row[key]), row]));
  return Array.from({ length: 48 }, (_, i) => {
    const ms = startMs + i * SLOT_MS;
    return byTime.get(ms) ?? { slot_start: new Date(ms).toISOString() };
  });
}

function showError(message) {
  const banner = $("#global-error");
  banner.hidden = !message;
  banner.textContent = message || "";
}

// ---- login ---------------------------------------------------------------------------------------

function showLogin(message = "") {
  clearTimeout(view.timer);
  view.timer = null;
  $("#dashboard").hidden = true;
  $("#login").hidden = false;
  $("#logout").hidden = true;
  $("#live-state").hidden = true;
  $("#region-picker").hidden = true;
  $("#login-error").textContent = message;
  $("#client-id").focus();
}

async function showDashboard() {
  $("#login").hidden = true;
  $("#dashboard").hidden = false;
  $("#logout").hidden = false;
  $("#live-state").hidden = false;
  const regions = await api("/api/v1/regions");
  const select = $("#region");
  select.replaceChildren(
    ...regions.map((r) => el("option", { value: r.region_id, text: currentLang() === "ja" && r.name_ja ? r.name_ja : r.name })),
  );
  view.region = regions.some((r) => r.region_id === view.region) ? view.region : regions[0]?.region_id ?? null;
  select.value = view.region ?? "";
  $("#region-picker").hidden = regions.length === 0;
  view.slowDueAt = 0;
  await poll();
}

// ---- rendering -----------------------------------------------------------------------------------

function provenanceBadge(provenance) {
  return el("span", { class: `badge prov-${provenance}`, text: t(provenance) });
}

function kwhLine(label, metered, declared) {
  return el("div", { class: "kv" },
    el("span", { text: label }),
    el("span", { text: `${t("metered")} ${fmtNumber(metered, 1)} · ${t("declared")} ${fmtNumber(declared, 0)} ${t("kwh")}` }));
}

// Below this share of expected metered site-slots a metered ratio describes the slots present, not the
// period (e.g. a fiscal year with a week of data): the card says so instead of showing a bare figure.
const PARTIAL_COMPLETENESS = 0.9;

function fmtShare(share) {
  return share === null || share === undefined ? "–" : `${fmtNumber(share * 100, share < 0.1 ? 1 : 0)}%`;
}

function renderSufficiency(id, report) {
  const body = $(`#${id} .kpi-body`);
  const supplyMetered = report.supply.pv_on_site_kwh + report.supply.contract_renewable_kwh;
  const partial = report.completeness !== null && report.completeness < PARTIAL_COMPLETENESS
    && report.ratio_provenance !== "declared" && report.ratio_provenance !== "none";
  const value = el("span", { class: partial ? "value partial" : "value",
    text: report.ratio_pct === null ? "–" : `${fmtNumber(report.ratio_pct, 1)}%` });
  const rows = [
    el("div", { class: "big" }, value, provenanceBadge(report.ratio_provenance)),
  ];
  if (partial) {
    const key = report.ratio_provenance === "mixed" ? "partial_mixed" : "partial_metered";
    rows.push(el("p", { class: "partial-warning", role: "note",
      text: t(key, { pct: fmtShare(report.completeness), n: report.contributing_sites }) }));
  } else if (report.ratio_pct === null) {
    rows.push(el("p", { class: "partial-warning", role: "note", text: t("no_ratio") }));
  }
  rows.push(
    kwhLine(t("supply"), supplyMetered, report.supply.declared_kwh),
    kwhLine(t("demand"), report.demand.metered_kwh, report.demand.declared_kwh),
    el("div", { class: "kv" }, el("span", { text: t("completeness") }), el("span", { text: fmtShare(report.completeness) })),
  );
  // Declared figures that already include the metered sites are shown beside them, never added.
  const apart = report.declared_separately;
  if (apart) {
    rows.push(el("div", { class: "kv", title: apart.reason },
      el("span", { text: t("declared_apart") }),
      el("span", { text: `${apart.ratio === null ? "–" : `${fmtNumber(apart.ratio * 100, 1)}%`} · ${apart.source}` })));
  }
  body.replaceChildren(...rows);
}

function renderCapacity(progress) {
  $("#capacity .capacity-title").textContent = t("capacity", { fy: progress.target_fiscal_year });
  const bar = el("div", { class: "progress" }, el("span", { class: "fill" }));
  bar.firstChild.style.width = `${Math.min(progress.progress * 100, 100)}%`;
  $("#capacity .kpi-body").replaceChildren(
    el("div", { class: "big" }, el("span", { class: "value", text: `${fmtNumber(progress.progress * 100, progress.progress < 0.01 ? 3 : 1)}%` }),
      provenanceBadge(progress.provenance)),
    bar,
    el("div", { class: "kv" }, el("span", { text: t("target") }), el("span", { text: `${fmtNumber(progress.target_kw, 0)} kW` })),
    el("div", { class: "kv" }, el("span", { text: t("registered_pv") }), el("span", { text: `${fmtNumber(progress.registered_pv_kw, 0)} kW` })),
    el("div", { class: "kv" }, el("span", { text: t("declared_capacity") }), el("span", { text: `${fmtNumber(progress.declared_kw, 0)} kW` })),
    el("div", { class: "kv" }, el("span", { text: t("remaining") }), el("span", { text: `${fmtNumber(progress.remaining_kw, 0)} kW` })),
  );
}

function renderAlarms(alarms) {
  const items = [];
  for (const a of alarms.demand) {
    const vars = { site: a.site_id, pred: fmtNumber(a.predicted_kw), target: fmtNumber(a.target_kw) };
    items.push(el("li", { class: `alarm ${a.level}` }, el("span", { class: "when", text: fmtTime(a.slot_start) }),
      el("span", { text: t(a.level === "over" ? "alarm_over" : "alarm_warn", vars) })));
  }
  for (const s of alarms.offline) {
    items.push(el("li", { class: "alarm offline", text: t("alarm_offline", { site: s.name || s.site_id, age: fmtAge(s.age_s) }) }));
  }
  const dead = alarms.dead_letters;
  if (dead.alarm) {
    items.push(el("li", { class: "alarm over", text: t("alarm_dead", { rate: fmtNumber(dead.per_min, 1), n: dead.last_5min, limit: fmtNumber(dead.threshold_per_min, 1) }) }));
  }
  if (items.length === 0) items.push(el("li", { class: "alarm ok", text: t("no_alarms") }));
  if (!dead.alarm) items.push(el("li", { class: "alarm info", text: t("dead_ok", { rate: fmtNumber(dead.per_min, 1), n: dead.last_hour }) }));
  $("#alarms").replaceChildren(...items);
}

function kwCell(value) {
  return el("td", { class: "num", text: value === null || value === undefined ? "–" : fmtNumber(value) });
}

function renderSites(sites) {
  view.sites = sites;
  if (!sites.some((s) => s.site_id === view.site)) view.site = sites[0]?.site_id ?? null;
  const rows = sites.map((s) => {
    const level = s.demand_level ?? "none";
    const row = el("tr", { "data-site": s.site_id, class: s.site_id === view.site ? "selected" : "", tabindex: "0",
      onclick: () => selectSite(s.site_id), onkeydown: (e) => e.key === "Enter" && selectSite(s.site_id) },
      el("td", { class: "site-cell" }, el("strong", { text: s.site_id }),
        s.peak_programme ? el("span", { class: "badge pp", text: t("pp_badge"), title: t("pp_title") }) : "",
        el("div", { class: "muted name", text: s.name })),
      el("td", {}, el("span", { class: `badge ${s.online ? "online" : "offline"}`, text: t(s.online ? "online" : "offline") })),
      el("td", { text: fmtAge(s.age_s) }),
      kwCell(s.grid_kw), kwCell(s.pv_kw), kwCell(s.battery_kw), kwCell(s.ev_kw),
      el("td", { class: `num level-${level}`, text: `${s.predicted_demand_kw === null ? "–" : fmtNumber(s.predicted_demand_kw)} / ${s.demand_target_kw === null ? "–" : fmtNumber(s.demand_target_kw, 0)}` }));
    return row;
  });
  $("#sites-table tbody").replaceChildren(...rows);
}

function flowTile(label, value, extra = "") {
  return el("div", { class: "tile" }, el("span", { class: "label", text: label }),
    el("span", { class: "value", text: value === null || value === undefined ? "–" : `${fmtNumber(value)} kW` }),
    el("span", { class: "extra", text: extra }));
}

async function renderSiteDetail() {
  const site = view.sites.find((s) => s.site_id === view.site);
  const card = $("#site-detail");
  card.hidden = !site;
  if (!site) return;
  $("#site-detail .site-title").textContent = t("site_detail", { site: site.name || site.site_id });
  $("#flows-now").replaceChildren(
    flowTile(t("grid"), site.grid_kw),
    flowTile(t("pv"), site.pv_kw),
    flowTile(t("battery_short"), site.battery_kw, site.soc_pct === null ? "" : `${t("soc")} ${fmtNumber(site.soc_pct, 0)}%`),
    flowTile(t("ev"), site.ev_kw, site.vehicles === null ? "" : t("vehicles", { n: site.vehicles })),
    flowTile(t("load"), site.load_kw),
    flowTile(t("predicted"), site.predicted_demand_kw, site.demand_target_kw ? `${t("target")} ${fmtNumber(site.demand_target_kw)} kW` : ""),
  );
  renderPeakProgramme(site);
  const day = jstToday();
  const q = new URLSearchParams({ start: new Date(day.startMs).toISOString(), end: new Date(day.startMs + DAY_MS).toISOString(), limit: "100" });
  const energy = await api(`/api/v1/sites/${encodeURIComponent(site.site_id)}/energy?${q}`);
  renderSiteDemand($("#site-chart"), daySlots(day.startMs, energy.items), site);
}

// The day's peak programme at the selected site: what it does now, and enrolment (operators only, as the API).
function peakProgrammeText(programme) {
  if (!programme) return t("pp_off");
  if (programme.state === "waiting") return t("pp_waiting");
  if (programme.state === "solving") return t("pp_solving");
  if (programme.state === "left_out") {
    const key = `pp_why_${programme.why}`;
    return t("pp_left_out", { reason: t(key) === key ? programme.reason : t(key) });
  }
  return programme.limit_kw === null ? t("pp_no_event") : t("pp_holding", { kw: fmtNumber(programme.limit_kw) });
}

function renderPeakProgramme(site) {
  const programme = site.peak_programme;
  const status = $("#peak-programme .pp-status");
  status.textContent = peakProgrammeText(programme);
  status.title = programme?.reason ?? "";
  status.className = `pp-status pp-${programme ? programme.state : "off"}`;
  const button = $("#pp-toggle");
  button.textContent = t(programme ? "pp_withdraw" : "pp_enrol");
  button.onclick = async () => {
    button.disabled = true;
    try {
      await api(`/api/v1/sites/${encodeURIComponent(site.site_id)}/peak-programme`, { method: "PUT", body: { enrolled: !programme } });
      await poll();
    } catch (error) {
      handleError(error);
    } finally {
      button.disabled = false;
    }
  };
}

function selectSite(siteId) {
  view.site = siteId;
  for (const row of document.querySelectorAll("#sites-table tbody tr")) row.classList.toggle("selected", row.dataset.site === siteId);
  renderSiteDetail().catch(handleError);
}

// ---- polling -------------------------------------------------------------------------------------

function handleError(error) {
  if (error instanceof AuthError) showLogin(error.message);
  else showError(t("error", { detail: error.message }));
}

async function poll() {
  clearTimeout(view.timer);
  if (!view.region || view.polling) return;
  view.polling = true;
  const region = encodeURIComponent(view.region);
  const day = jstToday();
  const base = `/api/v1/regions/${region}`;
  const tasks = [
    api(`${base}/sufficiency/live`).then((r) => renderSufficiency("suff-now", r)),
    api(`${base}/sufficiency?period=day&value=${day.date}`).then((r) => renderSufficiency("suff-today", r)),
    api(`/api/v1/dashboard/regions/${region}/flows`).then((f) => renderRegionFlows($("#region-chart"), { slots: daySlots(day.startMs, f.slots) })),
    api(`/api/v1/dashboard/live?region=${region}`).then((live) => {
      renderAlarms(live.alarms);
      renderSites(live.sites);
      return renderSiteDetail();
    }),
    api("/api/v1/dashboard/dr/timeline").then((events) => renderDrTimeline(events, poll)),
    api("/api/v1/dashboard/vens").then(renderVens),
  ];
  if (Date.now() >= view.slowDueAt) {
    $("#suff-fy .fy-title").textContent = t("suff_fy", { fy: day.fiscalYear });
    tasks.push(api(`${base}/sufficiency?period=fiscal_year&value=${day.fiscalYear}`).then((r) => renderSufficiency("suff-fy", r)));
    tasks.push(api(`${base}/renewable-capacity`).then(renderCapacity));
  }
  const results = await Promise.allSettled(tasks);
  view.polling = false;
  const failed = results.filter((r) => r.status === "rejected").map((r) => r.reason);
  if (failed.some((e) => e instanceof AuthError)) return showLogin(failed.find((e) => e instanceof AuthError).message);
  if (tasks.length > 5 && results.slice(5).every((r) => r.status === "fulfilled")) view.slowDueAt = Date.now() + SLOW_POLL_MS;
  showError(failed.length ? t("error", { detail: failed.map((e) => e.message).join("; ") }) : "");
  $("#updated").textContent = fmtTime(new Date().toISOString());
  $("#updated").dataset.at = new Date().toISOString();
  view.timer = setTimeout(poll, POLL_MS);
}

// ---- start ---------------------------------------------------------------------------------------

function applyLang(next) {
  setLang(next);
  $("#lang-toggle").textContent = next === "ja" ? "English" : "日本語";
  if (view.refillDurations) view.refillDurations();
  renderedRows.clear();
  if (!$("#dashboard").hidden) {
    view.slowDueAt = 0;
    showDashboard().catch(handleError);
  }
}

function start() {
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  applyLang(currentLang());
  $("#lang-toggle").addEventListener("click", () => applyLang(currentLang() === "ja" ? "en" : "ja"));
  $("#logout").addEventListener("click", () => {
    logout();
    showLogin();
  });
  $("#region").addEventListener("change", (e) => {
    view.region = e.target.value;
    view.slowDueAt = 0;
    poll();
  });
  $("#login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("#login-error").textContent = "";
    try {
      await login($("#client-id").value.trim(), $("#client-secret").value);
      $("#client-secret").value = "";
      await showDashboard();
    } catch (error) {
      if (error instanceof AuthError) showLogin(t("login_failed", { detail: error.message }));
      else handleError(error);
    }
  });
  view.refillDurations = initDrForm(() => view.region, poll);
  if (storedToken()) showDashboard().catch(handleError);
  else showLogin();
}

document.addEventListener("DOMContentLoaded", start);
