/**
 * The web view's page, style and script (see handler.ts), served from memory: plain HTML, CSS and
 * ES2017 JavaScript, no framework, no build step, no external asset. The script sets every value
 * with `textContent` (never `innerHTML`), so ids, state and error messages show as text.
 */

export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>weft</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="ui.css">
<script src="ui.js" defer></script>
</head>
<body data-config="%CONFIG%">
<header>
  <h1>weft</h1>
  <span id="status" class="status">connecting</span>
  <span class="spacer"></span>
  <span id="updated" class="muted"></span>
</header>
<main>
  <section class="cards">
    <div class="card"><div class="label">Throughput</div><div class="value" id="c-throughput">-</div><div class="unit">invocations/s</div></div>
    <div class="card"><div class="label">Invocations</div><div class="value" id="c-invocations">-</div><div class="unit">since start</div></div>
    <div class="card"><div class="label">Backlog</div><div class="value" id="c-backlog">-</div><div class="unit">queued messages · parked <span id="c-parked">-</span></div></div>
    <div class="card"><div class="label">Dead letters</div><div class="value" id="c-dead">-</div><div class="unit">failures <span id="c-failures">-</span> · retries <span id="c-retries">-</span></div></div>
    <div class="card"><div class="label">Committed epoch</div><div class="value" id="c-epoch">-</div><div class="unit">checkpoints committed <span id="c-checkpoints">-</span></div></div>
    <div class="card"><div class="label">Last checkpoint</div><div class="value" id="c-lastckpt">-</div><div class="unit" id="c-lastckpt-detail">-</div></div>
    <div class="card"><div class="label">Host messages sent</div><div class="value" id="c-hostsent">-</div><div class="unit">uncommitted <span id="c-uncommitted">-</span> · requests pending <span id="c-requests">-</span></div></div>
    <div class="card"><div class="label">Recoveries</div><div class="value" id="c-recoveries">-</div><div class="unit">egress buffered <span id="c-egress">-</span> · dropped <span id="c-egress-dropped">-</span></div></div>
  </section>

  <section class="panel">
    <h2>Shards</h2>
    <div class="scroll">
    <table id="shards">
      <thead><tr>
        <th>shard</th><th class="num">invocations</th><th class="num">inv/s</th><th class="num">backlog</th><th class="num">parked</th>
        <th class="num">failures</th><th class="num">dead letters</th><th class="num">cached</th><th class="num">dirty</th>
        <th class="num">hit rate</th><th class="num">timers</th><th>ring fill</th><th class="num">p50</th><th class="num">p99</th><th class="num">checkpoint</th>
      </tr></thead>
      <tbody></tbody>
    </table>
    </div>
  </section>

  <div class="two">
    <section class="panel">
      <h2>Instance state</h2>
      <form id="lookup" class="row" autocomplete="off">
        <input name="type" list="types" placeholder="namespace/name" required aria-label="function type">
        <input name="id" placeholder="id" required aria-label="instance id">
        <button type="submit">Look up</button>
      </form>
      <div id="lookup-title" class="muted">Reads the current state, as weft.query() does.</div>
      <pre id="state" class="state"></pre>
    </section>
    <section class="panel">
      <h2>Instances</h2>
      <form id="browse" class="row" autocomplete="off">
        <input name="type" list="types" placeholder="namespace/name" required aria-label="function type">
        <input name="prefix" placeholder="id prefix" aria-label="id prefix">
        <button type="submit">List</button>
      </form>
      <div class="muted">From the last committed checkpoint, in id order.</div>
      <div class="scroll">
      <table id="instances"><thead><tr><th>id</th><th>state</th></tr></thead><tbody></tbody></table>
      </div>
      <div class="pager">
        <button id="prev" type="button" disabled>&larr; Previous</button>
        <span id="page" class="muted"></span>
        <button id="next" type="button" disabled>Next &rarr;</button>
      </div>
    </section>
  </div>

  <div class="two">
    <section class="panel">
      <h2>Recent checkpoints</h2>
      <table id="checkpoints"><thead><tr><th>epoch</th><th>committed</th><th class="num">ms</th><th class="num">states</th><th class="num">bytes</th></tr></thead><tbody></tbody></table>
    </section>
    <section class="panel">
      <h2>Recent dead letters</h2>
      <table id="deadletters"><thead><tr><th>at</th><th>target</th><th>error</th><th class="num">attempts</th></tr></thead><tbody></tbody></table>
    </section>
  </div>
  <datalist id="types"></datalist>
</main>
<footer>This view has no authentication: anyone who can reach it can read every instance's state.</footer>
</body>
</html>
`;

export const PAGE_CSS = `:root {
  --bg: #f6f7f9; --panel: #fff; --ink: #1d2430; --muted: #6b7280; --line: #e4e7ec;
  --accent: #2f6fde; --bad: #c2332f; --ok: #1f8a4c; --head: #17202e;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  font-size: 14px; color: var(--ink); background: var(--bg);
}
* { box-sizing: border-box; }
body { margin: 0; }
header { display: flex; align-items: center; gap: 12px; padding: 10px 20px; background: var(--head); color: #fff; }
header h1 { margin: 0; font-size: 18px; letter-spacing: 0.5px; }
.spacer { flex: 1; }
.status { padding: 2px 8px; border-radius: 10px; font-size: 12px; background: #4b5563; }
.status.ok { background: var(--ok); }
.status.bad { background: var(--bad); }
header .muted { color: #c3c9d3; }
main { padding: 16px 20px; display: flex; flex-direction: column; gap: 16px; }
.cards { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 12px; }
@media (max-width: 700px) { .cards { grid-template-columns: repeat(2, minmax(0, 1fr)); } }
.card, .panel { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; }
.card { padding: 10px 14px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: 0.4px; }
.card .value { font-size: 24px; font-weight: 600; margin: 2px 0; font-variant-numeric: tabular-nums; }
.card .unit { color: var(--muted); font-size: 12px; }
.panel { padding: 12px 14px; min-width: 0; }
.panel h2 { margin: 0 0 8px; font-size: 15px; }
.two { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
@media (max-width: 900px) { .two { grid-template-columns: 1fr; } }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { color: var(--muted); font-weight: 500; font-size: 12px; }
td.num, th.num { text-align: right; }
td.id { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
td.preview { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; color: var(--muted); max-width: 320px; overflow: hidden; text-overflow: ellipsis; }
td.err { color: var(--bad); white-space: normal; }
tbody tr:hover { background: #f3f6fc; }
.row { display: flex; gap: 8px; margin-bottom: 6px; }
input { flex: 1; min-width: 0; padding: 6px 8px; border: 1px solid var(--line); border-radius: 6px; font: inherit; }
button { padding: 6px 12px; border: 1px solid var(--accent); background: var(--accent); color: #fff; border-radius: 6px; font: inherit; cursor: pointer; }
button:disabled { background: #fff; color: var(--muted); border-color: var(--line); cursor: default; }
button.link { background: none; border: none; color: var(--accent); padding: 0; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; text-align: left; }
.muted { color: var(--muted); font-size: 12px; }
pre.state { background: #f8fafc; border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; min-height: 60px; max-height: 360px; overflow: auto; margin: 6px 0 0; font-size: 13px; white-space: pre-wrap; word-break: break-all; }
pre.state.err { color: var(--bad); }
.pager { display: flex; align-items: center; justify-content: space-between; margin-top: 8px; }
progress { width: 80px; height: 10px; }
footer { padding: 4px 20px 16px; color: var(--muted); font-size: 12px; }
`;

export const PAGE_JS = `'use strict';
(function () {
  var cfg = JSON.parse(document.body.getAttribute('data-config'));
  var byId = function (id) { return document.getElementById(id); };
  var set = function (id, v) { byId(id).textContent = v; };
  var int = function (n) { return Math.round(n).toLocaleString('en-US'); };
  var bytes = function (n) {
    if (n < 1024) return n + ' B';
    if (n < 1048576) return (n / 1024).toFixed(1) + ' KiB';
    if (n < 1073741824) return (n / 1048576).toFixed(1) + ' MiB';
    return (n / 1073741824).toFixed(2) + ' GiB';
  };
  var micros = function (us) { return us < 1000 ? us + ' µs' : (us / 1000).toFixed(us < 10000 ? 1 : 0) + ' ms'; };
  var time = function (ms) { return new Date(ms).toLocaleTimeString(); };
  var sum = function (shards, k) { var s = 0; for (var i = 0; i < shards.length; i++) s += shards[i][k] || 0; return s; };
  var cell = function (tr, v, cls) {
    var td = document.createElement('td');
    if (v instanceof Node) td.appendChild(v); else td.textContent = v;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  };
  var fill = function (tbody, rows) {
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
    for (var i = 0; i < rows.length; i++) tbody.appendChild(rows[i]);
  };
  var empty = function (cols, what) {
    var tr = document.createElement('tr');
    var td = cell(tr, what, 'muted');
    td.colSpan = cols;
    return tr;
  };

  var types = byId('types');
  for (var t = 0; t < cfg.types.length; t++) {
    var o = document.createElement('option');
    o.value = cfg.types[t];
    types.appendChild(o);
  }

  var last = null;
  function render(data) {
    var m = data.metrics;
    var shards = m.shards;
    var inv = sum(shards, 'invocations');
    var rates = [];
    if (last !== null && data.now > last.now) {
      var dt = (data.now - last.now) / 1000;
      set('c-throughput', int(Math.max(0, inv - last.inv) / dt));
      for (var r = 0; r < shards.length; r++) rates.push(Math.max(0, shards[r].invocations - (last.per[r] || 0)) / dt);
    }
    last = { now: data.now, inv: inv, per: shards.map(function (s) { return s.invocations; }) };
    set('c-invocations', int(inv));
    set('c-backlog', int(sum(shards, 'mailboxBacklog')));
    set('c-parked', int(sum(shards, 'parkedInvocations')));
    set('c-dead', int(sum(shards, 'deadLetters')));
    set('c-failures', int(sum(shards, 'failures')));
    set('c-retries', int(sum(shards, 'retries')));
    set('c-epoch', int(m.committedEpoch));
    set('c-checkpoints', int(m.checkpointsCommitted));
    if (m.lastCheckpoint) {
      set('c-lastckpt', m.lastCheckpoint.ms.toFixed(1) + ' ms');
      set('c-lastckpt-detail', 'epoch ' + m.lastCheckpoint.epoch + ', ' + int(m.lastCheckpoint.states) + ' states, ' + bytes(m.lastCheckpoint.bytes));
    }
    set('c-hostsent', int(m.hostMessagesSent));
    set('c-uncommitted', int(m.hostMessagesUncommitted));
    set('c-requests', int(m.requestsPending));
    set('c-recoveries', int(m.recoveries));
    set('c-egress', int(m.egressBuffered));
    set('c-egress-dropped', int(m.egressDropped));

    var rows = [];
    for (var i = 0; i < shards.length; i++) {
      var s = shards[i];
      var tr = document.createElement('tr');
      tr.setAttribute('data-shard', String(s.shard));
      cell(tr, String(s.shard));
      cell(tr, int(s.invocations), 'num').setAttribute('data-k', 'invocations');
      cell(tr, rates.length ? int(rates[i]) : '-', 'num');
      cell(tr, int(s.mailboxBacklog), 'num').setAttribute('data-k', 'mailboxBacklog');
      cell(tr, int(s.parkedInvocations), 'num');
      cell(tr, int(s.failures), 'num');
      cell(tr, int(s.deadLetters), 'num').setAttribute('data-k', 'deadLetters');
      cell(tr, int(s.cacheInstances), 'num');
      cell(tr, int(s.dirtyInstances), 'num');
      var lookups = s.cacheHits + s.cacheMisses;
      cell(tr, lookups > 0 ? (100 * s.cacheHits / lookups).toFixed(1) + '%' : '-', 'num');
      cell(tr, int(s.pendingTimers), 'num');
      var bar = document.createElement('progress');
      bar.max = 1;
      bar.value = Math.min(1, s.inboundRingFill || 0);
      bar.title = ((s.inboundRingFill || 0) * 100).toFixed(1) + '%';
      cell(tr, bar);
      cell(tr, micros(s.latencyP50Micros), 'num');
      cell(tr, micros(s.latencyP99Micros), 'num');
      cell(tr, s.lastCheckpointMs ? s.lastCheckpointMs.toFixed(1) + ' ms' : '-', 'num');
      rows.push(tr);
    }
    fill(byId('shards').tBodies[0], rows);

    rows = [];
    for (var c = data.checkpoints.length - 1; c >= 0; c--) {
      var k = data.checkpoints[c];
      var tc = document.createElement('tr');
      cell(tc, String(k.epoch));
      cell(tc, time(k.at));
      cell(tc, k.ms.toFixed(1), 'num');
      cell(tc, int(k.states), 'num');
      cell(tc, bytes(k.bytes), 'num');
      rows.push(tc);
    }
    fill(byId('checkpoints').tBodies[0], rows.length ? rows : [empty(5, 'none since the view started')]);

    rows = [];
    for (var d = data.deadLetters.length - 1; d >= 0; d--) {
      var l = data.deadLetters[d];
      var td = document.createElement('tr');
      cell(td, time(l.at));
      cell(td, l.target.type + '/' + l.target.id, 'id');
      cell(td, (l.error && l.error.code ? l.error.code + ': ' : '') + (l.error ? l.error.message : ''), 'err');
      cell(td, String(l.attempts), 'num');
      rows.push(td);
    }
    fill(byId('deadletters').tBodies[0], rows.length ? rows : [empty(4, 'none since the view started')]);
    set('updated', 'updated ' + time(data.now));
  }

  function status(ok, what) {
    var el = byId('status');
    el.textContent = what;
    el.className = 'status ' + (ok ? 'ok' : 'bad');
  }

  function getJson(url) {
    return fetch(url, { cache: 'no-store' }).then(function (res) {
      return res.json().then(function (body) {
        if (!res.ok) {
          var e = body && body.error ? body.error : { code: String(res.status), message: res.statusText };
          throw new Error(e.code + ': ' + e.message);
        }
        return body;
      });
    });
  }

  function poll() {
    getJson('api/overview').then(function (data) {
      render(data);
      status(true, 'live');
    }, function (err) {
      status(false, 'unreachable: ' + err.message);
    }).then(function () {
      setTimeout(poll, cfg.pollMs);
    });
  }

  var lookupForm = byId('lookup');
  var out = byId('state');
  function lookup(type, id) {
    lookupForm.elements.type.value = type;
    lookupForm.elements.id.value = id;
    set('lookup-title', type + '/' + id);
    out.className = 'state';
    out.textContent = 'loading';
    getJson('api/query?type=' + encodeURIComponent(type) + '&id=' + encodeURIComponent(id)).then(function (r) {
      out.textContent = r.state === null ? 'no state (weft.query returns undefined)' : JSON.stringify(r.state, null, 2);
    }, function (err) {
      out.className = 'state err';
      out.textContent = err.message;
    });
  }
  lookupForm.addEventListener('submit', function (ev) {
    ev.preventDefault();
    lookup(lookupForm.elements.type.value.trim(), lookupForm.elements.id.value);
  });

  var browseForm = byId('browse');
  var pages = [];
  var page = 0;
  var browsing = null;
  function showPage() {
    var after = pages[page];
    var q = 'api/instances?type=' + encodeURIComponent(browsing.type) + '&prefix=' + encodeURIComponent(browsing.prefix) + '&limit=' + cfg.pageLimit;
    if (after !== null) q += '&after=' + encodeURIComponent(after);
    var tbody = byId('instances').tBodies[0];
    getJson(q).then(function (r) {
      var rows = [];
      for (var i = 0; i < r.items.length; i++) {
        var it = r.items[i];
        var tr = document.createElement('tr');
        var b = document.createElement('button');
        b.type = 'button';
        b.className = 'link';
        b.textContent = it.id;
        b.addEventListener('click', lookup.bind(null, browsing.type, it.id));
        cell(tr, b, 'id');
        var preview = JSON.stringify(it.state);
        cell(tr, preview.length > 120 ? preview.slice(0, 119) + '…' : preview, 'preview').title = preview;
        rows.push(tr);
      }
      fill(tbody, rows.length ? rows : [empty(2, 'no instances')]);
      if (r.more && pages.length === page + 1) pages.push(r.items[r.items.length - 1].id);
      byId('next').disabled = !r.more;
      byId('prev').disabled = page === 0;
      set('page', 'page ' + (page + 1) + (r.items.length ? ', ' + r.items.length + ' shown' : ''));
    }, function (err) {
      var tr = empty(2, err.message);
      tr.firstChild.className = 'err';
      fill(tbody, [tr]);
      byId('next').disabled = true;
    });
  }
  browseForm.addEventListener('submit', function (ev) {
    ev.preventDefault();
    browsing = { type: browseForm.elements.type.value.trim(), prefix: browseForm.elements.prefix.value };
    pages = [null];
    page = 0;
    showPage();
  });
  byId('next').addEventListener('click', function () { if (page + 1 < pages.length) { page++; showPage(); } });
  byId('prev').addEventListener('click', function () { if (page > 0) { page--; showPage(); } });
  if (cfg.types.length > 0) {
    lookupForm.elements.type.value = cfg.types[0];
    browseForm.elements.type.value = cfg.types[0];
  }
  poll();
})();
`;
