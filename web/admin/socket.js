// socket.js — the console's one admin WebSocket (/chat/admin/ws, token in
// the subprotocol list). It remembers what the console asked for — the
// sessions it watches, the takeovers it holds, the messages to users not
// yet echoed — and after a dropped connection reconnects with backoff
// (1, 2, 4, 8, 16, then every 30 s) and sends them again: `watch` for each
// watched session, `takeover` for each held one (the server resumes it
// within its grace period), then the unechoed messages with their ids (the
// server accepts each id once). Requests that expect an answer
// (takeover, release) return promises settled by the answer or the error
// carrying their id. A ping goes out every 30 s. A socket closed 4401
// (its token expired) sends the console back to sign-in. Exposed as
// window.Admin.socket.
'use strict';

window.Admin = window.Admin || {};

(function () {
  const BACKOFF_S = [1, 2, 4, 8, 16, 30];
  const PING_MS = 30000;
  const REQUEST_TIMEOUT_MS = 20000;

  let counter = 0;
  const newId = (prefix) => `${prefix}-${Date.now().toString(36)}-${(++counter).toString(36)}`;

  class AdminSocket {
    constructor() {
      this.ws = null;
      this.state = 'idle'; // idle | connecting | open | waiting | auth | closed
      this.attempt = 0;
      this.retryAt = 0;
      this.retryTimer = 0;
      this.pingTimer = 0;
      this.watched = new Set();
      this.held = new Set();
      this.outbox = new Map(); // id -> frame: admin messages not echoed yet
      this.pending = new Map(); // id -> {resolve, reject, timer}
      this.frameListeners = new Set();
      this.stateListeners = new Set();
      this.wanted = false;
      this.everOpened = false;
    }

    /** Calls `fn(frame)` for every frame received. Returns an unsubscriber. */
    onFrame(fn) {
      this.frameListeners.add(fn);
      return () => this.frameListeners.delete(fn);
    }

    /** Calls `fn(state, socket)` when the connection state changes. */
    onState(fn) {
      this.stateListeners.add(fn);
      return () => this.stateListeners.delete(fn);
    }

    setState(state) {
      this.state = state;
      for (const fn of this.stateListeners) fn(state, this);
    }

    get isOpen() {
      return !!this.ws && this.ws.readyState === WebSocket.OPEN;
    }

    /** Opens the socket if it is not open or opening. */
    connect() {
      this.wanted = true;
      if (this.ws && (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING)) return;
      clearTimeout(this.retryTimer);
      const token = window.Admin.auth.get();
      if (!token) {
        this.setState('auth');
        return;
      }
      this.setState('connecting');
      let ws;
      try {
        ws = new WebSocket(window.Admin.api.socketUrl(), ['chatbox.v1', `bearer.${token}`]);
      } catch {
        this.scheduleRetry(false);
        return;
      }
      this.ws = ws;
      let opened = false;
      ws.addEventListener('open', () => {
        if (this.ws !== ws) return;
        opened = true;
        this.everOpened = true;
        this.attempt = 0;
        this.setState('open');
        this.resume();
        clearInterval(this.pingTimer);
        this.pingTimer = setInterval(() => this.sendRaw({ type: 'ping' }), PING_MS);
      });
      ws.addEventListener('message', (event) => {
        if (this.ws !== ws) return;
        let frame;
        try {
          frame = JSON.parse(event.data);
        } catch {
          return;
        }
        if (frame && typeof frame === 'object') this.dispatch(frame);
      });
      ws.addEventListener('close', (event) => {
        if (this.ws !== ws) return;
        this.ws = null;
        clearInterval(this.pingTimer);
        if (!this.wanted) {
          this.setState('closed');
          return;
        }
        this.scheduleRetry(opened, event.code);
      });
    }

    /** After a drop: waits the next backoff step, checking the token if the server refused it. */
    scheduleRetry(wasOpen, code) {
      const delay = BACKOFF_S[Math.min(this.attempt, BACKOFF_S.length - 1)];
      this.attempt += 1;
      this.retryAt = Date.now() + delay * 1000;
      this.setState('waiting');
      if (!wasOpen || code === 4401) {
        // A refused upgrade does not tell the page why, and a socket closed
        // 4401 outlived its token: ask the HTTP API, which answers 401/403
        // in words (and sends the console back to sign-in through
        // api.onAuthFailure).
        window.Admin.api.sessions({ limit: 1 }).catch((e) => {
          if (e && e.isAuth) this.stop('auth');
        });
      }
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.connect(), delay * 1000);
    }

    /** Tries again now instead of waiting for the backoff. */
    retryNow() {
      clearTimeout(this.retryTimer);
      this.connect();
    }

    /** Closes the socket for good (sign-out). */
    stop(state) {
      this.wanted = false;
      clearTimeout(this.retryTimer);
      clearInterval(this.pingTimer);
      const ws = this.ws;
      this.ws = null;
      if (ws) ws.close(1000);
      for (const [, p] of this.pending) p.reject(Object.assign(new Error('closed'), { code: 'CLOSED' }));
      this.pending.clear();
      this.watched.clear();
      this.held.clear();
      this.outbox.clear();
      this.setState(state || 'closed');
    }

    /** Sends again what the console holds, after (re)connecting. */
    resume() {
      // Watch first (its session_state fills in what was missed), then
      // the takeovers asked for or held, then the unechoed messages.
      for (const sessionId of this.watched) this.sendRaw({ type: 'watch', id: newId('w'), session_id: sessionId });
      const requested = new Set();
      for (const p of this.pending.values()) {
        this.sendRaw(p.frame);
        if (p.frame.type === 'takeover') requested.add(p.frame.session_id);
      }
      for (const sessionId of this.held) {
        if (requested.has(sessionId)) continue;
        this.request({ type: 'takeover', session_id: sessionId }).catch(() => {
          // reported through the error frame listeners
        });
      }
      for (const frame of this.outbox.values()) this.sendRaw(frame);
    }

    sendRaw(frame) {
      if (!this.isOpen) return false;
      this.ws.send(JSON.stringify(frame));
      return true;
    }

    /** Sends `frame` with a new id; resolves with the answer carrying that id. */
    request(frame) {
      const id = newId(frame.type[0]);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          this.pending.delete(id);
          reject(Object.assign(new Error('timeout'), { code: 'TIMEOUT' }));
        }, REQUEST_TIMEOUT_MS);
        this.pending.set(id, { resolve, reject, timer, frame: { ...frame, id } });
        // Not open: sent by resume() once the socket is back.
        this.sendRaw({ ...frame, id });
      });
    }

    watch(sessionId) {
      this.watched.add(sessionId);
      this.connect();
      this.sendRaw({ type: 'watch', id: newId('w'), session_id: sessionId });
    }

    unwatch(sessionId) {
      this.watched.delete(sessionId);
      if (this.held.has(sessionId)) return; // a held session stays watched by the server
      this.sendRaw({ type: 'unwatch', id: newId('u'), session_id: sessionId });
    }

    async takeover(sessionId) {
      this.connect();
      const answer = await this.request({ type: 'takeover', session_id: sessionId });
      this.held.add(sessionId);
      return answer;
    }

    async release(sessionId) {
      try {
        return await this.request({ type: 'release', session_id: sessionId });
      } finally {
        this.held.delete(sessionId);
        for (const [id, frame] of this.outbox) if (frame.session_id === sessionId) this.outbox.delete(id);
      }
    }

    /** Text for the user of a held session; kept until echoed, sent again after a reconnect. */
    say(sessionId, content) {
      const id = newId('a');
      const frame = { type: 'user_message', id, session_id: sessionId, content };
      this.outbox.set(id, frame);
      this.sendRaw(frame);
      return id;
    }

    typing(sessionId, active) {
      this.sendRaw({ type: 'typing_indicator', session_id: sessionId, metadata: { active: active ? 'true' : 'false' } });
    }

    dispatch(frame) {
      if (frame.id && this.outbox.has(frame.id)) {
        const busy = frame.type === 'error' && frame.error && frame.error.code === 'SERVICE_UNAVAILABLE';
        // Echoed, or refused for good; "busy" is sent again after the next reconnect.
        if (frame.type === 'user_message' || (frame.type === 'error' && !busy)) this.outbox.delete(frame.id);
      }
      if (frame.id && this.pending.has(frame.id)) {
        const p = this.pending.get(frame.id);
        this.pending.delete(frame.id);
        clearTimeout(p.timer);
        if (frame.type === 'error') {
          const e = frame.error || {};
          p.reject(Object.assign(new Error(e.message || e.code), { code: e.code, frame }));
        } else {
          p.resolve(frame);
        }
      }
      if (frame.type === 'takeover' && frame.session_id) this.held.add(frame.session_id);
      if (frame.type === 'release' && frame.session_id) this.held.delete(frame.session_id);
      if (frame.type === 'error' && frame.error && frame.error.code === 'SESSION_LOCKED' && frame.session_id) {
        this.held.delete(frame.session_id);
      }
      for (const fn of this.frameListeners) {
        try {
          fn(frame);
        } catch (e) {
          // one view's bug must not stop the others
          setTimeout(() => {
            throw e;
          });
        }
      }
    }
  }

  window.Admin.socket = new AdminSocket();
  window.Admin.AdminSocket = AdminSocket;
})();
