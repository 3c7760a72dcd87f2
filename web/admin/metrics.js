// metrics.js — the metrics page (route #metrics): a period (last hour,
// 24 hours, 7 days, 30 days, or custom from/to) read from
// GET /chat/admin/metrics?from=&to=&buckets=N; the totals as cards and,
// when the server sends the per-bucket `series`, four charts drawn by
// charts.js (concurrency, sessions started, tokens, response times). An
// older server without `series` gets the cards only. Preset periods
// refresh every 30 s while the page is shown. Exposed as
// window.Admin.metrics.
'use strict';

window.Admin = window.Admin || {};

(function () {
  const S = window.AdminStrings;
  const { h, clear, number, ms, fullWhen, rfc3339, toLocalInput, fromLocalInput, dateInput, errorText } = window.Admin.dom;
  const api = window.Admin.api;

  const HOUR = 3600 * 1000;
  const RANGES = {
    hour: { span: HOUR, buckets: 60 },
    day: { span: 24 * HOUR, buckets: 48 },
    week: { span: 7 * 24 * HOUR, buckets: 84 },
    month: { span: 30 * 24 * HOUR, buckets: 60 },
  };
  const CUSTOM_BUCKETS = 60;
  const REFRESH_MS = 30000;

  const el = {};
  const state = { range: 'day', visible: false, timer: 0, loading: false, data: null, generation: 0 };

  const CARDS = [
    ['total_sessions', (m) => number(m.total_sessions)],
    ['active_sessions', (m) => number(m.active_sessions)],
    ['connected_sessions', (m) => number(m.connected_sessions)],
    ['avg_concurrent', (m) => number(m.avg_concurrent, 1)],
    ['max_concurrent', (m) => number(m.max_concurrent)],
    ['total_tokens', (m) => number(m.total_tokens)],
    ['avg_response_ms', (m) => (m.avg_response_ms ? ms(m.avg_response_ms) : S.sessions.none)],
    ['max_response_ms', (m) => (m.max_response_ms ? ms(m.max_response_ms) : S.sessions.none)],
    ['help_requests', (m) => number(m.help_requests)],
    ['admin_assisted', (m) => number(m.admin_assisted)],
  ];

  function build(container) {
    const m = S.metrics;
    el.root = container;
    el.range = h('select', { id: 'm-range', 'data-testid': 'range-select' }, Object.entries(m.ranges).map(([k, text]) => h('option', { value: k, text, selected: k === state.range })));
    el.range.addEventListener('change', () => {
      state.range = el.range.value;
      el.custom.hidden = state.range !== 'custom';
      if (state.range === 'custom') {
        if (!el.from.value) {
          const now = new Date();
          el.to.value = toLocalInput(now);
          el.from.value = toLocalInput(new Date(now.getTime() - 24 * HOUR));
        }
        el.from.focus();
      } else {
        load();
      }
    });
    el.from = dateInput('m-from', { 'data-testid': 'range-from' });
    el.to = dateInput('m-to', { 'data-testid': 'range-to' });
    el.custom = h(
      'form',
      { class: 'custom-range', hidden: true, novalidate: true },
      h('div', { class: 'field' }, h('label', { for: 'm-from', text: m.from }), el.from),
      h('div', { class: 'field' }, h('label', { for: 'm-to', text: m.to }), el.to),
      h('div', { class: 'field field-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', text: m.apply })),
    );
    el.custom.addEventListener('submit', (e) => {
      e.preventDefault();
      load();
    });
    el.period = h('p', { class: 'muted period', 'data-testid': 'metrics-period', 'aria-live': 'polite' });
    el.error = h('p', { class: 'inline-error', role: 'alert', hidden: true });
    el.cards = h('div', { class: 'metric-cards', 'data-testid': 'metrics-cards' });
    el.note = h('p', { class: 'muted', hidden: true, text: m.noSeries, 'data-testid': 'metrics-no-series' });
    el.charts = h('div', { class: 'charts' });

    container.append(
      h(
        'div',
        { class: 'view-head metrics-head' },
        h('div', { class: 'view-titles' }, h('h2', { class: 'view-title', id: 'metrics-heading', tabindex: '-1', text: m.heading }), el.period),
        h('div', { class: 'range-controls' }, h('div', { class: 'field' }, h('label', { for: 'm-range', text: m.range }), el.range), el.custom),
      ),
      el.error,
      el.cards,
      el.note,
      el.charts,
    );
  }

  function period() {
    if (state.range === 'custom') {
      const from = fromLocalInput(el.from.value);
      const to = fromLocalInput(el.to.value);
      if (!from || !to || new Date(from) >= new Date(to)) return null;
      return { from, to, buckets: CUSTOM_BUCKETS };
    }
    const r = RANGES[state.range] || RANGES.day;
    const now = Date.now();
    return { from: rfc3339(new Date(now - r.span)), to: rfc3339(new Date(now)), buckets: r.buckets };
  }

  async function load() {
    const p = period();
    if (!p) {
      el.error.textContent = S.metrics.customInvalid;
      el.error.hidden = false;
      return;
    }
    const mine = ++state.generation;
    state.loading = true;
    el.root.setAttribute('aria-busy', 'true');
    if (!state.data) el.period.textContent = S.metrics.loading;
    try {
      const data = await api.metrics(p);
      if (mine !== state.generation) return;
      state.data = data;
      el.error.hidden = true;
      render(data);
    } catch (e) {
      if (mine !== state.generation || (e && e.isAuth)) return;
      el.error.textContent = errorText({ code: e.code, message: e.message });
      el.error.hidden = false;
    } finally {
      if (mine === state.generation) {
        state.loading = false;
        el.root.removeAttribute('aria-busy');
      }
    }
    schedule();
  }

  function schedule() {
    clearTimeout(state.timer);
    if (!state.visible || state.range === 'custom') return;
    state.timer = setTimeout(() => {
      if (!document.hidden) load();
      else schedule();
    }, REFRESH_MS);
  }

  function render(m) {
    el.period.textContent = S.format(S.metrics.period, { from: fullWhen(m.from), to: fullWhen(m.to) });
    clear(el.cards);
    for (const [key, value] of CARDS) {
      const card = h(
        'div',
        { class: 'metric-card', 'data-testid': 'metric-card', dataset: { metric: key, value: String(m[key] ?? '') } },
        h('span', { class: 'metric-label', text: S.metrics.cards[key] }),
        h('span', { class: 'metric-value', text: value(m) }),
      );
      if (key === 'avg_concurrent' && m.samples !== undefined) card.append(h('span', { class: 'metric-sub muted', text: S.plural(S.metrics.samples, Number(m.samples) || 0) }));
      el.cards.append(card);
    }

    clear(el.charts);
    const series = Array.isArray(m.series) ? m.series : null;
    el.note.hidden = !!(series && series.length);
    if (!series || !series.length) return;
    const c = S.metrics.charts;
    const n = S.metrics.series;
    const { chart } = window.Admin.charts;
    // Drawn at their real width so the text keeps its size.
    const full = el.charts.clientWidth || 1200;
    const width = (window.matchMedia('(max-width: 900px)').matches ? full : (full - 16) / 2) - 38;
    state.drawnWidth = full;
    el.charts.append(
      chart({
        name: 'concurrency',
        kind: 'line',
        width,
        integer: true,
        title: c.concurrency,
        desc: c.concurrencyDesc,
        buckets: series,
        series: [
          { name: n.avg, key: 'avg_concurrent', cls: 'series-1' },
          { name: n.max, key: 'max_concurrent', cls: 'series-2', dashed: true },
        ],
        format: (v) => number(v, 1),
      }),
      chart({
        name: 'sessions',
        kind: 'bar',
        width,
        integer: true,
        title: c.sessions,
        desc: c.sessionsDesc,
        buckets: series,
        series: [{ name: n.sessions, key: 'sessions', cls: 'series-1' }],
        format: (v) => number(v),
      }),
      chart({
        name: 'tokens',
        kind: 'bar',
        width,
        integer: true,
        title: c.tokens,
        desc: c.tokensDesc,
        buckets: series,
        series: [{ name: n.tokens, key: 'tokens', cls: 'series-3' }],
        format: (v) => number(v),
      }),
      chart({
        name: 'response',
        kind: 'line',
        width,
        title: c.response,
        desc: c.responseDesc,
        buckets: series,
        series: [
          { name: n.avgResponse, key: 'avg_response_ms', cls: 'series-1' },
          { name: n.maxResponse, key: 'max_response_ms', cls: 'series-2', dashed: true },
        ],
        format: (v) => ms(v),
        axisFormat: (v) => (v >= 1000 ? `${+(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`),
      }),
    );
  }

  // Redrawn when the width changes (window resized, tablet turned).
  let resizeTimer = 0;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      if (state.visible && state.data && el.charts.clientWidth !== state.drawnWidth) render(state.data);
    }, 150);
  });

  window.Admin.metrics = {
    mount: build,
    show() {
      state.visible = true;
      load();
    },
    hide() {
      state.visible = false;
      clearTimeout(state.timer);
    },
    reset() {
      state.data = null;
      clear(el.cards);
      clear(el.charts);
    },
  };
})();
