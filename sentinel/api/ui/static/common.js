// sentinel's web UI: what both pages share. Plain JavaScript, no library.
// Whatever comes from the daemon (names, details, log lines) is written with textContent,
// never as HTML.
"use strict";

const Sentinel = (() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const role = document.body.dataset.role;
  let offset = 0; // the daemon's clock minus ours, in seconds

  function now() {
    return Date.now() / 1000 + offset;
  }

  function setText(element, value) {
    const text = value === null || value === undefined ? "" : String(value);
    if (element.textContent !== text) element.textContent = text;
  }

  // What a program said about itself over sd_notify: "reloading: loading cache", "3 jobs queued".
  function said(row) {
    return [row.notify_phase, row.notify_status].filter(Boolean).join(": ");
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "";
    const s = Math.max(0, Math.floor(seconds));
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60), r = s % 60;
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${m}m`;
    if (m) return `${m}m ${r}s`;
    return `${r}s`;
  }

  function clock(unix) {
    const t = new Date(unix * 1000);
    return t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return `${n.toFixed(n >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
  }

  let toastTimer = null;
  function toast(message, bad) {
    const box = document.getElementById("toast");
    setText(box, message);
    box.classList.toggle("bad", Boolean(bad));
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, bad ? 8000 : 3000);
  }

  // A form POST with the session's CSRF token; the answer as a toast.
  async function post(url, fields) {
    const body = new URLSearchParams({ csrf_token: csrf, ...(fields || {}) });
    let response;
    try {
      response = await fetch(url, {
        method: "POST", body, credentials: "same-origin", headers: { Accept: "application/json" },
      });
    } catch (error) {
      toast(`cannot reach sentinel: ${error.message}`, true);
      return null;
    }
    let data = {};
    try { data = await response.json(); } catch (error) { data = {}; }
    if (!response.ok || data.ok === false) {
      toast(data.error || data.message || `refused: HTTP ${response.status}`, true);
    } else {
      toast(data.message || "done");
    }
    return data;
  }

  // The live stream: handlers by event name; the header says whether the page is current.
  function connect(url, handlers) {
    const live = document.getElementById("live");
    live.hidden = false;
    let lastUpdate = null;
    let source = null;
    const open = () => {
      source = new EventSource(url);
      source.onopen = () => {
        live.className = "live on";
        setText(live, "live");
      };
      source.onerror = () => {
        live.className = "live off";
        const since = lastUpdate ? ` — as of ${clock(lastUpdate)}` : "";
        setText(live, `disconnected${since}`);
        if (source.readyState === EventSource.CLOSED) {
          // The daemon answered with an error (a session that ended, a process removed):
          // the page itself knows what to do (log in, or say it is gone).
          setTimeout(() => window.location.reload(), 3000);
        }
      };
      for (const [name, handle] of Object.entries(handlers)) {
        source.addEventListener(name, (event) => {
          const data = JSON.parse(event.data);
          if (typeof data.now === "number") offset = data.now - Date.now() / 1000;
          lastUpdate = now();
          handle(data);
        });
      }
    };
    open();
    window.addEventListener("pagehide", () => source && source.close());
  }

  // The signal dialog, shared by every "Signal…" button of a page.
  function askSignal(target, url) {
    const dialog = document.getElementById("signal-dialog");
    setText(document.getElementById("signal-target"), target);
    dialog.onclose = () => {
      if (dialog.returnValue === "send") {
        post(url, { signal: document.getElementById("signal-name").value });
      }
    };
    dialog.returnValue = "";
    dialog.showModal();
  }

  // Draws values as bars (or a line) on a canvas, scaled to its CSS size.
  function chart(canvas, points, options) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || canvas.width;
    const height = canvas.clientHeight || canvas.height;
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    if (!points.length) return;
    const style = getComputedStyle(document.documentElement);
    const color = (name) => style.getPropertyValue(name).trim() || "#888";
    const max = Math.max(options.min || 0, ...points.map((p) => p.value)) || 1;
    const slots = options.slots || points.length;
    const step = width / slots;
    const first = slots - points.length;
    if (options.line) {
      g.strokeStyle = color(options.color || "--accent");
      g.fillStyle = g.strokeStyle;
      if (points.length === 1) { // one sample so far: a dot where the line will start
        g.beginPath();
        g.arc((first + 0.5) * step, height - 2 - (points[0].value / max) * (height - 6), 2.5, 0, 2 * Math.PI);
        g.fill();
        return;
      }
      g.globalAlpha = 0.9;
      g.lineWidth = 1.5;
      g.beginPath();
      points.forEach((p, i) => {
        const x = (first + i + 0.5) * step;
        const y = height - 2 - (p.value / max) * (height - 6);
        if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
      });
      g.stroke();
      g.globalAlpha = 0.15;
      g.lineTo((first + points.length - 0.5) * step, height);
      g.lineTo((first + 0.5) * step, height);
      g.fill();
      g.globalAlpha = 1;
      return;
    }
    points.forEach((p, i) => {
      const h = Math.max(p.value > 0 ? 2 : 0, (p.value / max) * (height - 4), options.floor || 0);
      g.fillStyle = color(p.color || options.color || "--accent");
      g.fillRect((first + i) * step + (step > 3 ? 0.5 : 0), height - h, Math.max(step - 1, 1), h);
    });
  }

  return { csrf, role, now, setText, said, duration, clock, bytes, toast, post, connect, askSignal, chart };
})();
