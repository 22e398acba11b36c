// Labels in Japanese (default) and English. Static text carries data-i18n="key"; code calls t(key, vars).
"use strict";

const I18N = {
  ja: {
    title: "川崎 VPP 運用ダッシュボード",
    region: "地域",
    live: "ライブ",
    updated: "更新",
    logout: "ログアウト",
    login_title: "オペレーターログイン",
    client_id: "クライアントID",
    client_secret: "シークレット",
    login: "ログイン",
    login_failed: "ログインに失敗しました: {detail}",
    login_wrong: "クライアントIDまたはシークレットが正しくありません（{detail}）",
    login_throttled: "失敗が続いたため一時的にロックされています。{s} 秒後に再試行してください。",
    session_expired: "セッションの有効期限が切れました。再度ログインしてください。",
    not_operator: "このページはオペレーター権限が必要です（現在: {role}）",
    suff_now: "再エネ充足率（現在のコマ）",
    suff_today: "再エネ充足率（今日）",
    suff_fy: "再エネ充足率（年度累計 {fy}）",
    capacity: "再エネ導入量（FY{fy} 目標比）",
    metered: "実測",
    declared: "公表値",
    declared_apart: "公表値（計測拠点を含むため別掲）",
    mixed: "実測＋公表",
    none: "データなし",
    supply: "再エネ供給",
    savings: "削減",
    demand: "需要",
    completeness: "データ充足",
    partial_metered: "⚠ 実測データは期間の {pct} のみ（{n} 拠点）。この値は受信済みのコマだけの比率で、期間全体の充足率ではありません。",
    partial_mixed: "⚠ 大部分は公表値です。実測データは期間の {pct} のみ（{n} 拠点）で、公表値に加算しています。",
    no_ratio: "この期間の需要データ（実測・公表値）がないため、充足率は算出できません。",
    registered_pv: "登録PV",
    declared_capacity: "公表統計",
    remaining: "残り",
    flows_title: "地域の需給（30分コマ, kW）",
    pv_on_site: "自家消費PV",
    contract_renewable: "再エネ契約電力",
    other_import: "その他系統受電",
    battery: "蓄電池（放電+/充電−）",
    battery_short: "蓄電池",
    load: "需要",
    alarms_title: "アラーム",
    alarm_over: "デマンド超過予測: {site} 予測 {pred} kW ＞ 目標 {target} kW",
    alarm_warn: "デマンド注意: {site} 予測 {pred} kW（目標 {target} kW）",
    alarm_offline: "オフライン: {site}（最終受信 {age}）",
    alarm_dead: "デッドレター {rate}/分（5分間 {n} 件, 閾値 {limit}/分）",
    no_alarms: "アラームはありません",
    dead_ok: "デッドレター {rate}/分（1時間 {n} 件）",
    sites_title: "拠点",
    site: "拠点",
    status: "状態",
    last_reading: "最終受信",
    online: "オンライン",
    offline: "オフライン",
    grid: "系統",
    pv: "太陽光",
    ev: "EV充電",
    soc: "SoC",
    predicted: "予測デマンド",
    predicted_target: "予測/目標 kW",
    ev_short: "EV",
    target: "目標",
    never: "受信なし",
    ago_s: "{n}秒前",
    ago_m: "{n}分前",
    ago_h: "{n}時間前",
    site_detail: "拠点詳細: {site}",
    flows_now: "現在の電力",
    vehicles: "{n}台",
    today_demand: "今日の30分デマンド（kW）",
    slot_demand: "デマンド",
    predicted_end: "コマ終了時予測",
    dr_title: "デマンドレスポンス",
    dr_new: "地域DRイベントの作成",
    dr_start: "開始（JST）",
    dr_duration: "時間",
    dr_kw: "要請 kW",
    dr_direction: "方向",
    dir_reduce: "下げ（削減）",
    dir_increase: "上げ（増加）",
    dr_incentive: "インセンティブ 円/kWh",
    dr_create: "作成",
    dr_created: "イベント {id} を登録しました（スケジューラが配信します）",
    dr_timeline: "イベントタイムライン",
    dr_event: "イベント",
    dr_window: "時間帯",
    dr_requested: "要請/割当/可能 kW",
    dr_unreachable: "{n} 拠点で制限値に届かない計画",
    dr_deliverable_title: "要請 / 割当 / 各拠点の予測計画で実現可能な削減量",
    dr_sites: "拠点（配信/応答）",
    dr_verified: "検証済み実績",
    dr_actions: "操作",
    dr_adjust: "変更",
    dr_cancel: "取消",
    dr_none: "イベントはありません",
    dr_pending: "処理待ち: {action}",
    minutes: "{n}分",
    st_planned: "計画",
    st_dispatched: "配信済",
    st_acknowledged: "応答済",
    st_active: "実施中",
    st_completed: "完了",
    st_cancelled: "取消",
    error: "エラー: {detail}",
    kwh: "kWh",
  },
  en: {
    title: "Kawasaki VPP operations",
    region: "Region",
    live: "Live",
    updated: "Updated",
    logout: "Log out",
    login_title: "Operator login",
    client_id: "Client ID",
    client_secret: "Secret",
    login: "Log in",
    login_failed: "Login failed: {detail}",
    login_wrong: "Wrong client ID or secret ({detail})",
    login_throttled: "Too many failed attempts: locked for now. Try again in {s} s.",
    session_expired: "Your session has expired. Please log in again.",
    not_operator: "This page needs the operator role (you have: {role})",
    suff_now: "Renewable sufficiency (this slot)",
    suff_today: "Renewable sufficiency (today)",
    suff_fy: "Renewable sufficiency (FY {fy} to date)",
    capacity: "Renewable capacity (vs FY{fy} target)",
    metered: "metered",
    declared: "declared",
    declared_apart: "declared (includes the metered sites, shown apart)",
    mixed: "metered + declared",
    none: "no data",
    supply: "Renewable supply",
    savings: "Savings",
    demand: "Demand",
    completeness: "Data completeness",
    partial_metered: "⚠ Metered data cover only {pct} of the period ({n} sites): this is the ratio of the slots received so far, not the period's sufficiency.",
    partial_mixed: "⚠ Mostly declared (published) figures: metered data cover only {pct} of the period ({n} sites) and are added to them.",
    no_ratio: "No demand data (metered or declared) for this period, so no ratio.",
    registered_pv: "Registered PV",
    declared_capacity: "Declared statistics",
    remaining: "Remaining",
    flows_title: "Region supply and demand (30-minute slots, kW)",
    pv_on_site: "On-site PV",
    contract_renewable: "Renewable contract supply",
    other_import: "Other grid import",
    battery: "Battery (discharge + / charge −)",
    battery_short: "Battery",
    load: "Demand",
    alarms_title: "Alarms",
    alarm_over: "Demand over target predicted: {site} {pred} kW > target {target} kW",
    alarm_warn: "Demand near target: {site} {pred} kW (target {target} kW)",
    alarm_offline: "Offline: {site} (last reading {age})",
    alarm_dead: "Dead letters {rate}/min ({n} in 5 min, threshold {limit}/min)",
    no_alarms: "No alarms",
    dead_ok: "Dead letters {rate}/min ({n} in the last hour)",
    sites_title: "Sites",
    site: "Site",
    status: "Status",
    last_reading: "Last reading",
    online: "online",
    offline: "offline",
    grid: "Grid",
    pv: "PV",
    ev: "EV charging",
    soc: "SoC",
    predicted: "Predicted demand",
    predicted_target: "Pred./target kW",
    ev_short: "EV",
    target: "Target",
    never: "never",
    ago_s: "{n} s ago",
    ago_m: "{n} min ago",
    ago_h: "{n} h ago",
    site_detail: "Site: {site}",
    flows_now: "Power now",
    vehicles: "{n} vehicles",
    today_demand: "Today's 30-minute demand (kW)",
    slot_demand: "Demand",
    predicted_end: "Predicted end of slot",
    dr_title: "Demand response",
    dr_new: "New regional DR event",
    dr_start: "Start (JST)",
    dr_duration: "Duration",
    dr_kw: "Requested kW",
    dr_direction: "Direction",
    dir_reduce: "Reduce",
    dir_increase: "Increase",
    dr_incentive: "Incentive JPY/kWh",
    dr_create: "Create",
    dr_created: "Event {id} recorded (the scheduler dispatches it)",
    dr_timeline: "Event timeline",
    dr_event: "Event",
    dr_window: "Window",
    dr_requested: "Requested/allocated/deliverable kW",
    dr_unreachable: "{n} site plans miss their limit",
    dr_deliverable_title: "requested / allocated / what the sites' own forecast plans can deliver",
    dr_sites: "Sites (dispatched/acked)",
    dr_verified: "Verified delivery",
    dr_actions: "Actions",
    dr_adjust: "Adjust",
    dr_cancel: "Cancel",
    dr_none: "No events",
    dr_pending: "pending: {action}",
    minutes: "{n} min",
    st_planned: "planned",
    st_dispatched: "dispatched",
    st_acknowledged: "acknowledged",
    st_active: "active",
    st_completed: "completed",
    st_cancelled: "cancelled",
    error: "Error: {detail}",
    kwh: "kWh",
  },
};

const LANG_KEY = "vpp.lang";
let lang = sessionStorage.getItem(LANG_KEY) === "en" ? "en" : "ja";

function t(key, vars) {
  const text = I18N[lang][key] ?? I18N.ja[key] ?? key;
  return vars ? text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? "")) : text;
}

function currentLang() {
  return lang;
}

function setLang(next) {
  lang = next === "en" ? "en" : "ja";
  sessionStorage.setItem(LANG_KEY, lang);
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n);
  }
  document.title = t("title");
}

function locale() {
  return lang === "ja" ? "ja-JP" : "en-GB";
}

function fmtNumber(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: digits, minimumFractionDigits: digits }).format(value);
}

function fmtTime(iso, withDate = false) {
  if (!iso) return "–";
  const opts = { timeZone: "Asia/Tokyo", hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  if (withDate) Object.assign(opts, { month: "2-digit", day: "2-digit" });
  return new Intl.DateTimeFormat(locale(), opts).format(new Date(iso));
}

function fmtAge(seconds) {
  if (seconds === null || seconds === undefined) return t("never");
  if (seconds < 120) return t("ago_s", { n: Math.max(0, Math.round(seconds)) });
  if (seconds < 7200) return t("ago_m", { n: Math.round(seconds / 60) });
  return t("ago_h", { n: Math.round(seconds / 3600) });
}
