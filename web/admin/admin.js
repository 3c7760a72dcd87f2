// admin.js — starts the console: takes the token from `#token=` (then
// removes it from the address bar) or from the sign-in form, sends the
// console back to sign-in in plain words on a 401/403, signs out, and
// routes between the pages by the address: `#sessions` (default),
// `#session=<id>` (also `?session=<id>`, the link in help-request
// e-mails) and `#metrics`. Loaded last; the other scripts only define
// their parts.
'use strict';

(function () {
  const S = window.AdminStrings;
  const A = window.Admin;
  const { $, h } = A.dom;

  const el = {};
  let signedIn = false;
  let current = '';
  let baseTitle = S.title;
  let waiting = 0;

  // ---- Static text ------------------------------------------------------

  function fillStrings() {
    document.title = S.title;
    for (const node of document.querySelectorAll('[data-s]')) {
      const text = node.dataset.s.split('.').reduce((o, k) => (o ? o[k] : undefined), S);
      if (typeof text === 'string') node.textContent = text;
    }
    for (const node of document.querySelectorAll('[data-s-label]')) {
      const text = node.dataset.sLabel.split('.').reduce((o, k) => (o ? o[k] : undefined), S);
      if (typeof text === 'string') node.setAttribute('aria-label', text);
    }
  }

  // ---- The address ------------------------------------------------------

  /** Parses the hash: `#token=…&session=…`, `#metrics`, `#session=…`. */
  function hashParams() {
    const raw = location.hash.replace(/^#/, '');
    const params = new URLSearchParams(raw.includes('=') ? raw : '');
    return { params, bare: raw.includes('=') ? '' : raw };
  }

  /**
   * Moves `#token=` into storage and `?session=` into the hash, leaving a
   * clean address (the token must not stay in history or be shared).
   */
  function absorbAddress() {
    const url = new URL(location.href);
    let changed = false;
    const { params, bare } = hashParams();
    let route = bare;
    const token = params.get('token');
    if (token) {
      A.auth.set(token);
      params.delete('token');
      changed = true;
    }
    if (params.has('metrics')) route = 'metrics';
    if (params.get('session')) route = `session=${encodeURIComponent(params.get('session'))}`;
    const querySession = url.searchParams.get('session');
    if (querySession) {
      route = `session=${encodeURIComponent(querySession)}`;
      url.searchParams.delete('session');
      changed = true;
    }
    if (changed) {
      url.hash = route ? `#${route}` : '';
      history.replaceState(null, '', url.pathname + url.search + url.hash);
    }
  }

  function currentRoute() {
    const { params, bare } = hashParams();
    const session = params.get('session');
    if (session) return { name: 'session', id: session };
    if (bare === 'metrics' || params.has('metrics')) return { name: 'metrics' };
    return { name: 'sessions' };
  }

  // ---- Views ------------------------------------------------------------

  function showOnly(name) {
    for (const [key, view] of Object.entries(el.views)) view.hidden = key !== name;
  }

  function route() {
    if (!signedIn) return;
    const r = currentRoute();
    const previous = current;
    current = r.name;
    showOnly(r.name);
    el.navSessions.toggleAttribute('aria-current', false);
    el.navMetrics.toggleAttribute('aria-current', false);
    if (r.name === 'metrics') el.navMetrics.setAttribute('aria-current', 'page');
    else el.navSessions.setAttribute('aria-current', 'page');

    if (r.name !== 'session') A.sessionView.close();
    if (r.name !== 'metrics') A.metrics.hide();
    if (r.name !== 'sessions') A.sessions.hide();

    if (r.name === 'session') {
      A.sessionView.open(r.id);
    } else if (r.name === 'metrics') {
      baseTitle = `${S.metrics.heading} · ${S.title}`;
      A.metrics.show();
      if (previous) $('#metrics-heading').focus();
    } else {
      baseTitle = S.title;
      A.sessions.show();
      if (previous && previous !== 'sessions') $('#sessions-heading').focus();
    }
    if (r.name !== 'session') updateTitle();
  }

  function updateTitle() {
    if (current === 'session') return; // the session view names its session
    document.title = waiting ? `(${waiting}) ${baseTitle}` : baseTitle;
  }

  function onQueueCount(n) {
    waiting = n;
    el.navBadge.textContent = n ? String(n) : '';
    el.navBadge.hidden = !n;
    el.navBadgeText.textContent = n ? ` (${S.plural(S.queue.count, n)})` : '';
    updateTitle();
  }

  // ---- Signing in and out -----------------------------------------------

  function enter() {
    signedIn = true;
    const me = A.auth.me();
    el.whoami.textContent = S.format(S.signedInAs, { name: me.name });
    el.whoami.title = me.id;
    el.topbarEnd.hidden = false;
    el.nav.hidden = false;
    el.views.signin.hidden = true;
    A.sessions.start();
    route();
  }

  function showSignin(message, kind) {
    signedIn = false;
    current = '';
    A.socket.stop('auth');
    A.sessionView.close();
    A.sessions.stop();
    A.metrics.hide();
    A.metrics.reset();
    el.nav.hidden = true;
    el.topbarEnd.hidden = true;
    showOnly('signin');
    document.title = S.title;
    el.signinMessage.textContent = message || '';
    el.signinMessage.hidden = !message;
    el.signinMessage.className = `signin-message ${kind === 'info' ? 'notice notice-info' : 'notice notice-warn'}`;
    el.tokenInput.value = '';
    el.tokenInput.setAttribute('aria-invalid', message && kind !== 'info' ? 'true' : 'false');
    el.tokenInput.focus();
  }

  function signOut() {
    A.auth.clear();
    history.replaceState(null, '', location.pathname);
    showSignin(S.signin.signedOut, 'info');
  }

  async function submitSignin(event) {
    event.preventDefault();
    const token = el.tokenInput.value.trim().replace(/^Bearer\s+/i, '');
    const fail = (text) => {
      el.signinMessage.textContent = text;
      el.signinMessage.className = 'signin-message notice notice-warn';
      el.signinMessage.hidden = false;
      el.tokenInput.setAttribute('aria-invalid', 'true');
      el.tokenInput.focus();
    };
    if (!token) return fail(S.signin.empty);
    if (!A.auth.looksLikeToken(token)) return fail(S.signin.malformed);
    el.signinSubmit.disabled = true;
    el.signinSubmit.textContent = S.signin.checking;
    try {
      await A.api.sessions({ limit: 1 }, { token, quietAuth: true });
      A.auth.set(token);
      el.tokenInput.value = '';
      el.tokenInput.setAttribute('aria-invalid', 'false');
      enter();
    } catch (e) {
      if (e && e.status === 403) fail(S.signin.forbidden);
      else if (e && e.status === 401) fail(S.signin.unauthorized);
      else fail(S.signin.unreachable);
    } finally {
      el.signinSubmit.disabled = false;
      el.signinSubmit.textContent = S.signin.submit;
    }
  }

  function onAuthFailure(error) {
    if (!signedIn && !A.auth.get()) return;
    A.auth.clear();
    showSignin(error.status === 403 ? S.signin.forbidden : S.signin.unauthorized, 'warn');
  }

  // ---- Start ------------------------------------------------------------

  function start() {
    fillStrings();
    el.nav = $('#nav');
    el.navSessions = $('#nav-sessions');
    el.navMetrics = $('#nav-metrics');
    el.navBadge = h('span', { class: 'badge badge-help nav-badge', hidden: true, 'aria-hidden': 'true', 'data-testid': 'queue-badge' });
    el.navBadgeText = h('span', { class: 'visually-hidden' });
    el.navSessions.append(el.navBadge, el.navBadgeText);
    el.topbarEnd = $('#topbar-end');
    el.whoami = $('#whoami');
    el.signout = $('#signout');
    el.views = {
      signin: $('#signin-view'),
      sessions: $('#sessions-view'),
      session: $('#session-view'),
      metrics: $('#metrics-view'),
    };
    el.tokenInput = $('#token-input');
    el.signinMessage = $('#signin-message');
    el.signinSubmit = $('#signin-submit');
    el.tokenInput.placeholder = S.signin.placeholder;

    A.sessions.mount(el.views.sessions, onQueueCount);
    A.sessionView.mount(el.views.session);
    A.metrics.mount(el.views.metrics);

    $('#signin-form').addEventListener('submit', submitSignin);
    el.signout.addEventListener('click', signOut);
    A.api.onAuthFailure = onAuthFailure;
    window.addEventListener('hashchange', () => {
      // A token pasted into the address of an open console.
      if (hashParams().params.get('token')) {
        absorbAddress();
        if (!signedIn) return enter();
      }
      route();
    });

    absorbAddress();
    document.body.classList.remove('booting');
    if (A.auth.get()) enter();
    else showSignin('', 'info');
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
