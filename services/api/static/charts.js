// Chart.js charts: the region's stacked supply per slot against demand, and a site's demand against its target.
"use strict";

const COLORS = {
  pv: "#f2a900",
  contract: "#2e9e5b",
  other: "#9aa5b1",
  battery: "#7b5ea7",
  demand: "#1f3a93",
  target: "#d64545",
  predicted: "#e07b00",
  limit: "#2e9e5b",
};

function slotLabels(slots) {
  return slots.map((s) => fmtTime(s.slot_start));
}

function baseOptions(stacked) {
  return {
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    interaction: { mode: "index", intersect: false },
    scales: {
      x: { stacked, ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 12 } },
      y: { stacked, title: { display: true, text: "kW" } },
    },
    plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
  };
}

function upsertChart(canvas, config) {
  const existing = Chart.getChart(canvas);
  if (!existing) return new Chart(canvas, config);
  existing.data.labels = config.data.labels;
  config.data.datasets.forEach((dataset, i) => {
    if (existing.data.datasets[i]) {
      existing.data.datasets[i].data = dataset.data;
      existing.data.datasets[i].label = dataset.label;
      existing.data.datasets[i].dashFrom = dataset.dashFrom;
    } else existing.data.datasets.push(dataset);
  });
  existing.update("none");
  return existing;
}

function renderRegionFlows(canvas, flows) {
  const slots = flows.slots;
  const bar = (label, key, color) => ({
    type: "bar",
    label,
    data: slots.map((s) => s[key]),
    backgroundColor: color,
    stack: "supply",
    order: 2,
  });
  return upsertChart(canvas, {
    data: {
      labels: slotLabels(slots),
      datasets: [
        bar(t("pv_on_site"), "pv_on_site_kw", COLORS.pv),
        bar(t("contract_renewable"), "contract_renewable_kw", COLORS.contract),
        bar(t("other_import"), "other_import_kw", COLORS.other),
        bar(t("battery"), "battery_kw", COLORS.battery),
        {
          type: "line",
          label: t("load"),
          data: slots.map((s) => s.demand_kw),
          borderColor: COLORS.demand,
          backgroundColor: COLORS.demand,
          pointRadius: 0,
          borderWidth: 2,
          stack: "demand",
          order: 1,
        },
      ],
    },
    options: baseOptions(true),
  });
}

function runningIndex(slots, site) {
  return slots.findIndex((s) => s.slot_start && Date.parse(s.slot_start) === Date.parse(site.slot_start));
}

function programmeLimits(slots, site) {
  const programme = site.peak_programme;
  if (!programme) return slots.map(() => null);
  const running = runningIndex(slots, site);
  return slots.map((_s, i) => {
    if (running >= 0 && i > running) return programme.limit_kw;
    const recorded = programme.limits_kw[i] ?? null;
    return i === running && recorded === null ? programme.limit_kw : recorded;
  });
}

function renderSiteDemand(canvas, slots, site) {
  const target = site.demand_target_kw;
  const running = runningIndex(slots, site);
  const predicted = slots.map((s) =>
    s.slot_start && site.predicted_demand_kw !== null && Date.parse(s.slot_start) === Date.parse(site.slot_start)
      ? site.predicted_demand_kw
      : null,
  );
  const options = baseOptions(false);
  options.scales.y.beginAtZero = true;
  return upsertChart(canvas, {
    data: {
      labels: slotLabels(slots),
      datasets: [
        { type: "bar", label: t("slot_demand"), data: slots.map((s) => s.demand_kw), backgroundColor: COLORS.demand, order: 3 },
        {
          type: "line",
          label: t("target"),
          data: slots.map(() => target),
          borderColor: COLORS.target,
          borderDash: [6, 4],
          pointRadius: 0,
          borderWidth: 2,
          order: 1,
        },
        {
          // The day's peak programme: the limit in force in each slot so far, and the one in force now carried
          // to midnight (dashed: it holds until the programme moves it). Nothing when the site is not enrolled.
          type: "line",
          label: t("pp_limit"),
          data: programmeLimits(slots, site),
          borderColor: COLORS.limit,
          backgroundColor: COLORS.limit,
          stepped: "middle",
          pointRadius: 0,
          borderWidth: 2,
          dashFrom: running < 0 ? slots.length : running,
          segment: { borderDash: (ctx) => (ctx.p0DataIndex >= ctx.chart.data.datasets[ctx.datasetIndex].dashFrom ? [5, 4] : undefined) },
          order: 2,
        },
        {
          type: "line",
          label: t("predicted_end"),
          data: predicted,
          borderColor: COLORS.predicted,
          backgroundColor: COLORS.predicted,
          pointRadius: 6,
          pointStyle: "triangle",
          showLine: false,
          order: 0,
        },
      ],
    },
    options,
  });
}
