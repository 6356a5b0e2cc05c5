// The WhatsApp simulator page: send as a customer, poll the messages table, draw the replies.
//
// Safety: customer and bot text is never parsed as HTML. Every string reaches the page as a
// text node (createTextNode / textContent); WhatsApp's *bold*, _italic_, ~strike~ and ```mono```
// become <strong>/<em>/<s>/<code> elements built around those text nodes.
(function () {
  "use strict";

  const POLL_MS = 700;
  const WATCH_RECENT = 20; // re-read the delivery status of this many recent bot messages until settled
  const UNSETTLED = new Set(["pending", "sending", "accepted", "sent"]);
  const STATUS_LABELS = {
    pending: ["🕓", "pendiente"],
    sending: ["🕓", "enviando"],
    accepted: ["✓", "aceptado"],
    sent: ["✓", "enviado"],
    delivered: ["✓✓", "entregado"],
    read: ["✓✓", "leído"],
    failed: ["⚠", "falló"],
    received: ["", ""],
  };
  const NUMBER_RE = /^\+?[1-9]\d{7,14}$/;
  const FORMAT_RE =
    /(?<![\p{L}\p{N}])(?:```([^`]+)```|\*(?=\S)([^*\n]*?\S)\*|_(?=\S)([^_\n]*?\S)_|~(?=\S)([^~\n]*?\S)~)(?![\p{L}\p{N}])/u;

  const body = document.body;
  const api = {
    send: body.dataset.sendUrl,
    messages: body.dataset.messagesUrl,
    reset: body.dataset.resetUrl,
    media: body.dataset.mediaUrl,
  };
  const $ = (id) => document.getElementById(id);
  const chat = $("chat");
  const numberPick = $("number-pick");
  const companyPick = $("company-pick");
  const companyName = $("company-name");
  const numberInput = $("number");
  const nameInput = $("name");
  const textInput = $("text");
  const errorBox = $("error");
  const connection = $("connection");
  const sheet = $("sheet");
  const locationPanel = $("location-panel");
  const attachPanel = $("attach-panel");
  const filePick = $("file-pick");
  const voicePick = $("voice-pick");
  const voicePanel = $("voice-panel");
  const voiceStatus = $("voice-status");
  const voiceRecord = $("voice-record");
  const VOICE_HINT = voiceStatus.textContent;
  // A voice note recorded here: WhatsApp's own format where the browser records it (Firefox), else MP4 audio.
  const RECORDING_TYPES = ["audio/ogg;codecs=opus", "audio/mp4", "audio/webm;codecs=opus"];
  let recorder = null; // the MediaRecorder while a voice note is being recorded
  const FILE_LABELS = { image: "📷 Foto", sticker: "🙂 Sticker", audio: "🎵 Audio", video: "🎬 Video", document: "📄 Documento" };
  let picked = []; // the files chosen in the attach panel, not sent yet
  const NOTES = {
    transcript: (text) => (text ? "📝 El bot entendió tu audio: «" + text + "»" : "📝 El bot no pudo entender tu audio"),
    photo_text: (text) => "🔎 El bot leyó en tu foto: " + text,
  };

  let phone = "";
  let company = companyPick.value; // the tenant slug written to; each company's chat is drawn apart
  let generation = 0; // bumps when the number or the company changes: stale polls are dropped
  let lastId = 0;
  const shown = new Map(); // message id -> {element, status, direction}
  const conversations = new Set();
  const sentWamids = new Set(); // inbound provider ids already drawn from the server
  const pendingBubbles = new Map(); // wamid -> optimistic bubble waiting for its stored row

  // ---------- small DOM helpers ----------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function appendFormatted(parent, text) {
    let rest = String(text || "");
    while (rest) {
      const m = FORMAT_RE.exec(rest);
      if (!m) {
        parent.appendChild(document.createTextNode(rest));
        break;
      }
      if (m.index > 0) parent.appendChild(document.createTextNode(rest.slice(0, m.index)));
      let node;
      if (m[1] !== undefined) {
        node = el("code", "", m[1]);
      } else {
        node = el(m[2] !== undefined ? "strong" : m[3] !== undefined ? "em" : "s");
        appendFormatted(node, m[2] ?? m[3] ?? m[4]);
      }
      parent.appendChild(node);
      rest = rest.slice(m.index + m[0].length);
    }
    return parent;
  }

  function formatted(className, text) {
    return appendFormatted(el("div", className), text);
  }

  function insertOrdered(node, order) {
    node.dataset.order = String(order);
    let after = chat.lastElementChild;
    while (after && Number(after.dataset.order) > order) after = after.previousElementSibling;
    if (after) after.after(node);
    else chat.prepend(node);
  }

  function scrollToEnd() {
    chat.scrollTop = chat.scrollHeight;
  }

  function showError(message) {
    errorBox.textContent = message || "";
    errorBox.hidden = !message;
  }

  function clock(iso) {
    const date = iso ? new Date(iso) : new Date();
    return date.toLocaleTimeString("es-SV", { hour: "2-digit", minute: "2-digit" });
  }

  // ---------- rendering ----------

  function statusNode(status) {
    const [icon, label] = STATUS_LABELS[status] || ["", status];
    const node = el("span", "status status-" + status, (icon + " " + label).trim());
    node.title = status;
    return node;
  }

  function locationCard(loc) {
    const lat = Number(loc.latitude);
    const lon = Number(loc.longitude);
    const card = el("div", "location-card");
    card.appendChild(el("div", "pin", "📍"));
    const info = el("div", "location-info");
    info.appendChild(el("div", "location-name", loc.name || "Ubicación"));
    if (loc.address) info.appendChild(el("div", "location-address", loc.address));
    if (Number.isFinite(lat) && Number.isFinite(lon)) {
      info.appendChild(el("div", "location-coords", lat.toFixed(5) + ", " + lon.toFixed(5)));
      const link = el("a", "location-link", "Abrir en OpenStreetMap");
      link.href = "https://www.openstreetmap.org/?mlat=" + lat + "&mlon=" + lon + "#map=17/" + lat + "/" + lon;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      info.appendChild(link);
    }
    card.appendChild(info);
    return card;
  }

  function choiceButton(className, label, reply) {
    const button = el("button", className, label);
    button.type = "button";
    button.addEventListener("click", () => send({ reply }));
    return button;
  }

  function botContent(bubble, message) {
    const m = message.shown || message.payload || {};
    if (m.header) bubble.appendChild(formatted("header", m.header));
    switch (m.kind) {
      case "text":
        bubble.appendChild(formatted("text", m.body));
        break;
      case "buttons":
      case "list":
        bubble.appendChild(formatted("text", m.body));
        if (m.footer) bubble.appendChild(el("div", "footer", m.footer));
        break;
      case "location":
        bubble.appendChild(locationCard(m));
        break;
      case "template":
        bubble.appendChild(el("div", "template-label", "Plantilla " + (m.name || "")));
        bubble.appendChild(formatted("text", message.body));
        break;
      case "media":  // an agent's photo or PDF (issue 17), through our signed link
        if (message.file_url && message.file_type === "image") {
          const picture = document.createElement("img");
          picture.className = "photo";
          picture.src = message.file_url;
          picture.alt = "Foto";
          bubble.appendChild(picture);
        } else if (message.file_url) {
          const link = el("a", "document", "📄 " + (message.file_name || "documento"));
          link.href = message.file_url;
          link.target = "_blank";
          bubble.appendChild(link);
        }
        if (m.caption) bubble.appendChild(formatted("text", m.caption));
        break;
      default:
        bubble.appendChild(formatted("text", message.body));
    }
    const meta = el("div", "meta");
    meta.appendChild(el("span", "time", clock(message.created_at)));
    meta.appendChild(statusNode(message.status));
    bubble.appendChild(meta);
    if (m.kind === "buttons") {
      const actions = el("div", "actions");
      for (const b of m.buttons || []) {
        actions.appendChild(choiceButton("action reply-button", b.title, { type: "button", id: b.id, title: b.title }));
      }
      bubble.appendChild(actions);
    } else if (m.kind === "list") {
      const actions = el("div", "actions");
      const open = el("button", "action list-button", "☰ " + (m.button_label || "Ver opciones"));
      open.type = "button";
      open.addEventListener("click", () => openSheet(m));
      actions.appendChild(open);
      bubble.appendChild(actions);
    }
  }

  function fileNode(type, url, name, voice) {
    // A customer's photo, audio, video or document as their phone shows it (issue 17).
    if (url && (type === "image" || type === "sticker")) {
      const picture = document.createElement("img");
      picture.className = "photo";
      picture.src = url;
      picture.alt = FILE_LABELS[type];
      picture.addEventListener("error", () => picture.replaceWith(el("div", "file-label", FILE_LABELS[type])));
      return picture;
    }
    if (url && (type === "audio" || type === "video")) {
      const box = el("div");
      box.appendChild(el("div", "file-label", voice ? "🎤 Nota de voz" : FILE_LABELS[type]));
      const player = document.createElement(type);
      player.controls = true;
      player.preload = "metadata";
      player.src = url;
      box.appendChild(player);
      return box;
    }
    if (url && type === "document") {
      const link = el("a", "document", "📄 " + (name || "documento"));
      link.href = url;
      link.target = "_blank";
      link.rel = "noopener";
      return link;
    }
    return el("div", "file-label", voice ? "🎤 Nota de voz" : FILE_LABELS[type] || "📎 Archivo");
  }

  function customerContent(bubble, message) {
    const p = message.payload || {};
    if (message.kind === "media") {
      bubble.appendChild(fileNode(p.media_type, message.file_url, p.media_filename, p.media_voice));
      if (message.body) bubble.appendChild(formatted("text", message.body));
    } else if (message.kind === "location" && p.latitude !== undefined) {
      bubble.appendChild(locationCard({
        latitude: p.latitude, longitude: p.longitude, name: p.location_name, address: p.location_address,
      }));
    } else {
      if (message.kind === "button_reply" || message.kind === "list_reply") {
        bubble.appendChild(el("div", "reply-tag", message.kind === "list_reply" ? "☰ opción de lista" : "↩ botón"));
      }
      bubble.appendChild(formatted("text", message.body || "[" + message.kind + "]"));
    }
    const meta = el("div", "meta");
    meta.appendChild(el("span", "time", clock(message.created_at)));
    bubble.appendChild(meta);
  }

  function render(message) {
    const known = shown.get(message.id);
    if (known) {
      if (known.status !== message.status) {
        const old = known.element.querySelector(".status");
        if (old) old.replaceWith(statusNode(message.status));
        known.status = message.status;
      }
      return;
    }
    if (!conversations.has(message.conversation_id)) {
      if (conversations.size > 0) {
        insertOrdered(el("div", "divider", "Nueva conversación"), message.order - 0.5);
      }
      conversations.add(message.conversation_id);
    }
    const mine = message.direction === "in";
    let row;
    if (NOTES[message.kind]) {
      // Not typed by the customer (issue 17): what the bot heard in a voice note or read in a photo; a note, not a bubble.
      row = el("div", "divider note", NOTES[message.kind](message.body || ""));
    } else {
      row = el("div", "row " + (mine ? "me" : "bot"));
      const bubble = el("div", "bubble");
      if (mine) customerContent(bubble, message);
      else botContent(bubble, message);
      row.appendChild(bubble);
    }
    row.dataset.id = String(message.id);
    insertOrdered(row, message.order);
    shown.set(message.id, { element: row, status: message.status, direction: message.direction });
    lastId = Math.max(lastId, message.id);
    if (mine && message.provider_message_id) {
      sentWamids.add(message.provider_message_id);
      const bubbleWaiting = pendingBubbles.get(message.provider_message_id);
      if (bubbleWaiting) {
        bubbleWaiting.remove();
        pendingBubbles.delete(message.provider_message_id);
      }
    }
  }

  function pendingBubble(content) {
    const row = el("div", "row me pending");
    const bubble = el("div", "bubble");
    if (content.location) bubble.appendChild(locationCard(content.location));
    else if (content.file) {
      const type = fileType(content.file, content.voice);
      const url = type === "image" || type === "audio" ? URL.createObjectURL(content.file) : null;
      bubble.appendChild(fileNode(type, url, content.file.name, content.voice));
      if (content.caption) bubble.appendChild(formatted("text", content.caption));
    } else bubble.appendChild(formatted("text", content.text ?? (content.reply && content.reply.title)));
    const meta = el("div", "meta");
    meta.appendChild(el("span", "time", clock()));
    meta.appendChild(el("span", "status status-queued", "⏳ en cola"));
    bubble.appendChild(meta);
    row.appendChild(bubble);
    insertOrdered(row, Number.MAX_SAFE_INTEGER);
    scrollToEnd();
    return row;
  }

  // ---------- the list sheet ----------

  function openSheet(list) {
    $("sheet-title").textContent = list.button_label || "Opciones";
    const section = $("sheet-section");
    section.textContent = list.section_title || "";
    section.hidden = !list.section_title;
    const rows = $("sheet-rows");
    rows.replaceChildren();
    for (const r of list.rows || []) {
      const item = el("li");
      const button = el("button", "sheet-row");
      button.type = "button";
      button.appendChild(el("span", "row-title", r.title));
      if (r.description) button.appendChild(el("span", "row-description", r.description));
      button.addEventListener("click", () => {
        closeSheet();
        send({ reply: { type: "list", id: r.id, title: r.title } });
      });
      item.appendChild(button);
      rows.appendChild(item);
    }
    sheet.hidden = false;
  }

  function closeSheet() {
    sheet.hidden = true;
  }

  // ---------- talking to the server ----------

  function normalisedNumber() {
    const raw = numberInput.value.replace(/[\s\-().]/g, "");
    if (!NUMBER_RE.test(raw)) return null;
    return raw.startsWith("+") ? raw : "+" + raw;
  }

  async function postJson(url, payload) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(payload),
    });
    const data = await response.json().catch(() => ({}));
    return { ok: response.ok, status: response.status, data };
  }

  async function send(content) {
    const number = normalisedNumber();
    if (!number) {
      showError("Número inválido: usa + y 8 a 15 dígitos, por ejemplo +50370000001.");
      return false;
    }
    if (number !== phone) switchNumber(number);
    const payload = Object.assign({ from: number, company }, content);
    const name = nameInput.value.trim();
    if (name) payload.name = name;
    const bubble = pendingBubble(content);
    try {
      const { ok, status, data } = await postJson(api.send, payload);
      if (!ok) {
        bubble.classList.add("failed");
        bubble.querySelector(".status").textContent = "⚠ no enviado";
        showError(data.error || "Error " + status + " al enviar.");
        return false;
      }
      showError("");
      if (sentWamids.has(data.message_id)) bubble.remove();
      else pendingBubbles.set(data.message_id, bubble);
      return true;
    } catch (err) {
      bubble.classList.add("failed");
      showError("No se pudo contactar al servidor: " + err.message);
      return false;
    }
  }

  function fileType(file, voice) {
    const mime = (file.type || "").toLowerCase();
    if (voice || mime.startsWith("audio/")) return "audio";
    if (mime === "image/jpeg" || mime === "image/png") return "image";
    if (mime === "image/webp") return "sticker";
    if (mime.startsWith("video/")) return "video";
    return "document";
  }

  async function sendFiles(files, options) {
    // Each file is its own WhatsApp message, posted one right after the other (several photos: an album).
    const number = normalisedNumber();
    if (!number) {
      showError("Número inválido: usa + y 8 a 15 dígitos, por ejemplo +50370000001.");
      return false;
    }
    if (number !== phone) switchNumber(number);
    const form = new FormData();
    form.append("from", number);
    form.append("company", company);
    const name = nameInput.value.trim();
    if (name) form.append("name", name);
    if (options.caption) form.append("caption", options.caption);
    if (options.voice) form.append("voice", "1");
    for (const file of files) form.append("file", file, file.name);
    const bubbles = files.map((file, i) => pendingBubble({
      file, voice: options.voice, caption: i === 0 ? options.caption : "",
    }));
    const failed = (message) => {
      for (const b of bubbles) {
        b.classList.add("failed");
        b.querySelector(".status").textContent = "⚠ no enviado";
      }
      showError(message);
      return false;
    };
    try {
      const response = await fetch(api.media, { method: "POST", body: form, headers: { Accept: "application/json" } });
      const data = await response.json().catch(() => ({}));
      const ids = data.message_ids || [];
      bubbles.forEach((b, i) => {
        if (i >= ids.length) return;
        if (sentWamids.has(ids[i])) b.remove();
        else pendingBubbles.set(ids[i], b);
      });
      if (!response.ok) return failed(data.error || "Error " + response.status + " al enviar el archivo.");
      showError("");
      return true;
    } catch (err) {
      return failed("No se pudo contactar al servidor: " + err.message);
    }
  }

  function showPicked() {
    const list = $("attach-list");
    list.replaceChildren();
    for (const file of picked) {
      const item = el("li");
      const type = fileType(file, false);
      if (type === "image") {
        const thumb = document.createElement("img");
        thumb.src = URL.createObjectURL(file);
        thumb.alt = file.name;
        item.appendChild(thumb);
      } else {
        item.appendChild(el("div", "file-icon", (FILE_LABELS[type] || "📎").split(" ")[0]));
      }
      item.appendChild(el("span", "", file.name));
      list.appendChild(item);
    }
    attachPanel.hidden = picked.length === 0;
    if (!attachPanel.hidden) $("attach-caption").focus();
  }

  function pollFloor() {
    // New messages come after lastId; recent bot messages whose status may still change are read again.
    let floor = lastId;
    const recent = [...shown.entries()].filter(([, v]) => v.direction === "out").slice(-WATCH_RECENT);
    for (const [id, v] of recent) {
      if (UNSETTLED.has(v.status)) floor = Math.min(floor, id - 1);
    }
    return floor;
  }

  async function poll(gen) {
    if (gen !== generation) return;
    try {
      const url = api.messages + "?phone=" + encodeURIComponent(phone) + "&company=" +
        encodeURIComponent(company) + "&after=" + pollFloor();
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (gen !== generation) return;
      const data = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(data.error || "HTTP " + response.status);
      const atEnd = chat.scrollHeight - chat.scrollTop - chat.clientHeight < 80;
      const before = lastId;
      for (const message of data.messages || []) render(message);
      if (lastId !== before && atEnd) scrollToEnd();
      connection.textContent = "simulador · " + phone;
      connection.classList.remove("offline");
    } catch (err) {
      connection.textContent = "sin conexión: " + err.message;
      connection.classList.add("offline");
    } finally {
      if (gen === generation) setTimeout(() => poll(gen), POLL_MS);
    }
  }

  function switchNumber(number) {
    phone = number;
    generation += 1;
    lastId = 0;
    shown.clear();
    conversations.clear();
    sentWamids.clear();
    pendingBubbles.clear();
    chat.replaceChildren();
    localStorage.setItem("simulator.number", number);
    const gen = generation;
    poll(gen).then(scrollToEnd);
  }

  // ---------- controls ----------

  function choose(number) {
    numberInput.value = number;
    const known = [...numberPick.options].some((o) => o.value === number);
    numberPick.value = known ? number : "";
    const valid = normalisedNumber();
    if (valid) {
      showError("");
      if (valid !== phone) switchNumber(valid);
    } else {
      showError("Número inválido: usa + y 8 a 15 dígitos, por ejemplo +50370000001.");
    }
  }

  function chooseCompany(slug) {
    const option = [...companyPick.options].find((o) => o.value === slug) || companyPick.options[0];
    companyPick.value = option.value;
    companyName.textContent = option.dataset.name;
    document.title = "Simulador WhatsApp · " + option.dataset.name;
    localStorage.setItem("simulator.company", option.value);
    if (option.value !== company) {
      company = option.value;
      if (phone) switchNumber(phone); // the same customer, another company's chat
    }
  }

  companyPick.addEventListener("change", () => chooseCompany(companyPick.value));
  numberPick.addEventListener("change", () => {
    if (numberPick.value) choose(numberPick.value);
    else numberInput.focus();
  });
  numberInput.addEventListener("change", () => choose(numberInput.value.trim()));
  nameInput.addEventListener("change", () => localStorage.setItem("simulator.name", nameInput.value.trim()));

  $("composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = textInput.value;
    if (!text.trim()) return;
    textInput.value = "";
    autosize();
    const ok = await send({ text });
    if (!ok && !textInput.value) textInput.value = text;
    textInput.focus();
  });
  textInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  function autosize() {
    textInput.style.height = "auto";
    textInput.style.height = Math.min(textInput.scrollHeight, 140) + "px";
  }
  textInput.addEventListener("input", autosize);

  $("reset").addEventListener("click", async () => {
    const number = normalisedNumber();
    if (!number) return showError("Número inválido.");
    const { ok, data } = await postJson(api.reset, { from: number, company });
    if (!ok) return showError(data.error || "No se pudo cerrar la conversación.");
    showError("");
    const closed = (data.closed_conversations || []).length;
    const note = el("div", "divider", closed ? "Conversación cerrada" : "No había conversación abierta");
    insertOrdered(note, lastId + 0.25);
    scrollToEnd();
  });

  $("location-toggle").addEventListener("click", () => {
    locationPanel.hidden = !locationPanel.hidden;
  });
  $("loc-cancel").addEventListener("click", () => {
    locationPanel.hidden = true;
  });
  $("loc-here").addEventListener("click", () => {
    if (!navigator.geolocation) return showError("Este navegador no da la ubicación.");
    navigator.geolocation.getCurrentPosition(
      (pos) => {
        $("loc-lat").value = pos.coords.latitude.toFixed(6);
        $("loc-lon").value = pos.coords.longitude.toFixed(6);
      },
      (err) => showError("Ubicación no disponible: " + err.message),
      { timeout: 8000 },
    );
  });
  locationPanel.addEventListener("submit", async (event) => {
    event.preventDefault();
    const latitude = Number($("loc-lat").value.replace(",", "."));
    const longitude = Number($("loc-lon").value.replace(",", "."));
    if (!Number.isFinite(latitude) || !Number.isFinite(longitude) || Math.abs(latitude) > 90 ||
        Math.abs(longitude) > 180) {
      return showError("Latitud entre -90 y 90, longitud entre -180 y 180.");
    }
    const location = { latitude, longitude };
    const name = $("loc-name").value.trim();
    if (name) location.name = name;
    locationPanel.hidden = true;
    await send({ location });
  });

  $("attach-toggle").addEventListener("click", () => filePick.click());
  filePick.addEventListener("change", () => {
    picked = [...filePick.files];
    filePick.value = "";
    showPicked();
  });
  $("attach-cancel").addEventListener("click", () => {
    picked = [];
    showPicked();
  });
  attachPanel.addEventListener("submit", async (event) => {
    event.preventDefault();
    const files = picked;
    const caption = $("attach-caption").value.trim();
    picked = [];
    $("attach-caption").value = "";
    showPicked();
    if (files.length) await sendFiles(files, { caption });
  });
  function canRecord() {
    return Boolean(navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.MediaRecorder);
  }

  async function startRecording() {
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      showError("No se pudo usar el micrófono (" + err.message + "); elige un audio.");
      return;
    }
    const type = RECORDING_TYPES.find((t) => MediaRecorder.isTypeSupported(t)) || "";
    const chunks = [];
    const current = new MediaRecorder(stream, type ? { mimeType: type } : {});
    const started = Date.now();
    const timer = setInterval(() => {
      voiceStatus.textContent = "🔴 Grabando… " + Math.floor((Date.now() - started) / 1000) + " s";
    }, 250);
    current.addEventListener("dataavailable", (event) => {
      if (event.data.size) chunks.push(event.data);
    });
    current.addEventListener("stop", () => {
      clearInterval(timer);
      stream.getTracks().forEach((track) => track.stop());
      recorder = null;
      voiceRecord.textContent = "⏺ Grabar";
      voiceStatus.textContent = VOICE_HINT;
      voicePanel.hidden = true;
      if (!current.keep || !chunks.length) return;
      const mime = (chunks[0].type || type || "audio/webm").split(";")[0];
      const ext = { "audio/ogg": "ogg", "audio/mp4": "m4a" }[mime] || "webm";
      sendFiles([new File(chunks, "nota-de-voz." + ext, { type: mime })], { voice: true });
    });
    recorder = current;
    current.start();
    voiceRecord.textContent = "⏹ Detener y enviar";
    showError("");
  }

  function stopRecording(keep) {
    if (!recorder) return;
    recorder.keep = keep;
    recorder.stop();
  }

  $("voice-toggle").addEventListener("click", () => {
    if (recorder) return stopRecording(true);
    voicePanel.hidden = !voicePanel.hidden;
    voiceRecord.hidden = !canRecord();
  });
  voiceRecord.addEventListener("click", () => (recorder ? stopRecording(true) : startRecording()));
  $("voice-cancel").addEventListener("click", () => {
    stopRecording(false);
    voicePanel.hidden = true;
  });
  $("voice-file").addEventListener("click", () => voicePick.click());
  voicePick.addEventListener("change", async () => {
    const files = [...voicePick.files];
    voicePick.value = "";
    voicePanel.hidden = true;
    if (files.length) await sendFiles(files.slice(0, 1), { voice: true });
  });

  $("sheet-close").addEventListener("click", closeSheet);
  sheet.addEventListener("click", (event) => {
    if (event.target === sheet) closeSheet();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeSheet();
  });

  // ---------- start ----------
  nameInput.value = localStorage.getItem("simulator.name") || "";
  chooseCompany(localStorage.getItem("simulator.company") || companyPick.value);
  choose(localStorage.getItem("simulator.number") || body.dataset.defaultNumber);
})();
