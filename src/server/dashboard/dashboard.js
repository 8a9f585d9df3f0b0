// larder serve's dashboard: polls /dashboard/data every 2 s and draws it. No framework, no
// CDN: this file, the page and its style are all it needs. Every figure is written both as
// text and as the raw number in data-value (which the browser test compares with
// /api/cache/metrics).
'use strict'

const POLL_MS = 2000
const COLORS = { turbo: '#2f6fde', nx: '#8b5cf6', ccache: '#d97706', bazel: '#059669', api: '#db2777' }
const TOKEN_KEY = 'larder-token'

const $ = (id) => document.getElementById(id)

// A token may come in the fragment (#token=…, never sent to the server or kept in its logs):
// it moves to this tab's sessionStorage and out of the address bar.
const fragment = new URLSearchParams(location.hash.slice(1))
if (fragment.has('token')) {
  sessionStorage.setItem(TOKEN_KEY, fragment.get('token'))
  history.replaceState(null, '', location.pathname + location.search)
}

$('token-form').addEventListener('submit', (event) => {
  event.preventDefault()
  sessionStorage.setItem(TOKEN_KEY, $('token').value)
  $('token-form').hidden = true
  poll()
})

function formatCount(n) {
  return Number(n).toLocaleString('en-US')
}

function formatBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = Number(n)
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`
}

function formatRate(r) {
  return `${(r * 100).toFixed(1)} %`
}

function show(id, value, format) {
  const element = $(id)
  element.dataset.value = String(value)
  element.textContent = format(value)
}

function cell(row, text, className) {
  const td = document.createElement('td')
  td.textContent = text
  if (className) td.className = className
  row.appendChild(td)
  return td
}

function fillTable(id, rows, empty, columns) {
  const body = $(id).tBodies[0]
  body.replaceChildren()
  if (rows.length === 0) {
    const tr = body.insertRow()
    const td = cell(tr, empty)
    td.colSpan = columns
    return
  }
  for (const row of rows) {
    const tr = body.insertRow()
    tr.dataset.name = row.name
    for (const [text, className] of row.cells) cell(tr, text, className)
  }
}

function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000))
  return s < 60 ? `${s} s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`
}

function render(data) {
  const m = data.metrics
  show('api-hit-rate', m.hit_rate, formatRate)
  show('api-hits', m.hits, formatCount)
  show('api-misses', m.misses, formatCount)
  show('api-sets', m.sets, formatCount)
  show('api-deletes', m.deletes, formatCount)
  show('l1-size', m.l1_size, formatCount)
  show('evictions', m.evictions, formatCount)
  show('total-entries', m.total.entries, formatCount)
  show('namespace-count', m.namespaces.length, formatCount)
  show('total-size', m.total.size_bytes, formatBytes)
  show('bytes-in', m.total.bytes_in, formatBytes)
  show('bytes-out', m.total.bytes_out, formatBytes)
  show('origin-fetches', m.origin_fetches, formatCount)
  show('origin-errors', m.origin_errors, formatCount)

  // Size against the budget: the budget is per namespace, so the whole is their sum.
  const budgets = m.namespaces.filter((n) => n.budget_bytes !== null)
  if (budgets.length > 0) {
    const budget = budgets.reduce((sum, n) => sum + n.budget_bytes, 0)
    const used = budgets.reduce((sum, n) => sum + n.size_bytes, 0)
    const share = budget === 0 ? 0 : used / budget
    $('budget-bar').style.width = `${Math.min(100, share * 100)}%`
    $('budget-bar').classList.toggle('full', share >= 0.9)
    $('budget-text').textContent = `${formatRate(share)} of ${formatBytes(budget)} (${budgets.length} budgeted namespaces)`
  } else {
    $('budget-text').textContent = 'no budget (--max-size)'
  }

  fillTable(
    'protocols',
    Object.entries(m.protocols).map(([name, p]) => ({
      name,
      cells: [
        [name],
        [formatCount(p.hits)],
        [formatCount(p.misses)],
        [p.hits + p.misses === 0 ? '–' : formatRate(p.hit_rate)],
        [formatCount(p.sets)],
        [formatCount(p.errors)],
        [formatBytes(p.bytes_in)],
        [formatBytes(p.bytes_out)],
      ],
    })),
    'no traffic yet',
    8,
  )

  fillTable(
    'namespaces',
    m.namespaces.slice(0, 20).map((n) => ({
      name: n.name,
      cells: [
        [n.name],
        [n.protocol],
        [formatCount(n.entries)],
        [formatBytes(n.size_bytes)],
        [n.budget_bytes === null ? 'no budget' : formatRate(n.size_bytes / n.budget_bytes)],
        [n.breaker, `breaker-${n.breaker === 'closed' ? 'closed' : 'open'}`],
      ],
    })),
    'no namespace opened yet',
    6,
  )

  fillTable(
    'prunes',
    data.prunes.map((p) => ({
      name: p.namespace,
      cells: [
        [ago(p.at)],
        [p.namespace],
        [formatCount(p.evicted)],
        [formatCount(p.expired)],
        [formatBytes(p.freedBytes)],
        [formatBytes(p.remainingBytes)],
        [`${Math.round(p.durationMs)} ms`],
      ],
    })),
    'none yet',
    7,
  )

  drawChart(data.history)
  $('status').textContent =
    `up ${Math.round(m.uptime_s / 60)} min · total hit rate ${formatRate(m.total.hit_rate)} · updated ${new Date().toLocaleTimeString()}`
}

/** Hit rate per protocol between consecutive points of the history (cumulative counts, which
 *  a reset of the counters sends back to zero). */
function drawChart(history) {
  const canvas = $('chart')
  const ratio = window.devicePixelRatio || 1
  const width = canvas.clientWidth || 960
  const height = canvas.clientHeight || 240
  canvas.width = width * ratio
  canvas.height = height * ratio
  const g = canvas.getContext('2d')
  g.scale(ratio, ratio)
  g.clearRect(0, 0, width, height)
  const pad = { left: 40, right: 10, top: 10, bottom: 20 }
  const w = width - pad.left - pad.right
  const h = height - pad.top - pad.bottom
  g.strokeStyle = '#dde1e8'
  g.fillStyle = '#677085'
  g.font = '11px system-ui, sans-serif'
  for (const level of [0, 0.5, 1]) {
    const y = pad.top + h * (1 - level)
    g.beginPath()
    g.moveTo(pad.left, y)
    g.lineTo(pad.left + w, y)
    g.stroke()
    g.fillText(`${level * 100}%`, 4, y + 4)
  }
  if (history.length < 2) return
  const t0 = history[0].t
  const span = Math.max(1, history[history.length - 1].t - t0)
  const legend = $('legend')
  legend.replaceChildren()
  for (const protocol of Object.keys(COLORS)) {
    const points = []
    for (let i = 1; i < history.length; i++) {
      const a = history[i - 1].protocols[protocol]
      const b = history[i].protocols[protocol]
      if (!a || !b) continue
      const reset = b.hits < a.hits || b.misses < a.misses
      const hits = reset ? b.hits : b.hits - a.hits
      const misses = reset ? b.misses : b.misses - a.misses
      if (hits + misses === 0) continue
      points.push([pad.left + (w * (history[i].t - t0)) / span, pad.top + h * (1 - hits / (hits + misses))])
    }
    if (points.length === 0) continue
    g.strokeStyle = COLORS[protocol]
    g.fillStyle = COLORS[protocol]
    g.lineWidth = 2
    g.beginPath()
    points.forEach(([x, y], i) => (i === 0 ? g.moveTo(x, y) : g.lineTo(x, y)))
    g.stroke()
    for (const [x, y] of points) g.fillRect(x - 2, y - 2, 4, 4)
    const item = document.createElement('span')
    const swatch = document.createElement('i')
    swatch.style.background = COLORS[protocol]
    item.append(swatch, protocol)
    legend.appendChild(item)
  }
}

function askForToken(why) {
  $('token-form').hidden = false
  $('status').textContent = why
}

let timer
async function poll() {
  clearTimeout(timer)
  const token = sessionStorage.getItem(TOKEN_KEY)
  // The page says whether the server has tokens: without one, no request (its 401 was an error
  // in the console of every first load).
  if (!token && document.body.dataset.token === 'required') return askForToken('a token is needed')
  try {
    const response = await fetch('/dashboard/data', { headers: token ? { authorization: `Bearer ${token}` } : {}, cache: 'no-store' })
    if (response.status === 401 || response.status === 403) {
      // 403: a namespace token, which opens its namespaces only, never every namespace's figures
      return askForToken(
        response.status === 403
          ? 'that token opens some namespaces only: the dashboard needs a server token'
          : token
            ? 'that token was refused'
            : 'a token is needed',
      )
    }
    if (!response.ok) throw new Error(`the server answered ${response.status}`)
    render(await response.json())
    document.body.dataset.loaded = 'true'
  } catch (error) {
    $('status').textContent = `cannot reach the server: ${error.message}`
  }
  timer = setTimeout(poll, POLL_MS)
}

poll()
