// The stream check: the room's stream as viewers see it (muted, through the viewer page's own
// player, /live/static/stream.js) and its health, so the host knows the stream is up before
// going live. Offline is tried again every RETRY_MS (the encoder is often started after the
// console), unless the stream ended: then Check again (or a new URL) plays it. The host
// sets the stream URL here too (PATCH /api/rooms/{room}).

import { api, act } from "./api.js";
import { $, fieldError, showRefusal } from "./util.js";
import { attachStream } from "/live/static/stream.js";
import { label, t } from "./i18n.js";

const RETRY_MS = 10_000;
/** @type {{url: string | null, cover: string | null, health: string, detach: () => void,
 *          retry: ReturnType<typeof setTimeout> | undefined}} */
const state = { url: null, cover: null, health: "none", detach: () => {}, retry: undefined };

/** The stream's health now: "none" (no URL), "loading", "playing", "stalled" or "offline". */
export const health = () => state.health;

export function init() {
  $("#stream-form").addEventListener("submit", saveUrl);
  $("#stream-retry").addEventListener("click", () => play(true));
}

export function reset(welcome) {
  follow(welcome.room);
}

export function refresh(welcome) {
  follow(welcome.room);
}

export function entry(e) {
  if (e.kind === "room_updated" && ("stream_url" in e || "cover_url" in e)) {
    follow({ stream_url: "stream_url" in e ? e.stream_url : state.url,
             cover_url: "cover_url" in e ? e.cover_url : state.cover });
  }
}

export function tick() {}
export function second() {}

/** @param {{stream_url?: string | null, cover_url?: string | null}} room */
function follow(room) {
  const url = room.stream_url || null;
  const cover = room.cover_url || null;
  const form = $("#stream-url");
  if (document.activeElement !== form) form.value = url || "";
  if (url === state.url && cover === state.cover && state.health !== "none") return;
  state.url = url;
  state.cover = cover;
  play(false);
}

function play(again) {
  clearTimeout(state.retry);
  state.detach();
  state.detach = () => {};
  const video = /** @type {HTMLVideoElement} */ ($("#stream-video"));
  if (!state.url) {
    if (state.cover) video.poster = state.cover;
    else video.removeAttribute("poster");
    show("none");
    return;
  }
  if (again) show("loading");
  state.detach = attachStream(video, { url: state.url, poster: state.cover, onState: show });
}

/** @param {string} health @param {string} [cause] why it is offline (stream.js) */
function show(health, cause) {
  state.health = health;
  const panel = $("#stream-panel");
  panel.dataset.health = health;
  $("#stream-health").textContent = label("stream.health", health);
  // A stream that ended says so and waits for the host: played again, its playlist would
  // replay its last segments as if the show were on.
  const ended = health === "offline" && cause === "ended";
  $("#stream-say").textContent = t(ended ? "stream.say.ended" : `stream.say.${health}`);
  const video = /** @type {HTMLVideoElement} */ ($("#stream-video"));
  $("#stream-size").textContent = health === "playing" && video.videoWidth
    ? `${video.videoWidth}×${video.videoHeight}` : "";
  if (health === "offline" && !ended) state.retry = setTimeout(() => play(true), RETRY_MS);
}

async function saveUrl(event) {
  event.preventDefault();
  const input = /** @type {HTMLInputElement} */ ($("#stream-url"));
  const url = input.value.trim() || null;
  fieldError(input, null);
  const save = async () => {
    try {
      return await api("PATCH", "", { stream_url: url });
    } catch (error) {
      showRefusal(error, (name) => (name === "stream_url" ? input : null),
        () => t("stream.urlRule"));
      throw error;
    }
  };
  const room = await act(t("act.saveStreamUrl"), save, $("#stream-save"));
  if (room) follow(room);
}
