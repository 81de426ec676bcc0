// The room's stream in a <video> (docs/viewer.md § The stream): HLS plays natively where
// the browser can (Safari, iOS); elsewhere hls.js, imported only then, so its ~115 KB
// (gzip) stay out of the page's first load. The cover is the poster, and what is left
// showing when the stream cannot play.

// A URL the bundler-free page resolves next to this module; a variable, so tsc does not
// type-check the vendored file.
const HLS_MODULE = new URL("./vendor/hls.light.min.mjs", import.meta.url).href;
const HLS_TYPE = "application/vnd.apple.mpegurl";

/** @param {string} url */
export function isHls(url) {
  return /\.m3u8(?:[?#]|$)/i.test(url);
}

/** @typedef {"loading" | "playing" | "stalled" | "offline"} StreamState */
/** Why a stream is offline: none set, it could not be played, or it ended (its playlist
 * says so: an encoder stopped cleanly, a recording played out).
 * @typedef {"none" | "failed" | "ended"} OfflineCause */

// Frames that stop moving for this long while the video should play are a stall (a short
// wait for the next segment is not); they moving again is "playing" again.
export const STALL_MS = 3000;

/**
 * Play `url` in `video`, muted and inline (phones autoplay only so), with `poster` shown
 * until it plays and again if it fails. `onState` hears each change, once: "loading",
 * then "playing" when frames move, "stalled" when they stop for STALL_MS and "playing"
 * when they move again, or "offline" when there is no stream or it failed or ended (with
 * the cause as a second argument).
 * @param {HTMLVideoElement} video
 * @param {{url?: string | null, poster?: string | null,
 *          onState?: (state: StreamState, cause?: OfflineCause) => void}} options
 * @returns {() => void} detach: stops the stream and frees hls.js
 */
export function attachStream(video, { url, poster, onState = () => {} }) {
  /** @type {{destroy(): void} | null} */
  let hls = null;
  let done = false;
  let state = "";
  /** @type {ReturnType<typeof setInterval> | undefined} */
  let watchdog;
  /** @param {StreamState} next @param {OfflineCause} [cause] */
  const tell = (next, cause) => {
    if (next === state) return;
    state = next;
    if (cause) onState(next, cause);
    else onState(next);
  };
  video.muted = true;
  video.defaultMuted = true;
  video.playsInline = true;
  video.setAttribute("playsinline", "");
  video.autoplay = true;
  if (poster) video.poster = poster;
  else video.removeAttribute("poster");

  // The browser's own player first (where it claims HLS); hls.js otherwise, or if it fails.
  let native = !url || !isHls(url) || Boolean(video.canPlayType(HLS_TYPE));
  const release = () => {
    clearInterval(watchdog);
    video.removeEventListener("playing", playing);
    video.removeEventListener("error", fail);
    video.removeEventListener("ended", end);
    hls?.destroy();
    hls = null;
    video.removeAttribute("src");
    video.load(); // back to the poster
  };
  // Once frames move, a watchdog compares the position each half second.
  let position = -1;
  let still = 0;
  const watch = () => {
    if (done) return;
    const moved = video.currentTime !== position;
    position = video.currentTime;
    still = moved || video.paused ? 0 : still + 500;
    if (moved && state === "stalled") tell("playing");
    else if (still >= STALL_MS && state === "playing") tell("stalled");
  };
  const playing = () => {
    if (done) return;
    tell("playing");
    if (watchdog === undefined) watchdog = setInterval(watch, 500);
  };
  const fail = () => {
    if (done) return;
    if (native && isHls(url) && !hls && "MediaSource" in window) {
      // The browser's own HLS could not play it (Chromium's native HLS refuses some
      // streams it claims: DEMUXER_ERROR_COULD_NOT_PARSE): hls.js gets a try first.
      native = false;
      video.removeAttribute("src");
      video.load();
      viaHlsJs();
      return;
    }
    done = true;
    release();
    tell("offline", "failed");
  };
  const end = () => {
    if (done) return;
    done = true;
    release();
    tell("offline", "ended");
  };
  const play = () => { video.play().catch(() => {}); }; // refused autoplay: the poster stays

  if (!url) {
    done = true;
    tell("offline", "none");
    return () => {};
  }
  tell("loading");
  video.addEventListener("playing", playing);
  video.addEventListener("error", fail);
  video.addEventListener("ended", end); // a live stream that ends
  const viaHlsJs = () => {
    import(HLS_MODULE).then(({ default: Hls }) => {
      if (done) return;
      if (!Hls.isSupported()) { fail(); return; }
      const player = new Hls();
      hls = player;
      player.on(Hls.Events.ERROR, (/** @type {unknown} */ _event, /** @type {{fatal: boolean}} */ data) => {
        if (data.fatal) fail();
      });
      player.on(Hls.Events.MANIFEST_PARSED, play);
      player.loadSource(url);
      player.attachMedia(video);
    }, fail);
  };
  if (native) {
    video.src = url;
    play();
  } else {
    viaHlsJs();
  }
  return () => {
    if (done) return;
    done = true;
    release();
  };
}
