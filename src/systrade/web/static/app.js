// systrade dashboard: every page reads the JSON API and polls it, so it follows the daemon without a reload.
"use strict";

const POLL_MS = 5000;
const TOKEN_KEY = "systrade-web-token";
const page = document.body.dataset.page;
const WHOLE = new Set(["KRW", "JPY"]);

function money(value, currency, places = 2) {
  if (value === null || value === undefined) return "-";
  const digits = WHOLE.has(currency) ? 0 : places;
  return value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
function amount(value) {
  if (value === null || value === undefined) return "-";
  return value.toLocaleString("en-US", { maximumSignificantDigits: 8 });
}
function when(iso) {
  return iso ? iso.replace("T", " ").replace(/(\.\d+)?\+00:00$/, " UTC") : "-";
}
function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}
function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) tr.appendChild(c instanceof Node ? c : el("td", c));
  return tr;
}
function num(text, cls) { return el("td", text, "num" + (cls ? " " + cls : "")); }
function signed(value, currency) {
  if (value === null || value === undefined) return num("-");
  return num((value > 0 ? "+" : "") + money(value, currency), value > 0 ? "good" : value < 0 ? "bad" : "");
}
function fill(tbody, rows) { tbody.replaceChildren(...rows); }
function say(text, bad) { const m = document.getElementById("message"); if (m) { m.textContent = text; m.className = "message" + (bad ? " bad" : ""); } }
function stamp() { const u = document.getElementById("updated"); if (u) u.textContent = "updated " + new Date().toLocaleTimeString(); }

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || body.detail || response.statusText);
  return body;
}

function draw(id, figure) {
  const node = document.getElementById(id);
  if (!node || !figure || !window.Plotly) return;
  figure.layout = Object.assign({}, figure.layout, { autosize: true });
  Plotly.react(node, figure.data, figure.layout, { responsive: true, displaylogo: false });
}

// ---------------------------------------------------------------- halt and resume (token in sessionStorage only)

function askToken() {
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("token-input");
  input.value = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok" && input.value ? input.value : null);
    }, { once: true });
    dialog.showModal();
  });
}

async function act(bot, action) {
  let token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    token = await askToken();
    if (!token) { say(`${action} of ${bot} cancelled: no token given`, true); return; }
  }
  const response = await fetch(`/api/bots/${encodeURIComponent(bot)}/${action}`, {
    method: "POST", headers: { Authorization: "Bearer " + token } });
  const body = await response.json();
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    say(`${action} refused: the token is wrong (${body.error})`, true);
  } else if (!response.ok) {
    say(`${action} refused: ${body.error}`, true);
  } else {
    sessionStorage.setItem(TOKEN_KEY, token);
    say(`${action === "halt" ? "halted" : "resumed"}: ${bot}` + (body.warnings.length ? " (" + body.warnings.join("; ") + ")" : ""));
  }
  refresh();
}

function haltButton(bot) {
  const td = el("td");
  const button = el("button", bot.halted ? "Resume" : "Halt");
  button.dataset.bot = bot.name;
  button.dataset.action = bot.halted ? "resume" : "halt";
  button.addEventListener("click", () => act(bot.name, button.dataset.action));
  td.appendChild(button);
  return td;
}

function stateBadge(bot) {
  const td = el("td");
  const badge = el("span", bot.halted ? "halted" + (bot.halted_reason ? ": " + bot.halted_reason : "") : "running",
                   "badge " + (bot.halted ? "halted" : "running"));
  td.appendChild(badge);
  return td;
}

function tradeCells(t, withBot) {
  const cells = [el("td", when(t.time))];
  if (withBot) { const td = el("td"); const a = el("a", t.bot); a.href = "/bots/" + encodeURIComponent(t.bot); td.appendChild(a); cells.push(td); }
  cells.push(el("td", t.symbol), el("td", t.side, t.side === "buy" ? "good" : "bad"), num(amount(t.amount)),
             num(amount(t.price)), num(amount(t.fee) + " " + t.fee_currency));
  return cells;
}

function card(label, value, cls) {
  const div = el("div", null, "card");
  div.append(el("div", label, "label"), el("div", value, "value" + (cls ? " " + cls : "")));
  return div;
}

// ---------------------------------------------------------------- pages

let informed = null;
async function information() {
  if (!informed) {
    informed = await getJSON("/api/info");
    const mode = document.getElementById("mode");
    if (mode) mode.textContent = (informed.read_only ? "read-only (SYSTRADE_WEB_TOKEN not set)" : "halt/resume need the token") + " · ";
  }
  return informed;
}

async function overview() {
  const [status, ticks, trades, events] = await Promise.all([
    getJSON("/api/status"), getJSON("/api/ticks"), getJSON("/api/trades?limit=10"), getJSON("/api/events?limit=12")]);
  const quote = (await information()).quote;
  document.getElementById("account").replaceChildren(
    card(`equity (${quote})`, money(status.equity, quote)), card(`cash (${quote})`, money(status.cash, quote)),
    card("bots", status.bots.length), card("halted", status.bots.filter((b) => b.halted).length));
  fill(document.querySelector("#bots tbody"), status.bots.map((b) => {
    const name = el("td"); const link = el("a", b.name); link.href = "/bots/" + encodeURIComponent(b.name); name.appendChild(link);
    const tick = ticks[b.name];
    return row([name, el("td", b.strategy), el("td", `${b.exchange} ${b.symbol}`), el("td", b.timeframe),
      num(amount(b.position)), num(money(b.equity, b.quote)), signed(b.pnl, b.quote), num(money(b.fees, b.quote, 4)),
      el("td", tick ? `${when(tick.time)} (${tick.outcome})` : "-"), stateBadge(b), haltButton(b)]);
  }));
  fill(document.querySelector("#recent-trades tbody"), trades.map((t) => row([...tradeCells(t, true), el("td", t.exit_reason || "-")])));
  fill(document.querySelector("#recent-events tbody"), events.map((e) => row([when(e.time), e.bot || "-", e.kind, e.message])));
  stamp();
}

let chartsAt = 0;
async function overviewCharts() {
  const equity = await getJSON("/api/equity");
  if (equity.figure) draw("account-chart", equity.figure);
  else document.getElementById("account-chart").replaceChildren(el("p", "no equity yet: no candles stored for the bots' markets", "note"));
  const lines = Object.entries(equity.bots).map(([name, curve]) => ({
    type: "scatter", mode: "lines", name, x: curve.time, y: curve.equity, hovertemplate: "%{y:,.2f}" }));
  if (lines.length) draw("bots-chart", { data: lines, layout: {
    template: equity.figure ? equity.figure.layout.template : undefined, height: 320, hovermode: "x unified",
    margin: { l: 60, r: 20, t: 20, b: 30 }, yaxis: { title: { text: `equity (${equity.quote})` }, tickformat: "," },
    legend: { orientation: "h", y: 1.08, x: 1, xanchor: "right" } } });
}

const botName = page === "bot" ? decodeURIComponent(location.pathname.split("/").pop()) : null;

async function botPage() {
  const [status, trades] = await Promise.all([getJSON("/api/status"), getJSON(`/api/trades?bot=${encodeURIComponent(botName)}`)]);
  const bot = status.bots.find((b) => b.name === botName);
  if (!bot) { say(`unknown bot ${botName}`, true); return; }
  document.title = `systrade: ${bot.name}`;
  document.getElementById("bot-title").textContent = `${bot.name}: ${bot.strategy} on ${bot.exchange} ${bot.symbol} ${bot.timeframe}`;
  const state = el("div", null, "card");
  state.append(el("div", "state", "label"), stateBadge(bot).firstChild);
  const action = el("div", null, "card"); action.append(el("div", "action", "label"), haltButton(bot).firstChild);
  document.getElementById("bot-cards").replaceChildren(
    card(`equity (${bot.quote})`, money(bot.equity, bot.quote)), card("P&L", (bot.pnl > 0 ? "+" : "") + money(bot.pnl, bot.quote),
      bot.pnl > 0 ? "good" : bot.pnl < 0 ? "bad" : ""), card("position", amount(bot.position)),
    card("last bar", when(bot.last_bar)), state, action);
  fill(document.querySelector("#bot-trades tbody"), trades.map((t) => row([...tradeCells(t, false), el("td", when(t.bar_time)), el("td", t.exit_reason || "-")])));
  stamp();
}

async function botCharts() {
  const [candles, equity] = await Promise.all([getJSON(`/api/bots/${encodeURIComponent(botName)}/candles`),
                                               getJSON(`/api/bots/${encodeURIComponent(botName)}/equity`)]);
  document.getElementById("price-note").textContent = candles.note || "";
  if (candles.figure) draw("price-chart", candles.figure);
  if (equity.figure) draw("equity-chart", equity.figure);
}

function filters() {
  const params = new URLSearchParams();
  for (const key of ["bot", "symbol", "side"]) {
    const node = document.getElementById("filter-" + key);
    if (node && node.value) params.set(key, node.value);
  }
  return params;
}

function options(id, values) {
  const select = document.getElementById(id);
  const known = new Set([...select.options].map((o) => o.value));
  for (const v of values) if (!known.has(v)) { const o = el("option", v); o.value = v; select.appendChild(o); }
}

let oldestShown = null;
async function tradesPage(more) {
  const params = filters();
  document.getElementById("csv").href = "/api/trades.csv?" + params;
  params.set("limit", "100");
  if (more && oldestShown) params.set("before", oldestShown);
  const [rows, status] = await Promise.all([getJSON("/api/trades?" + params), getJSON("/api/status")]);
  options("filter-bot", status.bots.map((b) => b.name));
  options("filter-symbol", [...new Set(status.bots.map((b) => b.symbol))]);
  const tbody = document.querySelector("#trades tbody");
  const built = rows.map((t) => row([...tradeCells(t, true), el("td", when(t.bar_time)), el("td", t.action),
                                      el("td", t.exit_reason || "-"), el("td", t.client_order_id, "muted")]));
  if (more) tbody.append(...built); else fill(tbody, built);
  if (rows.length) oldestShown = rows[rows.length - 1].time; else if (!more) oldestShown = null;
  document.getElementById("more").hidden = rows.length < 100;
  stamp();
}

let oldestEvent = null;
async function eventsPage(more) {
  const params = filters();
  params.set("limit", "100");
  if (more && oldestEvent) params.set("before", oldestEvent);
  const [rows, status] = await Promise.all([getJSON("/api/events?" + params), getJSON("/api/status")]);
  options("filter-bot", status.bots.map((b) => b.name));
  const built = rows.map((e) => row([when(e.time), e.bot || "-", e.kind, e.message]));
  const tbody = document.querySelector("#events tbody");
  if (more) tbody.append(...built); else fill(tbody, built);
  if (rows.length) oldestEvent = rows[rows.length - 1].id; else if (!more) oldestEvent = null;
  document.getElementById("more").hidden = rows.length < 100;
  stamp();
}

// ---------------------------------------------------------------- polling

async function refresh() {
  try {
    await information();
    if (page === "overview") {
      await overview();
      if (Date.now() - chartsAt > 3 * POLL_MS) { chartsAt = Date.now(); await overviewCharts(); }
    } else if (page === "bot") {
      await botPage();
      if (Date.now() - chartsAt > 2 * POLL_MS) { chartsAt = Date.now(); await botCharts(); }
    } else if (page === "trades") {
      if (!document.getElementById("more").dataset.paged) await tradesPage(false);
    } else if (page === "events") {
      if (!document.getElementById("more").dataset.paged) await eventsPage(false);
    }
  } catch (error) {
    say("could not update: " + error.message, true);
  }
}

document.querySelectorAll("[data-nav]").forEach((a) => { if (a.dataset.nav === page) a.classList.add("here"); });
for (const id of ["filter-bot", "filter-symbol", "filter-side"]) {
  const node = document.getElementById(id);
  if (node) node.addEventListener("change", () => { document.getElementById("more").dataset.paged = ""; refresh(); });
}
const moreButton = document.getElementById("more");
if (moreButton) moreButton.addEventListener("click", () => {
  moreButton.dataset.paged = "1";
  (page === "trades" ? tradesPage : eventsPage)(true);
});
refresh();
setInterval(refresh, POLL_MS);
