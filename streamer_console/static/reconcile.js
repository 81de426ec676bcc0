// Reconciliation, in the dashboard view (host only): a UTC day of the payment provider's
// settlement against the books (GET .../reconciliation?date=), one row per exception with the
// amounts on both sides and its remedy, and Fix (POST .../reconciliation/{id}/fix with why),
// which applies the remedy once and records who and why (docs/ledger.md § Reconciliation).
// Loaded when the host asks (Check), never polled: it reads the provider's report, and an
// engine without a ledger answers `ledger_disabled`, said here in the panel.

import { ApiError, act, api } from "./api.js";
import { $, actionButton, confirmAction, el, fieldError, money } from "./util.js";
import { clockTime, label, t } from "./i18n.js";

const MAX_WHY = 500;

let day = ""; // the day shown (YYYY-MM-DD), "" before the first check
const openFix = new Set(); // exception ids whose "why" form is open
let last = null;

/** Today in UTC as the date input takes it: the provider's days are UTC days. */
const utcToday = () => new Date().toISOString().slice(0, 10);

export function init() {
  $("#recon-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    load(ev.currentTarget.querySelector("button"));
  });
}

export function reset() {
  day = "";
  last = null;
  openFix.clear();
  $("#recon-date").value = utcToday();
  $("#recon-list").replaceChildren();
  note(t("recon.hint"));
}

export function refresh() {}
export function entry() {}
export function tick() {}
export function second() {}

function note(text) {
  $("#recon-summary").textContent = "";
  const hint = $("#recon-note");
  hint.hidden = !text;
  hint.textContent = text;
}

async function load(button = null) {
  const wanted = $("#recon-date").value || utcToday();
  const report = await act(t("recon.load", { day: wanted }), () => fetchDay(wanted), button);
  if (!report) return;
  if (wanted !== day) openFix.clear();
  day = wanted;
  render(report);
}

async function fetchDay(wanted) {
  try {
    return await api("GET", `/reconciliation?date=${wanted}`);
  } catch (error) {
    // Not a failure to retry: this engine has no books. The panel says so where it is read.
    if (error instanceof ApiError && error.code === "ledger_disabled") note(t("recon.noLedger"));
    throw error;
  }
}

function render(report) {
  last = report;
  const items = report.exceptions;
  const open = items.filter((item) => item.status === "open").length;
  note(items.length ? "" : t("recon.clean", { day: report.date }));
  $("#recon-summary").textContent = items.length
    ? t("recon.summary", { open, resolved: items.length - open })
    : "";
  $("#recon-list").replaceChildren(...items.map(row));
}

const amount = (minor, currency) => (minor === null ? "—" : money(minor, currency));

function row(item) {
  const about = [item.order, item.refund ? t("recon.refund", { id: item.refund }) : item.payment]
    .filter(Boolean).join(" · ");
  const done = item.adjustment;
  return el(
    "li",
    { class: "recon-item", dataset: { id: item.id, class: item.class, status: item.status } },
    el("div", { class: "recon-head" },
      el("strong", { class: "recon-class" }, label("recon.class", item.class)),
      el("span", { class: "recon-status", dataset: { status: item.status } },
        label("recon.status", item.status))),
    el("div", { class: "meta recon-about", title: item.id }, about),
    el("div", { class: "recon-money" },
      el("span", {}, t("recon.provider", { amount: amount(item.provider_amount, item.provider_currency) })),
      el("span", {}, t("recon.books", { amount: amount(item.books_amount, item.books_currency) }))),
    el("div", { class: "meta recon-remedy" }, label("recon.remedy", item.remedy)),
    done
      ? el("div", { class: "meta recon-done" },
        t("recon.fixed", { who: done.who, time: clockTime(Date.parse(done.at)), why: done.why }))
      : actions(item),
  );
}

function actions(item) {
  if (!item.fixable) return null;
  const verb = item.remedy === "acknowledge" ? t("recon.acknowledge") : t("recon.fix");
  const open = openFix.has(item.id); // the toggle closes the "why" form it opened
  const box = el("div", { class: "row-actions" },
    actionButton(open ? t("confirm.no") : verb,
      item.remedy === "acknowledge" || open ? "recon-open" : "recon-open primary",
      () => toggle(item)));
  if (open) box.append(fixForm(item, verb));
  return box;
}

function toggle(item) {
  if (openFix.has(item.id)) openFix.delete(item.id);
  else openFix.add(item.id);
  if (last) render(last);
  $(`#recon-list li[data-id="${item.id}"] .recon-why`)?.focus();
}

function fixForm(item, verb) {
  const why = el("input", { class: "recon-why", maxlength: MAX_WHY, "aria-label": t("recon.whyLabel"),
    placeholder: t("recon.why") });
  return el("form", { class: "recon-fix", onsubmit: (ev) => {
    ev.preventDefault();
    fix(item, why, verb, ev.currentTarget.querySelector("button"));
  } },
  why,
  el("button", { type: "submit", class: "danger recon-do" }, verb));
}

async function fix(item, input, verb, button) {
  const why = input.value.trim();
  if (!why) {
    fieldError(input, t("recon.needWhy"));
    input.focus();
    return;
  }
  const question = t("recon.fixQuestion", { what: label("recon.class", item.class),
    remedy: label("recon.remedy", item.remedy) });
  if (!(await confirmAction(question, verb))) return;
  const done = await act(t("recon.fixAct", { what: label("recon.class", item.class) }),
    () => api("POST", `/reconciliation/${item.id}/fix`, { why }), button);
  if (!done) return;
  openFix.delete(item.id);
  await load();
}
