// Product images in the console: a thumbnail (the run of show, sale cards), and the product
// form's picture field, which checks the file the way the engine will (type, size) before
// uploading it (POST /api/rooms/{room}/images, docs/api.md § Product images): the product
// then names the URL the engine answers in its `images`.

import { api } from "./api.js";
import { t } from "./i18n.js";
import { $, el, fieldError } from "./util.js";

// The engine's limits (engine/commerce/images.py): checked here first so the host hears at
// once, in their words, rather than after an upload.
export const IMAGE_TYPES = ["image/png", "image/jpeg", "image/webp", "image/gif"];
export const MAX_IMAGE_BYTES = 5 * 1024 * 1024;

/** A product's first picture as a small square; an empty box when there is none or it fails. */
export function thumb(url, className = "thumb") {
  if (!url) return el("span", { class: `${className} empty`, "aria-hidden": "true" });
  const img = el("img", { class: className, src: url, alt: "", loading: "lazy", decoding: "async" });
  img.addEventListener("error", () => img.replaceWith(thumb(null, className)), { once: true });
  return img;
}

/** The form's chosen file, once checked: a File, `null` (none chosen), or `false` (refused,
 * the reason shown next to the field). */
export function chosenImage() {
  const input = /** @type {HTMLInputElement} */ ($("#product-image"));
  fieldError(input, null);
  const file = input.files && input.files[0];
  if (!file) return null;
  if (!IMAGE_TYPES.includes(file.type)) {
    fieldError(input, t("image.type"));
    return false;
  }
  if (file.size > MAX_IMAGE_BYTES) {
    fieldError(input, t("image.tooBig", { mb: MAX_IMAGE_BYTES / 1024 / 1024 }));
    return false;
  }
  return file;
}

/** Upload `file`: the URL the engine stores it under (`/images/<sha256>.<ext>`). */
export async function upload(file) {
  const stored = await api("POST", "/images", file);
  return stored.url;
}

/** Show `url` (or nothing) as the form's current picture; a new file chosen previews itself. */
export function showInForm(url) {
  const input = /** @type {HTMLInputElement} */ ($("#product-image"));
  input.value = "";
  fieldError(input, null);
  $("#product-image-preview").replaceChildren(thumb(url, "thumb large"));
  $("#product-image-remove").hidden = !url;
  $("#product-image-remove").dataset.removed = "";
}

export function init() {
  const input = /** @type {HTMLInputElement} */ ($("#product-image"));
  input.addEventListener("change", () => {
    const file = chosenImage();
    if (!file) return;
    const preview = thumb(URL.createObjectURL(file), "thumb large");
    preview.addEventListener("load", () => URL.revokeObjectURL(preview.src), { once: true });
    $("#product-image-preview").replaceChildren(preview);
  });
  $("#product-image-remove").addEventListener("click", (event) => {
    const button = /** @type {HTMLButtonElement} */ (event.currentTarget);
    input.value = "";
    button.dataset.removed = "1";
    button.hidden = true;
    $("#product-image-preview").replaceChildren(thumb(null, "thumb large"));
  });
}

/** What the form asks of the product's images: keep them (undefined), none ([]), or a new
 * first picture uploaded now (the rest kept). Throws when the upload fails. */
export async function imagesFor(product, file) {
  const rest = product ? (product.images || []).slice(1) : [];
  if (file) return [await upload(file), ...rest];
  if ($("#product-image-remove").dataset.removed) return rest;
  return undefined;
}
