// The console's progressive script: every page works without it; with it, a key shown once
// gets a copy button, and the audit view follows new events.
"use strict";

function setUpCopyButtons() {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.hidden = false;
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      try {
        await navigator.clipboard.writeText(source.textContent.trim());
        button.textContent = "Copied";
      } catch (_) {
        // Without clipboard access the text stays selectable.
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        button.textContent = "Selected: press Ctrl+C";
      }
    });
  }
}

function followAudit() {
  const body = document.querySelector("tbody[data-live]");
  const toggle = document.getElementById("live");
  if (!body || !toggle) return;
  toggle.hidden = false;
  const status = document.getElementById("live-status");
  let timer = null;
  const refresh = async () => {
    try {
      const response = await fetch(body.dataset.live, { credentials: "same-origin" });
      if (!response.ok) throw new Error(String(response.status));
      body.innerHTML = await response.text();
      if (status) status.textContent = "Updated " + new Date().toLocaleTimeString();
    } catch (err) {
      if (status) status.textContent = "Live view paused: " + err.message;
    }
  };
  const set = (on) => {
    toggle.setAttribute("aria-pressed", on ? "true" : "false");
    toggle.textContent = on ? "Pause live view" : "Resume live view";
    if (timer) clearInterval(timer);
    timer = on ? setInterval(refresh, 2000) : null;
  };
  toggle.addEventListener("click", () => set(toggle.getAttribute("aria-pressed") !== "true"));
  set(true);
}

document.addEventListener("DOMContentLoaded", () => {
  setUpCopyButtons();
  followAudit();
});
