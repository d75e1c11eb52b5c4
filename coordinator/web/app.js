// SPDX-License-Identifier: Apache-2.0
// The farm page: reads the coordinator's read-only JSON API (the replies farmctl gets) every
// two seconds. No library, no network beyond this coordinator.
'use strict';

const REFRESH_MS = 2000;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

function bytes(n) {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + u[i];
}

function secs(ms) {
  const s = Math.round(ms / 1000);
  return s < 120 ? s + ' s' : Math.round(s / 60) + ' min';
}

async function getJSON(path) {
  const r = await fetch(path, {cache: 'no-store'});
  if (!r.ok) throw new Error(path + ': ' + r.status + ' ' + (await r.text()).trim());
  return r.json();
}

function fill(tbody, rows, empty, cols) {
  tbody.replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', {colspan: cols, class: 'note'}, empty))]));
}

function renderNodes(rep) {
  const rows = rep.nodes.map(n => {
    const warm = n.jobs.map((j, i) => j + (n.job_warm[i] ? ' (warm)' : '')).join(', ');
    const plats = n.platforms.concat(n.emulated.map(p => p + ' (emulated)')).join(', ');
    return el('tr', {'data-node': n.name},
      el('td', {}, n.name), el('td', {class: 'state ' + n.state}, n.state), el('td', {}, plats),
      el('td', {}, n.used + '/' + n.slots), el('td', {}, n.cause || (n.state === 'ready' ? 'healthy' : '')),
      el('td', {}, warm || '-'), el('td', {}, bytes(n.builder_cache_bytes)), el('td', {}, n.cache_hits));
  });
  fill(document.querySelector('#nodes tbody'), rows, 'no nodes in farm.yaml', 8);
}

// Each running build's logs, per platform: the lines the coordinator keeps of each job.
const logs = new Map(); // build id -> element

async function renderBuilds(rep) {
  const queue = [];
  const running = document.getElementById('running');
  const seen = new Set();
  for (const b of rep.builds) {
    const jobs = b.jobs.map(j => { const [platform, state, node] = j.split(' '); return {platform, state, node}; });
    for (const j of jobs)
      if (j.state === 'queued')
        queue.push(el('tr', {'data-build': b.build_id}, el('td', {}, b.build_id), el('td', {}, j.platform),
          el('td', {}, b.owner || '-'), el('td', {}, secs(b.age_ms))));
    seen.add(b.build_id);
    let box = logs.get(b.build_id);
    if (!box) {
      box = el('div', {class: 'build', 'data-build': b.build_id});
      logs.set(b.build_id, box);
      running.append(box);
    }
    const parts = [el('h3', {}, b.build_id + ' → ' + b.repository + ' ',
      el('span', {class: 'state ' + b.state}, b.state), ' (' + secs(b.age_ms) + ')')];
    try {
      const lg = await getJSON('/api/builds/' + encodeURIComponent(b.build_id) + '/logs');
      for (const j of jobs) {
        const lines = lg.lines.filter(l => l.platform === j.platform).map(l => l.line);
        parts.push(el('div', {class: 'platform'}, j.platform + ' — ', el('span', {class: 'state ' + j.state}, j.state),
          j.node && j.node !== '-' ? ' on ' + j.node : ''));
        if (lines.length)
          parts.push(el('pre', {class: 'log', 'data-platform': j.platform}, lines.join('\n')));
      }
    } catch (e) {
      parts.push(el('p', {class: 'note'}, String(e.message)));
    }
    box.replaceChildren(...parts);
    box.querySelectorAll('pre.log').forEach(p => { p.scrollTop = p.scrollHeight; }); // the newest lines
  }
  for (const [id, box] of logs)
    if (!seen.has(id)) { box.remove(); logs.delete(id); }
  if (!rep.builds.length && !running.querySelector('.note'))
    running.replaceChildren(el('p', {class: 'note'}, 'no build is running'));
  else if (rep.builds.length)
    running.querySelectorAll(':scope > .note').forEach(n => n.remove());
  fill(document.querySelector('#queue tbody'), queue, 'nothing is waiting', 4);
}

// One build's record (farmctl history inspect), shown under the history when its row is clicked.
async function showRecord(id) {
  const box = document.getElementById('record');
  try {
    const r = await getJSON('/api/builds/' + encodeURIComponent(id));
    const b = r.build;
    const parts = [el('h3', {}, b.build_id + ' — ', el('span', {class: 'state ' + b.status}, b.status)),
      el('p', {}, 'repository ' + b.repository + (b.tags.length ? ' (tags ' + b.tags.join(', ') + ')' : '') +
        ', owner ' + (b.owner || '-') + ', context ' + r.context_digest + ' (' + bytes(r.context_size) + '), ' +
        'Dockerfile ' + (r.dockerfile || 'Dockerfile') + (b.index_digest ? ', index ' + b.index_digest : '') +
        (b.error ? ', error: ' + b.error : ''))];
    for (const p of r.platforms) {
      const attempts = p.attempts.map(a => '#' + a.attempt + ' on ' + a.node + ': ' + a.outcome + (a.reason ? ' (' + a.reason + ')' : '')).join('; ');
      parts.push(el('div', {class: 'platform'}, p.platform + ' — ', el('span', {class: 'state ' + p.state}, p.state),
        (p.node ? ' on ' + p.node : '') + ', ' + p.cache_hits + ' of ' + p.steps + ' steps cached' +
        (p.image && p.image.digest ? ', ' + p.image.digest : '') + (p.error ? ', ' + p.error : '')));
      if (attempts) parts.push(el('p', {class: 'note'}, 'attempts: ' + attempts));
      if (p.build_steps.length)
        parts.push(el('pre', {class: 'log steps'}, p.build_steps.map(s =>
          (s.ms / 1000).toFixed(1).padStart(6) + ' s' + (s.cached ? ' cached ' : '        ') + s.text).join('\n')));
    }
    if (r.log_cut_lines) parts.push(el('p', {class: 'note'}, r.log_cut_lines + ' log lines (' + bytes(r.log_cut_bytes) + ') cut by history.log_limit'));
    box.replaceChildren(...parts);
    box.dataset.build = b.build_id;
  } catch (e) {
    box.replaceChildren(el('p', {class: 'note'}, String(e.message)));
  }
}

function renderHistory(rep) {
  const rows = rep.builds.map(h => el('tr', {'data-build': h.build_id, class: 'pick', title: 'show its record'},
    el('td', {}, h.build_id), el('td', {class: 'state ' + h.status}, h.status), el('td', {}, h.repository),
    el('td', {}, h.owner || '-'), el('td', {}, h.platforms.join(', ')),
    el('td', {}, new Date(h.created_unix_ms).toISOString().replace('T', ' ').slice(0, 19)),
    el('td', {}, h.done_unix_ms ? secs(h.done_unix_ms - h.created_unix_ms) : '-'),
    el('td', {}, h.index_digest || h.error || '')));
  for (const r of rows) r.addEventListener('click', () => { location.hash = r.dataset.build; showRecord(r.dataset.build); });
  fill(document.querySelector('#history tbody'), rows, 'no build recorded yet', 8);
}

async function refresh() {
  const status = document.getElementById('status');
  try {
    const [nodes, builds] = await Promise.all([getJSON('/api/nodes'), getJSON('/api/builds')]);
    renderNodes(nodes);
    await renderBuilds(builds);
    try {
      renderHistory(await getJSON('/api/history'));
      document.getElementById('history-note').textContent = '';
    } catch (e) {
      document.getElementById('history-note').textContent = String(e.message);
    }
    status.textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (e) {
    status.textContent = 'cannot read the coordinator: ' + e.message;
  }
  setTimeout(refresh, REFRESH_MS);
}

refresh();
// /#BUILD_ID opens that build's record (a link to share)
if (location.hash.length > 1) showRecord(decodeURIComponent(location.hash.slice(1)));
