// A process page: its state, probe history, CPU and memory, restarts, events and log, live.
"use strict";

(() => {
  const S = Sentinel;
  const section = document.getElementById("process");
  const name = section.dataset.process;
  const canAdmin = section.dataset.canAdmin === "yes";
  const base = `/ui/programs/${encodeURIComponent(name)}/`;
  const LOG_KEPT = 256 * 1024; // characters of log the page holds
  const OUTCOME = [["fail", "--bad"], ["pass", "--ok"], ["warning", "--warn"]];
  const $ = (id) => document.getElementById(id);
  let row = null;
  let history = null;

  S.connect(`/ui/stream?process=${encodeURIComponent(name)}`, {
    rows(message) {
      if (message.removed.includes(name)) {
        S.toast(`${name} is no longer configured`, true);
        return;
      }
      const mine = message.rows.find((r) => r.name === name);
      if (mine) {
        row = mine;
        renderRow();
      }
    },
    history(message) {
      history = message.history;
      renderHistory();
    },
  });

  // --- the process now -------------------------------------------------------------------------

  function renderRow() {
    S.setText($("p-state"), row.state);
    $("p-state").className = `badge state-badge s-${row.state}`;
    $("p-flap").hidden = !row.flapping;
    S.setText($("p-group"), row.group);
    S.setText($("p-health"), row.health);
    $("p-health").className = `h-${row.health}`;
    S.setText($("p-ready"), row.state === "RUNNING" ? (row.ready ? "yes" : "no") : "");
    S.setText($("p-pid"), row.pid ?? "none");
    S.setText($("p-restarts"), row.last_restart ? `${row.restarts} (last: ${row.last_restart})` : row.restarts);
    S.setText($("p-exit"), row.exit_code ?? "none yet");
    S.setText($("p-detail"), row.detail || "none");
    S.setText($("p-said"), S.said(row));
    $("p-said-fact").hidden = !S.said(row);
    S.setText($("p-probe"), row.probe || (row.probes.length ? "no result yet" : "no probes configured"));
    $("p-probe").className = row.probe_ok === false ? "bad" : "";
    const down = ["STOPPED", "EXITED", "FATAL"].includes(row.state);
    const button = (action) => document.querySelector(`button[data-action="${action}"]`);
    if (button("start")) {
      button("start").hidden = !(down || row.state === "BACKOFF");
      button("stop").hidden = down;
      button("signal").hidden = row.pid === null;
    }
    times();
  }

  function times() {
    if (!row) return;
    const now = S.now();
    S.setText($("p-for"), row.since ? S.duration(now - row.since) : "not seen");
    S.setText($("p-uptime"), row.started ? S.duration(now - row.started) : "not running");
    S.setText($("p-backoff"), row.backoff_until ? `retry in ${S.duration(Math.ceil(row.backoff_until - now))}` : "none");
  }
  setInterval(times, 1000);

  // --- what it did -----------------------------------------------------------------------------

  function renderHistory() {
    renderProbes();
    renderUsage();
    const restarts = [...history.restarts].reverse();
    $("restarts").replaceChildren(...restarts.map(([t, reason, exit, detail]) => {
      const tr = document.createElement("tr");
      for (const value of [null, reason, exit ?? "", detail]) {
        const td = document.createElement("td");
        if (value === null) td.append(timeOf(t)); else td.textContent = value;
        tr.append(td);
      }
      return tr;
    }));
    $("no-restarts").hidden = restarts.length > 0;
    const events = [...history.events].reverse();
    $("events").replaceChildren(...events.map(([t, kind, text]) => {
      const li = document.createElement("li");
      const what = document.createElement("strong");
      what.textContent = kind;
      li.append(timeOf(t), what, ` ${text}`);
      return li;
    }));
  }

  function timeOf(unix) {
    const time = document.createElement("time");
    time.dateTime = new Date(unix * 1000).toISOString();
    time.textContent = S.clock(unix);
    return time;
  }

  function renderProbes() {
    const container = $("probes");
    const kinds = Object.keys(history.probes);
    $("no-probes").hidden = kinds.length > 0;
    for (const kind of kinds) {
      let strip = container.querySelector(`[data-probe="${kind}"]`);
      if (!strip) {
        strip = document.createElement("div");
        strip.className = "probe-strip";
        strip.dataset.probe = kind;
        const caption = document.createElement("p");
        const canvas = document.createElement("canvas");
        canvas.height = 64;
        canvas.setAttribute("role", "img");
        strip.append(caption, canvas);
        container.append(strip);
      }
      const points = history.probes[kind];
      const counts = [0, 0, 0];
      for (const p of points) counts[p[2]] += 1;
      const latencies = points.map((p) => p[1]).sort((a, b) => a - b);
      const median = latencies[Math.floor(latencies.length / 2)] || 0;
      const span = points.length ? S.duration(points[points.length - 1][0] - points[0][0]) : "";
      const text = `${kind}: last ${points.length} results over ${span}: ${counts[1]} passed, ${counts[2]} with a warning, ${counts[0]} failed; median latency ${ms(median)}, max ${ms(latencies[latencies.length - 1] || 0)}`;
      S.setText(strip.querySelector("p"), text);
      const canvas = strip.querySelector("canvas");
      canvas.setAttribute("aria-label", `${text}. Bars: one per result, height the latency, colour the outcome.`);
      const max = latencies[latencies.length - 1] || 0.001;
      S.chart(canvas, points.map((p) => ({ value: p[1], color: OUTCOME[p[2]][1] })), { slots: 100, floor: 6, min: max });
    }
  }

  function ms(seconds) {
    return seconds >= 1 ? `${seconds.toFixed(2)} s` : `${(seconds * 1000).toFixed(seconds < 0.01 ? 2 : 1)} ms`;
  }

  function renderUsage() {
    const usage = history.usage;
    const cpu = [];
    for (let i = 1; i < usage.length; i += 1) {
      const [t0, c0] = usage[i - 1];
      const [t1, c1] = usage[i];
      if (t1 > t0) cpu.push({ value: Math.max(0, ((c1 - c0) / (t1 - t0)) * 100) });
    }
    const mem = usage.map((u) => ({ value: u[2] }));
    // The charts span the samples there are: a page opened a minute ago shows that minute.
    S.chart($("cpu"), cpu, { line: true, min: 1, color: "--accent" });
    S.chart($("mem"), mem, { line: true, color: "--ok" });
    const span = usage.length > 1 ? ` over the last ${S.duration(usage[usage.length - 1][0] - usage[0][0])}` : "";
    const nowCpu = cpu.length ? `${cpu[cpu.length - 1].value.toFixed(1)}%` : "…";
    const maxCpu = cpu.length ? `${Math.max(...cpu.map((p) => p.value)).toFixed(1)}%` : "…";
    S.setText($("cpu-text"), `CPU: ${nowCpu} of a core now, peak ${maxCpu}${span}`);
    const nowMem = mem.length ? S.bytes(mem[mem.length - 1].value) : "…";
    const maxMem = mem.length ? S.bytes(Math.max(...mem.map((p) => p.value))) : "…";
    S.setText($("mem-text"), `Memory (resident): ${nowMem} now, peak ${maxMem}${span}`);
  }
  window.addEventListener("resize", () => history && renderHistory());

  // --- actions ---------------------------------------------------------------------------------

  for (const button of document.querySelectorAll("button[data-action]")) {
    button.addEventListener("click", () => {
      const action = button.dataset.action;
      if (action === "signal") {
        S.askSignal(name, `${base}signal`);
        return;
      }
      button.disabled = true;
      S.post(base + action).finally(() => { button.disabled = false; });
    });
  }

  // --- the log ---------------------------------------------------------------------------------

  if (canAdmin) {
    const pre = $("log");
    const follow = $("log-follow");
    const stream = $("log-stream");
    let source = null;
    let text = "";
    let drawn = true;

    const draw = () => {
      drawn = true;
      S.setText(pre, text);
      if (follow.checked) pre.scrollTop = pre.scrollHeight;
    };
    const open = () => {
      if (source) source.close();
      text = "";
      draw();
      S.setText($("log-status"), "following");
      source = new EventSource(`/api/v1/programs/${encodeURIComponent(name)}/log/follow?stream=${stream.value}`);
      source.onmessage = (event) => {
        text += JSON.parse(event.data).data;
        if (text.length > LOG_KEPT) {
          const cut = text.indexOf("\n", text.length - LOG_KEPT);
          text = text.slice(cut >= 0 ? cut + 1 : text.length - LOG_KEPT);
        }
        if (drawn) {
          drawn = false;
          requestAnimationFrame(draw);
        }
      };
      source.onerror = () => {
        if (source.readyState === EventSource.CLOSED) S.setText($("log-status"), "not captured, or not allowed");
      };
    };
    const close = () => {
      if (source) source.close();
      source = null;
      S.setText($("log-status"), "paused");
    };
    follow.addEventListener("change", () => (follow.checked ? open() : close()));
    stream.addEventListener("change", () => (follow.checked ? open() : close()));
    window.addEventListener("pagehide", close);
    open();
  }
})();
