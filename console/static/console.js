/* The support console's small script: live updates (server-sent events), SLA timers, case actions. */
"use strict";

const Console = (() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const STATUS = {pending: "pendiente", sending: "enviando", accepted: "aceptado", sent: "enviado ✓",
                  delivered: "entregado ✓✓", read: "leído ✓✓", failed: "no enviado", received: ""};
  const CASE_STATUS = {waiting: "Esperando un agente", taken: "Atendido", callback: "Devolver llamada",
                       resolved: "Resuelto", returned: "Devuelto al bot"};
  const handlers = [];
  let audio = null;

  async function api(method, url, body) {
    const options = {method, headers: {"X-CSRF-Token": csrf, "Accept": "application/json"}, credentials: "same-origin"};
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(url, options);
    let data = {};
    try { data = await response.json(); } catch (e) { data = {}; }
    if (!response.ok) {
      const error = new Error(data.error || ("HTTP " + response.status));
      error.data = data;
      error.status = response.status;
      throw error;
    }
    return data;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
    }
    for (const child of children) node.append(child);
    return node;
  }

  // -- live updates --------------------------------------------------------------------------------------------
  function connect() {
    const state = document.getElementById("live-state");
    const source = new EventSource("/console/api/events");
    source.onopen = () => { if (state) { state.className = "live on"; } document.body.dataset.live = "on"; };
    source.onerror = () => { if (state) { state.className = "live off"; } document.body.dataset.live = "off"; };
    for (const type of ["escalation", "message", "status", "handoff", "typing", "media"]) {
      source.addEventListener(type, (event) => {
        const data = JSON.parse(event.data);
        if (type === "escalation") alertNewCase(data);
        for (const handler of handlers) handler(type, data);
      });
    }
  }

  function beep() {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = 880;
      gain.gain.value = 0.15;
      osc.connect(gain).connect(audio.destination);
      osc.start();
      osc.stop(audio.currentTime + 0.35);
    } catch (e) { /* no sound available */ }
  }

  function alertNewCase(data) {
    if (data.priority !== "high") return;
    beep();
    if ("Notification" in window && Notification.permission === "granted") {
      new Notification("Nuevo caso de prioridad alta", {body: "Un cliente espera un agente.", tag: "case-" + data.case_id});
    }
    document.title = "(!) " + document.title.replace(/^\(!\) /, "");
  }

  function setupAlerts() {
    const button = document.getElementById("enable-alerts");
    if (!button || !("Notification" in window) || Notification.permission === "granted") return;
    button.hidden = false;
    button.addEventListener("click", async () => {
      await Notification.requestPermission();
      beep();
      button.hidden = Notification.permission === "granted";
    });
  }

  // -- the queue -------------------------------------------------------------------------------------------------
  // The server orders the cases and says why each is where it is; the page asks again on every live event,
  // every 20 s, and the moment a waiting case passes its SLA target (it then moves up).
  function queueRow(c) {
    const row = el("tr", {class: "case-row prio-" + c.priority + (c.overdue ? " overdue" : "") + (c.sla_breached ? " breached" : ""),
                          "data-case-id": c.id, "data-sla-deadline": c.sla_deadline,
                          "data-responded": c.first_response_at || "", "data-scheduled": c.scheduled ? "1" : ""});
    const reason = el("td", {class: "reason", text: c.reason_text});
    if (c.tags.length) reason.append(el("span", {class: "tags"}, ...c.tags.map((t) => el("span", {class: "tag", text: t}))));
    row.append(
      el("td", {class: "prio"}, el("span", {class: "badge " + c.priority, text: c.priority_label})),
      el("td", {class: "number"}, el("a", {href: "/console/cases/" + c.id, text: c.case_number})),
      el("td", {class: "customer", text: c.customer_name || "Cliente"}), reason,
      el("td", {class: "status", text: c.status_label}), el("td", {class: "why", text: c.why}),
      el("td", {class: "open"}, el("a", {class: "button", href: "/console/cases/" + c.id, text: "Abrir"})));
    return row;
  }

  function queuePage() {
    const table = document.getElementById("queue");
    const filters = document.getElementById("filters");
    const notice = document.getElementById("queue-notice");
    const me = Number(document.querySelector(".who").dataset.agentId);
    let deadlineTimer = null;
    filters.addEventListener("change", () => filters.submit());

    function nextDeadline() {
      // The first waiting case to pass its target: ask the server again then, so it moves up at once.
      clearTimeout(deadlineTimer);
      const now = Date.now();
      const due = [...document.querySelectorAll("tr.case-row")]
        .filter((r) => !r.dataset.responded && !r.dataset.scheduled && !r.classList.contains("overdue"))
        .map((r) => Date.parse(r.dataset.slaDeadline)).filter((t) => t > now);
      if (due.length) deadlineTimer = setTimeout(() => refresh().catch(() => {}), Math.min(...due) - now + 500);
    }

    async function refresh() {
      const params = new URLSearchParams({status: table.dataset.status});
      if (table.dataset.priority) params.set("priority", table.dataset.priority);
      const data = await api("GET", "/console/api/queue?" + params);
      const body = document.getElementById("queue-rows");
      body.replaceChildren(...(data.cases.length ? data.cases.map(queueRow)
        : [el("tr", {class: "empty"}, el("td", {colspan: "7", text: "No hay casos en la cola."}))]));
      nextDeadline();
      return data;
    }

    handlers.push((type, event) => {
      if (type === "typing" || type === "media") return;  // a file's download changes no case
      refresh().then((data) => {
        if (type !== "handoff" || event.action !== "assign" || event.to_agent_id !== me) return;
        const mine = data.cases.find((c) => c.id === event.case_id);
        notice.textContent = event.agent + " te asignó " + (mine ? "el caso " + mine.case_number : "un caso") + ".";
        notice.hidden = false;
        const row = document.querySelector('tr.case-row[data-case-id="' + event.case_id + '"]');
        if (row) row.classList.add("assigned");
      }).catch(() => {});
    });
    nextDeadline();
    setInterval(() => refresh().catch(() => {}), 20000);
  }

  // -- one case --------------------------------------------------------------------------------------------------
  function casePage() {
    let data = JSON.parse(document.getElementById("case-data").textContent);
    const me = Number(document.querySelector(".who").dataset.agentId);
    const $ = (id) => document.getElementById(id);
    const errorBox = $("action-error");
    let typingTimer = null;
    let lastTypingSent = 0;
    let pendingTimer = null;

    function showError(error) {
      errorBox.textContent = error.message;
      errorBox.hidden = false;
      if (error.data && error.data.window_closed) $("window-closed").hidden = false;
    }

    function render() {
      errorBox.hidden = true;
      let label = CASE_STATUS[data.status] || data.status;
      if (data.status === "taken") label = data.mine ? "Lo tienes tú" : "Atendido por " + data.taken_by_name;
      if (data.csat_score) label += " · calificación " + data.csat_score + "/10";
      $("case-status").textContent = label;
      $("case-status").dataset.status = data.status;
      $("claim").hidden = !(data.status === "waiting" || data.status === "callback");
      $("takeover").hidden = !(data.status === "taken" && !data.mine);
      $("takeover").textContent = "Tomar el control (lo tiene " + (data.taken_by_name || "otro agente") + ")";
      $("hand-back").hidden = !(data.status === "taken" && data.mine);
      $("open-resolve").hidden = !(data.status === "taken" && data.mine);
      $("reply-form").hidden = !(data.mine && data.window_open);
      $("window-closed").hidden = !(data.mine && !data.window_open);
      $("transcript").replaceChildren(...data.messages.map((m) => {
        const item = el("li", {class: "msg " + (m.direction === "in" ? "in" : m.is_agent ? "agent" : "bot"),
                               "data-message-id": m.id});
        item.append(el("span", {class: "who", text: m.who}), rich("p", "body", m.html));
        if (m.media && typeof ConsoleMedia !== "undefined") item.append(ConsoleMedia.render(m));  // files (console/static/media.js)
        const meta = el("span", {class: "meta", text: new Date(m.created_at).toLocaleTimeString("es-SV")});
        if (m.direction === "out") meta.append(" ", el("span", {class: "delivery " + m.status, text: STATUS[m.status] || ""}));
        if (m.error) meta.append(" ", el("span", {class: "delivery failed", text: m.error}));
        item.append(meta);
        return item;
      }));
      // A reply on its way: look again shortly for its delivery status (the worker sends it in the background).
      if (data.messages.some((m) => ["pending", "sending", "accepted"].includes(m.status)) && !pendingTimer) {
        pendingTimer = setTimeout(() => { pendingTimer = null; reload().catch(() => {}); }, 1500);
      }
      const transcript = $("transcript");
      transcript.scrollTop = transcript.scrollHeight;
      // A photo loads after that scroll and pushes the newest message down: follow it unless the agent scrolled up.
      transcript.querySelectorAll("img").forEach((img) => img.complete || img.addEventListener("load", () => {
        const below = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight;
        if (below <= img.offsetHeight + 40) transcript.scrollTop = transcript.scrollHeight;
      }, {once: true}));
      $("summary").innerHTML = data.summary_html;  // escaped by the server, WhatsApp formatting as tags
      const facts = [["Motivo", data.reason_text], ["Cliente", data.customer_name || "—"],
                     ["Punto", data.facts.point || "—"], ["Estado del diálogo", data.dialog_state_text || "—"]];
      for (const p of data.packages) facts.push(["Paquete " + p.code, (p.status || "estado no disponible") + (p.destination ? " · " + p.destination : "")]);
      facts.push(["Ventana 24 h", data.window_open ? "abierta hasta " + new Date(data.window_closes_at).toLocaleString("es-SV") : "cerrada"]);
      $("facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {text: k}), el("dd", {text: v})]));
      $("notes").replaceChildren(...data.notes.map((n) => el("li", {}, el("strong", {text: n.agent + ": "}), n.body)));
      $("history").replaceChildren(...data.history.map((h) => el("li", {text: new Date(h.created_at).toLocaleTimeString("es-SV") + " · " + h.text + (h.agent ? " · " + h.agent : "")})));
      renderCustomer();
      renderCallback();
    }

    // The message's text as the server rendered it: HTML-escaped first, then WhatsApp's *bold*, _italic_,
    // ~strike~ and ```mono``` as tags (console/whatsapp_text.py).
    function rich(tag, cls, html) {
      const node = el(tag, {class: cls});
      node.innerHTML = html;
      return node;
    }

    function renderCustomer() {
      const c = data.customer;
      $("customer-name").textContent = c.name || "Cliente";
      const phone = $("customer-phone");
      phone.textContent = c.phone_shown;
      if (c.tel) phone.setAttribute("href", c.tel); else phone.removeAttribute("href");
      $("customer-packages-notice").textContent = c.packages_notice || "";
      $("customer-packages-notice").hidden = !c.packages_notice;
      $("customer-packages").replaceChildren(...c.packages.map((p) => el("li", {class: "package", "data-code": p.code},
        el("strong", {text: p.code}), " ", el("span", {class: "role", text: p.role}),
        el("span", {class: "line", text: p.status + " · " + p.destination}),
        el("span", {class: "line" + (p.collect_amount ? " collect" : ""), text: p.to_collect}))));
      $("customer-cases").replaceChildren(...c.cases.map((k) => {
        const item = el("li", {class: "case-item" + (k.open ? " open" : "") + (k.current ? " current" : ""), "data-case-id": k.id});
        item.append(k.current ? el("strong", {text: k.case_number}) : el("a", {href: "/console/cases/" + k.id, text: k.case_number}),
          " · " + k.date, el("span", {class: "line", text: k.status + " · " + k.reason}));
        return item;
      }));
    }

    function renderCallback() {
      const call = data.customer.callback;
      $("callback").hidden = !call;
      if (!call) { $("called-form").hidden = true; return; }
      $("callback-tel").textContent = call.phone;
      $("callback-tel").setAttribute("href", call.tel);
      if (!$("called-outcomes").childElementCount) {
        $("called-outcomes").replaceChildren(...data.call_outcomes.map((o, i) => el("label", {class: "check"},
          el("input", {type: "radio", name: "outcome", value: o.id, ...(i === 0 ? {required: ""} : {})}), o.label)));
      }
    }

    // Another agent took the case this page could claim (or had): say so, the buttons change with the data.
    function noticeLostCase(before) {
      const lost = data.status === "taken" && !data.mine && (before.status === "waiting" || before.status === "callback" || before.mine);
      if (lost && data.taken_notice) {
        $("case-notice").textContent = data.taken_notice;
        $("case-notice").hidden = false;
      } else if (data.status !== "taken" || data.mine) {
        $("case-notice").hidden = true;
      }
    }

    async function reload() {
      const before = data;
      data = await api("GET", "/console/api/cases/" + data.id);
      render();
      noticeLostCase(before);
    }

    async function act(path, body) {
      try {
        await api("POST", "/console/api/cases/" + data.id + path, body);
        await reload();
        return true;
      } catch (error) {
        showError(error);
        return false;
      }
    }

    $("claim").addEventListener("click", async () => {
      if (await act("/claim")) return;
      // Lost to another agent meanwhile: the page shows the case as it is now, and who has it.
      const message = errorBox.textContent;
      await reload().catch(() => {});
      if ($("case-notice").hidden) { errorBox.textContent = message; errorBox.hidden = false; }
    });
    $("open-called").addEventListener("click", () => { $("called-form").hidden = false; });
    $("called-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const chosen = $("called-form").querySelector("input[name=outcome]:checked");
      if (await act("/called", {outcome: chosen ? chosen.value : "", note: $("called-note").value})) {
        $("called-form").hidden = true;
        $("called-note").value = "";
        for (const input of $("called-form").querySelectorAll("input[name=outcome]")) input.checked = false;
      }
    });
    $("takeover").addEventListener("click", () => {
      if (confirm("¿Tomar el control del chat de " + data.taken_by_name + "? Quedará registrado.")) act("/takeover", {from_agent_id: data.taken_by});
    });
    $("hand-back").addEventListener("click", () => act("/hand-back"));
    $("open-resolve").addEventListener("click", () => { $("resolve-form").hidden = false; $("resolve-reason").focus(); });
    $("resolve-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      if (await act("/resolve", {reason: $("resolve-reason").value, csat: $("resolve-csat").checked})) $("resolve-form").hidden = true;
    });
    $("reply-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = $("reply-text").value;
      const key = (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random());
      const waiting = $("file-chosen") && !$("file-chosen").hidden && $("file-input").files.length;
      if (waiting) {  // a chosen file goes with "Enviar" too: the typed text becomes its caption (if it has none)
        if (text.trim() && !$("file-caption").value.trim() && text.length <= 1024) {
          $("file-caption").value = text;
          $("reply-text").value = "";
        } else if (text.trim() && await act("/reply", {text, client_key: key})) {
          $("reply-text").value = "";
        }
        $("file-send").click();
        return;
      }
      if (!text.trim()) return;
      if (await act("/reply", {text, client_key: key})) $("reply-text").value = "";
    });
    $("reply-text").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("reply-form").requestSubmit(); }
    });
    $("reply-text").addEventListener("input", () => {
      if (Date.now() - lastTypingSent > 3000) {
        lastTypingSent = Date.now();
        api("POST", "/console/api/cases/" + data.id + "/typing", {}).catch(() => {});
      }
    });
    $("canned").addEventListener("change", (event) => {
      const option = event.target.selectedOptions[0];
      if (!option || !option.value) return;
      const answer = data.canned.find((a) => String(a.id) === option.value);
      if (answer) $("reply-text").value = answer.body;  // variables filled by the server
      event.target.value = "";
      $("reply-text").focus();
    });
    $("note-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      if (await act("/notes", {body: $("note-text").value})) $("note-text").value = "";
    });

    const templateName = $("template-name");
    const defaults = () => ({customer_name: data.values.nombre, tracking_code: data.values.codigo});
    function templateFields() {
      const option = templateName && templateName.selectedOptions[0];
      const box = $("template-values");
      if (!option) return;
      const params = option.dataset.params ? option.dataset.params.split(",") : [];
      box.replaceChildren(...params.map((p) => el("label", {}, p + " ", el("input", {name: p, value: defaults()[p] || ""}))));
      $("template-preview").innerHTML = option.dataset.html;  // escaped by the server, WhatsApp formatting as tags
    }
    if (templateName) {
      templateName.addEventListener("change", templateFields);
      templateFields();
      $("template-form").addEventListener("submit", (event) => {
        event.preventDefault();
        const values = {};
        for (const input of $("template-values").querySelectorAll("input")) values[input.name] = input.value;
        act("/template", {name: templateName.value, values});
      });
    }

    document.addEventListener("console:reload", () => reload().catch(() => {}));  // e.g. a file just sent
    handlers.push((type, event) => {
      if (event.case_id !== data.id) return;
      if (type === "typing") {
        if (event.agent_id === me) return;
        $("typing").textContent = event.agent + " está escribiendo…";
        clearTimeout(typingTimer);
        typingTimer = setTimeout(() => { $("typing").textContent = ""; }, 4000);
        return;
      }
      reload().catch(() => {});
    });
    render();
  }

  document.addEventListener("DOMContentLoaded", () => { setupAlerts(); });
  connect();
  // The script is loaded at the end of <body>: the page's elements exist already.
  const page = document.body.dataset.page;
  if (page === "queue") queuePage();
  if (page === "case") casePage();
  return {queuePage, casePage, api, el, on: (handler) => handlers.push(handler)};
})();
