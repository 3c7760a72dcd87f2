// sessions.js — the sessions page: the pinned "Waiting for a person" queue
// (active sessions whose user asked for help and nobody assists yet, the
// longest waiting first) above the table of every session, with the
// admin API's filters, sorts (a select and clickable column headers with
// aria-sort) and cursor paging. Both refresh every 5 s while the tab is
// visible (the queue also while another page of the console is open, for
// the badge in the navigation and new-request announcements), with an
// indicator of the last refresh. Exposed as window.Admin.sessions.
'use strict';

window.Admin = window.Admin || {};

(function () {
  const S = window.AdminStrings;
  const { h, clear, when, fullWhen, since, ms, number, announce, fromLocalInput, toLocalInput, dateInput } = window.Admin.dom;
  const api = window.Admin.api;

  const REFRESH_MS = 5000;
  const PAGE_SIZE = 25;
  const QUEUE_SIZE = 20;
  const FILTERS_KEY = 'chatbox.admin.filters';

  const SORTS = [
    ['start_time', S.sessions.sortStart],
    ['last_activity', S.sessions.sortActivity],
    ['tokens', S.sessions.sortTokens],
    ['response_time', S.sessions.sortResponse],
  ];

  // The table's columns: key, heading, the sort it toggles (if any), numeric.
  const COLUMNS = [
    { key: 'name', label: S.sessions.col.name },
    { key: 'user', label: S.sessions.col.user },
    { key: 'status', label: S.sessions.col.status },
    { key: 'started', label: S.sessions.col.started, sort: 'start_time' },
    { key: 'activity', label: S.sessions.col.activity, sort: 'last_activity' },
    { key: 'messages', label: S.sessions.col.messages, numeric: true },
    { key: 'tokens', label: S.sessions.col.tokens, sort: 'tokens', numeric: true },
    { key: 'response', label: S.sessions.col.response, sort: 'response_time', numeric: true },
    { key: 'help', label: S.sessions.col.help },
    { key: 'assisting', label: S.sessions.col.assisting },
    { key: 'watchers', label: S.sessions.col.watchers, numeric: true },
  ];

  const defaults = () => ({
    user_id: '',
    status: '',
    help_requested: '',
    admin_assisted: '',
    from: '',
    to: '',
    sort: 'start_time',
    order: 'desc',
  });

  const state = {
    query: loadFilters(),
    cursors: [], // cursors of the pages before the current one; the current page's cursor is the last
    cursor: '',
    page: null, // last answer
    queue: null,
    lastRefresh: 0,
    refreshError: '',
    refreshing: false,
    visible: false,
    started: false,
    seenWaiting: null, // session ids already in the queue (to announce new ones)
    timer: 0,
    ticker: 0,
  };

  const el = {};
  let onQueueCount = () => {};

  function loadFilters() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(FILTERS_KEY) || 'null');
      if (saved && typeof saved === 'object') return { ...defaults(), ...saved };
    } catch {
      // none kept
    }
    return defaults();
  }

  function saveFilters() {
    try {
      sessionStorage.setItem(FILTERS_KEY, JSON.stringify(state.query));
    } catch {
      // not kept
    }
  }

  // ---- Building the page ------------------------------------------------

  function select(id, testid, label, options, value) {
    const control = h('select', { id, name: id, 'data-testid': testid });
    for (const [v, text] of options) control.append(h('option', { value: v, text, selected: v === value }));
    return h('div', { class: 'field' }, h('label', { for: id, text: label }), control);
  }

  function build(container) {
    el.root = container;
    const s = S.sessions;

    // The help queue.
    el.queueCount = h('span', { class: 'badge badge-help', 'aria-hidden': 'true' });
    el.queueList = h('ul', { class: 'queue-list', 'aria-labelledby': 'queue-heading' });
    el.queueEmpty = h('p', { class: 'queue-empty muted', text: S.queue.empty });
    el.queueMore = h('p', { class: 'queue-more muted', hidden: true });
    el.queue = h(
      'section',
      { class: 'card queue', 'data-testid': 'help-queue', 'aria-labelledby': 'queue-heading', 'data-count': '0' },
      h('div', { class: 'card-head' }, h('h2', { id: 'queue-heading', text: S.queue.heading }), el.queueCount),
      el.queueList,
      el.queueEmpty,
      el.queueMore,
    );

    // Filters.
    const q = state.query;
    el.userId = h('input', { id: 'f-user', name: 'user_id', type: 'search', placeholder: s.userIdPlaceholder, autocomplete: 'off', spellcheck: 'false', value: q.user_id });
    el.from = dateInput('f-from', { name: 'from', value: q.from ? toLocalInput(new Date(q.from)) : '' });
    el.to = dateInput('f-to', { name: 'to', value: q.to ? toLocalInput(new Date(q.to)) : '' });
    const statusField = select('f-status', 'filter-status', s.status, [['', s.statusAll], ['active', s.statusActive], ['ended', s.statusEnded]], q.status);
    const helpField = select('f-help', 'filter-help', s.help, [['', s.any], ['true', s.yes], ['false', s.no]], q.help_requested);
    const assistedField = select('f-assisted', 'filter-assisted', s.assisted, [['', s.any], ['true', s.yes], ['false', s.no]], q.admin_assisted);
    const sortField = select('f-sort', 'sort-select', s.sort, SORTS, q.sort);
    const orderField = select('f-order', 'order-select', s.order, [['desc', s.desc], ['asc', s.asc]], q.order);
    el.status = statusField.querySelector('select');
    el.help = helpField.querySelector('select');
    el.assisted = assistedField.querySelector('select');
    el.sort = sortField.querySelector('select');
    el.order = orderField.querySelector('select');
    el.filters = h(
      'form',
      { class: 'filters', 'aria-label': s.filtersLabel, 'data-testid': 'filters', novalidate: true },
      h('div', { class: 'field field-wide' }, h('label', { for: 'f-user', text: s.userId }), el.userId),
      statusField,
      helpField,
      assistedField,
      h('div', { class: 'field' }, h('label', { for: 'f-from', text: s.from }), el.from),
      h('div', { class: 'field' }, h('label', { for: 'f-to', text: s.to }), el.to),
      sortField,
      orderField,
      h(
        'div',
        { class: 'field field-actions' },
        h('button', { type: 'submit', class: 'btn btn-primary', text: s.apply }),
        h('button', { type: 'reset', class: 'btn', text: s.reset }),
      ),
    );
    el.filters.addEventListener('submit', (e) => {
      e.preventDefault();
      applyFilters();
    });
    el.filters.addEventListener('reset', (e) => {
      e.preventDefault();
      state.query = defaults();
      syncControls();
      applyFilters();
    });
    // Selects apply at once; text and dates on submit (or Enter).
    for (const control of [el.status, el.help, el.assisted, el.sort, el.order]) control.addEventListener('change', applyFilters);

    // The table.
    el.caption = h('caption', { class: 'visually-hidden' });
    el.headRow = h('tr');
    el.body = h('tbody');
    el.table = h('table', { class: 'sessions-table', 'data-testid': 'sessions-table' }, el.caption, h('thead', null, el.headRow), el.body);
    el.empty = h('p', { class: 'table-empty muted', text: s.empty, hidden: true });
    el.tableWrap = h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': s.tableLabel }, el.table, el.empty);

    el.total = h('span', { class: 'total', 'data-testid': 'sessions-total', 'aria-live': 'polite' });
    el.refreshNote = h('span', { class: 'refresh-note muted', 'data-testid': 'refresh-status' });
    el.refreshButton = h('button', { type: 'button', class: 'btn btn-small', text: S.refresh.now, on: { click: () => refresh(true) } });

    el.showing = h('span', { class: 'muted' });
    el.first = h('button', { type: 'button', class: 'btn btn-small', text: s.firstPage, on: { click: () => goPage('first') } });
    el.prev = h('button', { type: 'button', class: 'btn btn-small', text: s.prevPage, on: { click: () => goPage('prev') } });
    el.next = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'next-page', text: s.nextPage, on: { click: () => goPage('next') } });
    el.error = h('p', { class: 'inline-error', role: 'alert', hidden: true });

    container.append(
      el.queue,
      h(
        'section',
        { class: 'card sessions', 'aria-labelledby': 'sessions-heading' },
        h(
          'div',
          { class: 'card-head' },
          h('h2', { id: 'sessions-heading', tabindex: '-1', text: s.heading }),
          el.total,
          h('div', { class: 'card-head-end' }, el.refreshNote, el.refreshButton),
        ),
        el.filters,
        el.error,
        el.tableWrap,
        h('nav', { class: 'pager', 'aria-label': s.pagerLabel }, el.showing, h('div', { class: 'pager-buttons' }, el.first, el.prev, el.next)),
      ),
    );
    renderHead();
  }

  function syncControls() {
    const q = state.query;
    el.userId.value = q.user_id;
    el.status.value = q.status;
    el.help.value = q.help_requested;
    el.assisted.value = q.admin_assisted;
    el.sort.value = q.sort;
    el.order.value = q.order;
    el.from.value = q.from ? toLocalInput(new Date(q.from)) : '';
    el.to.value = q.to ? toLocalInput(new Date(q.to)) : '';
  }

  function applyFilters() {
    state.query = {
      user_id: el.userId.value.trim(),
      status: el.status.value,
      help_requested: el.help.value,
      admin_assisted: el.assisted.value,
      from: fromLocalInput(el.from.value),
      to: fromLocalInput(el.to.value),
      sort: el.sort.value,
      order: el.order.value,
    };
    saveFilters();
    state.cursors = [];
    state.cursor = '';
    renderHead();
    refresh(true);
  }

  function sortBy(sort) {
    if (state.query.sort === sort) state.query.order = state.query.order === 'desc' ? 'asc' : 'desc';
    else {
      state.query.sort = sort;
      state.query.order = 'desc';
    }
    saveFilters();
    syncControls();
    state.cursors = [];
    state.cursor = '';
    renderHead();
    refresh(true);
  }

  function renderHead() {
    const q = state.query;
    clear(el.headRow);
    for (const col of COLUMNS) {
      const th = h('th', { scope: 'col', class: col.numeric ? 'num' : '', dataset: { col: col.key } });
      if (col.sort) {
        const active = q.sort === col.sort;
        if (active) th.setAttribute('aria-sort', q.order === 'asc' ? 'ascending' : 'descending');
        const arrow = h('span', { class: `sort-arrow${active ? ' active' : ''}`, 'aria-hidden': 'true', text: active ? (q.order === 'asc' ? '▲' : '▼') : '↕' });
        th.append(
          h(
            'button',
            {
              type: 'button',
              class: 'sort-button',
              'data-testid': `sort-${col.sort}`,
              title: S.format(S.sessions.sortByThis, { column: col.label }),
              on: { click: () => sortBy(col.sort) },
            },
            col.label,
            arrow,
          ),
        );
      } else {
        th.textContent = col.label;
      }
      el.headRow.append(th);
    }
    const sortName = (SORTS.find(([k]) => k === q.sort) || SORTS[0])[1];
    el.caption.textContent = S.format(S.sessions.caption, { sort: sortName, order: q.order === 'asc' ? S.sessions.sortedAsc : S.sessions.sortedDesc });
  }

  // ---- Rendering rows ---------------------------------------------------

  function sessionLink(session, className) {
    return h('a', {
      href: `#session=${encodeURIComponent(session.session_id)}`,
      class: className || 'session-link',
      text: session.name || S.sessions.untitled,
    });
  }

  function statusCell(session) {
    if (!session.is_active || session.end_time) return h('span', { class: 'pill pill-ended', text: S.sessions.ended });
    if (session.connected) {
      return h(
        'span',
        { class: 'status-stack' },
        h('span', { class: 'pill pill-online', text: S.sessions.connected }),
        session.gateway ? h('span', { class: 'gateway mono muted', title: S.format(S.sessions.connectedOn, { gateway: session.gateway }), text: session.gateway }) : null,
      );
    }
    return h('span', { class: 'pill pill-away', text: S.sessions.notConnected });
  }

  function isWaiting(session) {
    return session.help_requested && session.is_active && !session.end_time && !session.assisting && !session.admin_assisted;
  }

  function helpCell(session) {
    if (!session.help_requested) return h('span', { class: 'muted', text: S.sessions.none });
    if (isWaiting(session)) {
      return h('span', { class: 'pill pill-help', title: fullWhen(session.help_requested_at) }, S.sessions.helpWaiting);
    }
    return h('span', { class: 'pill pill-helped', text: session.admin_assisted ? S.sessions.helpAssisted : S.sessions.helpYes });
  }

  function assistingCell(session) {
    if (session.assisting) return h('span', { class: 'assisting', text: session.assisting.admin_name || session.assisting.admin_id });
    return h('span', { class: 'muted', text: S.sessions.none });
  }

  function watchersCell(session) {
    const watchers = session.watchers || [];
    const span = h('span', { text: S.plural(S.sessions.watchersCount, watchers.length) });
    if (watchers.length) span.title = S.format(S.sessions.watcherNames, { names: watchers.map((w) => w.admin_name || w.admin_id).join(', ') });
    return span;
  }

  function row(session) {
    const help = !!session.help_requested;
    const tr = h('tr', {
      'data-testid': 'session-row',
      class: `${help ? 'row-help' : ''}${isWaiting(session) ? ' row-waiting' : ''}`,
      dataset: { sessionId: session.session_id },
    });
    if (help) tr.dataset.help = 'true';
    const cells = {
      name: h('th', { scope: 'row', class: 'cell-name' }, sessionLink(session)),
      user: h('td', { class: 'cell-user' }, h('span', { class: 'mono', text: session.user_id })),
      status: h('td', null, statusCell(session)),
      started: h('td', { title: fullWhen(session.start_time) }, when(session.start_time)),
      activity: h('td', { title: fullWhen(session.last_activity) }, when(session.last_activity)),
      messages: h('td', { class: 'num' }, number(session.message_count)),
      tokens: h('td', { class: 'num' }, number(session.total_tokens)),
      response: h('td', { class: 'num' }, session.avg_response_ms ? ms(session.avg_response_ms) : S.sessions.none),
      help: h('td', null, helpCell(session)),
      assisting: h('td', null, assistingCell(session)),
      watchers: h('td', { class: 'num' }, watchersCell(session)),
    };
    for (const col of COLUMNS) tr.append(cells[col.key]);
    tr.addEventListener('click', (e) => {
      if (e.target.closest('a, button')) return;
      if (window.getSelection && String(window.getSelection())) return; // selecting text, not opening
      location.hash = `session=${encodeURIComponent(session.session_id)}`;
    });
    return tr;
  }

  function renderTable() {
    const page = state.page;
    if (!page) return;
    const focused = document.activeElement && el.body.contains(document.activeElement)
      ? document.activeElement.closest('tr')?.dataset.sessionId
      : null;
    clear(el.body);
    for (const session of page.sessions || []) el.body.append(row(session));
    el.empty.hidden = (page.sessions || []).length > 0;
    if (focused) {
      const link = el.body.querySelector(`tr[data-session-id="${CSS.escape(focused)}"] a`);
      if (link) link.focus();
    }
    const total = Number(page.total) || 0;
    // Said again (a live region) only when the count moves, not on every refresh.
    const totalText = S.plural(S.sessions.total, total);
    if (el.total.textContent !== totalText) el.total.textContent = totalText;
    const start = state.cursors.length * PAGE_SIZE;
    const count = (page.sessions || []).length;
    el.showing.textContent = count ? S.format(S.sessions.showing, { from: number(start + 1), to: number(start + count), total: number(total) }) : '';
    el.first.disabled = el.prev.disabled = state.cursors.length === 0;
    el.next.disabled = !page.next_cursor;
  }

  function renderQueue() {
    const answer = state.queue;
    if (!answer) return;
    const sessions = answer.sessions || [];
    const total = Number(answer.total) || sessions.length;
    const focused = document.activeElement && el.queueList.contains(document.activeElement)
      ? document.activeElement.closest('li')?.dataset.sessionId
      : null;
    clear(el.queueList);
    for (const session of sessions) {
      const waitedSince = session.help_requested_at || session.last_activity;
      const li = h(
        'li',
        { class: 'queue-item', 'data-testid': 'help-item', dataset: { sessionId: session.session_id } },
        h(
          'div',
          { class: 'queue-main' },
          sessionLink(session, 'queue-name'),
          h('span', { class: 'queue-user mono', text: session.user_id }),
        ),
        h(
          'div',
          { class: 'queue-meta' },
          h('span', { class: 'waited', dataset: { since: waitedSince }, title: fullWhen(waitedSince), text: S.format(S.queue.waited, { time: since(waitedSince) }) }),
          statusCell(session),
        ),
        h('a', {
          class: 'btn btn-help btn-small',
          href: `#session=${encodeURIComponent(session.session_id)}`,
          'aria-label': S.format(S.queue.openLabel, { user: session.user_id }),
          text: S.queue.open,
        }),
      );
      el.queueList.append(li);
    }
    if (focused) {
      const link = el.queueList.querySelector(`li[data-session-id="${CSS.escape(focused)}"] a`);
      if (link) link.focus();
    }
    el.queueEmpty.hidden = sessions.length > 0;
    el.queueList.hidden = sessions.length === 0;
    el.queueMore.hidden = total <= sessions.length;
    el.queueMore.textContent = S.format(S.queue.more, { n: total - sessions.length });
    el.queueCount.textContent = S.plural(S.queue.count, total);
    el.queueCount.hidden = total === 0;
    el.queue.dataset.count = String(total);
    el.queue.classList.toggle('queue-active', total > 0);

    // Announce sessions that were not waiting at the last refresh.
    const ids = new Set(sessions.map((s) => s.session_id));
    if (state.seenWaiting) {
      const fresh = sessions.filter((s) => !state.seenWaiting.has(s.session_id));
      if (fresh.length) announce(`${S.queue.heading}: ${fresh.map((s) => s.user_id).join(', ')}`, true);
    }
    state.seenWaiting = ids;
    onQueueCount(total);
  }

  function renderRefreshNote() {
    if (!el.refreshNote) return;
    let text;
    if (document.hidden) text = S.refresh.paused;
    else if (state.refreshError) text = S.format(S.refresh.failed, { reason: state.refreshError });
    else if (!state.lastRefresh) text = S.refresh.never;
    else {
      const age = Date.now() - state.lastRefresh;
      text = age < 2000 ? S.refresh.justNow : S.format(S.refresh.ago, { time: window.Admin.dom.duration(age) });
    }
    el.refreshNote.textContent = text;
    el.refreshNote.classList.toggle('refresh-failed', !!state.refreshError);
    el.refreshButton.disabled = state.refreshing;
    // Waiting times tick with the clock.
    for (const span of el.queueList.querySelectorAll('.waited[data-since]')) {
      span.textContent = S.format(S.queue.waited, { time: since(span.dataset.since) });
    }
  }

  // ---- Loading ----------------------------------------------------------

  function tableParams() {
    const q = state.query;
    return {
      user_id: q.user_id,
      status: q.status,
      help_requested: q.help_requested,
      admin_assisted: q.admin_assisted,
      from: q.from,
      to: q.to,
      sort: q.sort,
      order: q.order,
      limit: PAGE_SIZE,
      cursor: state.cursor,
    };
  }

  const QUEUE_PARAMS = {
    help_requested: 'true',
    status: 'active',
    admin_assisted: 'false',
    sort: 'last_activity',
    order: 'asc',
    limit: QUEUE_SIZE,
  };

  let generation = 0;
  /** Loads the queue (always) and the table (when the page is shown). */
  async function refresh(manual) {
    if (!window.Admin.auth.get()) return;
    if (state.refreshing && !manual) return;
    const mine = ++generation;
    state.refreshing = true;
    renderRefreshNote();
    try {
      const [queue, page] = await Promise.all([
        api.sessions(QUEUE_PARAMS),
        state.visible ? api.sessions(tableParams()) : Promise.resolve(null),
      ]);
      if (mine !== generation) return;
      state.queue = queue;
      renderQueue();
      if (page) {
        // The page we were on may have emptied (sessions ended, filters): go back to the first.
        if ((page.sessions || []).length === 0 && state.cursors.length) {
          state.cursors = [];
          state.cursor = '';
          state.refreshing = false;
          return refresh(true);
        }
        state.page = page;
        renderTable();
      }
      state.lastRefresh = Date.now();
      state.refreshError = '';
      el.error.hidden = true;
    } catch (e) {
      if (mine !== generation) return;
      if (e && e.isAuth) return; // admin.js goes back to sign-in
      state.refreshError = (e && e.message) || S.errors.network;
      if (e && e.status === 400) {
        el.error.textContent = window.Admin.dom.errorText({ code: e.code, message: e.message });
        el.error.hidden = false;
      }
    } finally {
      if (mine === generation) {
        state.refreshing = false;
        renderRefreshNote();
      }
    }
  }

  function goPage(where) {
    const page = state.page;
    if (where === 'first') {
      state.cursors = [];
      state.cursor = '';
    } else if (where === 'prev') {
      state.cursor = state.cursors.pop() || '';
    } else if (where === 'next' && page && page.next_cursor) {
      state.cursors.push(state.cursor);
      state.cursor = page.next_cursor;
    }
    refresh(true);
  }

  function schedule() {
    clearTimeout(state.timer);
    if (!state.started) return;
    state.timer = setTimeout(async () => {
      if (!document.hidden) await refresh(false);
      schedule();
    }, REFRESH_MS);
  }

  document.addEventListener('visibilitychange', () => {
    if (!state.started) return;
    renderRefreshNote();
    if (!document.hidden) {
      // Back on the tab: refresh now, then every 5 s again.
      refresh(false);
      schedule();
    }
  });

  window.Admin.sessions = {
    /** Builds the page into `container`; `queueCount(n)` hears the queue's size. */
    mount(container, queueCount) {
      onQueueCount = queueCount || onQueueCount;
      build(container);
    },
    /** Starts polling (after sign-in). */
    start() {
      if (state.started) return;
      state.started = true;
      state.ticker = setInterval(renderRefreshNote, 1000);
      refresh(true);
      schedule();
    },
    /** Stops polling and forgets what was shown (sign-out). */
    stop() {
      state.started = false;
      clearTimeout(state.timer);
      clearInterval(state.ticker);
      state.page = null;
      state.queue = null;
      state.lastRefresh = 0;
      state.seenWaiting = null;
      generation++;
      if (el.body) clear(el.body);
      if (el.queueList) clear(el.queueList);
    },
    show() {
      state.visible = true;
      refresh(true);
    },
    hide() {
      state.visible = false;
    },
    refresh,
  };
})();
