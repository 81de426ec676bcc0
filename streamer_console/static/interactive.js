// The interactive-selling panel's tabs (giveaways, auctions, comment-to-buy, social); each
// tab's content is its own panel module. The badge on a tab counts what is open in it; a
// `livecart:tab` event says which tab is shown.

import { $ } from "./util.js";

export function init() {
  for (const tab of /** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll("#interactive-panel [role=tab]"))) {
    tab.addEventListener("click", () => select(tab.dataset.tab));
  }
}

export function select(name) {
  for (const tab of /** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll("#interactive-panel [role=tab]"))) {
    const on = tab.dataset.tab === name;
    tab.setAttribute("aria-selected", String(on));
    $(`#tab-${tab.dataset.tab}`).hidden = !on;
  }
  document.dispatchEvent(new CustomEvent("livecart:tab", { detail: name }));
}

export function reset() {}
export function refresh() {}
export function entry() {}
export function tick() {}
export function second() {}
