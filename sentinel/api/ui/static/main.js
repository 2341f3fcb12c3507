// The main page: the host at a glance, and a live table of every process.
// The stream sends only rows that changed, at most a few times a second; they are merged
// (the latest row of each process wins) and applied once per frame, so a crash loop of
// hundreds of programs costs the page one pass over the changed rows, and the page holds one
// table row per process whatever happens.
"use strict";

(() => {
  const S = Sentinel;
  const tbody = document.getElementById("rows");
  const template = document.getElementById("row-template");
  const entries = new Map(); // process name -> { row, tr, cells }
  const pending = { fresh: false, rows: new Map(), removed: new Set(), rate: null };
  const filters = { text: "", group: "", state: "" };
  const DOWN = new Set(["STOPPED", "EXITED", "FATAL"]);
  const SEVERITY = { flapping: 0, FATAL: 1, BACKOFF: 2, unhealthy: 3, EXITED: 4 };
  const ATTENTION_SHOWN = 10;
  let scheduled = false;
  let countsKey = "";
  let attentionKey = "";
  let groupsKey = "";
  let rate = [];

  S.connect("/ui/stream", { rows: receive });

  function receive(message) {
    if (message.fresh) {
      pending.fresh = true;
      pending.rows.clear();
      pending.removed.clear();
    }
    for (const name of message.removed) {
      pending.rows.delete(name);
      pending.removed.add(name);
    }
    for (const row of message.rows) {
      pending.rows.set(row.name, row);
      pending.removed.delete(row.name);
    }
    if (message.restart_rate) pending.rate = message.restart_rate;
    if (!scheduled) {
      scheduled = true;
      // Once per frame; a hidden tab gets no frames, and its updates wait, merged.
      requestAnimationFrame(flush);
    }
  }

  function flush() {
    scheduled = false;
    if (pending.fresh) {
      for (const name of [...entries.keys()]) if (!pending.rows.has(name)) remove(name);
    }
    for (const name of pending.removed) remove(name);
    for (const row of pending.rows.values()) upsert(row);
    if (pending.rate) {
      rate = pending.rate;
      drawRate();
    }
    pending.fresh = false;
    pending.rows.clear();
    pending.removed.clear();
    pending.rate = null;
    refreshGroups();
    summarize();
    showCount();
  }

  // --- rows ----------------------------------------------------------------------------------

  function remove(name) {
    const entry = entries.get(name);
    if (entry) {
      entry.tr.remove();
      entries.delete(name);
    }
  }

  function upsert(row) {
    let entry = entries.get(row.name);
    if (!entry) {
      entry = create(row.name);
      entries.set(row.name, entry);
      tbody.appendChild(entry.tr);
    }
    entry.row = row;
    render(entry);
    entry.tr.hidden = !matches(row);
  }

  function create(name) {
    const tr = template.content.firstElementChild.cloneNode(true);
    tr.dataset.name = name;
    const link = tr.querySelector(".process-link");
    link.href = `/ui/process/${encodeURIComponent(name)}`;
    link.textContent = name;
    const cells = {
      flap: tr.querySelector(".flap"),
      group: tr.querySelector(".group"),
      badge: tr.querySelector(".state-badge"),
      for: tr.querySelector(".for"),
      backoff: tr.querySelector(".backoff"),
      note: tr.querySelector(".note"),
      health: tr.querySelector(".health"),
      ready: tr.querySelector(".ready"),
      pid: tr.querySelector(".pid"),
      uptime: tr.querySelector(".uptime"),
      count: tr.querySelector(".restarts .count"),
      why: tr.querySelector(".restarts .why"),
      probe: tr.querySelector(".probe"),
      buttons: {},
    };
    for (const button of tr.querySelectorAll("button[data-action]")) {
      const action = button.dataset.action;
      button.setAttribute("aria-label", action === "signal" ? `Send a signal to ${name}` : `${action[0].toUpperCase()}${action.slice(1)} ${name}`);
      cells.buttons[action] = button;
    }
    return { row: null, tr, cells };
  }

  function render(entry) {
    const { row, cells } = entry;
    S.setText(cells.badge, row.state);
    cells.badge.className = `badge state-badge s-${row.state}`;
    cells.flap.hidden = !row.flapping;
    S.setText(cells.group, row.group);
    S.setText(cells.note, row.waiting_for.length ? row.detail : S.said(row));
    const health = row.probes.includes("liveness") || row.health !== "unknown" ? row.health : "";
    S.setText(cells.health, health);
    cells.health.className = `health h-${row.health}`;
    S.setText(cells.ready, row.state === "RUNNING" ? (row.ready ? "ready" : "not ready") : "");
    cells.ready.className = `ready ${row.state === "RUNNING" && !row.ready ? "bad" : ""}`;
    S.setText(cells.pid, row.pid ?? "");
    S.setText(cells.count, row.restarts);
    S.setText(cells.why, row.last_restart ? `(${row.last_restart})` : "");
    S.setText(cells.probe, row.probe);
    cells.probe.className = `probe ${row.probe_ok === false ? "bad" : ""}`;
    const down = DOWN.has(row.state);
    const b = cells.buttons;
    if (b.start) b.start.hidden = !(down || row.state === "BACKOFF");
    if (b.stop) b.stop.hidden = down;
    if (b.restart) b.restart.hidden = row.state === "STOPPING";
    if (b.signal) b.signal.hidden = row.pid === null;
    times(entry, S.now());
  }

  function times(entry, now) {
    const { row, cells } = entry;
    S.setText(cells.for, row.since ? `for ${S.duration(now - row.since)}` : "");
    S.setText(cells.backoff, row.backoff_until ? `retry in ${S.duration(Math.ceil(row.backoff_until - now))}` : "");
    S.setText(cells.uptime, row.started ? S.duration(now - row.started) : "");
  }

  // Uptimes and countdowns move every second, on the page's own clock.
  setInterval(() => {
    const now = S.now();
    for (const entry of entries.values()) if (!entry.tr.hidden) times(entry, now);
    for (const item of document.querySelectorAll("#attention [data-since]")) {
      S.setText(item, `for ${S.duration(now - Number(item.dataset.since))}`);
    }
  }, 1000);

  // --- filters ---------------------------------------------------------------------------------

  function problem(row) {
    if (row.flapping) return "flapping";
    if (row.state === "FATAL" || row.state === "BACKOFF") return row.state;
    if (row.health === "unhealthy") return "unhealthy";
    if (row.state === "EXITED" && row.exit_code !== 0) return "EXITED";
    return null;
  }

  function matches(row) {
    const text = filters.text;
    if (text && !row.name.toLowerCase().includes(text) && !row.group.toLowerCase().includes(text)) return false;
    if (filters.group && row.group !== filters.group) return false;
    if (filters.state === "problems") return problem(row) !== null;
    return !filters.state || row.state === filters.state;
  }

  function applyFilters() {
    const now = S.now();
    for (const entry of entries.values()) {
      entry.tr.hidden = !matches(entry.row);
      if (!entry.tr.hidden) times(entry, now);
    }
    const target = document.getElementById("bulk-target");
    if (target) S.setText(target, filters.group ? `group ${filters.group}:` : "all programs:");
    showCount();
  }

  function showCount() {
    let shown = 0;
    for (const entry of entries.values()) if (!entry.tr.hidden) shown += 1;
    S.setText(document.getElementById("shown"), `${shown} of ${entries.size} shown`);
    document.getElementById("empty").hidden = shown > 0 || entries.size === 0;
  }

  function refreshGroups() {
    const groups = [...new Set([...entries.values()].map((e) => e.row.group))].sort();
    const key = groups.join("\n");
    if (key === groupsKey) return;
    groupsKey = key;
    const select = document.getElementById("filter-group");
    const chosen = select.value;
    while (select.options.length > 1) select.remove(1);
    for (const group of groups) select.add(new Option(group, group));
    select.value = groups.includes(chosen) ? chosen : "";
  }

  document.getElementById("filter-text").addEventListener("input", (event) => {
    filters.text = event.target.value.trim().toLowerCase();
    applyFilters();
  });
  document.getElementById("filter-group").addEventListener("change", (event) => {
    filters.group = event.target.value;
    applyFilters();
  });
  document.getElementById("filter-state").addEventListener("change", (event) => {
    filters.state = event.target.value;
    applyFilters();
  });
  document.getElementById("filters").addEventListener("submit", (event) => event.preventDefault());

  // --- the host at a glance ------------------------------------------------------------------

  function summarize() {
    const counts = {};
    const problems = [];
    for (const { row } of entries.values()) {
      counts[row.state] = (counts[row.state] || 0) + 1;
      const kind = problem(row);
      if (kind) problems.push({ row, kind });
    }
    const states = Object.keys(counts).sort();
    const key = states.map((s) => `${s}=${counts[s]}`).join(",");
    if (key !== countsKey) {
      countsKey = key;
      const list = document.getElementById("counts");
      list.replaceChildren(...states.map((state) => {
        const item = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.className = `s-${state}`;
        button.dataset.state = state;
        button.setAttribute("aria-label", `${counts[state]} ${state}: show only these`);
        button.append(state);
        const n = document.createElement("span");
        n.className = "n";
        n.textContent = counts[state];
        button.append(n);
        item.append(button);
        return item;
      }));
    }
    problems.sort((a, b) => SEVERITY[a.kind] - SEVERITY[b.kind] || (b.row.since || 0) - (a.row.since || 0) || a.row.name.localeCompare(b.row.name));
    const shown = problems.slice(0, ATTENTION_SHOWN);
    const attention = shown.map((p) => `${p.row.name}|${p.kind}|${p.row.state}|${p.row.since}|${p.row.restarts}|${reason(p.row)}`).join("\n");
    if (attention !== attentionKey) {
      attentionKey = attention;
      document.getElementById("attention").replaceChildren(...shown.map(attentionItem));
    }
    const more = document.getElementById("attention-more");
    more.hidden = problems.length <= ATTENTION_SHOWN;
    S.setText(more, `and ${problems.length - ATTENTION_SHOWN} more: choose "needs attention" below`);
    document.getElementById("all-well").hidden = problems.length > 0 || entries.size === 0;
  }

  function reason(row) {
    if (row.probe_ok === false) return row.probe;
    return row.detail || row.last_restart || "";
  }

  function attentionItem({ row, kind }) {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = `/ui/process/${encodeURIComponent(row.name)}`;
    link.textContent = row.name;
    const badge = document.createElement("span");
    badge.className = kind === "flapping" ? "badge flap" : `badge s-${row.state}`;
    badge.textContent = kind === "flapping" ? "flapping" : kind === "unhealthy" ? "unhealthy" : row.state;
    const since = document.createElement("span");
    since.className = "muted";
    if (kind === "flapping") {
      since.textContent = `${row.restarts} restarts`;
    } else if (row.since) {
      since.dataset.since = row.since;
      since.textContent = `for ${S.duration(S.now() - row.since)}`;
    }
    const why = document.createElement("span");
    why.className = "why";
    why.textContent = reason(row);
    item.append(link, " ", badge, " ", since, why.textContent ? " · " : "", why);
    return item;
  }

  function drawRate() {
    const canvas = document.getElementById("rate");
    const total = rate.reduce((a, b) => a + b, 0);
    const last = rate.slice(-6).reduce((a, b) => a + b, 0);
    S.chart(canvas, rate.map((value) => ({ value, color: value ? "--bad" : "--line" })), { slots: rate.length, floor: 1 });
    const text = `${total} in the last 15 minutes; ${last} in the last minute`;
    canvas.setAttribute("aria-label", `Restarts per 10 seconds: ${text}`);
    S.setText(document.getElementById("rate-text"), text);
  }
  window.addEventListener("resize", drawRate);

  document.getElementById("counts").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-state]");
    if (!button) return;
    const select = document.getElementById("filter-state");
    select.value = select.value === button.dataset.state ? "" : button.dataset.state;
    filters.state = select.value;
    applyFilters();
  });

  // --- actions ---------------------------------------------------------------------------------

  tbody.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const name = button.closest("tr").dataset.name;
    const action = button.dataset.action;
    const url = `/ui/programs/${encodeURIComponent(name)}/${action}`;
    if (action === "signal") {
      S.askSignal(name, url);
      return;
    }
    button.disabled = true;
    S.post(url).finally(() => { button.disabled = false; });
  });

  for (const button of document.querySelectorAll("button[data-bulk]")) {
    button.addEventListener("click", () => {
      const action = button.dataset.bulk;
      const group = filters.group;
      const base = group ? `/ui/groups/${encodeURIComponent(group)}/` : "/ui/all/";
      const what = group ? `every program of group ${group}` : "every program";
      if (action === "signal") {
        S.askSignal(what, `${base}signal`);
        return;
      }
      if (window.confirm(`${action[0].toUpperCase()}${action.slice(1)} ${what}?`)) S.post(base + action);
    });
  }

  const reload = document.getElementById("reload");
  if (reload) {
    reload.addEventListener("click", () => {
      if (window.confirm("Reload the configuration? Programs whose config changed restart.")) S.post("/ui/reload");
    });
  }
})();
