// Meshgate live dashboard: renders the snapshots the gateway pushes over a
// WebSocket. Plain JavaScript, no build step, nothing loaded from elsewhere.
// Every value from the gateway goes into the page as text, never as HTML.
'use strict';

(function () {
  const PALETTE = 8;

  // el builds an element: attrs set attributes (class, data-*, title),
  // children are nodes or strings (added as text); null/false are skipped.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v);
      }
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false || c === '') continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  // ---- number formatting ----
  function fmtRate(r) {
    if (r === null || r === undefined) return '–';
    if (r === 0) return '0/s';
    if (r < 0.1) return '<0.1/s';
    if (r < 10) return r.toFixed(1) + '/s';
    if (r < 1000) return Math.round(r) + '/s';
    if (r < 1e6) return (r / 1000).toFixed(r < 1e4 ? 1 : 0) + 'k/s';
    return (r / 1e6).toFixed(1) + 'M/s';
  }
  function fmtPct(p) {
    if (p === null || p === undefined) return '–';
    if (p === 0) return '0%';
    if (p < 0.1) return '<0.1%';
    if (p < 10) return p.toFixed(1) + '%';
    if (p > 99.9 && p < 100) return '>99.9%';
    return Math.round(p) + '%';
  }
  function fmtMs(ms) {
    if (ms === null || ms === undefined) return '–';
    if (ms < 1) return Math.max(1, Math.round(ms * 1000)) + ' µs';
    if (ms < 10) return ms.toFixed(1) + ' ms';
    if (ms < 1000) return Math.round(ms) + ' ms';
    if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
    return (ms / 60000).toFixed(1) + ' min';
  }
  function fmtCount(n) {
    if (n === null || n === undefined) return '–';
    if (n < 10000) return String(n);
    if (n < 1e6) return (n / 1000).toFixed(n < 1e5 ? 1 : 0) + 'k';
    return (n / 1e6).toFixed(1) + 'M';
  }
  function pad(n) { return n < 10 ? '0' + n : String(n); }
  function fmtTime(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return '–';
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }
  function fmtDate(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return '–';
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate());
  }
  function errClass(p) {
    if (p === null || p === undefined || p === 0) return '';
    return p >= 5 ? 'bad' : 'warn';
  }

  // ---- pieces ----
  function kpi(label, value, attrs, cls) {
    return el('div', Object.assign({ class: 'kpi ' + (cls || '') }, attrs || {}),
      el('span', { class: 'kpi-value' }, value),
      el('span', { class: 'kpi-label' }, label));
  }

  function metricKpis(m, timed, test) {
    return el('div', { class: 'kpis' },
      kpi('req/s', fmtRate(m.rate), test ? { 'data-test': test + '-rate' } : null),
      kpi('errors', fmtPct(m.errorPct), null, errClass(m.errorPct)),
      timed ? kpi('p99', fmtMs(m.p99Ms)) : null);
  }

  // edge is the arrow between two boxes, labelled with the edge's numbers.
  function edge(m, timed) {
    const cls = ['edge'];
    if (!timed && m.requests === 0) {
      // Layer-4 routes have no per-route counters yet: a bare arrow.
      return el('div', { class: 'edge' }, el('div', { class: 'edge-label' }, ' '), el('div', { class: 'edge-line' }));
    }
    if (m.requests > 0) cls.push('active');
    const ec = errClass(m.errorPct);
    if (ec) cls.push(ec);
    return el('div', { class: cls.join(' '), 'data-test': 'edge' },
      el('div', { class: 'edge-label' },
        el('span', { class: 'edge-rate' }, fmtRate(m.rate)),
        el('span', { class: 'edge-err' }, fmtPct(m.errorPct) + ' err'),
        timed ? el('span', { class: 'edge-p99' }, 'p99 ' + fmtMs(m.p99Ms)) : null),
      el('div', { class: 'edge-line' }));
  }

  function splitBars(backends) {
    const row = (label, key, test) => {
      const bar = el('div', { class: 'bar', 'data-test': test });
      let any = false;
      backends.forEach((b, i) => {
        const v = b[key];
        if (!v) return;
        any = true;
        const seg = el('div', { class: 'seg c' + (i % PALETTE), title: b.name + ': ' + fmtPct(v) }, v >= 14 ? fmtPct(v) : '');
        seg.style.width = v + '%';
        bar.append(seg);
      });
      if (!any) {
        bar.classList.add('none');
        bar.append(el('span', {}, key === 'observedPct' ? 'no traffic yet' : 'no weight'));
      }
      return el('div', { class: 'split-row' }, el('span', { class: 'split-label' }, label), bar);
    };
    return el('div', { class: 'split', 'data-test': 'split' },
      row('configured', 'configuredPct', 'split-configured'),
      row('observed', 'observedPct', 'split-observed'));
  }

  function renderEndpoint(e, timed) {
    return el('div', { class: 'ep-row' },
      edge(e, timed),
      el('div', { class: 'ep ' + e.health, 'data-test': 'endpoint', title: e.health + ', ' + e.ejection },
        el('span', { class: 'dot' }),
        el('span', { class: 'ep-addr' }, e.address),
        el('span', { class: 'ep-state' }, e.health)));
  }

  function renderBackend(b, i, timed) {
    const card = el('div', { class: 'card backend-card c' + (i % PALETTE) + (b.valid ? '' : ' invalid'), 'data-test': 'backend' },
      el('div', { class: 'backend-name', title: b.name }, b.name),
      el('div', { class: 'backend-meta' },
        b.protocol ? el('span', { class: 'tag' }, b.protocol) : null,
        b.tls ? el('span', { class: 'tag' }, 'TLS ' + b.tls) : null,
        b.valid ? null : el('span', { class: 'tag bad' }, 'answers 500'),
        b.ejected ? el('span', { class: 'tag bad', 'data-test': 'ejected' }, b.ejected + ' ejected') : null,
        b.unhealthy ? el('span', { class: 'tag bad', 'data-test': 'unhealthy' }, b.unhealthy + ' unhealthy') : null,
        b.panic ? el('span', { class: 'tag bad', title: 'too few healthy endpoints: all take traffic' }, 'panic') : null),
      el('div', { class: 'weights' },
        el('span', {}, 'weight ', el('b', {}, b.weight), ' · ', fmtPct(b.configuredPct)),
        timed || b.observedPct !== null
          ? el('span', {}, 'observed ', el('b', { 'data-test': 'observed-share' }, fmtPct(b.observedPct)))
          : null));
    const eps = el('div', { class: 'endpoints' });
    if (b.endpoints.length === 0) {
      eps.append(el('div', { class: 'ep-none' }, b.valid ? 'no endpoints (503)' : ''));
    }
    for (const e of b.endpoints) eps.append(renderEndpoint(e, timed));
    return el('div', { class: 'backend-row' }, edge(b, timed), card, eps);
  }

  function renderRoute(r, win, timed) {
    const sub = [];
    if (r.ruleName) sub.push(r.ruleName);
    const card = el('div', { class: 'card route-card' },
      el('div', { class: 'route-title' },
        el('span', { class: 'route-name', 'data-test': 'route-name' }, r.name),
        el('span', { class: 'rule' }, 'rule ' + r.rule + (r.ruleName ? ' · ' + r.ruleName : ''))),
      r.hostnames.length ? el('div', { class: 'hostnames' }, r.hostnames.join(', ')) : null,
      (r.matches || []).length ? el('div', { class: 'matches' }, r.matches.map((m) => el('code', {}, m))) : null,
      (r.filters || []).length || r.directResponse
        ? el('div', { class: 'filters' },
          (r.filters || []).map((f) => el('span', { class: 'tag' }, f)),
          r.directResponse ? el('span', { class: 'tag bad' }, 'invalid rule · answers ' + r.directResponse) : null)
        : null,
      !timed && r.requests === 0
        ? el('div', { class: 'count' }, 'connections are counted per listener (above)')
        : [metricKpis(r, timed, 'route'),
          el('div', { class: 'count' },
            el('span', { 'data-test': 'route-requests' }, fmtCount(r.requests)),
            ' requests in ' + win + ' s')],
      r.backends.length > 1 ? splitBars(r.backends) : null);
    const backends = el('div', { class: 'backends' });
    if (r.backends.length === 0) {
      const redirect = (r.filters || []).some((f) => f.startsWith('redirect'));
      backends.append(el('div', { class: 'no-backends' }, redirect ? 'answered by the gateway (redirect)' : 'no backends'));
    }
    r.backends.forEach((b, i) => backends.append(renderBackend(b, i, timed)));
    return el('div', { class: 'route-row', 'data-test': 'route', 'data-route': r.name }, card, backends);
  }

  function renderListener(l, win) {
    const http = l.protocol === 'HTTP' || l.protocol === 'HTTPS';
    const gauges = (l.gauges || []).map((g) => el('span', { class: 'gauge' }, g.name + ' ', el('b', {}, fmtCount(g.value))));
    if (http && l.unmatched > 0) gauges.push(el('span', { class: 'gauge warn' }, 'no route ', el('b', {}, fmtCount(l.unmatched))));
    const head = el('div', { class: 'listener-head' },
      el('span', { class: 'proto proto-' + l.protocol.toLowerCase() }, l.protocol),
      el('h2', { class: 'listener-addr' }, l.address),
      el('div', { class: 'hosts' }, l.hosts.map((h) => el('span', { class: 'chip', title: h.name },
        el('b', {}, h.hostname || '*'), ' ', h.name, h.tlsMode ? ' · ' + h.tlsMode : ''))),
      http || l.requests > 0 ? metricKpis(l, http) : null);
    const section = el('section', { class: 'listener', 'data-test': 'listener', 'data-address': l.address }, head);
    if (gauges.length) section.append(el('div', { class: 'gauges' }, gauges));
    if (l.certificates.length) {
      const now = Date.now();
      section.append(el('div', { class: 'certs' }, l.certificates.map((c) => {
        let exp = 'expiry unknown';
        let cls = 'cert';
        if (c.notAfter) {
          const days = Math.floor((new Date(c.notAfter) - now) / 86400000);
          exp = days < 0 ? 'expired ' + fmtDate(c.notAfter) : 'expires ' + fmtDate(c.notAfter) + ' (' + days + ' d)';
          if (days < 14) cls += ' warn';
          if (days < 0) cls += ' bad';
        }
        return el('span', { class: cls, 'data-test': 'certificate' },
          el('span', { class: 'lock', 'aria-hidden': 'true' }),
          el('b', {}, c.name), c.hostnames.length ? ' ' + c.hostnames.join(', ') : '', ' · ' + exp);
      })));
    }
    const routes = http ? l.routes : l.l4Routes;
    const body = el('div', { class: 'topo' },
      el('div', { class: 'topo-head' },
        el('span', {}, 'Route'), el('span', {}, ''), el('span', {}, 'Backend'), el('span', {}, ''), el('span', {}, 'Endpoints')));
    if (!routes || routes.length === 0) {
      body.append(el('p', { class: 'empty' }, 'No routes attached.'));
    } else {
      for (const r of routes) {
        body.append(renderRoute(Object.assign({ matches: [], filters: [] }, r), win, http));
      }
    }
    section.append(body);
    return section;
  }

  function table(cols, rows, empty) {
    if (rows.length === 0) return el('p', { class: 'empty' }, empty);
    return el('table', {},
      el('thead', {}, el('tr', {}, cols.map((c) => el('th', {}, c)))),
      el('tbody', {}, rows.map((r) => el('tr', {}, r.map((c) => c instanceof Node ? el('td', {}, c) : el('td', {}, c))))));
  }

  // renderErrors shows the recent errors, folding runs of the same failure
  // into one row with a count.
  function renderErrors(errors) {
    const groups = [];
    for (const e of errors) {
      const key = [e.route, e.backend, e.endpoint, e.method, e.path, e.status, e.reason].join('\u0000');
      const last = groups[groups.length - 1];
      if (last && last.key === key) {
        last.n++;
        continue;
      }
      groups.push({ key, e, n: 1 });
    }
    return table(['Time', 'Route', 'Endpoint', 'Request', 'Status', 'Reason'],
      groups.map(({ e, n }) => [
        fmtTime(e.time),
        e.route || el('span', { class: 'muted' }, 'no route'),
        e.endpoint
          ? el('span', { class: 'mono', title: e.backend }, e.endpoint)
          : el('span', { class: 'muted', title: e.backend || '' }, e.backend ? 'no endpoint' : '–'),
        el('span', { class: 'mono path', title: e.method + ' ' + e.path }, e.method + ' ' + e.path),
        el('span', { class: 'status-code ' + (e.status >= 500 || e.status === 0 ? 'bad' : 'warn') }, e.status === 0 ? 'none' : e.status),
        el('span', {}, e.reason || 'upstream', n > 1 ? el('span', { class: 'times' }, '×' + n) : null),
      ]), 'No errors recorded.');
  }

  function renderReloads(reloads) {
    return table(['Time', 'Generation', 'Result', 'Took', 'Listeners', 'Rejected'],
      reloads.map((r) => [
        fmtTime(r.time),
        String(r.generation),
        r.ok
          ? el('span', { class: 'badge ok' }, 'applied')
          : el('div', {},
            el('span', { class: 'badge bad' }, 'kept previous'),
            r.error ? el('div', { class: 'reload-err' }, r.error) : null),
        fmtMs(r.durationMs),
        String(r.listeners),
        r.rejected ? el('span', { class: 'warn-text' }, String(r.rejected)) : '0',
      ]), 'No reloads yet.');
  }

  // ---- rollouts ----
  const PHASE_BADGE = { Progressing: 'info', Paused: 'warn', Succeeded: 'ok', RolledBack: 'bad' };

  function renderRollout(r) {
    const phase = r.phase || 'Pending';
    const w = Math.max(0, Math.min(100, r.canaryWeight || 0));
    const bar = el('div', { class: 'bar', 'data-test': 'rollout-weight-bar', title: 'stable ' + (100 - w) + '% · canary ' + w + '%' });
    if (100 - w > 0) {
      const s = el('div', { class: 'seg stable' }, 100 - w >= 14 ? 'stable ' + (100 - w) + '%' : '');
      s.style.width = (100 - w) + '%';
      bar.append(s);
    }
    if (w > 0) {
      const c = el('div', { class: 'seg canary' }, w >= 14 ? 'canary ' + w + '%' : '');
      c.style.width = w + '%';
      bar.append(c);
    }
    const fig = (label, name, f) => [
      el('span', {}, label, ' ', el('span', { class: 'muted mono' }, name)),
      f ? el('span', { 'data-test': 'rollout-' + label + '-requests' }, fmtCount(f.requests)) : '–',
      f ? el('span', { class: errClass(f.errorPct) ? 'warn-text ' + errClass(f.errorPct) : null, 'data-test': 'rollout-' + label + '-errors' },
        fmtCount(f.errors) + ' (' + f.errorPct.toFixed(2) + '%)') : '–',
      f && f.p99 ? el('span', { 'data-test': 'rollout-' + label + '-p99' }, f.p99) : '–',
    ];
    const rolledBack = phase === 'RolledBack';
    return el('div', { class: 'rollout phase-' + phase.toLowerCase(), 'data-test': 'rollout', 'data-rollout': r.name },
      el('div', { class: 'rollout-head' },
        el('span', { class: 'rollout-name' }, r.name),
        el('span', { class: 'badge ' + (PHASE_BADGE[phase] || 'info'), 'data-test': 'rollout-phase' }, phase),
        el('span', { class: 'rollout-target' }, r.target + (r.rule ? ' · rule ' + r.rule : '')),
        el('span', { class: 'rollout-step' },
          'step ', el('b', { 'data-test': 'rollout-step' }, r.step + '/' + r.steps),
          ' · canary ', el('b', { 'data-test': 'rollout-weight' }, w + '%'))),
      bar,
      rolledBack
        ? el('div', { class: 'rollout-reason', 'data-test': 'rollout-reason' },
          (r.rollbackReason ? r.rollbackReason + ': ' : '') + (r.rollbackMessage || r.message))
        : (r.message ? el('div', { class: 'rollout-msg' }, r.message) : null),
      table([rolledBack ? 'Last window' : 'Step window' + (r.stepStartedAt ? ' since ' + fmtTime(r.stepStartedAt) : ''),
        'Requests', 'Errors', 'p99'],
      [fig('canary', r.canaryBackend, r.canary), fig('stable', r.stableBackend, r.stable)], ''));
  }

  function renderRollouts(list) {
    const panel = document.getElementById('rollouts');
    panel.hidden = list.length === 0;
    document.getElementById('rollout-list').replaceChildren(...list.map(renderRollout));
  }

  function setText(id, v) { document.getElementById(id).textContent = v; }

  function render(s) {
    const t = s.totals;
    setText('t-rate', fmtRate(t.rate));
    setText('t-err', fmtPct(t.errorPct));
    document.getElementById('t-err').className = 'tile-value ' + errClass(t.errorPct);
    setText('t-p99', fmtMs(t.p99Ms));
    setText('t-req', fmtCount(t.requests));
    setText('t-conn', t.connections === null || t.connections === undefined ? '–' : fmtCount(t.connections));
    setText('t-tun', t.tunnels === null || t.tunnels === undefined ? '–' : fmtCount(t.tunnels));
    setText('generation', 'generation ' + (s.generation || '–'));
    setText('window', s.windowSeconds + ' s window');
    setText('updated', 'updated ' + fmtTime(s.time));

    const topo = document.getElementById('topology');
    if (!s.listeners || s.listeners.length === 0) {
      topo.replaceChildren(el('p', { class: 'empty' }, 'No config applied yet.'));
    } else {
      topo.replaceChildren(...s.listeners.map((l) => renderListener(l, s.windowSeconds)));
    }
    renderRollouts(s.rollouts || []);
    document.getElementById('errors').replaceChildren(renderErrors(s.errors || []));
    document.getElementById('reloads').replaceChildren(renderReloads(s.reloads || []));
  }

  // ---- connection ----
  const statusEl = document.getElementById('status');
  function setStatus(state) {
    statusEl.textContent = state;
    statusEl.className = 'status ' + state;
  }

  let backoff = 500;
  function connect() {
    const url = new URL('ws', location.href);
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      retry();
      return;
    }
    ws.onopen = () => { backoff = 500; setStatus('live'); };
    ws.onmessage = (ev) => {
      try {
        render(JSON.parse(ev.data));
      } catch (e) {
        console.error('dashboard: bad snapshot', e);
      }
    };
    ws.onclose = () => retry();
    ws.onerror = () => { /* onclose follows */ };
  }
  function retry() {
    setStatus('reconnecting');
    const wait = backoff + Math.random() * backoff * 0.3;
    backoff = Math.min(backoff * 2, 15000);
    setTimeout(connect, wait);
  }
  connect();
})();
