/* The case page's team block: who has the case (assign / hand on to a colleague) and its tags. */
"use strict";

(() => {
  const root = document.getElementById("team");
  if (!root || typeof Console === "undefined") return;
  const caseId = Number(document.getElementById("case").dataset.caseId);
  const me = Number(document.querySelector(".who").dataset.agentId);
  const $ = (id) => document.getElementById(id);
  const el = Console.el;
  let team = null;

  function showError(error) {
    $("team-error").textContent = error ? error.message : "";
    $("team-error").hidden = !error;
  }

  function render() {
    $("assignee").textContent = team.holder_name ? "Lo tiene " + (team.holder === me ? "tú" : team.holder_name) + "."
      : "Nadie lo tiene todavía.";
    const choices = team.agents.filter((a) => a.id !== team.holder);
    $("assign-form").hidden = !(team.can_assign && choices.length);
    $("assign").textContent = team.holder === me ? "Pasar el caso" : team.holder ? "Reasignar" : "Asignar";
    $("assign-to").replaceChildren(...choices.map((a) => el("option", {value: a.id, text: a.id === me ? a.name + " (tú)" : a.name})));
    $("case-tags").replaceChildren(...team.tags.map((t) => el("li", {class: "tag"}, t,
      el("button", {type: "button", class: "untag", "data-tag": t, "aria-label": "Quitar la etiqueta " + t, text: "×"}))));
    $("tag-vocabulary").replaceChildren(...team.vocabulary.map((t) => el("option", {value: t})));
  }

  async function load() {
    team = await Console.api("GET", "/console/api/cases/" + caseId + "/team");
    render();
  }

  async function act(path, body) {
    try {
      await Console.api("POST", "/console/api/cases/" + caseId + path, body);
      showError(null);
      await load();
      return true;
    } catch (error) {
      showError(error);
      return false;
    }
  }

  $("assign-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act("/assign", {agent_id: Number($("assign-to").value), from_agent_id: team.holder});
  });
  $("tag-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (await act("/tags", {tag: $("tag-text").value})) $("tag-text").value = "";
  });
  $("case-tags").addEventListener("click", (event) => {
    const button = event.target.closest("button.untag");
    if (button) act("/tags/remove", {tag: button.dataset.tag});
  });
  Console.on((type, event) => {
    if (type === "handoff" && event.case_id === caseId) load().catch(() => {});
  });
  load().catch(showError);
})();
