/* The case page's files: photos inline with a lightbox, audio and video players, documents to download,
   the status of a file still downloading (or that could not be), a voice note's transcript, an album as one
   group; and the agent's "Adjuntar foto o PDF". Loaded before console.js, which calls ConsoleMedia.render for
   every message that has files. Links are the server's own signed, expiring ones. */
"use strict";

const ConsoleMedia = (() => {
  const IMAGE_MAX = 5 * 1024 * 1024;
  const PDF_MAX = 100 * 1024 * 1024;
  const WAITING_POLL_MS = 5000;
  const RENEW_LINKS_MS = 8 * 60 * 1000;  // our links last ten minutes (runtime/media_links.py VIEW_TTL_S)
  let waitingTimer = null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  // What is written under a file (transcript, read code): a node is reused only while that is unchanged.
  function said(f) {
    return [f.transcript_label, f.transcript, f.ocr_text].map((t) => t || "").join("|");
  }

  // -- one file ------------------------------------------------------------------------------------------------
  function file(f) {
    const box = el("div", {class: "media-item media-" + f.type + " media-" + f.status, "data-media-id": f.id,
                           "data-said": said(f)});
    if (!f.url) {
      box.append(el("p", {class: "media-status", text: f.label + (f.filename ? " " + f.filename : "") + " · " + (f.status_text || "")}));
    } else if (f.type === "image" || f.type === "sticker") {
      const link = el("a", {class: "media-thumb", href: f.url, "data-full": f.url, title: "Ver en grande"},
        el("img", {src: f.url, alt: f.label, loading: "lazy"}));
      box.append(link);
    } else if (f.type === "audio") {
      box.append(el("span", {class: "media-label", text: f.label}), player("audio", f));
    } else if (f.type === "video") {
      box.append(player("video", f));
    } else {
      box.append(el("a", {class: "media-doc", href: f.url, download: f.filename || ""},
        "📄 ", el("span", {class: "name", text: f.filename || f.label}), f.size_text ? el("span", {class: "size", text: " · " + f.size_text}) : null));
    }
    if (f.transcript_label) {
      const said = el("div", {class: "media-transcript"}, el("span", {class: "label", text: f.transcript_label}));
      if (f.transcript) said.append(el("p", {class: "text", text: f.transcript}));
      box.append(said);
    }
    if (f.ocr_text) box.append(el("p", {class: "media-ocr", text: f.ocr_text}));
    return box;
  }

  // A player whose link ran out (a page left open) asks for a fresh one once and plays on.
  function player(tag, f) {
    const node = el(tag, {controls: "", preload: "metadata", src: f.url});
    node.addEventListener("error", () => {
      if (node.dataset.renewed || typeof Console === "undefined") return;
      node.dataset.renewed = "1";
      Console.api("GET", "/console/api/media/" + f.id).then((fresh) => { if (fresh.url) node.src = fresh.url; }).catch(() => {});
    });
    return node;
  }

  // Links of a page left open are renewed before they expire (a player in use is left alone).
  function renewLinks() {
    for (const node of document.querySelectorAll(".media-item.media-stored")) {
      const playing = [...node.querySelectorAll("audio, video")].some((p) => !p.paused);
      if (!playing) refresh(node.dataset.mediaId).catch(() => {});
    }
  }

  // The page redraws its whole transcript on every event: a stored file already shown keeps its node, so
  // a voice note being listened to goes on playing and pictures are not fetched again.
  function shown(f) {
    const old = document.querySelector('.media-item.media-stored[data-media-id="' + f.id + '"]');
    return old && f.status === "stored" && old.dataset.said === said(f) ? old : file(f);
  }

  function render(message) {
    const group = el("div", {class: "media-list" + (message.album ? " album" : "")});
    if (message.album) group.append(el("span", {class: "media-label", text: message.album_text}));
    for (const f of message.media) group.append(shown(f));
    if (message.media.some((f) => f.status === "pending")) watchWaiting();
    return group;
  }

  // -- a download that finishes: refresh the file (a live event, or a look every few seconds meanwhile) ----------
  async function refresh(id) {
    const nodes = document.querySelectorAll('.media-item[data-media-id="' + id + '"]');
    if (!nodes.length || typeof Console === "undefined") return;
    const f = await Console.api("GET", "/console/api/media/" + id);
    for (const node of nodes) node.replaceWith(file(f));
  }

  function watchWaiting() {
    if (waitingTimer) return;
    waitingTimer = setTimeout(async () => {
      waitingTimer = null;
      const waiting = [...document.querySelectorAll(".media-item.media-pending")].map((n) => n.dataset.mediaId);
      for (const id of waiting) await refresh(id).catch(() => {});
      if (document.querySelector(".media-item.media-pending")) watchWaiting();
    }, WAITING_POLL_MS);
  }

  // -- the lightbox ------------------------------------------------------------------------------------------------
  function lightbox() {
    let box = document.getElementById("lightbox");
    if (box) return box;
    box = el("div", {id: "lightbox", class: "lightbox", role: "dialog", "aria-modal": "true", "aria-label": "Foto en grande", hidden: ""},
      el("button", {type: "button", class: "lightbox-close", "aria-label": "Cerrar", text: "×"}),
      el("img", {alt: "Foto en grande"}));
    box.addEventListener("click", (event) => { if (event.target === box || event.target.closest(".lightbox-close")) close(); });
    document.body.append(box);
    return box;
  }

  function open(url) {
    const box = lightbox();
    box.querySelector("img").src = url;
    box.hidden = false;
    box.querySelector(".lightbox-close").focus();
  }

  function close() {
    const box = document.getElementById("lightbox");
    if (box) { box.hidden = true; box.querySelector("img").removeAttribute("src"); }
  }

  document.addEventListener("click", (event) => {
    const thumb = event.target.closest("a.media-thumb");
    if (!thumb) return;
    event.preventDefault();
    open(thumb.dataset.full);
  });
  document.addEventListener("keydown", (event) => { if (event.key === "Escape") close(); });

  // -- the agent sends a photo or a PDF ---------------------------------------------------------------------------
  function setupUpload() {
    const input = document.getElementById("file-input");
    if (!input || typeof Console === "undefined") return;
    const $ = (id) => document.getElementById(id);
    const caseId = document.getElementById("case").dataset.caseId;
    const csrf = document.querySelector('meta[name="csrf-token"]').content;
    let key = null;

    function problem(text) {
      $("file-error").textContent = text || "";
      $("file-error").hidden = !text;
    }
    function reset() {
      input.value = "";
      $("file-caption").value = "";
      $("file-chosen").hidden = true;
      problem(null);
      key = null;
    }
    input.addEventListener("change", () => {
      problem(null);
      const chosen = input.files[0];
      if (!chosen) { reset(); return; }
      const pdf = chosen.type === "application/pdf" || /\.pdf$/i.test(chosen.name);
      if (chosen.size > (pdf ? PDF_MAX : IMAGE_MAX)) {
        reset();
        problem(pdf ? "WhatsApp no acepta un PDF de más de 100 MB." : "WhatsApp no acepta una imagen de más de 5 MB.");
        return;
      }
      $("file-name").textContent = chosen.name;
      $("file-chosen").hidden = false;
      key = crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random();
    });
    $("file-cancel").addEventListener("click", reset);
    $("file-send").addEventListener("click", async () => {
      const chosen = input.files[0];
      if (!chosen) return;
      const body = new FormData();
      body.append("case_id", caseId);
      body.append("file", chosen);
      body.append("caption", $("file-caption").value);
      body.append("client_key", key || "");
      $("file-send").disabled = true;
      try {
        const response = await fetch("/console/api/files", {method: "POST", body, credentials: "same-origin",
                                                             headers: {"X-CSRF-Token": csrf, "Accept": "application/json"}});
        let data = {};
        try { data = await response.json(); } catch (e) { data = {}; }
        if (!response.ok) {
          problem(data.error || "No se pudo enviar el archivo.");
          if (data.window_closed) document.getElementById("window-closed").hidden = false;
          return;
        }
        reset();
        document.dispatchEvent(new Event("console:reload"));
      } catch (e) {
        problem("No hubo conexión: el archivo no se envió.");
      } finally {
        $("file-send").disabled = false;
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    setupUpload();
    setInterval(renewLinks, RENEW_LINKS_MS);
    if (typeof Console !== "undefined") {
      Console.on((type, event) => { if (type === "media" && event.media_id) refresh(event.media_id).catch(() => {}); });
    }
  });

  return {render, refresh, open, close};
})();
