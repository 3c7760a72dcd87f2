// api.js — the admin token and the admin HTTP API. The token comes from
// `#token=` or the sign-in form and is kept in sessionStorage (this tab
// only; a reload keeps it, closing the tab or "sign out" forgets it).
// Calls go to the site's /chat/admin/* endpoints, resolved from the page's
// own address (new URL('../', location.href) is /chat/), with
// `Authorization: Bearer`. A 401 or 403 is reported to the handler
// admin.js registers (back to sign-in, in plain words).
// Exposed as window.Admin.auth and window.Admin.api.
'use strict';

window.Admin = window.Admin || {};

(function () {
  const KEY = 'chatbox.admin.token';

  /** The site's /chat/ folder, whatever host and prefix the console is served from. */
  function chatBase() {
    return new URL('../', location.href);
  }

  const auth = {
    get() {
      try {
        return sessionStorage.getItem(KEY) || '';
      } catch {
        return auth.memory || '';
      }
    },
    set(token) {
      auth.memory = token;
      try {
        sessionStorage.setItem(KEY, token);
      } catch {
        // storage disabled: keep it in memory for this page only
      }
    },
    clear() {
      auth.memory = '';
      try {
        sessionStorage.removeItem(KEY);
      } catch {
        // nothing kept
      }
    },
    /** Whether `token` has the form of a JWT (three base64url parts). */
    looksLikeToken(token) {
      return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
    },
    /** The token's claims (unverified — only to show the admin's name and id). */
    claims(token) {
      try {
        const part = (token || auth.get()).split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
        const padded = part + '==='.slice((part.length + 3) % 4);
        const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
        return JSON.parse(new TextDecoder().decode(bytes)) || {};
      } catch {
        return {};
      }
    },
    /** The signed-in admin: {id, name}. */
    me() {
      const c = auth.claims();
      return { id: c.sub || '', name: c.name || c.preferred_username || c.sub || '' };
    },
    memory: '',
  };

  /** An error from the API: `status` (0 when unreachable), `code`, `message`. */
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message || code || `HTTP ${status}`);
      this.status = status;
      this.code = code || '';
    }
    get isAuth() {
      return this.status === 401 || this.status === 403;
    }
  }

  const api = {
    /** Called with the ApiError on 401/403 (set by admin.js). */
    onAuthFailure: null,

    /** The URL of `/chat/<path>` with `params` (empty values left out). */
    url(path, params) {
      const url = new URL(path, chatBase());
      for (const [key, value] of Object.entries(params || {})) {
        if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, String(value));
      }
      return url;
    },

    /** The admin socket's URL (ws: or wss: like the page). */
    socketUrl() {
      const url = new URL('admin/ws', chatBase());
      url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
      return url.href;
    },

    /** GET /chat/<path> as JSON, with `token` (default: the stored one). */
    async get(path, params, { token, signal, quietAuth } = {}) {
      return api.request('GET', path, params, { token, signal, quietAuth });
    },

    async request(method, path, params, { token, signal, quietAuth } = {}) {
      const bearer = token || auth.get();
      let response;
      try {
        response = await fetch(api.url(path, params), {
          method,
          headers: { Authorization: `Bearer ${bearer}`, Accept: 'application/json' },
          cache: 'no-store',
          credentials: 'same-origin',
          signal,
        });
      } catch (e) {
        if (e && e.name === 'AbortError') throw e;
        throw new ApiError(0, 'NETWORK', window.AdminStrings.errors.network);
      }
      let body = null;
      try {
        body = await response.json();
      } catch {
        body = null;
      }
      if (!response.ok) {
        const error = (body && body.error) || {};
        const failure = new ApiError(
          response.status,
          error.code,
          error.message || window.AdminStrings.format(window.AdminStrings.errors.http, { status: response.status }),
        );
        if (failure.isAuth && !quietAuth && typeof api.onAuthFailure === 'function') api.onAuthFailure(failure);
        throw failure;
      }
      return body;
    },

    sessions(params, options) {
      return api.get('admin/sessions', params, options);
    },
    session(id, options) {
      return api.get(`admin/sessions/${encodeURIComponent(id)}`, {}, options);
    },
    metrics(params, options) {
      return api.get('admin/metrics', params, options);
    },
  };

  window.Admin.auth = auth;
  window.Admin.api = api;
  window.Admin.ApiError = ApiError;
})();
