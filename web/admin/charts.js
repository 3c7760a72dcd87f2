// charts.js — hand-drawn SVG charts for the metrics page, no library: a
// line chart (one or more series, the first filled) and a bar chart over
// the equal time buckets of the metrics `series`. Each chart has axes with
// round-number ticks, time labels, a legend, a hover title per bucket, an
// SVG <title>/<desc> (role="img"), and a visually hidden table with every
// value for screen readers. Colours come from admin.css classes (light and
// dark). Exposed as window.Admin.charts.
'use strict';

window.Admin = window.Admin || {};

(function () {
  const S = window.AdminStrings;
  const { h, svg, axisTime, fullWhen, compact, toDate } = window.Admin.dom;

  const H = 230;
  const M = { top: 14, right: 16, bottom: 30, left: 52 };

  let uid = 0;

  /** A round maximum and tick step for values up to `max` (whole steps for counts). */
  function niceScale(max, integer, ticks = 4) {
    if (!(max > 0)) return integer ? { max: 1, step: 1 } : { max: 1, step: 0.25 };
    const raw = max / ticks;
    const mag = 10 ** Math.floor(Math.log10(raw));
    const norm = raw / mag;
    let step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag;
    if (integer) step = Math.max(1, Math.ceil(step));
    return { max: Math.ceil(max / step - 1e-9) * step, step };
  }

  const MIN = 60 * 1000;
  const HOUR = 60 * MIN;
  const DAY = 24 * HOUR;
  const STEPS = [MIN, 5 * MIN, 10 * MIN, 15 * MIN, 30 * MIN, HOUR, 2 * HOUR, 3 * HOUR, 4 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY];

  /** Round times (local clock) between `from` and `to`, at most `most` of them. */
  function timeTicks(from, to, most) {
    const span = to - from;
    const step = STEPS.find((s) => span / s <= most) || Math.ceil(span / most / DAY) * DAY;
    const offset = new Date(from).getTimezoneOffset() * MIN;
    let t = Math.ceil((from - offset) / step) * step + offset;
    if (step >= DAY) {
      // Local midnights.
      const d = new Date(from);
      d.setHours(0, 0, 0, 0);
      if (d.getTime() < from) d.setDate(d.getDate() + 1);
      t = d.getTime();
      const days = step / DAY;
      const ticks = [];
      for (; t <= to; ) {
        ticks.push(t);
        const next = new Date(t);
        next.setDate(next.getDate() + days);
        t = next.getTime();
      }
      return ticks;
    }
    const ticks = [];
    for (; t <= to; t += step) ticks.push(t);
    return ticks;
  }

  /**
   * Draws a chart. `spec`: {kind: 'line'|'bar', title, desc, buckets (the
   * metrics series), series: [{name, key, cls, format}], format (values in
   * words), axisFormat (tick labels)}.
   */
  function chart(spec) {
    const id = `chart-${++uid}`;
    const W = Math.max(280, Math.round(spec.width || 600));
    const PW = W - M.left - M.right;
    const PH = H - M.top - M.bottom;
    const buckets = spec.buckets || [];
    const n = buckets.length;
    const fmt = spec.format || ((v) => String(v));
    const axisFmt = spec.axisFormat || compact;
    const values = spec.series.map((s) => buckets.map((b) => Number(b[s.key]) || 0));
    const maxValue = Math.max(0, ...values.flat());
    const scale = niceScale(maxValue, spec.integer);
    const y = (v) => M.top + PH - (v / scale.max) * PH;
    const band = n ? PW / n : PW;
    const xMid = (i) => M.left + band * (i + 0.5);
    const first = n ? toDate(buckets[0].from) : null;
    const last = n ? toDate(buckets[n - 1].to) : null;
    const span = first && last ? last - first : 0;

    const root = svg('svg', {
      viewBox: `0 0 ${W} ${H}`,
      class: `chart chart-${spec.kind}`,
      role: 'img',
      'aria-labelledby': `${id}-title ${id}-desc`,
      preserveAspectRatio: 'xMidYMid meet',
      focusable: 'false',
    });
    const summary = n
      ? S.format(S.metrics.chartSummary, { title: spec.title, points: n, from: fullWhen(first), to: fullWhen(last), max: fmt(maxValue) })
      : S.metrics.noData;
    root.append(svg('title', { id: `${id}-title`, text: spec.title }), svg('desc', { id: `${id}-desc`, text: `${spec.desc} ${summary}` }));

    // Grid and the y axis.
    const grid = svg('g', { class: 'grid' });
    for (let v = 0; v <= scale.max + 1e-9; v += scale.step) {
      const yy = y(v);
      grid.append(svg('line', { x1: M.left, x2: W - M.right, y1: yy, y2: yy, class: v === 0 ? 'axis-line' : 'grid-line' }));
      grid.append(svg('text', { x: M.left - 6, y: yy + 4, class: 'tick tick-y', 'text-anchor': 'end', text: axisFmt(v) }));
    }
    root.append(grid);

    // The x axis: round times, about one label per 90 px.
    const xAxis = svg('g', { class: 'x-axis' });
    if (n && span > 0) {
      const xTime = (t) => M.left + ((t - first.getTime()) / span) * PW;
      for (const t of timeTicks(first.getTime(), last.getTime(), Math.max(2, Math.floor(PW / 90)))) {
        const x = xTime(t);
        const anchor = x - M.left < 24 ? 'start' : W - M.right - x < 24 ? 'end' : 'middle';
        xAxis.append(svg('line', { x1: x, x2: x, y1: M.top + PH, y2: M.top + PH + 4, class: 'axis-line' }));
        xAxis.append(svg('text', { x, y: H - 9, class: 'tick tick-x', 'text-anchor': anchor, text: axisTime(new Date(t), span) }));
      }
    }
    root.append(xAxis);

    // The data.
    const plot = svg('g', { class: 'plot' });
    if (spec.kind === 'bar') {
      const s = spec.series[0];
      const gap = Math.min(2, band * 0.2);
      values[0].forEach((v, i) => {
        if (!v) return;
        const top = y(v);
        plot.append(svg('rect', { x: M.left + band * i + gap / 2, y: top, width: Math.max(1, band - gap), height: Math.max(0.5, M.top + PH - top), class: `bar ${s.cls}`, rx: Math.min(2, band / 4) }));
      });
    } else {
      spec.series.forEach((s, k) => {
        if (!n) return;
        const points = values[k].map((v, i) => [xMid(i), y(v)]);
        const d = points.map(([px, py], i) => `${i ? 'L' : 'M'}${px.toFixed(1)} ${py.toFixed(1)}`).join(' ');
        if (k === 0) {
          const area = `${d} L${points[points.length - 1][0].toFixed(1)} ${M.top + PH} L${points[0][0].toFixed(1)} ${M.top + PH} Z`;
          plot.append(svg('path', { d: area, class: `area ${s.cls}` }));
        }
        plot.append(svg('path', { d, class: `line ${s.cls}${s.dashed ? ' dashed' : ''}`, fill: 'none' }));
        if (n <= 60) {
          for (const [px, py] of points) plot.append(svg('circle', { cx: px, cy: py, r: n <= 24 ? 3 : 2, class: `point ${s.cls}` }));
        }
      });
    }
    root.append(plot);

    // Hover targets: one per bucket, with every value in its title.
    const hover = svg('g', { class: 'hover' });
    buckets.forEach((b, i) => {
      const label = `${fullWhen(b.from)} – ${fullWhen(b.to)}\n${spec.series.map((s, k) => `${s.name}: ${fmt(values[k][i])}`).join('\n')}`;
      hover.append(svg('rect', { x: M.left + band * i, y: M.top, width: band, height: PH, class: 'hover-target' }, svg('title', { text: label })));
    });
    root.append(hover);

    // Legend and the table for screen readers.
    const legend = h(
      'ul',
      { class: 'legend', 'aria-hidden': 'true' },
      spec.series.map((s) => h('li', null, h('span', { class: `swatch ${s.cls}${s.dashed ? ' dashed' : ''}` }), s.name)),
    );
    const table = h(
      'table',
      null,
      h('caption', { text: spec.title }),
      h('thead', null, h('tr', null, h('th', { scope: 'col', text: S.metrics.tablePeriod }), spec.series.map((s) => h('th', { scope: 'col', text: s.name })))),
      h(
        'tbody',
        null,
        buckets.map((b, i) =>
          h('tr', null, h('th', { scope: 'row', text: `${fullWhen(b.from)} – ${fullWhen(b.to)}` }), spec.series.map((s, k) => h('td', { text: fmt(values[k][i]) }))),
        ),
      ),
    );

    return h(
      'figure',
      { class: 'card chart-card', 'data-testid': 'metrics-chart', dataset: { chart: spec.name || '', points: String(n), max: String(maxValue) } },
      h('figcaption', null, h('h3', { text: spec.title }), h('p', { class: 'muted', text: spec.desc })),
      root,
      legend,
      h('div', { class: 'visually-hidden' }, table),
    );
  }

  window.Admin.charts = { chart, niceScale, timeTicks };
})();
