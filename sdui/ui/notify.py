"""Page script: a running job's progress in the page title, and a browser notification when a long job ends while
the page is in the background (as A1111's notification.js). It reads the tabs' progress lines (results.progress_html),
so it needs no server event of its own."""

from __future__ import annotations

LONG_JOB_MS = 10_000

NOTIFY_JS = """
() => {
  const base = document.title;
  const running = /^(Live · )?(Queued|Waiting|Starting|Loading|Step (\\d+)\\/(\\d+))/;
  let startedAt = null;
  let asked = false;
  // Permission is asked on the first Generate click: browsers refuse prompts that no click started.
  document.addEventListener("click", (e) => {
    const button = e.target.closest && e.target.closest("button[id$='_generate']");
    if (!button || asked || !("Notification" in window)) return;
    asked = true;
    if (Notification.permission === "default") Notification.requestPermission();
  }, true);
  const update = () => {
    const texts = [...document.querySelectorAll(".sdui-progress-text")].map((el) => el.textContent || "");
    const busy = texts.map((t) => t.match(running)).find((m) => m);
    if (busy) {
      startedAt = startedAt ?? Date.now();
      const title = busy[3] ? `[${Math.floor((100 * busy[3]) / busy[4])}%] ${base}` : `[…] ${base}`;
      if (document.title !== title) document.title = title;
      return;
    }
    if (startedAt === null) return;
    const took = Date.now() - startedAt;
    startedAt = null;
    document.title = base;
    const ended = texts.find((t) => /^(Live · )?(Done|Interrupted)/.test(t)) || "The job ended";
    if (took > LONG_JOB_MS && document.hidden && "Notification" in window && Notification.permission === "granted") {
      const note = new Notification("sdui: job finished", { body: ended });
      note.onclick = () => { window.focus(); note.close(); };
    }
  };
  new MutationObserver(update).observe(document.body, { subtree: true, childList: true, characterData: true });
}
""".replace("LONG_JOB_MS", str(LONG_JOB_MS))
