// Activity history viewer. Vanilla ES2020, no libraries, CSP-safe: no inline
// script or style, every value inserted as text. Pure helpers come first and are
// exported on window.ActivityViewer for tests.
'use strict';

(() => {
  // ---------------------------------------------------------------- helpers

  const API = '/api/v1/activityhistory';
  const PAGE_SIZE = 20;
  const TOKEN_KEY = 'activityHistoryToken';
  const MASK = '********';
  const FILTER_KEYS = ['targetId', 'type', 'from', 'to', 'order', 'field', 'author', 'domain', 'targetType'];
  const VERBS = { create: 'created', update: 'updated', delete: 'deleted', migrate: 'migrated', end: 'ended' };
  const TARGET_LABELS = { tenurePerson: 'Person in tenure', contactDetails: 'Contact details', personEqualityInformation: 'Equality information' };
  const FIELD_LABELS = {
    person: { dateOfBirth: 'Date of birth', firstName: 'First name', middleName: 'Middle name', surname: 'Surname',
      preferredFirstName: 'Preferred first name', placeOfBirth: 'Place of birth', personTypes: 'Person types' },
    tenure: { paymentReference: 'Payment reference', tenureType: 'Tenure type', startOfTenureDate: 'Tenure start date',
      endOfTenureDate: 'Tenure end date', householdMembers: 'Household members', tenuredAsset: 'Tenured asset' },
    contactDetails: { contactInformation: 'Contact information', contactType: 'Contact type' },
    asset: { assetId: 'Asset id', assetType: 'Asset type', uprn: 'UPRN', assetAddress: 'Address' },
    transaction: { transactionAmount: 'Amount', transactionType: 'Transaction type', periodNo: 'Week',
      financialYear: 'Financial year', transactionDate: 'Transaction date', paidAmount: 'Paid amount',
      chargedAmount: 'Charged amount', balanceAmount: 'Balance', housingBenefitAmount: 'Housing benefit amount',
      paymentReference: 'Payment reference', transactionSource: 'Source' },
  };
  const MONEY_HEADLINES = {
    rent: 'Rent charged', charge: 'Charge raised', 'housing benefit': 'Housing benefit received',
    hb: 'Housing benefit received', payment: 'Payment received', adjustment: 'Adjustment',
    'service charge': 'Service charge', recharge: 'Recharge raised',
  };

  /** "firstName" / "first_name" → "First name"; acronyms such as UPRN stay. */
  function words(name) {
    const parts = String(name)
      .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
      .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
      .split(/[\s_-]+/)
      .filter(Boolean)
      .map((w) => (/^[A-Z0-9]{2,}$/.test(w) ? w : w.toLowerCase()));
    const text = parts.join(' ');
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  /** A JSON Pointer as its unescaped segments; a bare name is one segment. */
  function parsePointer(pointer) {
    const p = pointer == null ? '' : String(pointer);
    if (p === '') return [];
    if (!p.startsWith('/')) return [p];
    return p.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  }

  const escapeSegment = (key) => String(key).replace(/~/g, '~0').replace(/\//g, '~1');

  /** "Address › Postcode", using the target type's label table first. */
  function fieldLabel(targetType, pointer) {
    const table = FIELD_LABELS[targetType] || {};
    if (table[pointer]) return table[pointer];
    const segments = parsePointer(pointer);
    if (segments.length === 0) return 'Whole record';
    return segments
      .map((s) => (/^\d+$/.test(s) ? `Item ${Number(s) + 1}` : table[s] || words(s)))
      .join(' › ');
  }

  const targetLabel = (targetType) => TARGET_LABELS[targetType] || words(targetType || 'record');

  function formatMoney(value) {
    const n = typeof value === 'number' ? value : Number(String(value).replace(/[£,\s]/g, ''));
    if (value === null || value === '' || !Number.isFinite(n)) return null;
    return new Intl.NumberFormat('en-GB', { style: 'currency', currency: 'GBP' }).format(n);
  }

  function compactJson(value) {
    const text = JSON.stringify(value);
    return text.length > 160 ? `${text.slice(0, 159)}…` : text;
  }

  /** A value as words: (none), Yes/No, text, or compact JSON. */
  function formatValue(value, asMoney = false) {
    if (value === null || value === undefined || value === '') return '(none)';
    if (typeof value === 'boolean') return value ? 'Yes' : 'No';
    if (asMoney && (typeof value === 'number' || typeof value === 'string')) {
      const money = formatMoney(value);
      if (money) return money;
    }
    if (typeof value === 'object') return compactJson(value);
    return String(value);
  }

  const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

  function sameValue(a, b) {
    return JSON.stringify(a === undefined ? null : a) === JSON.stringify(b === undefined ? null : b);
  }

  /** Field-by-field changes of two objects (old records have no change list). */
  function diffData(oldData, newData, base = '') {
    const old = oldData === undefined ? null : oldData;
    const now = newData === undefined ? null : newData;
    const recurse = (isObject(old) || isObject(now)) && (isObject(old) || old === null) && (isObject(now) || now === null);
    if (!recurse) return sameValue(old, now) ? [] : [{ path: base, old, new: now }];
    const keys = [...new Set([...Object.keys(old || {}), ...Object.keys(now || {})])];
    return keys.flatMap((k) => diffData((old || {})[k], (now || {})[k], `${base}/${escapeSegment(k)}`));
  }

  const changesOf = (a) => (Array.isArray(a.changes) ? a.changes : diffData(a.oldData, a.newData));

  const isMoney = (a) => a.eventType === 'TransactionCreatedEvent' ||
    (isObject(a.newData) && 'transactionType' in a.newData && 'transactionAmount' in a.newData);

  /** 2024 → "2024/25". */
  function financialYear(year) {
    const y = Number(year);
    if (!Number.isInteger(y)) return String(year);
    return `${y}/${String((y + 1) % 100).padStart(2, '0')}`;
  }

  /** "Rent charged £132.45, week 1 2024/25". */
  function moneyHeadline(data) {
    const d = isObject(data) ? data : {};
    const kind = String(d.transactionType || '').trim();
    const title = MONEY_HEADLINES[kind.toLowerCase()] || (kind ? words(kind) : 'Transaction');
    const amount = formatMoney(d.transactionAmount);
    const given = (v) => v !== undefined && v !== null && v !== '';
    const period = [given(d.periodNo) && `week ${d.periodNo}`, given(d.financialYear) && financialYear(d.financialYear)]
      .filter(Boolean);
    const head = amount ? `${title} ${amount}` : title;
    return period.length ? `${head}, ${period.join(' ')}` : head;
  }

  function headline(activity) {
    if (isMoney(activity)) return moneyHeadline(activity.newData || activity.oldData);
    if (activity.targetType === 'tenurePerson' && activity.type === 'create') return 'Person added to tenure';
    if (activity.targetType === 'tenurePerson' && activity.type === 'delete') return 'Person removed from tenure';
    return `${targetLabel(activity.targetType)} ${VERBS[activity.type] || activity.type || 'changed'}`;
  }

  /** One change as {label, value, text}, e.g. text "First name: Susan → Susanna". */
  function changeLine(activity, change) {
    const label = fieldLabel(activity.targetType, change.path);
    const segments = parsePointer(change.path);
    const last = segments[segments.length - 1] || '';
    const money = isMoney(activity);
    const fmt = (v) => (money && last === 'financialYear' && v != null
      ? financialYear(v) : formatValue(v, money && /amount|balance|charge/i.test(last)));
    let value;
    if (change.old === MASK || change.new === MASK) value = 'changed (hidden)';
    else if (!('old' in change) && !('new' in change)) value = 'changed';
    else if (activity.type === 'create') value = fmt(change.new);
    else if (activity.type === 'delete') value = fmt(change.old !== undefined && change.old !== null ? change.old : change.new);
    else value = `${fmt(change.old)} → ${fmt(change.new)}`;
    return { label, value, text: `${label}: ${value}` };
  }

  /** "2024-03-04T08:00:00.0000000Z" → Date (fraction cut to 3 digits). */
  function parseTime(text) {
    const cut = String(text || '').replace(/(\.\d{3})\d+/, '$1').replace(/\.(\d{1,2})(?=\D|$)/, (m, f) => `.${f.padEnd(3, '0')}`);
    const date = new Date(cut);
    return Number.isNaN(date.getTime()) ? null : date;
  }

  let longFormat;
  let zoneFormat;
  /** "4 March 2024 at 08:00 GMT" in Europe/London. */
  function formatTime(text) {
    const date = parseTime(text);
    if (!date) return String(text || '(unknown time)');
    longFormat = longFormat || new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/London', dateStyle: 'long', timeStyle: 'short' });
    zoneFormat = zoneFormat || new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/London', timeZoneName: 'short' });
    const part = zoneFormat.formatToParts(date).find((p) => p.type === 'timeZoneName');
    let zone = part ? part.value : '';
    if (zone === 'GMT+1' || zone === 'UTC+1') zone = 'BST';
    if (zone === 'UTC' || zone === 'GMT+0') zone = 'GMT';
    return `${longFormat.format(date)} ${zone}`.trim();
  }

  /** id → ids of the other activities in the list with the same correlationId. */
  function relatedIds(activities) {
    const groups = new Map();
    activities.forEach((a) => {
      if (!a.correlationId) return;
      groups.set(a.correlationId, [...(groups.get(a.correlationId) || []), a.id]);
    });
    const out = new Map();
    activities.forEach((a) => {
      const ids = a.correlationId ? groups.get(a.correlationId).filter((id) => id !== a.id) : [];
      if (ids.length) out.set(a.id, ids);
    });
    return out;
  }

  /** Only the filter parameters of a query string, repeats kept, blanks dropped. */
  function filterQuery(search) {
    const from = new URLSearchParams(search);
    const out = new URLSearchParams();
    from.forEach((value, key) => {
      if (FILTER_KEYS.includes(key) && value.trim() !== '') out.append(key, value.trim());
    });
    return out;
  }

  const MESSAGES = {
    401: 'Your sign-in has expired or was refused; sign in again.',
    403: 'You do not have access to this history.',
    404: 'There is no history for this target.',
    503: 'The history service is unavailable; try again in a few minutes.',
  };
  const messageFor = (status) => MESSAGES[status] || `Something went wrong (status ${status}).`;

  window.ActivityViewer = {
    words, parsePointer, fieldLabel, targetLabel, formatValue, formatMoney, diffData, changesOf,
    isMoney, moneyHeadline, financialYear, headline, changeLine, parseTime, formatTime, relatedIds,
    filterQuery, messageFor,
  };

  // ------------------------------------------------------------------ token

  const store = {
    get() { try { return sessionStorage.getItem(TOKEN_KEY); } catch { return null; } },
    set(t) { try { sessionStorage.setItem(TOKEN_KEY, t); } catch { /* storage off: keep in memory */ } },
    clear() { try { sessionStorage.removeItem(TOKEN_KEY); } catch { /* nothing stored */ } },
  };

  function tokenFromFragment() {
    const m = /^#(?:.*&)?token=([^&]*)/.exec(location.hash); // not URLSearchParams: '+' must stay '+'
    if (!m) return null;
    history.replaceState(history.state, '', location.pathname + location.search);
    try { return decodeURIComponent(m[1]).trim() || null; } catch { return m[1] || null; }
  }

  function tokenFromCookie() {
    const meta = document.querySelector('meta[name="activity-token-cookie"]');
    const name = ((meta && meta.getAttribute('content')) || '').trim();
    if (!name) return null;
    for (const pair of document.cookie.split(';')) {
      const at = pair.indexOf('=');
      if (at > 0 && pair.slice(0, at).trim() === name) {
        try { return decodeURIComponent(pair.slice(at + 1).trim()) || null; } catch { return null; }
      }
    }
    return null;
  }

  function findToken() {
    const fragment = tokenFromFragment();
    if (fragment) { store.set(fragment); return fragment; }
    return store.get() || tokenFromCookie();
  }

  // -------------------------------------------------------------- page state

  const $ = (id) => document.getElementById(id);
  const state = { token: null, activities: [], nextToken: null, query: null, loaded: '', controller: null };

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function setStatus(kind, lines, focus = false) {
    const box = $('status');
    const shown = lines.filter(Boolean);
    box.replaceChildren(...shown.map((line) => el('p', 'status__line', line)));
    box.className = shown.length ? `status status--${kind}` : 'status';
    if (focus) box.focus();
  }

  function showSignIn(show) {
    $('signin').hidden = !show;
    $('signout').hidden = show || !state.token;
  }

  class HttpError extends Error {
    constructor(status, message) { super(message || `status ${status}`); this.status = status; this.detail = message; }
  }

  /** A same-origin API call with the bearer token; `exclusive` calls cancel the previous one. */
  async function apiFetch(path, { accept = 'application/json', exclusive = true } = {}) {
    let signal;
    if (exclusive) {
      if (state.controller) state.controller.abort();
      state.controller = new AbortController();
      signal = state.controller.signal;
    }
    let res;
    try {
      res = await fetch(path, {
        headers: { Authorization: `Bearer ${state.token}`, Accept: accept },
        credentials: 'same-origin', cache: 'no-store', signal,
      });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw new HttpError(503);
    }
    if (res.ok) return res;
    let detail = '';
    try { detail = (await res.json()).message || ''; } catch { /* not JSON */ }
    throw new HttpError(res.status, detail);
  }

  function showError(err) {
    if (err.name === 'AbortError') return;
    const status = err instanceof HttpError ? err.status : 0;
    if (status === 401) {
      store.clear();
      state.token = null;
      ['results', 'activity', 'raw-json'].forEach((id) => $(id).replaceChildren());
      showMode(Boolean(permalinkId()));
      showSignIn(true);
    }
    const known = status in MESSAGES;
    const detail = !known && err instanceof HttpError ? err.detail : (status ? '' : err.message);
    setStatus('error', [status ? messageFor(status) : 'Something went wrong.', detail], true);
  }

  // -------------------------------------------------------------- rendering

  function renderChanges(activity) {
    const changes = changesOf(activity);
    if (!changes.length) return el('p', 'activity__empty', 'No field changes were recorded.');
    const list = el('dl', 'changes');
    changes.forEach((change) => {
      const line = changeLine(activity, change);
      const row = el('div', 'change');
      row.append(el('dt', 'change__field', line.label), el('dd', 'change__value', line.value));
      list.append(row);
    });
    return list;
  }

  function renderMeta(activity) {
    const meta = el('p', 'activity__meta');
    const time = el('time', 'activity__time', formatTime(activity.createdAt));
    const parsed = parseTime(activity.createdAt);
    if (parsed) time.dateTime = parsed.toISOString();
    meta.append(time);
    const author = activity.authorDetails || {};
    if (author.fullName || author.email) {
      const by = el('span', 'activity__author', ` by ${author.fullName || author.email}`);
      if (author.fullName && author.email) by.append(' ', el('span', 'activity__email', author.email));
      meta.append(by);
    }
    return meta;
  }

  function renderSource(activity) {
    const bits = [activity.sourceDomain && `Source: ${activity.sourceDomain}`, activity.sourceSystem && `System: ${activity.sourceSystem}`]
      .filter(Boolean);
    return bits.length ? el('p', 'activity__source', bits.join(' · ')) : null;
  }

  function renderActivity(activity, linkHeadline) {
    const card = el('article', `activity activity--${VERBS[activity.type] ? activity.type : 'other'}`);
    card.id = `activity-${activity.id}`;
    card.tabIndex = -1;
    const h = el('h3', 'activity__headline');
    h.id = `activity-${activity.id}-title`;
    card.setAttribute('aria-labelledby', h.id);
    if (linkHeadline) {
      const a = el('a', 'link activity__link', headline(activity));
      a.href = `/history/activity/${encodeURIComponent(activity.id)}`;
      h.append(a);
    } else {
      h.textContent = headline(activity);
    }
    card.append(h, renderMeta(activity), el('div', 'activity__related'));
    if (activity.truncated) card.append(el('p', 'activity__truncated', 'This change was too large to show in full.'));
    card.append(renderChanges(activity));
    const source = renderSource(activity);
    if (source) card.append(source);
    return card;
  }

  function refreshRelated() {
    const related = relatedIds(state.activities);
    document.querySelectorAll('#results .activity').forEach((card) => {
      const box = card.querySelector('.activity__related');
      const ids = related.get(card.id.replace(/^activity-/, '')) || [];
      box.replaceChildren();
      if (!ids.length) return;
      const n = ids.length;
      box.append(el('p', 'activity__related-text', `Part of one change with ${n} other record${n === 1 ? '' : 's'}:`));
      const list = el('ul', 'activity__related-list');
      ids.forEach((id) => {
        const other = state.activities.find((a) => a.id === id);
        const a = el('a', 'link', other ? headline(other) : id);
        a.href = `#activity-${id}`;
        const item = el('li');
        item.append(a);
        list.append(item);
      });
      box.append(list);
    });
  }

  // ------------------------------------------------------------- list mode

  function fillForm(query) {
    const form = $('filters');
    form.elements.targetId.value = query.getAll('targetId').join(' ');
    const types = query.getAll('type').flatMap((t) => t.split(',')).map((t) => t.trim().toLowerCase());
    form.querySelectorAll('input[name="type"]').forEach((box) => { box.checked = types.includes(box.value); });
    ['from', 'to', 'field', 'author', 'domain'].forEach((k) => { form.elements[k].value = query.get(k) || ''; });
    form.elements.targetType.value = query.getAll('targetType').join(',');
    form.elements.order.value = (query.get('order') || 'desc').toLowerCase() === 'asc' ? 'asc' : 'desc';
  }

  function readForm() {
    const form = $('filters');
    const q = new URLSearchParams();
    form.elements.targetId.value.split(/[\s,]+/).filter(Boolean).forEach((id) => q.append('targetId', id));
    form.querySelectorAll('input[name="type"]:checked').forEach((box) => q.append('type', box.value));
    ['from', 'to', 'field', 'author', 'domain', 'targetType'].forEach((k) => {
      const v = form.elements[k].value.trim();
      if (v) q.set(k, v);
    });
    if (form.elements.order.value === 'asc') q.set('order', 'asc');
    return q;
  }

  function setExportLinks(query) {
    ['csv', 'ndjson'].forEach((format) => {
      const q = new URLSearchParams(query);
      q.set('format', format);
      $(`export-${format}`).dataset.href = `${API}/export?${q}`;
    });
  }

  function summaryText() {
    const n = state.activities.length;
    if (!n) return 'No changes match these filters.';
    const more = state.nextToken ? ' There are more; choose Show more to see them.' : '';
    return `Showing ${n} change${n === 1 ? '' : 's'}.${more}`;
  }

  async function loadPage(append) {
    if (!state.token) return;
    const q = new URLSearchParams(state.query);
    q.set('pageSize', String(PAGE_SIZE));
    if (append && state.nextToken) q.set('paginationToken', state.nextToken);
    $('results').setAttribute('aria-busy', 'true');
    $('more').disabled = true;
    try {
      const body = await (await apiFetch(`${API}?${q}`)).json();
      const fresh = Array.isArray(body.results) ? body.results : [];
      if (!append) { state.activities = []; $('results').replaceChildren(); }
      state.activities.push(...fresh);
      state.nextToken = (body.paginationDetails && body.paginationDetails.nextToken) || null;
      const cards = fresh.map((a) => { const li = el('li', 'activity-list__item'); li.append(renderActivity(a, true)); return li; });
      $('results').append(...cards);
      refreshRelated();
      $('results-section').hidden = false;
      $('more').hidden = !state.nextToken;
      $('summary').textContent = summaryText();
      setStatus('quiet', [summaryText()]);
      if (append && cards.length) cards[0].firstChild.focus();
    } catch (err) {
      if (err.name === 'AbortError') return;
      if (!append) $('results-section').hidden = true;
      showError(err);
    } finally {
      $('results').removeAttribute('aria-busy');
      $('more').disabled = false;
    }
  }

  function startList() {
    const query = filterQuery(location.search);
    fillForm(query);
    state.query = query;
    state.nextToken = null;
    setExportLinks(query);
    if (!query.getAll('targetId').length) {
      $('results-section').hidden = true;
      setStatus('info', ['Enter a target id to see its history.']);
      return;
    }
    if (state.token) loadPage(false);
  }

  async function exportFile(event) {
    event.preventDefault();
    const format = event.currentTarget.dataset.format;
    const parts = [];
    let url = event.currentTarget.dataset.href;
    setStatus('info', [`Preparing the ${format.toUpperCase()} file…`]);
    try {
      for (let i = 0; url && i < 200; i += 1) {
        const res = await apiFetch(url, { accept: '*/*', exclusive: false });
        const text = await res.text();
        parts.push(i > 0 && format === 'csv' ? text.replace(/^[^\n]*\n/, '') : text);
        url = nextLink(res.headers.get('Link'));
      }
      if (url) {
        setStatus('error', ['The export is too long to download at once; narrow it with the filters (for example from and to).'], true);
        return;
      }
      saveBlob(parts, format);
      setStatus('info', [`The ${format.toUpperCase()} file has been downloaded.`]);
    } catch (err) {
      showError(err);
    }
  }

  /** The path of a Link header's rel="next" export URL, fetched from this origin; else null. */
  function nextLink(header) {
    const m = /<([^>]+)>\s*;\s*rel="?next"?/i.exec(header || '');
    if (!m) return null;
    const url = new URL(m[1], location.href);
    return url.pathname.startsWith(`${API}/export`) ? url.pathname + url.search : null;
  }

  function saveBlob(parts, format) {
    const type = format === 'csv' ? 'text/csv' : 'application/x-ndjson';
    const href = URL.createObjectURL(new Blob(parts, { type }));
    const a = el('a', 'visually-hidden');
    a.href = href;
    a.download = `activity-history.${format}`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(href), 10000);
  }

  // -------------------------------------------------------- permalink mode

  async function loadOne(id) {
    try {
      const activity = await (await apiFetch(`${API}/${encodeURIComponent(id)}`)).json();
      $('activity').replaceChildren(renderActivity(activity, false));
      document.title = `${headline(activity)} – Activity history`;
      $('raw-json').textContent = JSON.stringify(activity, null, 2);
      $('target-link').href = `/history/?targetId=${encodeURIComponent(activity.targetId)}`;
      $('single').hidden = false;
      setStatus('quiet', ['The change has loaded.']);
    } catch (err) {
      $('single').hidden = true;
      if (err instanceof HttpError && err.status === 404) {
        setStatus('error', ['There is no activity with this id, or you may not see it.'], true);
        return;
      }
      showError(err);
    }
  }

  function permalinkId() {
    const m = /^\/history\/activity\/([^/]+)\/?$/i.exec(location.pathname);
    if (!m) return null;
    try { return decodeURIComponent(m[1]); } catch { return m[1]; }
  }

  // ----------------------------------------------------------------- wiring

  /** Show the parts of one mode; results stay hidden until they load. */
  function showMode(single) {
    $('filters').hidden = single;
    $('single').hidden = true;
    $('results-section').hidden = true;
  }

  function route() {
    state.loaded = location.pathname + location.search;
    const id = permalinkId();
    showMode(Boolean(id));
    if (!state.token) {
      if (!id) fillForm(filterQuery(location.search));
      showSignIn(true);
      setStatus('info', ['Sign in to see the history.']);
      return;
    }
    showSignIn(false);
    if (id) loadOne(id);
    else startList();
  }

  function onSignIn(event) {
    event.preventDefault();
    const input = $('token');
    const token = input.value.trim().replace(/^Bearer\s+/i, '');
    if (!token || /\s/.test(token)) {
      setStatus('error', [token ? 'An access token has no spaces or line breaks; paste it again.' : 'Paste your access token to sign in.'], true);
      input.focus();
      return;
    }
    input.value = '';
    state.token = token;
    store.set(token);
    route();
    $('page-heading').focus();
  }

  function onSignOut() {
    if (state.controller) state.controller.abort();
    store.clear();
    Object.assign(state, { token: null, activities: [], nextToken: null });
    ['results', 'activity', 'raw-json'].forEach((id) => $(id).replaceChildren());
    showMode(Boolean(permalinkId()));
    showSignIn(true);
    setStatus('info', ['You have signed out.'], true);
  }

  function onSearch(event) {
    event.preventDefault();
    const q = readForm();
    history.pushState(null, '', `/history/${q.toString() ? `?${q}` : ''}`);
    route();
  }

  function onPopState() {
    const fresh = tokenFromFragment(); // a #token= link opened in this tab
    if (fresh) { state.token = fresh; store.set(fresh); }
    else if (location.pathname + location.search === state.loaded) return; // an in-page #activity- link
    route();
  }

  function init() {
    state.token = findToken();
    $('signin-form').addEventListener('submit', onSignIn);
    $('signout').addEventListener('click', onSignOut);
    $('filters').addEventListener('submit', onSearch);
    $('more').addEventListener('click', () => loadPage(true));
    $('export-csv').addEventListener('click', exportFile);
    $('export-ndjson').addEventListener('click', exportFile);
    window.addEventListener('popstate', onPopState);
    route();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
