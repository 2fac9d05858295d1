// Arubug web UI: draws the overview's charts with uPlot from
// /ui/data/trend (JSON, same origin), builds an accessible table of each
// chart's data, and lets the keyboard walk a chart day by day. Text from the
// server is only ever set with textContent.
(function () {
  'use strict';
  var charts = [];
  var HEIGHT = 260;
  var DAY = 86400;

  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
  function palette() { var p = []; for (var i = 1; i <= 9; i++) p.push(css('--s' + i)); return p; }
  function fmtDuration(s) {
    if (s == null) return '—';
    if (s < 90) return Math.round(s) + ' s';
    if (s < 5400) return Math.round(s / 60) + ' min';
    var one = function (n) { return n.toFixed(1).replace(/\.0$/, ''); };
    if (s < 172800) return one(s / 3600) + ' h';
    return one(s / 86400) + ' days';
  }
  function fmtDay(ts) { return new Date(ts * 1000).toLocaleDateString(undefined, { weekday: 'short', month: 'short', day: 'numeric' }); }
  function label(key, res) {
    if (res.metric === 'first_response' && key === '') return 'Median, all teams';
    if (key === '' && res.breakdown === 'product_area') return 'not sure';
    if (key === '') return '(none)';
    return key;
  }
  function el(tag, text) { var e = document.createElement(tag); if (text != null) e.textContent = text; return e; }

  function buildTable(fig, xs, rows, fmt) {
    var wrap = fig.querySelector('.table-wrap');
    wrap.textContent = '';
    var t = el('table'), thead = el('thead'), tr = el('tr');
    var th = el('th', 'Day'); th.scope = 'col'; tr.appendChild(th);
    rows.forEach(function (r) { var h = el('th', r.name); h.scope = 'col'; h.className = 'num'; tr.appendChild(h); });
    thead.appendChild(tr); t.appendChild(thead);
    var tb = el('tbody');
    xs.forEach(function (x, i) {
      var row = el('tr');
      var d = el('th', fmtDay(x)); d.scope = 'row'; row.appendChild(d);
      rows.forEach(function (r) { var c = el('td', fmt(r.values[i])); c.className = 'num'; row.appendChild(c); });
      tb.appendChild(row);
    });
    t.appendChild(tb);
    wrap.appendChild(t);
  }

  function draw(c) {
    var fig = c.fig, res = c.res, kind = fig.dataset.kind, plot = fig.querySelector('.plot'), status = fig.querySelector('.chart-status');
    if (c.u) { c.u.destroy(); c.u = null; }
    plot.textContent = '';
    var xs = res.buckets.map(function (b) { return Date.parse(b) / 1000; });
    var isDuration = fig.dataset.unit === 'seconds';
    var fmt = isDuration ? fmtDuration : function (v) { return v == null ? '0' : String(v); };
    var rows = res.series.map(function (s) { return { name: label(s.key, res), key: s.key, values: s.values, total: s.total }; });
    var any = rows.some(function (r) { return r.values.some(function (v) { return v != null && v !== 0; }); });
    buildTable(fig, xs, rows, fmt);
    if (!any) {
      fig.classList.add('is-empty');
      status.textContent = fig.dataset.empty || 'No data in this range.';
      return;
    }
    fig.classList.remove('is-empty');
    status.textContent = '';
    var colors = palette();
    var fixed = { open: colors[1], solved: colors[2] };
    rows.forEach(function (r, i) { r.color = fixed[r.key] || colors[i % colors.length]; });

    // Without a cursor the legend shows each series' total over the range.
    var data = [xs], series = [{ label: 'Day', value: function (u, v) { return v == null ? (isDuration ? '—' : 'total') : fmtDay(v); } }];
    var muted = css('--muted'), grid = css('--grid');
    var ymax = 0;
    if (kind === 'stacked') {
      // Cumulative sums, drawn from the top of the stack down so each
      // lower part paints over the one above it.
      var cum = [], acc = xs.map(function () { return 0; });
      rows.forEach(function (r) {
        acc = acc.map(function (a, i) { return a + (r.values[i] || 0); });
        cum.push(acc.slice());
      });
      acc.forEach(function (a) { ymax = Math.max(ymax, a); });
      var bars = uPlot.paths.bars({ size: [0.75, 48], gap: 1 });
      for (var i = rows.length - 1; i >= 0; i--) {
        (function (r) {
          data.push(cum[rows.indexOf(r)]);
          series.push({ label: r.name, stroke: r.color, fill: r.color, width: 0, paths: bars, points: { show: false },
            value: function (u, v, si, idx) { return fmt(idx == null ? r.total : r.values[idx]); } });
        })(rows[i]);
      }
    } else {
      rows.forEach(function (r) {
        data.push(r.values);
        r.values.forEach(function (v) { if (v != null) ymax = Math.max(ymax, v); });
        series.push({ label: r.name, stroke: r.color, width: 2, spanGaps: true, points: { show: true, size: 6, fill: r.color },
          value: function (u, v) { return fmt(v); } });
      });
    }
    var yAxis = { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, size: isDuration ? 76 : 44 };
    if (isDuration) {
      yAxis.values = function (u, vals) { return vals.map(fmtDuration); };
      yAxis.incrs = [60, 300, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800, 345600, 604800, 1209600];
    }
    else yAxis.incrs = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000];
    var opts = {
      width: Math.max(plot.clientWidth, 280), height: HEIGHT,
      series: series,
      scales: {
        x: { time: true, range: function (u, min, max) { return [min - DAY / 2, max + DAY / 2]; } },
        y: { range: function () { return [0, ymax > 0 ? ymax * 1.1 : 1]; } }
      },
      axes: [{ stroke: muted, grid: { show: false }, ticks: { stroke: grid, width: 1 } }, yAxis],
      legend: { live: true },
      cursor: { drag: { x: false, y: false }, points: { show: kind !== 'stacked' } }
    };
    c.u = new uPlot(opts, data, plot);
    c.xs = xs; c.rows = rows; c.fmt = fmt; c.idx = -1;
  }

  function onKey(c, ev) {
    if (!c.u || !c.xs) return;
    var n = c.xs.length, i = c.idx;
    if (ev.key === 'ArrowRight') i = i < 0 ? 0 : Math.min(n - 1, i + 1);
    else if (ev.key === 'ArrowLeft') i = i < 0 ? n - 1 : Math.max(0, i - 1);
    else if (ev.key === 'Home') i = 0;
    else if (ev.key === 'End') i = n - 1;
    else return;
    ev.preventDefault();
    c.idx = i;
    c.u.setCursor({ left: c.u.valToPos(c.xs[i], 'x'), top: c.u.over.clientHeight / 2 });
    var parts = c.rows.map(function (r) { return r.name + ' ' + c.fmt(r.values[i]); });
    c.fig.querySelector('.chart-status').textContent = fmtDay(c.xs[i]) + ': ' + parts.join(', ');
  }

  function load(fig) {
    var c = { fig: fig };
    charts.push(c);
    var plot = fig.querySelector('.plot');
    plot.addEventListener('keydown', function (ev) { onKey(c, ev); });
    var tz = 'UTC';
    try { tz = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'; } catch (e) { /* keep UTC */ }
    fetch(fig.dataset.src + '&tz=' + encodeURIComponent(tz), { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          if (r.status === 401) throw new Error('Your session has ended: reload the page to sign in again.');
          if (!r.ok) throw new Error(body.detail || ('HTTP ' + r.status));
          return body;
        });
      })
      .then(function (res) { c.res = res; draw(c); fig.dataset.state = 'ready'; })
      .catch(function (err) {
        fig.classList.add('is-empty');
        fig.dataset.state = 'error';
        fig.querySelector('.chart-status').textContent = 'Could not load this chart: ' + err.message;
      });
  }

  function init() {
    var figs = document.querySelectorAll('figure.chart[data-src]');
    if (!figs.length || typeof uPlot === 'undefined') return;
    Array.prototype.forEach.call(figs, load);
    if (window.ResizeObserver) {
      var ro = new ResizeObserver(function () {
        charts.forEach(function (c) {
          if (!c.u) return;
          var w = Math.max(c.fig.querySelector('.plot').clientWidth, 280);
          if (Math.abs(w - c.u.width) > 1) c.u.setSize({ width: w, height: HEIGHT });
        });
      });
      charts.forEach(function (c) { ro.observe(c.fig); });
    }
    if (window.matchMedia) {
      var mq = window.matchMedia('(prefers-color-scheme: dark)');
      var redraw = function () { charts.forEach(function (c) { if (c.res) draw(c); }); };
      if (mq.addEventListener) mq.addEventListener('change', redraw);
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
