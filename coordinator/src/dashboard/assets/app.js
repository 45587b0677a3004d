// lfleet dashboard: plain JavaScript, no framework, no build step, nothing loaded from
// elsewhere. Every page is drawn from the coordinator's JSON under /api/ and redrawn
// by polling (no reload); a section is redrawn only when its data changed.
'use strict';

(() => {
  const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
  const ROLE = meta('lfleet-role');
  const CSRF = meta('lfleet-csrf');
  const main = document.getElementById('main');
  const live = document.getElementById('live');

  // === helpers ===

  /** An element with attributes (`on*` as listeners) and children (strings are text). */
  function el(tag, attrs, ...children) {
    const node = ['svg', 'path', 'line', 'text', 'title'].includes(tag)
      ? document.createElementNS('http://www.w3.org/2000/svg', tag)
      : document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else if (key === 'text') node.textContent = value;
      else node.setAttribute(key, value === true ? '' : value);
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const escapeHtml = (text) => String(text).replace(/[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));

  /** Bytes per second in SI units, as the CLI prints them. */
  function rate(value) {
    if (value === null || value === undefined) return '—';
    const units = ['B/s', 'kB/s', 'MB/s', 'GB/s', 'TB/s'];
    let v = value;
    let unit = 0;
    while (v >= 1000 && unit < units.length - 1) { v /= 1000; unit += 1; }
    return `${v < 10 && unit > 0 ? v.toFixed(1) : Math.round(v)} ${units[unit]}`;
  }

  const localTime = (ms) => (ms ? new Date(ms).toLocaleString() : '—');

  function ago(ms) {
    if (!ms) return 'never';
    const s = Math.max(0, (Date.now() - ms) / 1000);
    if (s < 90) return `${Math.round(s)} s ago`;
    if (s < 5400) return `${Math.round(s / 60)} min ago`;
    if (s < 172800) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} d ago`;
  }

  const when = (ms) => el('span', { title: localTime(ms) }, ms ? `${localTime(ms)} (${ago(ms)})` : '—');

  const badge = (word) => el('span', { class: `badge ${word}` }, word);

  function table(headers, rows, options) {
    const head = el('thead', {}, options && options.groups
      ? el('tr', {}, options.groups.map(([label, span]) => el('th', { colspan: span, class: 'group' }, label)))
      : null,
    el('tr', {}, headers.map((h) => el('th', { class: h.endsWith('/s') ? 'num' : null }, h))));
    return el('table', {}, head, el('tbody', {}, rows));
  }

  /** Replaces `container`'s content with `draw(data)` when `data` differs from last time. */
  function section(container, data, draw) {
    const key = JSON.stringify(data);
    if (container.dataset.key === key) return;
    container.dataset.key = key;
    container.replaceChildren(...[draw(data)].flat().filter(Boolean));
  }

  // === liveness ===

  let lastOk = 0;
  let staleAfter = 10000;
  function markLive() {
    lastOk = Date.now();
    live.className = 'live ok';
    live.textContent = `live · ${new Date(lastOk).toLocaleTimeString()}`;
  }
  setInterval(() => {
    if (lastOk && Date.now() - lastOk > staleAfter) {
      live.className = 'live stale';
      live.textContent = `stale: no answer since ${new Date(lastOk).toLocaleTimeString()}`;
    }
  }, 1000);

  /** Fetches `url` every `every` ms (ETag-aware), calling `take` with each new answer. */
  function poll(url, every, take) {
    staleAfter = Math.max(staleAfter, 3 * every + 5000);
    let etag = null;
    const once = async () => {
      try {
        const headers = etag ? { 'If-None-Match': etag } : {};
        const response = await fetch(typeof url === 'function' ? url() : url, { headers, cache: 'no-store' });
        if (response.status === 304) { markLive(); return; }
        if (!response.ok) {
          const message = await response.text();
          markLive();
          take(null, `${response.status}: ${message}`);
          return;
        }
        etag = response.headers.get('ETag');
        const data = await response.json();
        markLive();
        take(data, null);
      } catch (error) {
        // Unreachable: the liveness badge turns stale; try again next round.
      } finally {
        setTimeout(once, every);
      }
    };
    once();
  }

  /** Posts an action with this page's token; resolves to [ok, text or JSON]. */
  async function act(url, body) {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Lfleet-Csrf': CSRF },
      body: JSON.stringify(body || {}),
    });
    const type = response.headers.get('Content-Type') || '';
    const answer = type.startsWith('application/json') ? await response.json() : await response.text();
    return [response.ok, answer];
  }

  // === charts ===

  /** An SVG line chart of read and write rates over the window; gaps stay gaps. */
  function chart(series, width, height, small) {
    const pad = small ? { l: 2, r: 2, t: 2, b: 2 } : { l: 64, r: 8, t: 8, b: 18 };
    const values = series.read_bytes_per_second.concat(series.write_bytes_per_second).filter((v) => v !== null);
    const max = Math.max(1, ...values);
    const n = series.read_bytes_per_second.length;
    const x = (i) => pad.l + (i / Math.max(1, n - 1)) * (width - pad.l - pad.r);
    const y = (v) => pad.t + (1 - v / max) * (height - pad.t - pad.b);
    const line = (points) => {
      let d = '';
      let open = false;
      points.forEach((v, i) => {
        if (v === null) { open = false; return; }
        d += `${open ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
        // A step alone between gaps is drawn as a dot.
        if (!open && (i + 1 >= points.length || points[i + 1] === null)) d += 'h0.01';
        open = true;
      });
      return d || 'M0,0';
    };
    const svg = el('svg', { class: 'chart', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img' });
    if (!small) {
      svg.append(
        el('line', { class: 'axis', x1: pad.l, x2: width - pad.r, y1: y(0), y2: y(0) }),
        el('line', { class: 'axis', x1: pad.l, x2: pad.l, y1: pad.t, y2: y(0) }),
        el('text', { x: 2, y: pad.t + 10 }, rate(max)),
        el('text', { x: 2, y: y(0) }, '0'),
        el('text', { x: pad.l, y: height - 3 }, `${Math.round((n * series.step_ms) / 60000)} min ago`),
        el('text', { x: width - pad.r - 24, y: height - 3 }, 'now'),
      );
    }
    svg.append(el('path', { class: 'read', d: line(series.read_bytes_per_second) }),
      el('path', { class: 'write', d: line(series.write_bytes_per_second) }));
    const known = series.reporting.filter((r) => r > 0).length;
    svg.append(el('title', {}, `read and write, ${known} of ${n} steps reported`));
    return svg;
  }

  const chartKey = () => el('p', { class: 'muted' }, el('span', { class: 'key-read' }, '━ read'), '  ',
    el('span', { class: 'key-write' }, '━ write'), '  (gaps: no report)');

  // === fleet ===

  const HEALTH = { h: 'healthy', u: 'unhealthy', k: 'unknown', s: 'silent', d: 'powered-down' };
  const OUTCOME = { P: 'pass', F: 'fail', U: 'unknown', '-': 'none' };

  function fleetPage() {
    const summary = el('div', { class: 'panel' });
    const banners = el('div');
    const checks = el('div', { class: 'checks', role: 'toolbar', 'aria-label': 'color by check' });
    const heatmap = el('div', { id: 'heatmap' });
    const hover = el('div', { class: 'hover', id: 'hover' });
    main.replaceChildren(el('h1', {}, 'Fleet'), banners, summary, checks, heatmap, hover);

    let data = null;
    let selected = -1;
    let cells = [];
    let signature = '';
    let rendered = false;

    const NAMED_CELLS = 200;
    const cellState = (node) => {
      const health = HEALTH[node[2]];
      if (selected < 0 || health === 'silent' || health === 'powered-down') return health;
      return OUTCOME[node[3][selected]] || 'none';
    };

    function drawCells() {
      // A small fleet gets cells with names; a large one, squares (hover for the name).
      const named = data.nodes.length <= NAMED_CELLS;
      heatmap.classList.toggle('named', named);
      const parts = data.groups.map(() => []);
      data.nodes.forEach((node) => {
        const name = escapeHtml(node[0]);
        parts[node[1]].push(`<a class="cell s-${cellState(node)}" href="/nodes/${encodeURIComponent(node[0])}" data-node="${name}" data-health="${HEALTH[node[2]]}" aria-label="${name}">${named ? name : ''}</a>`);
      });
      heatmap.replaceChildren();
      data.groups.forEach((group, index) => {
        if (!parts[index].length) return;
        const members = data.nodes.filter((n) => n[1] === index);
        const bad = members.filter((n) => n[2] !== 'h').length;
        const cellsBox = el('div', { class: 'group-cells' });
        cellsBox.innerHTML = parts[index].join('');
        heatmap.append(el('h3', {}, `${group || '(no nodearray)'} · ${members.length} nodes${bad ? ` · ${bad} not healthy` : ''}`), cellsBox);
      });
      cells = Array.from(heatmap.querySelectorAll('.cell'));
    }

    function recolor() {
      data.nodes.forEach((node, i) => {
        const cls = `cell s-${cellState(node)}`;
        const cell = cells[i];
        if (cell.className !== cls) cell.className = cls;
        const health = HEALTH[node[2]];
        if (cell.dataset.health !== health) cell.dataset.health = health;
      });
    }

    function drawChecks() {
      const counts = data.checks.map(() => ({ F: 0, U: 0 }));
      data.nodes.forEach((node) => {
        for (let i = 0; i < node[3].length; i += 1) {
          const o = node[3][i];
          if (o === 'F' || o === 'U') counts[i][o] += 1;
        }
      });
      const button = (label, index, count) => el('button', {
        class: index === selected ? 'current' : null,
        'data-check': index < 0 ? '' : data.checks[index],
        onclick: () => { selected = index; drawChecks(); recolor(); },
      }, label, count && count.F ? el('span', { class: 'n-fail' }, ` ${count.F} fail`) : null,
      count && count.U ? el('span', { class: 'n-unknown' }, ` ${count.U} unknown`) : null);
      checks.replaceChildren(button('every check (node health)', -1, null),
        ...data.checks.map((check, i) => button(check, i, counts[i])));
    }

    function drawSummary() {
      const total = data.nodes.length;
      const swatch = (state, label, count) => el('span', {}, el('i', { class: `swatch s-${state}` }), `${label} ${count}`);
      section(summary, [data.by_health, total, data.generation], () => [
        el('div', { class: 'legend' },
          el('strong', {}, `${total} nodes`),
          swatch('healthy', 'healthy', data.by_health.healthy || 0),
          swatch('unhealthy', 'unhealthy', data.by_health.unhealthy || 0),
          swatch('unknown', 'unknown', data.by_health.unknown || 0),
          swatch('silent', 'silent', data.by_health.silent || 0),
          swatch('powered-down', 'powered down', data.by_health['powered-down'] || 0),
          el('span', { class: 'muted' }, `config generation ${data.generation}`)),
        el('p', { class: 'muted' }, 'By check: ', el('i', { class: 'swatch s-pass' }), ' pass ',
          el('i', { class: 'swatch s-fail' }), ' fail ', el('i', { class: 'swatch s-unknown' }), ' unknown ',
          el('i', { class: 'swatch s-none' }), ' not reported; silent and powered-down nodes keep their colour.'),
      ]);
      section(banners, [data.incidents_open, data.drains_active, data.dry_run, data.drains_enabled], () => [
        ...data.incidents_open.map((incident) => el('div', { class: 'banner bad' },
          el('strong', {}, `Incident ${incident.id}: `),
          `${incident.check} failing on ${incident.node_count} nodes of ${incident.filesystem} since ${localTime(incident.opened_unix_ms)}; nobody is drained for it. `,
          el('a', { href: '/drains' }, 'details'))),
        data.drains_active ? el('div', { class: 'banner warn' }, `${data.drains_active} node(s) drained by lfleet. `, el('a', { href: '/drains' }, 'drains')) : null,
        data.dry_run ? el('div', { class: 'banner warn' }, 'Dry-run is on: drains are recorded as "would drain", nothing is written to Slurm.') : null,
        data.drains_enabled ? null : el('div', { class: 'banner' }, 'Slurm drains are off ([slurm] enabled = false).'),
      ]);
    }

    heatmap.addEventListener('mouseover', (event) => {
      const cell = event.target.closest('.cell');
      if (!cell) { hover.style.display = 'none'; return; }
      const node = data.nodes[cells.indexOf(cell)];
      if (!node) return;
      const failing = data.checks.filter((_, i) => node[3][i] === 'F');
      const unknown = data.checks.filter((_, i) => node[3][i] === 'U');
      hover.replaceChildren(el('strong', {}, node[0]), ' ', badge(HEALTH[node[2]]),
        el('div', { class: 'muted' }, data.groups[node[1]] || '(no nodearray)'),
        failing.length ? el('div', {}, `failing: ${failing.join(', ')}`) : null,
        unknown.length ? el('div', {}, `unknown: ${unknown.join(', ')}`) : null);
      hover.style.display = 'block';
      hover.style.left = `${Math.min(event.clientX + 14, window.innerWidth - 380)}px`;
      hover.style.top = `${event.clientY + 14}px`;
    });
    heatmap.addEventListener('mouseleave', () => { hover.style.display = 'none'; });

    poll('/api/fleet', 2000, (fresh, error) => {
      if (error) { summary.replaceChildren(el('p', { class: 'error' }, error)); return; }
      data = fresh;
      if (selected >= data.checks.length) selected = -1;
      const sig = data.groups.join('\u0000') + '\u0001' + data.nodes.map((n) => n[0] + '/' + n[1]).join('\u0000');
      if (sig !== signature) { signature = sig; drawCells(); } else { recolor(); }
      drawChecks();
      drawSummary();
      if (!rendered) {
        rendered = true;
        // After the first frame with every cell painted.
        requestAnimationFrame(() => setTimeout(() => performance.mark('lfleet-fleet-rendered'), 0));
      }
    });
  }

  // === node ===

  function nodePage(name) {
    const head = el('div');
    const conditions = el('div');
    const mounts = el('div');
    const throughput = el('div');
    const kernels = el('div');
    const drains = el('div');
    const events = el('div');
    const result = el('div', { class: 'result', id: 'action-result', role: 'status' });
    main.replaceChildren(head, el('h2', {}, 'Conditions'), conditions, el('h2', {}, 'Mounts'), mounts,
      el('h2', {}, 'Throughput, last hour'), throughput, el('h2', {}, 'Kernels and reboot safety'), kernels,
      el('h2', {}, 'Drains'), drains, result, el('h2', {}, 'Events'), events);
    document.title = `${name} · lfleet`;
    let confirming = false;
    let drainView = null;

    const rank = { fail: 0, unknown: 1, pass: 2 };

    function drawDrains() {
      const view = drainView;
      const rows = view.drains.map((d) => el('tr', {},
        el('td', {}, d.drain_id || '—'), el('td', {}, d.check || '—'), el('td', { class: 'evidence' }, d.reason),
        el('td', {}, d.reason_time_unix ? when(d.reason_time_unix * 1000) : '—'), el('td', {}, d.status),
        el('td', {}, d.slurm_state || '—'), el('td', {}, d.reason_user || '—')));
      const active = view.drains.find((d) => d.by_lfleet && d.status === 'active');
      const parts = [];
      if (view.drains_error) parts.push(el('p', { class: 'error' }, `Slurm could not be asked: ${view.drains_error}`));
      if (!view.drains_enabled) parts.push(el('p', { class: 'muted' }, 'Slurm drains are off ([slurm] enabled = false).'));
      parts.push(rows.length
        ? table(['drain id', 'check', 'reason', 'since', 'status', 'state', 'reason by'], rows,
          { groups: [["lfleet's ledger", 5], ["Slurm's view now", 2]] })
        : el('p', { class: 'muted' }, 'No drain of this node in the last day.'));
      if (active && ROLE === 'admin') {
        if (!confirming) {
          parts.push(el('button', { class: 'action', 'data-undrain': name, onclick: () => { confirming = true; drawDrains(); } }, `Undrain ${name}…`));
        } else {
          const note = el('input', { id: 'undrain-note', placeholder: 'why (recorded in the event log)', maxlength: 200 });
          parts.push(el('div', { class: 'confirm' },
            `Lift lfleet's drain ${active.drain_id} of ${name}? lfleet undrains only while Slurm still shows its own reason.`,
            note,
            el('button', {
              class: 'action danger',
              id: 'confirm-undrain',
              onclick: async () => {
                result.className = 'result';
                result.textContent = 'asking the coordinator…';
                try {
                  const [ok, answer] = await act(`/api/nodes/${encodeURIComponent(name)}/undrain`, { note: note.value });
                  result.className = `result ${ok && answer.lifted ? 'ok' : 'refused'}`;
                  result.textContent = ok ? answer.message : answer;
                } catch (error) {
                  result.className = 'result refused';
                  result.textContent = `the coordinator did not answer: ${error}`;
                }
                confirming = false;
                drawDrains();
              },
            }, 'Confirm undrain'),
            el('button', { class: 'action secondary', onclick: () => { confirming = false; drawDrains(); } }, 'Cancel')));
        }
      } else if (active) {
        parts.push(el('p', { class: 'needs-admin muted' }, 'Undrain needs an admin certificate (this browser is read-only).'));
      }
      drains.replaceChildren(...parts);
    }

    poll(`/api/nodes/${encodeURIComponent(name)}`, 2000, (view, error) => {
      if (error) { head.replaceChildren(el('h1', {}, name), el('p', { class: 'error' }, error)); return; }
      const d = view.detail;
      section(head, [d.health, d.connected, Math.floor(d.last_seen_unix_ms / 5000), d.agent_version, d.kernel,
        d.applied_generation, d.desired_generation, d.lustre_client_version, d.distro, d.role, d.nodearray, d.slurm_node_name], () => [
        el('h1', {}, name, badge(d.health)),
        el('div', { class: 'panel facts' },
          ...[['role', d.role || '—'], ['nodearray', d.nodearray || '—'], ['Slurm node', d.slurm_node_name || '—'],
            ['session', d.connected ? 'connected' : 'not connected'], ['last heard', when(d.last_seen_unix_ms)],
            ['agent', d.agent_version || '—'], ['Lustre client', d.lustre_client_version || '—'],
            ['kernel', d.kernel || '—'], ['distribution', d.distro || '—'],
            ['config generation', `${d.applied_generation} applied of ${d.desired_generation}`]]
            .map(([label, value]) => el('div', {}, el('span', {}, label), value))),
      ]);
      const rows = d.conditions.map((c, i) => [c, view.received_since_unix_ms[i]])
        .sort((a, b) => rank[a[0].outcome] - rank[b[0].outcome]);
      section(conditions, rows, () => (rows.length
        ? table(['check', 'subject', 'outcome', 'code', 'evidence', 'since (received)'], rows.map(([c, since]) => el('tr', { 'data-check': c.check },
          el('td', {}, c.check), el('td', {}, c.subject), el('td', {}, badge(c.outcome)), el('td', {}, c.code || ''),
          el('td', { class: 'evidence' }, c.detail || ''), el('td', {}, when(since)))))
        : el('p', { class: 'muted' }, 'No condition reported yet.')));
      section(mounts, d.mounts, () => (d.mounts.length
        ? table(['mount point', 'source', 'state', 'read B/s', 'write B/s'], d.mounts.map((m) => el('tr', {},
          el('td', {}, m.mount_point), el('td', {}, m.source),
          el('td', {}, badge(m.mounted ? 'pass' : 'fail'), m.mounted ? ' mounted' : ' not mounted'),
          el('td', { class: 'num' }, rate(m.read_bytes_per_second)), el('td', { class: 'num' }, rate(m.write_bytes_per_second)))))
        : el('p', { class: 'muted' }, 'No filesystem is meant for this node.')));
      section(throughput, view.throughput, () => (view.throughput.length
        ? [chartKey(), ...view.throughput.map((m) => el('div', { class: 'panel' }, el('h3', {}, m.mount_point), chart(m.series, 900, 160, false)))]
        : el('p', { class: 'muted' }, 'No throughput reported in the last hour.')));
      section(kernels, [view.kernels, view.reboot_safe], () => [
        el('p', {}, view.reboot_safe === true ? 'Reboot safe: every installed kernel has a Lustre client.'
          : view.reboot_safe === false ? el('strong', { class: 'error' }, 'Reboot unsafe: a kernel the node could boot has no Lustre client.')
            : 'Reboot safety unknown (not reported yet).'),
        table(['kernel', '', 'Lustre client', 'evidence'], view.kernels.map((k) => el('tr', {},
          el('td', {}, k.kernel || '—'), el('td', {}, k.running ? 'running' : 'installed'),
          el('td', {}, k.outcome ? badge(k.outcome) : '—', k.code ? ` ${k.code}` : ''), el('td', { class: 'evidence' }, k.detail)))),
      ]);
      const key = JSON.stringify([view.drains, view.drains_error, view.drains_enabled]);
      if (drains.dataset.key !== key) { drains.dataset.key = key; drainView = view; drawDrains(); }
      section(events, d.events, () => (d.events.length
        ? table(['time', 'source', 'kind', 'detail'], d.events.map((e) => el('tr', {},
          el('td', {}, when(e.at_unix_ms)), el('td', {}, e.source), el('td', {}, e.kind), el('td', { class: 'evidence' }, e.detail))))
        : el('p', { class: 'muted' }, 'No events in the last day.')));
    });
  }

  // === filesystems ===

  function filesystemsPage() {
    const box = el('div');
    main.replaceChildren(el('h1', {}, 'Filesystems'), box);
    poll('/api/filesystems', 5000, (list, error) => {
      if (error) { box.replaceChildren(el('p', { class: 'error' }, error)); return; }
      section(box, list, () => (list.length ? list.map((fs) => {
        const s = fs.summary;
        const share = s.clients_expected ? s.clients_mounted / s.clients_expected : 1;
        const fill = el('div');
        fill.style.width = `${Math.round(share * 100)}%`;
        const t = fs.throughput;
        return el('div', { class: 'panel', 'data-filesystem': s.name },
          el('h2', {}, `${s.name} `, el('span', { class: 'muted' }, `${s.source} on ${s.mount_point}`)),
          el('p', {}, el('span', { class: `bar${share < 1 ? ' short' : ''}` }, fill),
            ` ${s.clients_mounted} of ${s.clients_expected} clients mounted · read ${rate(s.read_bytes_per_second)} · write ${rate(s.write_bytes_per_second)}`),
          fs.not_mounted ? el('p', {}, 'Not mounted on: ', el('span', { class: 'hostlist' }, fs.not_mounted)) : null,
          el('h3', {}, 'Throughput of every client, last hour'),
          t ? [chartKey(), chart(t.total, 900, 180, false)] : el('p', { class: 'muted' }, 'No throughput reported.'),
          el('h3', {}, 'Busiest nodes, last hour'),
          t && t.top_nodes.length
            ? table(['node', 'mean B/s', 'last hour'], t.top_nodes.map((n) => el('tr', {},
              el('td', { class: 'name' }, el('a', { href: `/nodes/${encodeURIComponent(n.node)}` }, n.node)),
              el('td', { class: 'num' }, rate(n.mean_bytes_per_second)), el('td', {}, chart(n.series, 260, 30, true)))))
            : el('p', { class: 'muted' }, 'None reported.'),
          el('h3', {}, 'Import trouble by target'),
          fs.trouble.length
            ? table(['target', 'state', 'nodes', 'which'], fs.trouble.map((row) => el('tr', {},
              el('td', {}, row.target), el('td', {}, row.state), el('td', { class: 'num' }, row.node_count),
              el('td', { class: 'hostlist' }, row.node_count <= 8
                ? row.nodes.flatMap((n, i) => [i ? ', ' : '', el('a', { href: `/nodes/${encodeURIComponent(n)}` }, n)])
                : row.hostlist))))
            : el('p', { class: 'muted' }, 'Every client that reports sees every target FULL or IDLE.'));
      }) : el('p', { class: 'muted' }, 'No filesystem is configured.')));
    });
  }

  // === drains and incidents ===

  function drainsPage() {
    const policy = el('div');
    const drains = el('div');
    const incidents = el('div');
    const result = el('div', { class: 'result', id: 'action-result', role: 'status' });
    main.replaceChildren(el('h1', {}, 'Drains and incidents'), policy, result, el('h2', {}, "Drains: lfleet's ledger beside Slurm"), drains,
      el('h2', {}, 'Incidents'), incidents);
    async function dryRun(on) {
      const [ok, answer] = await act('/api/dry-run', { on, check: '' });
      result.className = `result ${ok ? 'ok' : 'refused'}`;
      result.textContent = ok ? `dry-run ${answer.dry_run ? 'on' : 'off'} for every check (the page follows within 5 s)` : answer;
    }

    poll('/api/drains', 5000, (view, error) => {
      if (error) { drains.replaceChildren(el('p', { class: 'error' }, error)); return; }
      section(policy, view.policy, () => el('div', { class: 'panel' },
        el('p', {}, el('strong', {}, view.policy.dry_run ? 'Dry-run is on' : 'Dry-run is off'),
          view.policy.dry_run ? ': drains are recorded as "would drain", nothing is written to Slurm.' : ': lfleet drains and undrains in Slurm.',
          view.policy.dry_run_checks.length ? ` Checks in dry-run: ${view.policy.dry_run_checks.join(', ')}.` : ''),
        el('p', { class: 'muted' }, `Grace ${view.policy.grace_seconds} s, undrain after ${view.policy.undrain_after_seconds} s of passing, `
          + `at most ${view.policy.budget_drains_per_window} drains per ${view.policy.budget_window_seconds} s and ${Math.round(view.policy.max_drained_share * 100)}% of the fleet; `
          + `an incident at ${Math.round(view.policy.incident_share * 100)}% of a filesystem's nodes.`),
        ROLE === 'admin'
          ? el('button', { class: 'action', id: 'dry-run-toggle', onclick: () => dryRun(!view.policy.dry_run) },
            view.policy.dry_run ? 'Turn dry-run off' : 'Turn dry-run on')
          : el('p', { class: 'muted' }, 'Switching dry-run needs an admin certificate.')));
      section(drains, [view.drains, view.drains_error, view.drains_enabled], () => [
        view.drains_error ? el('p', { class: 'error' }, `Slurm could not be asked: ${view.drains_error}`) : null,
        view.drains_enabled ? null : el('p', { class: 'muted' }, 'Slurm drains are off ([slurm] enabled = false).'),
        view.drains.length
          ? table(['node', 'drain id', 'check', 'reason', 'since', 'status', 'state'], view.drains.map((d) => el('tr', {},
            el('td', { class: 'name' }, el('a', { href: `/nodes/${encodeURIComponent(d.node)}` }, d.node)),
            el('td', {}, d.drain_id || '—'), el('td', {}, d.check || '—'), el('td', { class: 'evidence' }, d.reason),
            el('td', {}, d.reason_time_unix ? when(d.reason_time_unix * 1000) : '—'),
            el('td', {}, d.by_lfleet ? d.status : "not lfleet's (left alone)"),
            el('td', {}, d.slurm_state || '—'))), { groups: [['', 1], ["lfleet's ledger", 5], ["Slurm's view now", 1]] })
          : el('p', { class: 'muted' }, 'No drain in the last day, and Slurm shows no node out.'),
      ]);
      section(incidents, view.incidents, () => (view.incidents.length
        ? table(['id', 'check', 'filesystem', 'opened', 'closed', 'nodes'], view.incidents.map((i) => el('tr', {},
          el('td', {}, i.id), el('td', {}, i.check), el('td', {}, i.filesystem), el('td', {}, when(i.opened_unix_ms)),
          el('td', {}, i.closed_unix_ms ? when(i.closed_unix_ms) : el('strong', {}, 'open')),
          el('td', { class: 'hostlist' }, `${i.node_count}: ${i.affected_nodes.slice(0, 50).join(', ')}${i.node_count > 50 ? ', …' : ''}`))))
        : el('p', { class: 'muted' }, 'No incident.')));
    });
  }

  // === events ===

  function eventsPage() {
    const filter = el('input', { type: 'search', placeholder: 'filter: node, kind or text', id: 'event-filter' });
    const source = el('select', { id: 'event-source' }, ['', 'agent', 'coordinator', 'operator', 'security']
      .map((s) => el('option', { value: s }, s || 'every source')));
    const body = el('tbody');
    const count = el('p', { class: 'muted' });
    main.replaceChildren(el('h1', {}, 'Events'), el('div', { class: 'filters' }, filter, source), count,
      el('table', {}, el('thead', {}, el('tr', {}, ['time', 'node', 'source', 'kind', 'detail'].map((h) => el('th', {}, h)))), body));
    const MAX_ROWS = 2000;
    let since = Date.now() - 24 * 3600 * 1000;
    let seenAtSince = new Set();
    const matches = (row) => {
      const text = filter.value.trim().toLowerCase();
      return (!source.value || row.dataset.source === source.value) && (!text || row.dataset.text.includes(text));
    };
    const apply = () => {
      let shown = 0;
      for (const row of body.children) { row.hidden = !matches(row); if (!row.hidden) shown += 1; }
      count.textContent = `${shown} of ${body.children.length} events of the last day (newest first, live)`;
    };
    filter.addEventListener('input', apply);
    source.addEventListener('change', apply);
    poll(() => `/api/events?since=${since}&limit=500`, 2000, (list, error) => {
      if (error) { count.textContent = error; return; }
      const fresh = list.filter((e) => !(e.at_unix_ms === since && seenAtSince.has(JSON.stringify(e))));
      for (const e of fresh) {
        const row = el('tr', { 'data-source': e.source, 'data-text': `${e.node} ${e.kind} ${e.detail}`.toLowerCase() },
          el('td', {}, localTime(e.at_unix_ms)),
          el('td', {}, e.node ? el('a', { href: `/nodes/${encodeURIComponent(e.node)}` }, e.node) : '—'),
          el('td', {}, e.source), el('td', {}, e.kind), el('td', { class: 'evidence' }, e.detail));
        row.hidden = !matches(row);
        body.prepend(row);
      }
      while (body.children.length > MAX_ROWS) body.lastChild.remove();
      if (list.length) {
        const newest = list[list.length - 1].at_unix_ms;
        if (newest !== since) seenAtSince = new Set();
        since = newest;
        list.filter((e) => e.at_unix_ms === since).forEach((e) => seenAtSince.add(JSON.stringify(e)));
      }
      apply();
    });
  }

  // === routing ===

  const path = location.pathname;
  const page = path === '/' ? 'fleet' : path.split('/')[1];
  for (const link of document.querySelectorAll('header nav a')) {
    if (link.dataset.page === page || (page === 'nodes' && link.dataset.page === 'fleet')) link.classList.add('current');
  }
  if (path === '/') fleetPage();
  else if (path.startsWith('/nodes/')) nodePage(decodeURIComponent(path.slice('/nodes/'.length)));
  else if (path === '/filesystems') filesystemsPage();
  else if (path === '/drains') drainsPage();
  else if (path === '/events') eventsPage();
  else main.replaceChildren(el('p', { class: 'error' }, `No page ${path}.`));
})();
