// OpenADR VENs: protocol, sites, last poll and opt state on current events. 2.0b VENs report both;
// 3.1 VENs pull over REST, which the VTN does not record, so theirs show as unknown.
"use strict";

function renderVens(vens) {
  const tbody = document.querySelector("#ven-table tbody");
  if (vens.length === 0) {
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: "5", class: "muted", text: t("ven_none") })));
    return;
  }
  tbody.replaceChildren(...vens.map((v) => {
    const sites = v.targets.map((target) => target.replace(/^site:/, "")).join(", ");
    const opts = v.events.map((e) => `${e.dr_event_id}: ${t(e.opt ? `opt_${e.opt}` : "opt_none")}`).join(" · ");
    const state = v.revoked ? t("ven_revoked") : v.registered ? "" : t("ven_unregistered");
    return el("tr", {},
      el("td", { text: `OpenADR ${v.protocol}` }),
      el("td", { text: state ? `${v.ven_name} (${state})` : v.ven_name }),
      el("td", { text: sites }),
      el("td", { text: v.last_poll_at ? fmtTime(v.last_poll_at, true) : "–" }),
      el("td", { text: opts || "–" }));
  }));
}
