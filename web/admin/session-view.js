// session-view.js — one session, live (route #session=<id>). Watches it
// over the admin socket: `session_state` gives its details, latest
// messages and takeover log; then every frame of the session is drawn as
// it comes (user and admin messages, the assistant's answer streamed chunk
// by chunk and replaced by the whole text of its final `done` frame,
// loading and typing, help requests, admins joining and leaving, files).
// Presence frames say who else watches and who assists. "Take over" makes
// the admin the one who answers (a composer appears, with the admin's
// typing shown to the user); "Release" hands the session back. All text
// from the server is set with textContent. Exposed as
// window.Admin.sessionView.
'use strict';

window.Admin = window.Admin || {};

(function () {
  const S = window.AdminStrings;
  const { h, clear, when, fullWhen, clock, duration, since, ms, number, announce, errorText } = window.Admin.dom;
  const socket = window.Admin.socket;
  const auth = window.Admin.auth;

  const TYPING_SHOWN_MS = 6000;
  const TYPING_IDLE_MS = 3000;

  const el = {};
  const state = {
    sessionId: '',
    session: null,
    presence: null,
    takeovers: [],
    held: false,
    busy: '', // 'takeover' | 'release' while waiting for the answer
    live: false,
    items: new Map(), // message key (message_id or id) -> <li>
    loadingIds: new Set(),
    typingTimer: 0,
    typingFrom: '',
    myTyping: false,
    myTypingTimer: 0,
    countdown: 0,
  };

  // ---- Building ---------------------------------------------------------

  function build(container) {
    const v = S.view;
    el.root = container;
    el.title = h('h2', { class: 'view-title', tabindex: '-1', text: v.heading });
    el.subtitle = h('p', { class: 'view-subtitle muted' });
    el.watchText = h('span', { class: 'watch-text' });
    // The seconds tick on screen only: the status is said when its state changes, not every second.
    el.watchCountdown = h('span', { class: 'watch-countdown', 'aria-hidden': 'true' });
    el.watchRetry = h('button', { type: 'button', class: 'btn btn-small btn-link', text: S.watch.retry, hidden: true, on: { click: () => socket.retryNow() } });
    el.watch = h('div', { class: 'watch-status', 'data-testid': 'watch-status', 'data-state': 'connecting', role: 'status' }, h('span', { class: 'dot', 'aria-hidden': 'true' }), el.watchText, el.watchCountdown, el.watchRetry);
    el.takeover = h('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'takeover-button', text: v.takeover, title: v.takeoverHint, on: { click: takeOver } });
    el.release = h('button', { type: 'button', class: 'btn btn-warn', 'data-testid': 'release-button', text: v.release, title: v.releaseHint, hidden: true, on: { click: release } });

    el.notice = h('div', { class: 'notice', role: 'alert', 'data-testid': 'session-notice', hidden: true });
    el.helpCallout = h('div', { class: 'callout callout-help', 'data-testid': 'help-callout', hidden: true });
    el.assistBar = h('div', { class: 'callout callout-assist', 'data-testid': 'assist-status', hidden: true });
    el.endedNote = h('div', { class: 'callout callout-ended', text: v.endedNote, hidden: true });

    el.conversation = h('ol', { class: 'conversation', 'data-testid': 'conversation', tabindex: '0', 'aria-label': v.conversation });
    el.conversationEmpty = h('p', { class: 'conversation-empty muted', text: v.conversationEmpty, hidden: true });
    el.activity = h('p', { class: 'activity-line muted', 'aria-live': 'polite' });

    el.input = h('textarea', { id: 'admin-input', rows: '2', 'data-testid': 'admin-input', placeholder: v.composerPlaceholder, maxlength: '16384' });
    el.send = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'admin-send', text: v.send });
    el.composer = h(
      'form',
      { class: 'composer', 'data-testid': 'admin-composer', hidden: true, 'aria-label': v.composerLabel },
      h('label', { for: 'admin-input', class: 'visually-hidden', text: v.composerLabel }),
      el.input,
      el.send,
    );
    el.composer.addEventListener('submit', (e) => {
      e.preventDefault();
      sendMessage();
    });
    el.input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        sendMessage();
      }
    });
    el.input.addEventListener('input', onTyping);

    el.presence = h('div', { class: 'presence', 'data-testid': 'presence' });
    el.details = h('dl', { class: 'details' });
    el.audit = h('ol', { class: 'audit', 'data-testid': 'takeover-log' });

    container.append(
      h(
        'div',
        { class: 'view-head' },
        h('a', { href: '#sessions', class: 'back-link', 'data-testid': 'back-link' }, h('span', { 'aria-hidden': 'true', text: '← ' }), v.back),
        h('div', { class: 'view-head-row' }, h('div', { class: 'view-titles' }, el.title, el.subtitle), h('div', { class: 'view-actions' }, el.watch, el.takeover, el.release)),
      ),
      el.notice,
      h(
        'div',
        { class: 'view-grid' },
        h(
          'section',
          { class: 'card conversation-card', 'aria-labelledby': 'conversation-heading' },
          h('h3', { id: 'conversation-heading', class: 'visually-hidden', text: v.conversation }),
          el.helpCallout,
          el.assistBar,
          el.endedNote,
          el.conversation,
          el.conversationEmpty,
          el.activity,
          el.composer,
        ),
        h(
          'aside',
          { class: 'side' },
          h('section', { class: 'card', 'aria-labelledby': 'presence-heading' }, h('h3', { id: 'presence-heading', text: v.presence }), el.presence),
          h('section', { class: 'card', 'aria-labelledby': 'details-heading' }, h('h3', { id: 'details-heading', text: v.details }), el.details),
          h('section', { class: 'card', 'aria-labelledby': 'audit-heading' }, h('h3', { id: 'audit-heading', text: v.audit }), el.audit),
        ),
      ),
    );

    socket.onFrame(onFrame);
    socket.onState(renderWatch);
    setInterval(() => {
      if (state.sessionId) {
        renderWatch();
        renderHelpCallout();
      }
    }, 1000);
  }

  // ---- Opening and closing ----------------------------------------------

  function open(sessionId) {
    if (state.sessionId === sessionId) return;
    close();
    state.sessionId = sessionId;
    state.session = null;
    state.presence = null;
    state.takeovers = [];
    state.held = socket.held.has(sessionId);
    state.live = false;
    state.items.clear();
    state.loadingIds.clear();
    clear(el.conversation);
    clear(el.presence);
    clear(el.details);
    clear(el.audit);
    el.title.textContent = S.view.loading;
    el.subtitle.textContent = sessionId;
    el.activity.textContent = '';
    el.input.value = '';
    hideNotice();
    renderControls();
    renderWatch();
    socket.watch(sessionId);
    el.title.focus();
  }

  function close() {
    if (!state.sessionId) return;
    stopMyTyping();
    socket.unwatch(state.sessionId);
    state.sessionId = '';
  }

  // ---- Frames -----------------------------------------------------------

  function onFrame(frame) {
    if (!state.sessionId) return;
    if (frame.session_id && frame.session_id !== state.sessionId) return;
    if (!frame.session_id && frame.type !== 'error') return;
    switch (frame.type) {
      case 'session_state':
        return onSessionState(frame.data || {});
      case 'presence':
        state.presence = frame.data || { watchers: [] };
        renderPresence();
        return renderControls();
      case 'takeover': {
        state.busy = '';
        state.held = true;
        const data = frame.data || {};
        state.presence = state.presence || { watchers: [] };
        state.presence.assisting = { admin_id: data.admin_id, admin_name: data.admin_name, since: data.since };
        if (data.resumed) showNotice(S.view.resumed, 'info');
        else hideNotice();
        renderPresence();
        renderControls();
        el.input.focus();
        return;
      }
      case 'release':
        state.busy = '';
        state.held = false;
        if (state.presence && state.presence.assisting && state.presence.assisting.admin_id === auth.me().id) state.presence.assisting = null;
        showNotice(S.view.released, 'info');
        renderPresence();
        renderControls();
        el.takeover.focus();
        return;
      case 'error':
        return onError(frame);
      case 'user_message':
      case 'file_upload':
      case 'voice_message':
        return addMessage(frame, true);
      case 'ai_response':
        return onAnswer(frame);
      case 'loading':
        return onLoading(frame);
      case 'typing_indicator':
        return onTypingFrame(frame);
      case 'help_request':
        markHelp(frame);
        return addEvent(frame, true);
      case 'admin_join':
        onAdminJoin(frame);
        return addEvent(frame, true);
      case 'admin_leave':
        onAdminLeave(frame);
        return addEvent(frame, true);
      default:
        return undefined;
    }
  }

  function onSessionState(data) {
    state.session = data.session || null;
    state.takeovers = data.takeovers || [];
    state.live = true;
    if (state.session) {
      state.presence = { watchers: state.session.watchers || [], assisting: state.session.assisting || null };
      if (state.session.assisting && state.session.assisting.admin_id === auth.me().id) state.held = true;
    }
    // Redraw the conversation from the state (after a reconnect too).
    state.items.clear();
    clear(el.conversation);
    for (const frame of data.messages || []) {
      if (frame.type === 'ai_response') onAnswer({ ...frame, done: true }, false);
      else if (frame.type === 'help_request' || frame.type === 'admin_join' || frame.type === 'admin_leave') addEvent(frame, false);
      else if (frame.type === 'user_message' || frame.type === 'file_upload' || frame.type === 'voice_message') addMessage(frame, false);
    }
    renderHeader();
    renderDetails();
    renderPresence();
    renderAudit();
    renderControls();
    renderWatch();
    renderEmpty();
    scrollToEnd(true);
  }

  function onError(frame) {
    const e = frame.error || {};
    state.busy = '';
    if (e.code === 'SESSION_LOCKED') {
      state.held = false;
      const holder = state.presence && state.presence.assisting && state.presence.assisting.admin_id !== auth.me().id ? state.presence.assisting.admin_name : '';
      showNotice(holder ? S.format(S.view.lockedBy, { name: holder }) : e.message || S.view.lockedGeneric, 'warn', 'SESSION_LOCKED');
    } else if (e.code === 'SESSION_NOT_FOUND') {
      el.title.textContent = S.view.notFound;
      showNotice(S.view.notFound, 'warn', e.code);
    } else {
      showNotice(errorText(e), 'warn', e.code);
    }
    renderControls();
  }

  function markHelp(frame) {
    if (!state.session) return;
    state.session.help_requested = true;
    state.session.help_requested_at = frame.timestamp || new Date().toISOString();
    renderHelpCallout();
    renderDetails();
  }

  function onAdminJoin(frame) {
    const meta = frame.metadata || {};
    state.presence = state.presence || { watchers: [] };
    if (!state.presence.assisting) state.presence.assisting = { admin_id: meta.admin_id || '', admin_name: meta.admin_name || '', since: frame.timestamp };
    if (state.session) state.session.admin_assisted = true;
    state.takeovers.push({ admin_id: meta.admin_id || '', admin_name: meta.admin_name || '', started_at: frame.timestamp || new Date().toISOString() });
    renderAudit();
    renderPresence();
    renderControls();
    renderHelpCallout();
  }

  function onAdminLeave(frame) {
    const meta = frame.metadata || {};
    const me = auth.me();
    if (state.presence && state.presence.assisting) {
      const a = state.presence.assisting;
      if (!meta.admin_name || a.admin_name === meta.admin_name || a.admin_id === meta.admin_id) state.presence.assisting = null;
    }
    if (state.held && (meta.admin_name === me.name || meta.admin_id === me.id || meta.reason === 'disconnected')) {
      state.held = false;
      socket.held.delete(state.sessionId);
    }
    const open = [...state.takeovers].reverse().find((t) => !t.ended_at);
    if (open) {
      open.ended_at = frame.timestamp || new Date().toISOString();
      open.end_reason = meta.reason || 'released';
    }
    renderAudit();
    renderPresence();
    renderControls();
  }

  // ---- Messages ---------------------------------------------------------

  function keyOf(frame) {
    return frame.message_id || frame.id || '';
  }

  function findItem(frame) {
    return (frame.message_id && state.items.get(frame.message_id)) || (frame.id && state.items.get(frame.id)) || null;
  }

  function remember(frame, li) {
    if (frame.message_id) state.items.set(frame.message_id, li);
    if (frame.id) state.items.set(frame.id, li);
  }

  function senderName(frame) {
    const sender = frame.sender || 'user';
    if (sender === 'admin') {
      const name = frame.metadata && frame.metadata.admin_name;
      return name ? S.format(S.sender.adminNamed, { name }) : S.sender.admin;
    }
    return S.sender[sender] || sender;
  }

  /** Only http(s) and blob links from the server are followed. */
  function safeUrl(value) {
    if (!value) return '';
    try {
      const url = new URL(value, location.href);
      return ['http:', 'https:', 'blob:'].includes(url.protocol) ? url.href : '';
    } catch {
      return '';
    }
  }

  function messageShell(frame, sender) {
    const li = h('li', {
      class: `message message-${sender}`,
      'data-testid': 'message',
      dataset: { sender, type: frame.type },
    });
    if (keyOf(frame)) li.dataset.messageId = keyOf(frame);
    if (frame.seq !== undefined) li.dataset.seq = String(frame.seq);
    const head = h(
      'div',
      { class: 'msg-head' },
      h('span', { class: 'msg-sender', text: senderName(frame) }),
      h('time', { class: 'msg-time', datetime: frame.timestamp || '', title: fullWhen(frame.timestamp), text: frame.timestamp ? clock(frame.timestamp) : '' }),
    );
    const body = h('div', { class: 'msg-body' });
    li.append(head, body);
    return { li, body };
  }

  function attachments(frame) {
    const parts = [];
    const meta = frame.metadata || {};
    const url = safeUrl(frame.file_url);
    if (url) {
      const name = meta.file_name || (frame.type === 'voice_message' ? S.msg.voice : S.msg.file);
      const type = meta.content_type || '';
      const box = h('div', { class: 'attachment' });
      if (type.startsWith('image/')) {
        box.append(h('a', { href: url, target: '_blank', rel: 'noopener noreferrer' }, h('img', { src: url, alt: name, class: 'thumb', loading: 'lazy' })));
      } else if (frame.type === 'voice_message' || type.startsWith('audio/')) {
        box.append(h('audio', { src: url, controls: true, preload: 'none', 'aria-label': name }));
      }
      box.append(
        h('a', { href: url, target: '_blank', rel: 'noopener noreferrer', class: 'file-link', 'data-testid': 'file-link', text: S.format(S.msg.download, { name }) }),
      );
      if (meta.file_size) box.append(h('span', { class: 'muted', text: ` · ${number(Math.ceil(Number(meta.file_size) / 1024))} KB` }));
      parts.push(box);
    }
    if (meta.files && frame.type === 'ai_response') {
      let files = [];
      try {
        files = JSON.parse(meta.files);
      } catch {
        files = [];
      }
      for (const f of Array.isArray(files) ? files.slice(url ? 1 : 0) : []) {
        const link = safeUrl(f && f.url);
        if (link) parts.push(h('div', { class: 'attachment' }, h('a', { href: link, target: '_blank', rel: 'noopener noreferrer', class: 'file-link', text: S.format(S.msg.linkedFile, { name: f.name || link }) })));
      }
    }
    if (frame.type === 'voice_message' && meta.transcription && meta.transcription !== 'ok') {
      parts.push(h('p', { class: 'msg-note', text: S.msg.transcriptFailed }));
    }
    return parts;
  }

  function addMessage(frame, live) {
    const existing = findItem(frame);
    if (existing) {
      // The echo of a message already drawn (an admin's own message): just mark it delivered.
      existing.classList.remove('pending');
      remember(frame, existing);
      return;
    }
    const sender = frame.sender || 'user';
    const { li, body } = messageShell(frame, sender);
    body.textContent = frame.content || (frame.file_url ? '' : S.msg.unknown);
    if (frame.type === 'voice_message' && frame.content) li.dataset.transcript = 'true';
    li.append(...attachments(frame));
    remember(frame, li);
    append(li);
    if (sender === 'user' && state.typingFrom === 'user') setActivity('');
    if (live) {
      bump(frame);
      announce(S.format(S.msg.newMessage, { sender: senderName(frame), text: frame.content || S.msg.file }));
    }
  }

  function onAnswer(frame, live = true) {
    let li = findItem(frame);
    if (!li) {
      const shell = messageShell(frame, 'ai');
      li = shell.li;
      remember(frame, li);
      append(li);
    }
    const body = li.querySelector('.msg-body');
    if (frame.done) {
      body.textContent = frame.content || '';
      delete li.dataset.streaming;
      li.querySelectorAll('.msg-meta, .attachment, .msg-note').forEach((n) => n.remove());
      const meta = frame.metadata || {};
      const tokens = (Number(meta.prompt_tokens) || 0) + (Number(meta.completion_tokens) || 0);
      const bits = [frame.model_id, tokens ? `${number(tokens)} ${S.sessions.col.tokens.toLowerCase()}` : '', meta.response_time_ms ? ms(meta.response_time_ms) : ''].filter(Boolean);
      li.append(...attachments(frame));
      const reason = meta.finish_reason;
      if (reason && reason !== 'complete') {
        li.dataset.finishReason = reason;
        const note = S.msg.finish[reason] || S.format(S.msg.stopped, { reason: reason.replace(/_/g, ' ') });
        li.append(h('p', { class: 'msg-note', 'data-testid': 'finish-note', text: note }));
      }
      if (bits.length) li.append(h('p', { class: 'msg-meta', text: bits.join(' · ') }));
      state.loadingIds.delete(frame.message_id);
      if (!state.loadingIds.size && state.typingFrom === 'ai') setActivity('');
      if (live) {
        bump(frame);
        announce(S.format(S.msg.newMessage, { sender: S.sender.ai, text: frame.content || '' }));
      }
    } else {
      li.dataset.streaming = 'true';
      // A replacing chunk carries the whole answer (the provider rewrote it).
      if ((frame.metadata || {}).replace === 'true') body.textContent = frame.content || '';
      else body.textContent += frame.content || '';
    }
    renderEmpty();
    scrollToEnd(false);
  }

  function onLoading(frame) {
    const meta = frame.metadata || {};
    const active = meta.active !== 'false';
    if (active && meta.status === 'working') {
      // An agent at work (a tool call): the text so far stays.
      state.loadingIds.add(frame.message_id);
      setActivity(meta.tool ? S.format(S.msg.workingTool, { tool: meta.tool }) : S.msg.working, 'ai');
      return;
    }
    if (active) {
      state.loadingIds.add(frame.message_id);
      // Starting over (another worker took the answer): drop the partial text.
      const li = findItem(frame);
      if (li && li.dataset.streaming === 'true') li.querySelector('.msg-body').textContent = '';
      setActivity(S.msg.thinking, 'ai');
    } else {
      state.loadingIds.delete(frame.message_id);
      if (!state.loadingIds.size && state.typingFrom === 'ai') setActivity('');
    }
  }

  function onTypingFrame(frame) {
    const active = !frame.metadata || frame.metadata.active !== 'false';
    const sender = frame.sender || 'user';
    if (sender === 'admin' && state.held) return; // our own typing
    clearTimeout(state.typingTimer);
    if (!active) {
      if (state.typingFrom === sender) setActivity(state.loadingIds.size ? S.msg.thinking : '', state.loadingIds.size ? 'ai' : '');
      return;
    }
    const text = sender === 'admin' ? S.format(S.msg.typingAdmin, { name: (frame.metadata && frame.metadata.admin_name) || S.sender.admin }) : S.msg.typingUser;
    setActivity(text, sender);
    state.typingTimer = setTimeout(() => {
      if (state.typingFrom === sender) setActivity(state.loadingIds.size ? S.msg.thinking : '', state.loadingIds.size ? 'ai' : '');
    }, TYPING_SHOWN_MS);
  }

  function setActivity(text, from) {
    el.activity.textContent = text;
    state.typingFrom = text ? from || '' : '';
    el.activity.dataset.from = state.typingFrom;
  }

  function addEvent(frame, live) {
    if (findItem(frame)) return;
    const meta = frame.metadata || {};
    const name = meta.admin_name || S.sender.admin;
    let text;
    if (frame.type === 'help_request') text = frame.content ? S.format(S.msg.helpRequestReason, { reason: frame.content }) : S.msg.helpRequest;
    else if (frame.type === 'admin_join') text = S.format(S.msg.adminJoin, { name });
    else text = S.format(meta.reason === 'disconnected' ? S.msg.adminLeaveDisconnected : S.msg.adminLeave, { name });
    const li = h(
      'li',
      { class: `event event-${frame.type.replace('_', '-')}`, 'data-testid': 'message', dataset: { sender: 'system', type: frame.type } },
      h('span', { class: 'event-text', text }),
      h('time', { class: 'msg-time', datetime: frame.timestamp || '', title: fullWhen(frame.timestamp), text: frame.timestamp ? clock(frame.timestamp) : '' }),
    );
    if (keyOf(frame)) li.dataset.messageId = keyOf(frame);
    remember(frame, li);
    append(li);
    if (live) {
      bump(frame);
      announce(text, frame.type === 'help_request');
    }
  }

  function append(li) {
    const nearEnd = isNearEnd();
    el.conversation.append(li);
    renderEmpty();
    scrollToEnd(nearEnd);
  }

  function isNearEnd() {
    const c = el.conversation;
    return c.scrollHeight - c.scrollTop - c.clientHeight < 80;
  }

  function scrollToEnd(force) {
    if (force || isNearEnd()) el.conversation.scrollTop = el.conversation.scrollHeight;
  }

  function renderEmpty() {
    el.conversationEmpty.hidden = el.conversation.children.length > 0;
  }

  /** A live message: the details' counts and last activity move on. */
  function bump(frame) {
    if (!state.session) return;
    if (frame.timestamp) state.session.last_activity = frame.timestamp;
    if (frame.seq !== undefined) state.session.message_count = Math.max(Number(state.session.message_count) || 0, Number(frame.seq));
    if (frame.type === 'ai_response' && frame.done && frame.metadata) {
      const m = frame.metadata;
      state.session.total_tokens = (Number(state.session.total_tokens) || 0) + (Number(m.prompt_tokens) || 0) + (Number(m.completion_tokens) || 0);
      const took = Number(m.response_time_ms) || 0;
      if (took > (Number(state.session.max_response_ms) || 0)) state.session.max_response_ms = took;
      if (!state.session.avg_response_ms) state.session.avg_response_ms = took;
    }
    renderDetails();
  }

  // ---- Actions ----------------------------------------------------------

  async function takeOver() {
    if (!state.sessionId || state.busy) return;
    state.busy = 'takeover';
    hideNotice();
    renderControls();
    try {
      await socket.takeover(state.sessionId);
    } catch (e) {
      state.busy = '';
      // SESSION_LOCKED and the like arrive as error frames too (onError).
      if (e && (e.code === 'TIMEOUT' || e.code === 'CLOSED')) showNotice(S.errors.network, 'warn');
      renderControls();
    }
  }

  async function release() {
    if (!state.sessionId || state.busy) return;
    state.busy = 'release';
    stopMyTyping();
    renderControls();
    try {
      await socket.release(state.sessionId);
    } catch (e) {
      state.busy = '';
      state.held = false;
      if (e && e.code && e.code !== 'TIMEOUT' && e.code !== 'CLOSED') showNotice(errorText({ code: e.code, message: e.message }), 'warn', e.code);
      renderControls();
    }
  }

  function sendMessage() {
    const text = el.input.value.trim();
    if (!text || !state.held || !state.sessionId) return;
    const id = socket.say(state.sessionId, text);
    stopMyTyping();
    // Drawn now, marked delivered when the echo (same id) comes back.
    const me = auth.me();
    const frame = { type: 'user_message', id, message_id: id, sender: 'admin', content: text, timestamp: new Date().toISOString(), metadata: { admin_name: me.name } };
    const { li, body } = messageShell(frame, 'admin');
    li.classList.add('pending');
    body.textContent = text;
    remember(frame, li);
    append(li);
    scrollToEnd(true);
    el.input.value = '';
    el.input.focus();
  }

  function onTyping() {
    if (!state.held) return;
    if (!state.myTyping) {
      state.myTyping = true;
      socket.typing(state.sessionId, true);
    }
    clearTimeout(state.myTypingTimer);
    state.myTypingTimer = setTimeout(stopMyTyping, TYPING_IDLE_MS);
  }

  function stopMyTyping() {
    clearTimeout(state.myTypingTimer);
    if (state.myTyping && state.sessionId) socket.typing(state.sessionId, false);
    state.myTyping = false;
  }

  // ---- Rendering --------------------------------------------------------

  function showNotice(text, kind, code) {
    el.notice.textContent = '';
    el.notice.append(
      h('span', { text }),
      h('button', { type: 'button', class: 'btn btn-small btn-link', text: S.dismiss, on: { click: hideNotice } }),
    );
    el.notice.className = `notice notice-${kind || 'info'}`;
    if (code) el.notice.dataset.code = code;
    else delete el.notice.dataset.code;
    el.notice.hidden = false;
  }

  function hideNotice() {
    el.notice.hidden = true;
    el.notice.textContent = '';
    delete el.notice.dataset.code;
  }

  function isEnded() {
    const s = state.session;
    return !!s && (!s.is_active || !!s.end_time);
  }

  function renderHeader() {
    const s = state.session;
    if (!s) return;
    el.title.textContent = s.name || S.sessions.untitled;
    el.subtitle.textContent = `${s.user_id} · ${s.session_id}`;
    document.title = `${s.name || S.sessions.untitled} · ${S.title}`;
  }

  function renderHelpCallout() {
    const s = state.session;
    const assisting = state.presence && state.presence.assisting;
    if (!s || !s.help_requested || assisting || isEnded() || s.admin_assisted) {
      el.helpCallout.hidden = true;
      return;
    }
    const at = s.help_requested_at || s.last_activity;
    el.helpCallout.textContent = S.format(S.queue.waited, { time: since(at) });
    el.helpCallout.prepend(h('strong', { text: `${S.msg.helpRequest} · ` }));
    el.helpCallout.hidden = false;
  }

  function renderDetails() {
    const s = state.session;
    if (!s) return;
    const v = S.view;
    const rows = [
      [v.user, s.user_id, 'mono'],
      [v.sessionId, s.session_id, 'mono'],
      [v.status, s.end_time || !s.is_active ? S.sessions.ended : s.connected ? (s.gateway ? S.format(S.sessions.connectedOn, { gateway: s.gateway }) : S.sessions.connected) : S.sessions.notConnected],
      [v.started, fullWhen(s.start_time)],
      [v.activity, fullWhen(s.last_activity)],
      s.end_time ? [v.ended, fullWhen(s.end_time)] : null,
      s.duration_s ? [v.duration, duration(s.duration_s * 1000)] : null,
      [v.messages, number(s.message_count)],
      [v.tokens, number(s.total_tokens)],
      [v.avgResponse, s.avg_response_ms ? ms(s.avg_response_ms) : S.sessions.none],
      [v.maxResponse, s.max_response_ms ? ms(s.max_response_ms) : S.sessions.none],
      [v.model, s.model_id || v.modelDefault],
      s.help_requested ? [v.helpRequestedAt, s.help_requested_at ? fullWhen(s.help_requested_at) : S.sessions.helpYes] : null,
    ].filter(Boolean);
    clear(el.details);
    for (const [term, value, cls] of rows) el.details.append(h('dt', { text: term }), h('dd', { class: cls || '', text: value }));
  }

  function renderPresence() {
    const p = state.presence || { watchers: [] };
    const me = auth.me();
    const name = (a) => (a.admin_id === me.id ? S.format(S.view.you, { name: a.admin_name || a.admin_id }) : a.admin_name || a.admin_id);
    clear(el.presence);
    const assisting = p.assisting;
    el.presence.append(
      h('p', { class: 'presence-label', text: S.view.assisting }),
      assisting
        ? h('p', { class: 'presence-assist', 'data-testid': 'presence-assisting', dataset: { adminId: assisting.admin_id || '' } }, h('span', { class: 'avatar', 'aria-hidden': 'true', text: initials(assisting.admin_name || assisting.admin_id) }), name(assisting), assisting.since ? h('span', { class: 'muted', text: ` · ${since(assisting.since)}` }) : null)
        : h('p', { class: 'muted', text: S.view.nobodyAssisting }),
    );
    const watchers = p.watchers || [];
    el.presence.append(h('p', { class: 'presence-label', text: `${S.view.watching} (${watchers.length})` }));
    const list = h('ul', { class: 'watchers' });
    for (const w of watchers) {
      list.append(h('li', { 'data-testid': 'presence-watcher', dataset: { adminId: w.admin_id || '', me: String(w.admin_id === me.id) } }, h('span', { class: 'avatar', 'aria-hidden': 'true', text: initials(w.admin_name || w.admin_id) }), name(w)));
    }
    el.presence.append(list);
    el.presence.dataset.watchers = String(watchers.length);
    el.presence.dataset.assisting = assisting ? assisting.admin_name || assisting.admin_id : '';
    renderHelpCallout();
  }

  function initials(name) {
    return String(name || '?')
      .split(/[\s._-]+/)
      .filter(Boolean)
      .slice(0, 2)
      .map((w) => w[0].toUpperCase())
      .join('');
  }

  function renderAudit() {
    clear(el.audit);
    if (!state.takeovers.length) {
      el.audit.append(h('li', { class: 'muted', text: S.view.auditEmpty }));
      return;
    }
    for (const t of state.takeovers) {
      const text = t.ended_at
        ? S.format(S.view.auditClosed, { name: t.admin_name || t.admin_id, start: when(t.started_at), end: when(t.ended_at), reason: S.view.reason[t.end_reason] || t.end_reason || '' })
        : S.format(S.view.auditOpen, { name: t.admin_name || t.admin_id, start: when(t.started_at) });
      el.audit.append(h('li', { text }));
    }
  }

  function renderControls() {
    const me = auth.me();
    const assisting = state.presence && state.presence.assisting;
    const other = assisting && assisting.admin_id && assisting.admin_id !== me.id ? assisting : null;
    if (assisting && assisting.admin_id === me.id) state.held = true;
    const ended = isEnded();
    el.takeover.hidden = state.held;
    el.release.hidden = !state.held;
    el.takeover.disabled = !!state.busy || ended || !!other || !state.live;
    el.release.disabled = !!state.busy;
    el.takeover.textContent = state.busy === 'takeover' ? S.view.takingOver : S.view.takeover;
    el.release.textContent = state.busy === 'release' ? S.view.releasing : S.view.release;
    el.composer.hidden = !state.held;
    el.root.dataset.held = String(state.held);
    el.assistBar.hidden = !state.held;
    el.assistBar.textContent = S.view.youAssist;
    if (other && !state.held) {
      el.takeover.title = S.format(S.view.lockedBy, { name: other.admin_name || other.admin_id });
      showNotice(S.format(S.view.lockedBy, { name: other.admin_name || other.admin_id }), 'warn', 'SESSION_LOCKED');
    } else {
      el.takeover.title = S.view.takeoverHint;
      if (el.notice.dataset.code === 'SESSION_LOCKED') hideNotice();
    }
    if (ended) el.takeover.title = S.view.endedNote;
    el.endedNote.hidden = !ended;
  }

  function renderWatch() {
    if (!el.watch) return;
    let stateName;
    let text;
    let countdown = '';
    const s = socket.state;
    if (s === 'open') {
      stateName = state.live ? 'live' : 'connecting';
      text = state.live ? S.watch.watching : S.watch.connecting;
    } else if (s === 'waiting') {
      stateName = 'reconnecting';
      const seconds = Math.max(0, Math.ceil((socket.retryAt - Date.now()) / 1000));
      text = seconds > 0 ? S.watch.lost : S.watch.reconnectingNow;
      if (seconds > 0) countdown = ` ${S.format(S.watch.reconnectingIn, { seconds })}`;
      state.live = false;
    } else if (s === 'connecting') {
      stateName = 'connecting';
      text = socket.everOpened ? S.watch.reconnectingNow : S.watch.connecting;
    } else {
      stateName = 'offline';
      text = S.watch.offline;
      state.live = false;
    }
    if (el.watch.dataset.state !== stateName) {
      el.watch.dataset.state = stateName;
      renderControls();
    }
    if (el.watchText.textContent !== text) el.watchText.textContent = text;
    if (el.watchCountdown.textContent !== countdown) el.watchCountdown.textContent = countdown;
    el.watchRetry.hidden = s !== 'waiting';
  }

  window.Admin.sessionView = {
    mount: build,
    open,
    close,
    get sessionId() {
      return state.sessionId;
    },
  };
})();
